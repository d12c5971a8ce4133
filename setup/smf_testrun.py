# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""``setup/test``: our addons installed in a copy of the demo template, then
pytest (with pytest-odoo and ``smf_pytest_plugin``) over the suite."""

import os
import subprocess
import tempfile
import time
from pathlib import Path

import smf_prereq as prereq
from smf_bootstrap import say
from smf_db import (
    ADDONS,
    database_exists,
    duplicate_template,
    ensure_template,
    free_port,
    install_addons,
    log_problems,
    run_odoo_db,
)
from smf_prereq import REPO, addons_path, pg_settings


def junit_counts(path):
    """(passed, failed, skipped) from a pytest JUnit XML report, per test case
    (a test that fails and also errors at teardown counts once)."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415 - only needed here

    if not Path(path).exists():
        return 0, 0, 0
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter("testcase"):
        tags = {child.tag for child in case}
        if tags & {"failure", "error"}:
            failed += 1
        elif "skipped" in tags:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def write_odoo_config(path, dbname):
    """The Odoo configuration pytest-odoo loads for the test database."""
    lines = [
        "[options]",
        f"addons_path = {addons_path()}",
        f"db_name = {dbname}",
        "http_interface = 127.0.0.1",
        f"http_port = {free_port()}",
        "workers = 0",
        "max_cron_threads = 0",
    ]
    lines += [f"{key} = {value}" for key, value in pg_settings().items()]
    Path(path).write_text("\n".join(lines) + "\n")


def install_for_tests(dbname, log_path):
    """Install our addons in a fresh copy of the demo template.

    Returns the problems found (failed install, warnings or errors logged).
    """
    duplicate_template(dbname, demo=True)
    rc, log = install_addons(
        dbname, ADDONS, log_level="info", log_path=log_path, check=False
    )
    problems = log_problems(log)
    if rc:
        problems.append(f"install exited with {rc}")
    return problems


def core_test_paths():
    """Odoo's own tests that must keep passing with our addons installed
    (core ``sms_twilio``, which our provider addon extends)."""
    out = subprocess.run(
        [
            prereq.PYTHON,
            "-c",
            "import odoo, os; print(os.path.dirname(odoo.__path__[0]))",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    candidates = [
        Path(out) / "addons" / "sms_twilio" / "tests",
        Path(out) / "odoo" / "addons" / "sms_twilio" / "tests",
    ]
    return [str(path) for path in candidates if path.is_dir()][:1]


def run_tests(args):
    workdir = Path(tempfile.mkdtemp(prefix="smf-test-"))
    say(f"Logs and reports go to {workdir}")
    started = time.monotonic()
    ensure_template(demo=True)
    ensure_template(demo=False)

    dbname = f"smf_test_{os.getpid()}"
    say(f"\n== Installing {', '.join(ADDONS)} in {dbname}")
    install_problems = install_for_tests(dbname, workdir / "install.log")
    for line in install_problems:
        say(f"  {line}")
    config = workdir / "odoo.conf"
    write_odoo_config(config, dbname)
    junit = workdir / "pytest.xml"
    selection = args.pytest_args or [*ADDONS, "tests", *core_test_paths()]
    cmd = [
        prereq.PYTHON,
        "-m",
        "pytest",
        # our plugins: pytest-odoo (registry, transactions, HTTP server for the
        # tours) and the check that turns Odoo warnings into failures
        "-o",
        "addopts=-p no:cacheprovider",
        "-p",
        "odoo",
        "-p",
        "smf_pytest_plugin",
        f"--odoo-config={config}",
        f"--odoo-database={dbname}",
        "--odoo-log-level=warn",
        "--odoo-http",
        f"--junitxml={junit}",
        "-ra",
        *selection,
    ]
    if args.no_lint:
        cmd.insert(cmd.index("-ra"), "--deselect=tests/test_lint.py::test_lint")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO / "setup"), os.environ.get("PYTHONPATH")) if p
        ),
    )
    say(f"\n== pytest: {' '.join(selection)}")
    try:
        rc = subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode
    finally:
        if not args.keep_db and database_exists(dbname):
            run_odoo_db("drop", dbname)
    passed, failed, skipped = junit_counts(junit)
    if rc not in (0, 5) and not failed:
        failed += 1  # pytest itself broke (collection, usage): never report green
    if install_problems:
        failed += 1
        say("install of the addons logged problems (counted as one failure)")
    else:
        passed += 1
    say(
        f"\nsetup/test finished in {time.monotonic() - started:.0f} s "
        f"(the install check counts as one test; logs in {workdir})"
    )
    say(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0
