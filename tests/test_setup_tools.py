"""The log and report parsing that decides whether ./setup/test is green."""

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
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


# ---------------------------------------------------------------------------
# First-run set-up (setup/smf_bootstrap.py, setup/smf_postgres.py)
# ---------------------------------------------------------------------------

boot = smf.bootstrap
DEBIAN = {"ID": "debian", "VERSION_ID": "12"}
UBUNTU = {"ID": "ubuntu", "ID_LIKE": "debian"}
FEDORA = {"ID": "fedora"}


def test_system_package_names_per_family():
    needs = ["compiler", "python-headers", "ldap", "sasl", "libpq"]
    assert boot.package_names(needs, "debian", (3, 12), DEBIAN) == [
        "build-essential",
        "python3.12-dev",
        "libldap-dev",
        "libsasl2-dev",
        "libpq-dev",
    ]
    assert boot.package_names(["chromium"], "debian", (3, 12), UBUNTU) == [
        "chromium-browser"
    ]
    assert boot.package_names(["chromium"], "debian", (3, 12), DEBIAN) == ["chromium"]
    assert boot.package_names(["ldap", "postgresql"], "fedora", (3, 12), FEDORA) == [
        "openldap-devel",
        "postgresql-server",
    ]
    assert boot.os_family(UBUNTU) == "debian"
    assert boot.os_family(FEDORA) == "fedora"
    assert boot.os_family({"ID": "arch"}) == ""


def test_missing_system_packages_without_root_print_the_command(monkeypatch):
    monkeypatch.setattr(boot.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(boot, "os_release", lambda: UBUNTU)
    try:
        boot.ensure_system_packages(["ldap", "sasl"], (3, 11), "Installing X")
    except boot.PrerequisiteError as error:
        message = str(error)
    else:
        raise AssertionError("a missing package must stop the script")
    assert "OpenLDAP headers, SASL headers" in message
    assert (
        "sudo apt-get install -y --no-install-recommends libldap-dev libsasl2-dev"
        in (message)
    )
    monkeypatch.setattr(boot, "os_release", lambda: {"ID": "arch"})
    try:
        boot.ensure_system_packages(["wkhtmltopdf"], (3, 11), "The test suite")
    except boot.PrerequisiteError as error:
        assert "package manager" in str(error) and "wkhtmltopdf" in str(error)
    else:
        raise AssertionError("a missing package must stop the script")


def test_missing_system_package_exits_2_without_traceback(monkeypatch, capsys):
    """``setup/test`` as a normal user without Chromium: exit 2 and the command."""
    monkeypatch.setattr(boot.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(boot, "os_release", lambda: DEBIAN)
    monkeypatch.setattr(smf.prereq, "browser_needs", lambda: ["chromium"])
    monkeypatch.setattr(smf.prereq, "PYTHON", sys.executable)
    monkeypatch.setenv("PYTHON", sys.executable)
    monkeypatch.setattr(smf.prereq, "check_python", lambda: "19.0")
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert smf.main(["test"]) == 2
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capsys.readouterr().err
    assert "sudo apt-get install -y --no-install-recommends chromium" in err
    assert "Traceback" not in err


def test_root_on_debian_installs_with_apt_after_saying_what(
    monkeypatch, capsys, tmp_path
):
    calls = []
    monkeypatch.setattr(boot.os, "geteuid", lambda: 0)
    monkeypatch.setattr(boot, "os_release", lambda: DEBIAN)
    monkeypatch.setattr(boot.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(boot, "STATE", tmp_path)
    monkeypatch.setattr(boot, "run_logged", lambda cmd, *a, **k: calls.append(cmd))
    boot.ensure_system_packages(["postgresql"], (3, 11), "The private cluster")
    assert "installing the system packages postgresql with apt-get" in (
        capsys.readouterr().out
    )
    assert calls == [
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ]


def _odoo_tree(root, series=(19, 0)):
    (root / "odoo").mkdir(parents=True)
    (root / "odoo" / "release.py").write_text(
        f"version_info = ({series[0]}, {series[1]}, 0, 'final', 0, '')\n"
        "series = serie = major_version = '.'.join(map(str, version_info[:2]))\n"
    )
    (root / "requirements.txt").write_text("")
    return root


def test_odoo_source_kinds_and_archive_layouts(tmp_path):
    assert boot.check_source(boot.DEFAULT_ODOO_SOURCE) == "url"
    tree = _odoo_tree(tmp_path / "src" / "odoo-19.0.post20260101")
    assert boot.check_source(str(tmp_path / "src")) == "folder"  # one level down
    assert boot.odoo_root_in(tmp_path / "src") == tree
    old = _odoo_tree(tmp_path / "old", (17, 0))
    with pytest.raises(boot.PrerequisiteError, match=r"holds Odoo 17\.0"):
        boot.check_source(str(old))
    with pytest.raises(boot.PrerequisiteError, match="does not exist"):
        boot.check_source(str(tmp_path / "missing"))
    (tmp_path / "notes.txt").write_text("not an archive")
    with pytest.raises(boot.PrerequisiteError, match="neither a folder nor"):
        boot.check_source(str(tmp_path / "notes.txt"))
    # a release archive (one top folder) and a zip of the tree itself
    archive = tmp_path / "odoo.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree, arcname="odoo-19.0.post20260101")
    assert boot.check_source(str(archive)) == "archive"
    target = tmp_path / "state" / "odoo"
    target.parent.mkdir()
    assert boot.extract(archive, target, "unpack") == target
    assert (target / "odoo" / "release.py").exists()
    assert not target.with_name("odoo.partial").exists()
    zipped = tmp_path / "odoo.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(tree / "odoo" / "release.py", "odoo/release.py")
    assert boot.extract(zipped, target, "unpack") == target  # replaces the last one
    assert boot.source_series(target) == "19.0"


def test_steps_print_progress_with_timings(capsys):
    steps = boot.Steps(2)
    with steps.step("Download"):
        pass
    with pytest.raises(ValueError), steps.step("Unpack"):
        raise ValueError("boom")
    out = capsys.readouterr().out
    assert "[1/2] Download…" in out and "[2/2] Unpack…" in out
    assert out.count("done in") == 1  # a failed step does not say done


def test_failed_step_message_has_log_tail(tmp_path):
    log = tmp_path / "logs" / "x.log"
    with pytest.raises(boot.StepFailed) as caught:
        boot.run_logged(
            [sys.executable, "-c", "print('line one'); print('the cause'); exit(3)"],
            log,
            "requirements",
        )
    message = str(caught.value)
    assert "step 'requirements' failed (exit 3)" in message
    assert str(log) in message and "the cause" in message


def test_private_cluster_life_cycle_and_interrupted_initdb():
    """A real cluster in a folder: start, connect by socket and TCP, stop; an
    initdb cut short is started over."""
    cluster = smf.smf_postgres.Cluster
    if smf.smf_postgres.server_binaries() is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    folder = Path(tempfile.mkdtemp(prefix="smf-pg-unit-"))
    folder.chmod(0o755)
    try:
        # what an interrupted initdb leaves: a data folder, no 'initialized'
        (folder / "postgresql" / "data").mkdir(parents=True)
        (folder / "postgresql" / "data" / "half-written").write_text("")
        pg = cluster(folder / "postgresql")
        pg.start()
        try:
            assert pg.started_here and not smf.smf_postgres.port_free(pg.port)
            env = pg.environment()
            script = (
                "import psycopg2, sys\n"
                "for host in sys.argv[1:]:\n"
                "    c = psycopg2.connect(dbname='postgres', host=host, "
                f"port={env['PGPORT']}, user={env['PGUSER']!r}, "
                f"password={env['PGPASSWORD']!r})\n"
                "    cur = c.cursor(); cur.execute('select current_user, "
                "(select rolsuper from pg_roles where rolname = current_user)')\n"
                "    print(*cur.fetchone())\n"
            )
            out = subprocess.run(
                [smf.PYTHON, "-c", script, env["PGHOST"], "127.0.0.1"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split("\n")
            assert out[:2] == ["odoo True", "odoo True"]
            again = cluster(folder / "postgresql")
            again.start()  # already running: used, not owned
            assert again.port == pg.port and not again.started_here
            again.stop()
            assert not smf.smf_postgres.port_free(pg.port)
        finally:
            pg.stop()
        assert smf.smf_postgres.port_free(pg.port)
        assert not (folder / "postgresql" / "data" / "postmaster.pid").exists()
        assert not (folder / "postgresql" / "data" / "half-written").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.name != "posix", reason="POSIX process groups")
def test_stop_group_ends_what_the_leader_leaves_behind(tmp_path):
    """A stopped Odoo can leave a child it started (a report renderer) in
    its process group: stopping the group must not leave it running."""
    pidfile = tmp_path / "child.pid"
    leader = textwrap.dedent(f"""\
        import signal, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "import os, signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(600)"])
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            sys.exit(0)  # exits without waiting for its child
        """)
    proc = subprocess.Popen([sys.executable, "-c", leader], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        # the child writes its pid once it ignores Ctrl-C, as the renderer does
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the leader never started its child"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        smf.stop_group(proc, timeout=10)
        assert proc.returncode == 0
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child left in the group still runs"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def _alive(pid):
    """Running (not merely a zombie waiting for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
