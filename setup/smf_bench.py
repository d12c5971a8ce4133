# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What every script of ``benchmarks/`` does before and around its figures:
prerequisites, the machine's load, a throwaway database."""

import contextlib
import importlib.util
import os
import shlex
import sys
import time

from smf_bootstrap import PrerequisiteError, say
from smf_db import duplicate_template, install_addons, run_odoo_db
from smf_prereq import EXIT_PREREQUISITE, check_prerequisites


def load_file(name, path):
    """Import a script that is not on the path (a benchmark, a tool of an
    addon) as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def reproduce_command(script, argv=None):
    """The command line that runs ``script`` again with these arguments."""
    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["python3", script, *args])


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
    install_addons(dbname, addons)
    say(f"  ready in {time.monotonic() - started:.0f} s")
    try:
        yield dbname
    finally:
        if not keep:
            run_odoo_db("drop", dbname)


@contextlib.contextmanager
def bench_session(args, addons=("sms_microfunnel",)):
    """The preamble of a benchmark's ``main()``: Odoo 19.0 and PostgreSQL
    checked (exit 2 with the reason when missing), the machine's cores and
    load printed before and after, and the database of ``args.db`` /
    ``args.keep`` (see ``bench_database``) for the duration."""
    try:
        check_prerequisites()
    except PrerequisiteError as exc:
        say(f"benchmark: {exc}")
        raise SystemExit(EXIT_PREREQUISITE) from None
    say(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}")
    with bench_database(args.db, keep=args.keep, addons=addons) as dbname:
        yield dbname
    say(f"load average at the end: {os.getloadavg()}")
