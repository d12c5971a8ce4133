# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Prerequisites of every ``setup/`` command: Odoo 19.0's interpreter, a
PostgreSQL server (the configured one or the project's private cluster) and
the Python requirements.

``PYTHON`` is the interpreter every child process runs; ``prepare_python``
may replace it with the project's environment, so other modules read it as
``smf_prereq.PYTHON`` at the time of the call.
"""

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import smf_bootstrap as bootstrap
import smf_postgres
from smf_bootstrap import PrerequisiteError, say

REPO = Path(__file__).resolve().parent.parent
ODOO_SERIES = "19.0"
PYTHON = os.environ.get("PYTHON", "python3")
EXIT_PREREQUISITE = 2


class PostgresqlUnreachable(PrerequisiteError):
    """No connection to the configured server; ``refused`` when nothing
    answered at all (as opposed to a server that rejected us)."""

    def __init__(self, message, detail, refused):
        super().__init__(message)
        self.detail = detail
        self.refused = refused


# What libpq says when nothing answers at the address it tried.
NOTHING_LISTENS = re.compile(
    r"Connection refused|No such file or directory|could not translate host name|"
    r"timeout expired|Network is unreachable|could not connect to server",
    re.IGNORECASE,
)


def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


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
