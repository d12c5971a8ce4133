# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What every script of ``benchmarks/`` does before and around its figures:
prerequisites, the machine's load, a throwaway database."""

import contextlib
import importlib.util
import os
import shlex
import sys
import time
from pathlib import Path

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


# Where a CPU quota can be set: the cgroup v1 "cpu" hierarchy, else the
# unified (v2) one when it offers the cpu controller.
CGROUP_V1_CPU = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 20_000  # short: a capped server runs in short slices


class CpuCap:
    """At most ``cpus`` cores for a process and every process it starts (a
    Linux control group of its own): one "server" of a benchmark that has
    fewer cores than servers, PostgreSQL and the simulator together need.

    ``join`` moves a process in (a child right after it started, with the
    threads it has; what it starts later is in too), ``leave`` back out."""

    def __init__(self, cpus, name):
        quota = max(1000, int(cpus * CPU_PERIOD_US))
        if (CGROUP_V1_CPU / "cpu.cfs_quota_us").exists():
            self.root = CGROUP_V1_CPU
            self.path = CGROUP_V1_CPU / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        elif "cpu" in _read(CGROUP_V2 / "cgroup.subtree_control").split():
            self.root = CGROUP_V2
            self.path = CGROUP_V2 / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
        else:
            raise OSError("no cgroup CPU controller to write to")

    @classmethod
    def require(cls, cpus):
        """Exit 2 with the reason when ``cpus`` (a benchmark's
        ``--cpus-per-server``) is asked for and no quota can be set here."""
        if not cpus:
            return
        try:
            cls(1, f"smf-bench-probe-{os.getpid()}").close()
        except OSError as error:
            say(
                "benchmark: --cpus-per-server needs a writable cgroup CPU "
                f"controller ({error})"
            )
            raise SystemExit(EXIT_PREREQUISITE) from None

    @classmethod
    def per_server(cls, cpus, count, name):
        """One cap of ``cpus`` cores for each of ``count`` servers (Nones
        without ``cpus``)."""
        return [
            cls(cpus, f"smf-bench-{os.getpid()}-{name}-{n}") if cpus else None
            for n in range(count)
        ]

    def join(self, pid=None):
        (self.path / "cgroup.procs").write_text(str(pid or os.getpid()))

    def leave(self, pid=None):
        (self.root / "cgroup.procs").write_text(str(pid or os.getpid()))

    def close(self):
        """Remove the group (its processes have ended or left)."""
        with contextlib.suppress(OSError):
            for pid in _read(self.path / "cgroup.procs").split():
                with contextlib.suppress(OSError):
                    self.leave(pid)
            self.path.rmdir()


def _read(path):
    try:
        return Path(path).read_text()
    except OSError:
        return ""
