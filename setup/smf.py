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

The machinery is split by job; this module is the command line and the one
import for scripts (benchmarks, tests), which find every name here:

* ``smf_prereq``: Odoo's interpreter, PostgreSQL, the Python requirements;
* ``smf_db``: templates, throwaway databases, Odoo run to completion;
* ``smf_demo``: the demo of ``setup/run`` and its Twilio simulator;
* ``smf_testrun``: ``setup/test`` (install check, then pytest);
* ``smf_bench``: what the benchmarks share;
* ``smf_process``: stopping child process groups.
"""

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Re-exported: ``smf.<name>`` is the interface of the benchmarks and tests.
import smf_bootstrap as bootstrap  # noqa: F401
import smf_postgres  # noqa: F401
import smf_prereq as prereq
from smf_bench import (  # noqa: F401
    CpuCap,
    bench_database,
    bench_session,
    load_file,
    reproduce_command,
)
from smf_bootstrap import PrerequisiteError, StepFailed, say  # noqa: F401
from smf_db import (  # noqa: F401
    ADDONS,
    database_exists,
    duplicate_template,
    ensure_template,
    free_port,
    install_addons,
    installed_modules,
    log_problems,
    odoo_dependencies,
    odoo_shell,
    psql_query,
    run_odoo,
    run_odoo_db,
    template_name,
)
from smf_demo import (  # noqa: F401
    DEMO_TWILIO_NUMBER,
    DEMO_TWILIO_SID,
    DEMO_TWILIO_TOKEN,
    serve_demo,
    start_simulator,
)
from smf_prereq import (  # noqa: F401
    EXIT_PREREQUISITE,
    REPO,
    addons_path,
    check_postgresql,
    check_prerequisites,
    check_python,
    db_options,
    odoo_command,
    pg_args,
    prerequisites,
)
from smf_process import stop_group, terminate_on_sigterm  # noqa: F401
from smf_testrun import junit_counts, run_tests  # noqa: F401


def __getattr__(name):
    # The interpreter may change once prerequisites ran (the project's
    # environment): read it where it lives, never a copy.
    if name == "PYTHON":
        return prereq.PYTHON
    raise AttributeError(name)


def cmd_run(args):
    with prerequisites():
        return serve_demo(args)


def cmd_test(args):
    with prerequisites(("requirements.txt", "requirements-test.txt"), for_tests=True):
        return run_tests(args)


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
    terminate_on_sigterm()
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
