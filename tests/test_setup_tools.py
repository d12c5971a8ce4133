"""The log and report parsing that decides whether ./setup/test is green."""

import importlib.util
import os
import subprocess
import sys
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


def test_templates_differ_by_demo_and_cover_dependencies():
    deps = smf.odoo_dependencies()
    assert "sms_twilio" in deps and "crm" in deps
    assert not set(deps) & set(smf.ADDONS)
    assert smf.template_name(True) != smf.template_name(False)
    assert smf.template_name(True).endswith("_demo")


def test_junit_counts(tmp_path):
    report = tmp_path / "r.xml"
    report.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="2" '
        'failures="1" skipped="1" tests="4">'
        '<testcase name="ok"/>'
        '<testcase name="fails_and_errors_at_teardown"><failure/><error/></testcase>'
        '<testcase name="errors"><error/></testcase>'
        '<testcase name="skipped"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    assert smf.junit_counts(report) == (1, 2, 1)
    assert smf.junit_counts(tmp_path / "missing.xml") == (0, 0, 0)


def test_warning_plugin_fails_a_test_that_makes_odoo_warn(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        "import logging\n"
        "def test_quiet():\n"
        "    logging.getLogger('odoo.addons.x').info('fine')\n"
        "def test_warns():\n"
        "    logging.getLogger('odoo.addons.x').warning('deprecated thing')\n"
        "def test_other_library_may_warn():\n"
        "    logging.getLogger('urllib3').warning('not ours')\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:odoo",
            "-p",
            "no:cacheprovider",
            "-p",
            "smf_pytest_plugin",
            str(tmp_path / "test_sample.py"),
        ],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO / "setup")),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "ERROR test_sample.py::test_warns" in result.stdout
    assert "1 error" in result.stdout
    assert "deprecated thing" in result.stdout
