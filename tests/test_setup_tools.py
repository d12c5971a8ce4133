"""The log and report parsing that decides whether ./setup/test is green."""

import importlib.util
import textwrap

from conftest import REPO

_spec = importlib.util.spec_from_file_location(
    "smf_setup_unit", REPO / "setup" / "smf.py"
)
smf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smf)

HEAD = "2026-11-25 10:39:26,939 12509"


def test_log_problems_catches_warnings_and_errors():
    log = textwrap.dedent(f"""\
        {HEAD} INFO db odoo.modules.loading: Modules loaded.
        {HEAD} WARNING db odoo.models: Two fields (a, b) have the same label
        {HEAD} ERROR db odoo.addons.sms_microfunnel.models.x: boom
        {HEAD} CRITICAL ? odoo.service.server: Failed to initialize database
        {HEAD} WARNING db odoo.modules.loading: Transient module states were reset
        Traceback (most recent call last):
    """)
    problems = smf.log_problems(log)
    assert len(problems) == 3
    assert "same label" in problems[0]
    assert "boom" in problems[1]
    assert "Failed to initialize" in problems[2]


def test_parse_odoo_test_log_counts():
    log = textwrap.dedent(f"""\
        {HEAD} INFO db odoo.addons.smf.tests.test_ui: skipped test_x : no chrome
        {HEAD} ERROR db odoo.addons.smf.tests.test_a: FAIL: TestA.test_b
        {HEAD} INFO db odoo.tests.result: 1 failed, 1 error(s) of 12 tests when loading
    """)
    passed, failed, skipped, problems = smf.parse_odoo_test_log(log)
    assert (passed, failed, skipped) == (9, 2, 1)
    assert len(problems) == 1 and "FAIL" in problems[0]


def test_parse_odoo_test_log_without_result_is_a_failure():
    passed, failed, _skipped, problems = smf.parse_odoo_test_log(
        "crashed before the tests"
    )
    assert (passed, failed) == (0, 1)
    assert problems


def test_templates_differ_by_demo_and_cover_dependencies():
    deps = smf.odoo_dependencies()
    assert "sms_twilio" in deps and "crm" in deps
    assert not set(deps) & set(smf.ADDONS)
    assert smf.template_name(True) != smf.template_name(False)
    assert smf.template_name(True).endswith("_demo")
