# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Databases: cached templates of our Odoo dependencies, throwaway copies of
them, and Odoo run to completion in one of them (install, ``odoo db``,
``odoo shell``)."""

import ast
import hashlib
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import smf_bootstrap as bootstrap
import smf_prereq as prereq
from smf_bootstrap import say
from smf_prereq import REPO, addons_path, db_options, odoo_command, pg_args

ADDONS = tuple(sorted(p.parent.name for p in REPO.glob("*/__manifest__.py")))

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
        [prereq.PYTHON, "-c", script, dbname, sql, *args],
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
        [prereq.PYTHON, "-c", "import odoo.release as r; print(r.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def file_lock(name):
    """An exclusive lock of this machine (a file in the temporary folder)."""
    return bootstrap.locked(Path(tempfile.gettempdir()) / f"{name}.lock")


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


def install_addons(dbname, addons, log_level="warn", log_path=None, check=True):
    """Install ``addons`` in ``dbname`` (Odoo run to completion); returns
    ``run_odoo``'s (returncode, log text)."""
    return run_odoo(
        [
            "-d",
            dbname,
            "-i",
            ",".join(addons),
            "--stop-after-init",
            f"--http-port={free_port()}",
            f"--log-level={log_level}",
        ],
        log_path=log_path,
        check=check,
    )


def odoo_shell(dbname, script, env=None):
    """Run ``script`` in ``odoo shell`` on ``dbname`` (no HTTP); returns the
    completed process (text output captured, not checked)."""
    cmd = odoo_command(
        f"--addons-path={addons_path()}",
        "shell",  # only --addons-path may come before Odoo's subcommand
        *db_options(),
        "-d",
        dbname,
        "--no-http",
        "--log-level=warn",
    )
    return subprocess.run(
        cmd,
        input=script,
        text=True,
        capture_output=True,
        cwd=REPO,
        env=dict(os.environ, **(env or {})),
        check=False,
    )
