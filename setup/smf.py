#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The machinery behind ``setup/run`` and ``setup/test``.

Standard library only: this file must be able to explain, in plain words, why
it cannot go on (no Odoo, wrong Odoo, no PostgreSQL) before anything else is
imported.  Odoo itself always runs in a child process (``$PYTHON -m odoo``).

Databases it creates (all on the PostgreSQL server Odoo is configured for):

* ``smf_tpl_<hash>[_demo]``: cached templates holding the Odoo modules our
  addons depend on (never our addons).  The hash covers the Odoo version and
  the dependency list, so a change of either builds a new template.
* ``smf_test_<pid>_<n>``: throwaway copies of a template for one test run.
* ``$SMF_DB`` (default ``smf_demo``): the demo database of ``setup/run``.

When ``$PYTHON`` has no Odoo, ``smf_bootstrap`` installs Odoo 19.0 into the
project's environment ``.smf/venv`` first; when no PostgreSQL server is
reachable, ``smf_postgres`` runs the project's private cluster for the
duration of the command.
"""

import argparse
import ast
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import smf_bootstrap as bootstrap
import smf_postgres
from smf_bootstrap import PrerequisiteError, StepFailed, say

REPO = Path(__file__).resolve().parent.parent
ADDONS = tuple(sorted(p.parent.name for p in REPO.glob("*/__manifest__.py")))
ODOO_SERIES = "19.0"
PYTHON = os.environ.get("PYTHON", "python3")
EXIT_PREREQUISITE = 2

# A WARNING/ERROR/CRITICAL log line, in Odoo's log format.
LOG_PROBLEM = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ "
    r"(WARNING|ERROR|CRITICAL) (\S+) ([\w.]+): (.*)$"
)
# Log lines that are not about our code and that Odoo prints on any healthy
# run of this kind; each one is explained.
ALLOWED_LOG_PROBLEMS = (
    # a throwaway database is (re)created in a fresh process: nothing to reset
    re.compile(r"odoo\.modules\.loading: Transient module states were reset"),
)


class PostgresqlUnreachable(PrerequisiteError):
    """No connection to the configured server; ``refused`` when nothing
    answered at all (as opposed to a server that rejected us)."""

    def __init__(self, message, detail, refused):
        super().__init__(message)
        self.detail = detail
        self.refused = refused


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C, so every ``finally`` stops what it started."""


def _terminate(signum, frame):
    raise Terminated()


# What libpq says when nothing answers at the address it tried.
NOTHING_LISTENS = re.compile(
    r"Connection refused|No such file or directory|could not translate host name|"
    r"timeout expired|Network is unreachable|could not connect to server",
    re.IGNORECASE,
)


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


# ---------------------------------------------------------------------------
# Prerequisites
# ---------------------------------------------------------------------------


def odoo_command(*args):
    return [PYTHON, "-m", "odoo", *args]


# libpq environment variable → Odoo option (without its leading dashes)
PG_ENV_TO_ODOO = {
    "PGHOST": "db_host",
    "PGPORT": "db_port",
    "PGUSER": "db_user",
    "PGPASSWORD": "db_password",
}


def pg_settings():
    """{odoo option: value} for the PG* variables set in the environment."""
    return {
        option: os.environ[name]
        for name, option in PG_ENV_TO_ODOO.items()
        if os.environ.get(name)
    }


def pg_args():
    """The PG* values, in a fixed order, for the small psycopg2 probes (the
    password stays in the environment, where libpq finds it)."""
    return [
        "" if name == "PGPASSWORD" else os.environ.get(name, "")
        for name in PG_ENV_TO_ODOO
    ]


def db_options():
    """Odoo's database options from the environment (libpq's PG* variables).

    Not the password: libpq reads PGPASSWORD from the environment Odoo
    inherits, and a command line is visible to every local user."""
    return [
        f"--{option}={value}"
        for option, value in pg_settings().items()
        if option != "db_password"
    ]


def addons_path():
    extra = os.environ.get("SMF_ADDONS_PATH", "")
    return ",".join(p for p in (str(REPO), *extra.split(",")) if p)


def check_python():
    if not shutil.which(PYTHON) and not Path(PYTHON).is_file():
        raise PrerequisiteError(
            f"Python interpreter '{PYTHON}' not found. Set PYTHON to the Python in "
            "which Odoo 19.0 is installed, e.g. PYTHON=/opt/odoo/venv/bin/python."
        )
    probe = subprocess.run(
        [PYTHON, "-c", "import odoo.release as r; print(r.series)"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode:
        detail = last_line(probe.stderr) or "no output"
        raise PrerequisiteError(
            f"Odoo {ODOO_SERIES} is not importable from '{PYTHON}' ({detail}).\n"
            f"Install Odoo {ODOO_SERIES} Community into that Python (see README.md, "
            "'Prerequisites'), or point PYTHON at the interpreter that has it."
        )
    series = probe.stdout.strip()
    if series != ODOO_SERIES:
        raise PrerequisiteError(
            f"'{PYTHON}' imports Odoo {series}, but these addons need Odoo "
            f"{ODOO_SERIES}. Point PYTHON at an interpreter with Odoo {ODOO_SERIES}."
        )
    return series


def check_postgresql():
    """Connect the way Odoo will (psycopg2 in $PYTHON, libpq environment)."""
    script = (
        "import sys, psycopg2\n"
        "kw = dict(dbname='postgres')\n"
        "for k, v in zip(('host', 'port', 'user', 'password'), sys.argv[1:]):\n"
        "    if v: kw[k] = v\n"
        "conn = psycopg2.connect(connect_timeout=5, **kw)\n"
        "cur = conn.cursor()\n"
        "cur.execute('show server_version_num')\n"
        "print(cur.fetchone()[0])\n"
    )
    args = pg_args()
    probe = subprocess.run(
        [PYTHON, "-c", script, *args], capture_output=True, text=True, check=False
    )
    if probe.returncode:
        errors = [
            line.split(":", 1)[1].strip()
            for line in probe.stderr.splitlines()
            if line.startswith("psycopg2.OperationalError:")
        ]
        detail = errors[0] if errors else last_line(probe.stderr)
        raise PostgresqlUnreachable(
            "PostgreSQL is not reachable with the settings Odoo will use "
            f"(PGHOST={os.environ.get('PGHOST', '<local socket>')}, "
            f"PGPORT={os.environ.get('PGPORT', '5432')}, "
            f"PGUSER={os.environ.get('PGUSER', '<current user>')}): {detail}\n"
            "Start PostgreSQL (13 or newer) and make sure this role exists and may "
            "create databases (Odoo refuses the 'postgres' role), e.g.: "
            "sudo -u postgres createuser --superuser $USER",
            detail,
            bool(NOTHING_LISTENS.search(probe.stderr)),
        )
    version = int(probe.stdout.strip())
    if version < 130000:
        raise PrerequisiteError(
            f"PostgreSQL {version // 10000} is too old: "
            f"Odoo {ODOO_SERIES} needs 13 or newer."
        )
    return version


def install_requirements(*files):
    """Install the project's Python requirements into $PYTHON (quiet when met).

    In the project's own environment a stamp of the files skips pip when they
    did not change since the last install."""
    args = []
    digest = hashlib.sha256(PYTHON.encode())
    for name in files:
        args += ["-r", str(REPO / name)]
        digest.update((REPO / name).read_bytes())
    stamp = None
    if Path(PYTHON).resolve().is_relative_to(bootstrap.STATE.resolve()):
        stamp = bootstrap.STATE / "venv" / f".smf-{digest.hexdigest()[:16]}"
        if stamp.exists():
            return
    result = subprocess.run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *args,
        ],
        check=False,
    )
    if result.returncode:
        raise PrerequisiteError(
            f"Could not install {', '.join(files)} into '{PYTHON}' (pip exit "
            f"{result.returncode}). Install them by hand: {PYTHON} -m pip install "
            + " ".join(args)
        )
    if stamp:
        stamp.write_text("")


def prepare_python():
    """Odoo 19.0's interpreter: $PYTHON, or the project's environment (built
    on first use); exported as PYTHON for every child process."""
    global PYTHON
    PYTHON = bootstrap.ensure_odoo_python(PYTHON)
    os.environ["PYTHON"] = PYTHON
    return check_python()


def pg_configured():
    return any(os.environ.get(name) for name in PG_ENV_TO_ODOO)


@contextlib.contextmanager
def postgresql():
    """The server for this command: the one the PG* variables (or libpq's
    defaults) reach, else the project's private cluster, started here and
    stopped at the end.  ``SMF_POSTGRES=server|private`` forces the choice.
    Yields the server's version number."""
    mode = os.environ.get("SMF_POSTGRES", "auto")
    if mode not in ("auto", "server", "private"):
        raise PrerequisiteError(
            f"SMF_POSTGRES={mode}: use 'server', 'private' or leave it unset."
        )
    if mode != "private":
        try:
            version = check_postgresql()
        except PostgresqlUnreachable as error:
            if mode == "server" or (pg_configured() and not error.refused):
                raise
            say(
                f"No PostgreSQL server answers ({error.detail.strip()}): "
                "using the project's private cluster."
            )
        else:
            yield version
            return
    cluster = smf_postgres.Cluster()
    if cluster.bindir is None:
        version, _ = bootstrap.python_info(PYTHON)
        bootstrap.ensure_system_packages(
            ["postgresql"], version, "The private PostgreSQL cluster"
        )
        cluster = smf_postgres.Cluster()
        if cluster.bindir is None:
            raise PrerequisiteError(
                "No PostgreSQL server binaries (initdb, pg_ctl) were found in "
                "/usr/lib/postgresql/*/bin or on PATH."
            )
    saved = {name: os.environ.get(name) for name in PG_ENV_TO_ODOO}
    try:
        cluster.start()
        os.environ.update(cluster.environment())
        yield check_postgresql()
    finally:
        cluster.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def browser_needs():
    """What the test suite needs from the OS: Chromium (tours), wkhtmltopdf."""
    needs = []
    browsers = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    if not any(shutil.which(name) for name in browsers):
        needs.append("chromium")
    if not shutil.which("wkhtmltopdf"):
        needs.append("wkhtmltopdf")
    return needs


def check_prerequisites(requirements=("requirements.txt",)):
    """For scripts that run on their own (benchmarks): Odoo 19.0 (the project's
    environment is built if needed) and a reachable PostgreSQL server, which
    they use after this returns (so not the private cluster)."""
    series = prepare_python()
    pg = check_postgresql()
    install_requirements(*requirements)
    say(f"ok: Odoo {series} from {PYTHON}; PostgreSQL {pg // 10000}")


@contextlib.contextmanager
def prerequisites(requirements=("requirements.txt",), for_tests=False):
    """Odoo, the OS packages, PostgreSQL and the Python requirements, for the
    duration of one command."""
    series = prepare_python()
    if for_tests:
        version, _ = bootstrap.python_info(PYTHON)
        bootstrap.ensure_system_packages(browser_needs(), version, "The test suite")
    with postgresql() as pg:
        install_requirements(*requirements)
        say(
            f"ok: Odoo {series} from {PYTHON}; PostgreSQL {pg // 10000}; "
            f"requirements installed ({', '.join(requirements)})"
        )
        yield


# ---------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------


def manifest(addon):
    return ast.literal_eval((REPO / addon / "__manifest__.py").read_text())


def odoo_dependencies():
    """The Odoo modules our addons depend on (our own addons excluded)."""
    deps = set()
    for addon in ADDONS:
        deps.update(manifest(addon).get("depends", []))
    return sorted(deps - set(ADDONS))


def psql_query(sql, dbname="postgres"):
    """Run one query through psycopg2 in $PYTHON; returns rows as lists of str."""
    script = (
        "import sys, psycopg2\n"
        "kw = dict(dbname=sys.argv[1])\n"
        "for k, v in zip(('host', 'port', 'user', 'password'), sys.argv[3:]):\n"
        "    if v: kw[k] = v\n"
        "conn = psycopg2.connect(**kw)\n"
        "conn.autocommit = True\n"
        "cur = conn.cursor()\n"
        "cur.execute(sys.argv[2])\n"
        "for row in (cur.fetchall() if cur.description else []):\n"
        "    print('\\t'.join(str(c) for c in row))\n"
    )
    args = pg_args()
    out = subprocess.run(
        [PYTHON, "-c", script, dbname, sql, *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines()]


def database_exists(name):
    return bool(psql_query(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))


def installed_modules(dbname, names):
    quoted = ",".join(f"'{n}'" for n in names)
    rows = psql_query(
        "SELECT name FROM ir_module_module "
        f"WHERE state = 'installed' AND name IN ({quoted})",
        dbname,
    )
    return {row[0] for row in rows}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_odoo(args, log_path=None, check=True):
    """Run Odoo to completion; returns (returncode, log text)."""
    cmd = odoo_command(
        f"--addons-path={addons_path()}",
        *db_options(),
        "--http-interface=127.0.0.1",
        *args,
    )
    with tempfile.TemporaryFile("w+") as tmp:
        proc = subprocess.run(
            cmd, stdout=tmp, stderr=subprocess.STDOUT, check=False, cwd=REPO
        )
        tmp.seek(0)
        log = tmp.read()
    if log_path:
        Path(log_path).write_text(log)
    if check and proc.returncode:
        tail = "\n".join(log.splitlines()[-30:])
        where = f"\nFull log: {log_path}" if log_path else ""
        raise RuntimeError(
            f"Odoo failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}{where}"
        )
    return proc.returncode, log


def log_problems(log):
    """WARNING/ERROR/CRITICAL lines of an Odoo log, minus the explained ones."""
    problems = []
    for line in log.splitlines():
        match = LOG_PROBLEM.match(line)
        if match and not any(p.search(line) for p in ALLOWED_LOG_PROBLEMS):
            problems.append(line)
    return problems


def template_name(demo):
    key = "\n".join([odoo_version_key(), *odoo_dependencies(), f"demo={demo}"])
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return f"smf_tpl_{digest}{'_demo' if demo else ''}"


def odoo_version_key():
    return subprocess.run(
        [PYTHON, "-c", "import odoo.release as r; print(r.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@contextlib.contextmanager
def file_lock(name):
    path = Path(tempfile.gettempdir()) / f"{name}.lock"
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_template(demo=True):
    """Create (once) the template database with our Odoo dependencies installed."""
    name = template_name(demo)
    with file_lock(name):
        if database_exists(name):
            return name
        building = f"{name}_building"
        if database_exists(building):
            run_odoo_db("drop", building)
        modules = ", ".join(odoo_dependencies())
        say(f"Building template database {name} (Odoo modules: {modules})…")
        started = time.monotonic()
        args = [
            "-d",
            building,
            "-i",
            ",".join(odoo_dependencies()),
            "--stop-after-init",
            f"--http-port={free_port()}",
            "--log-level=warn",
        ]
        if demo:
            args.append("--with-demo")
        logs = bootstrap.STATE / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        run_odoo(args, log_path=logs / f"{name}.log")
        run_odoo_db("rename", building, name)
        say(f"Template {name} built in {time.monotonic() - started:.0f} s")
    return name


def run_odoo_db(command, *names):
    """``odoo db <command>``: filestore-aware copy, rename and drop."""
    cmd = [
        *odoo_command("db", f"--addons-path={addons_path()}", *db_options()),
        command,
        *names,
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(
            f"odoo db {command} {' '.join(names)} failed (exit {proc.returncode}):\n"
            + proc.stderr[-3000:]
        )


def duplicate_template(target, demo=True):
    source = ensure_template(demo)
    if database_exists(target):
        run_odoo_db("drop", target)
    run_odoo_db("duplicate", source, target)
    return target


@contextlib.contextmanager
def bench_database(existing=None, keep=False, addons=("sms_microfunnel",)):
    """The database a benchmark runs in: ``existing`` as it is, else a copy of
    the template without demo data with ``addons`` installed, dropped at the
    end unless ``keep``."""
    if existing:
        yield existing
        return
    dbname = f"smf_bench_{os.getpid()}"
    say(f"Copying the template into {dbname} and installing {', '.join(addons)}…")
    started = time.monotonic()
    duplicate_template(dbname, demo=False)
    run_odoo(
        [
            "-d",
            dbname,
            "-i",
            ",".join(addons),
            "--stop-after-init",
            f"--http-port={free_port()}",
            "--log-level=warn",
        ]
    )
    say(f"  ready in {time.monotonic() - started:.0f} s")
    try:
        yield dbname
    finally:
        if not keep:
            run_odoo_db("drop", dbname)


# ---------------------------------------------------------------------------
# setup/run
# ---------------------------------------------------------------------------


def wait_http(url, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


DEMO_TWILIO_SID = "AC" + "d" * 32
DEMO_TWILIO_TOKEN = "demo-token-of-the-loopback-simulator"
DEMO_TWILIO_NUMBER = "+33700000000"


def start_simulator(port, odoo_url):
    """The loopback Twilio simulator the demo company sends through."""
    cmd = [
        PYTHON,
        "-m",
        "devtools.twilio_simulator",
        f"--port={port}",
        f"--account-sid={DEMO_TWILIO_SID}",
        f"--auth-token={DEMO_TWILIO_TOKEN}",
        f"--callback-base={odoo_url}",
        f"--inbound-url={odoo_url}/sms_microfunnel_twilio/inbound",
        "--auto-callbacks",
        "--callback-delay=2",
    ]
    return subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL
    )


def wire_demo_to_simulator(dbname, odoo_url, simulator_url):
    """Run ``demo_twilio.py`` in ``odoo shell``, unless it already ran with
    the same URLs, language and script (an ``odoo shell`` costs a registry
    load: skipping it keeps a re-run quick)."""
    script = (REPO / "setup" / "demo_twilio.py").read_text()
    wiring = " ".join(
        [
            odoo_url,
            simulator_url,
            os.environ.get("SMF_LANG") or "en_US",
            hashlib.sha256(script.encode()).hexdigest()[:16],
        ]
    )
    done = psql_query(
        "SELECT value FROM ir_config_parameter WHERE key = 'smf_setup.demo_wiring'",
        dbname,
    )
    if done == [[wiring]]:
        say("Demo company already wired to the simulator.")
        return
    env = dict(
        os.environ,
        SMF_DEMO_WIRING=wiring,
        SMF_ODOO_URL=odoo_url,
        SMF_TWILIO_URL=simulator_url,
        SMF_TWILIO_SID=DEMO_TWILIO_SID,
        SMF_TWILIO_TOKEN=DEMO_TWILIO_TOKEN,
        SMF_TWILIO_NUMBER=DEMO_TWILIO_NUMBER,
    )
    cmd = odoo_command(
        f"--addons-path={addons_path()}",
        "shell",  # only --addons-path may come before Odoo's subcommand
        *db_options(),
        "-d",
        dbname,
        "--no-http",
        "--log-level=warn",
    )
    proc = subprocess.run(
        cmd,
        input=script,
        text=True,
        capture_output=True,
        cwd=REPO,
        env=env,
        check=False,
    )
    if proc.returncode or "demo company wired" not in proc.stdout:
        raise RuntimeError(
            "Could not wire the demo to the simulator:\n" + proc.stderr[-3000:]
        )


def stop_group(proc, timeout=20):
    """SIGINT to a child's process group, SIGKILL if it lingers; reaped.

    The group outlives its leader while any member is alive: Odoo, once
    stopped, leaves behind a report renderer (wkhtmltopdf) it had started,
    so whatever remains in the group is terminated too."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    end_group(proc.pid)


def end_group(pgid, grace=3.0):
    """SIGTERM to what is left of a process group, SIGKILL after ``grace``."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return  # the group is empty
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def ignore_signals():
    """While cleaning up: a second Ctrl-C or SIGTERM must not cut it short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def cmd_run(args):
    with prerequisites():
        return serve_demo(args)


def serve_demo(args):
    dbname = os.environ.get("SMF_DB", "smf_demo")
    port = int(os.environ.get("SMF_HTTP_PORT", "8069"))
    twilio_port = int(os.environ.get("SMF_TWILIO_PORT", "8075"))
    odoo_url = f"http://127.0.0.1:{port}"
    simulator_url = f"http://127.0.0.1:{twilio_port}"
    if not database_exists(dbname):
        say(f"Creating demo database {dbname} from the template…")
        duplicate_template(dbname, demo=True)
    missing = set(ADDONS) - installed_modules(dbname, ADDONS)
    if missing:
        say(f"Installing {', '.join(sorted(missing))} with demo data in {dbname}…")
        run_odoo(
            [
                "-d",
                dbname,
                "-i",
                ",".join(ADDONS),
                "--stop-after-init",
                f"--http-port={free_port()}",
                "--log-level=warn",
            ]
        )
    else:
        say(f"Reusing demo database {dbname} (both addons installed).")
    wire_demo_to_simulator(dbname, odoo_url, simulator_url)
    cmd = odoo_command(
        f"--addons-path={addons_path()}",
        *db_options(),
        "-d",
        dbname,
        f"--db-filter=^{re.escape(dbname)}$",
        "--http-interface=127.0.0.1",
        f"--http-port={port}",
        *args.odoo_args,
    )
    simulator = proc = None
    try:
        simulator = start_simulator(twilio_port, odoo_url)
        proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
        if wait_http(f"{odoo_url}/web/login", proc):
            say(
                f"\nsms_microfunnel demo is ready: {odoo_url}/odoo  "
                f"(login: admin, password: admin, database: {dbname})\n"
                f"Twilio simulator: {simulator_url} (the demo company sends through "
                "it; delivery reports come back by themselves).\n"
                "Make a contact reply STOP:\n"
                f"  curl -u {DEMO_TWILIO_SID}:{DEMO_TWILIO_TOKEN} "
                "--data-urlencode From=+33612340101 "
                f"--data-urlencode To={DEMO_TWILIO_NUMBER} -d Body=STOP "
                f"{simulator_url}/_simulator/inbound\n"
                "The demo is French (company, contacts, funnels); for a French "
                "interface: SMF_LANG=fr_FR ./setup/run, or Preferences > Language.\n"
                "Press Ctrl-C to stop.\n"
            )
        return proc.wait()
    except KeyboardInterrupt:
        say("Stopping…")
        return 0
    finally:
        ignore_signals()
        stop_group(proc)
        stop_group(simulator, timeout=5)


# ---------------------------------------------------------------------------
# setup/test
# ---------------------------------------------------------------------------


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
    rc, log = run_odoo(
        [
            "-d",
            dbname,
            "-i",
            ",".join(ADDONS),
            "--stop-after-init",
            f"--http-port={free_port()}",
            "--log-level=info",
        ],
        log_path=log_path,
        check=False,
    )
    problems = log_problems(log)
    if rc:
        problems.append(f"install exited with {rc}")
    return problems


def core_test_paths():
    """Odoo's own tests that must keep passing with our addons installed
    (core ``sms_twilio``, which our provider addon extends)."""
    out = subprocess.run(
        [PYTHON, "-c", "import odoo, os; print(os.path.dirname(odoo.__path__[0]))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    candidates = [
        Path(out) / "addons" / "sms_twilio" / "tests",
        Path(out) / "odoo" / "addons" / "sms_twilio" / "tests",
    ]
    return [str(path) for path in candidates if path.is_dir()][:1]


def cmd_test(args):
    with prerequisites(("requirements.txt", "requirements-test.txt"), for_tests=True):
        return run_tests(args)


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
        PYTHON,
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


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="setup/smf.py", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="demo database + Odoo on 127.0.0.1")
    run.add_argument("odoo_args", nargs="*", help="extra Odoo options, after --")
    test = sub.add_parser("test", help="the whole test suite")
    test.add_argument("--no-lint", action="store_true", help="skip the lint test")
    test.add_argument("--keep-db", action="store_true", help="keep the test database")
    test.add_argument("pytest_args", nargs="*", help="pytest arguments, after --")
    sub.add_parser("check", help="check prerequisites only")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.command == "check":
            with prerequisites():
                return 0
        return {"run": cmd_run, "test": cmd_test}[args.command](args)
    except PrerequisiteError as error:
        print(f"setup: {error}", file=sys.stderr)
        return EXIT_PREREQUISITE
    except (StepFailed, RuntimeError) as error:
        print(f"setup: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(
            f"setup: {' '.join(map(str, error.cmd))[:300]} failed "
            f"(exit {error.returncode}):\n{(error.stderr or '')[-3000:]}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(
            "setup: interrupted. Running the same command again resumes where "
            "it stopped.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
