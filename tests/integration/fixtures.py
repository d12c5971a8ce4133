"""Helpers for the tests that run ``setup/`` scripts in a copy of the repository."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# what a fresh clone does not have
NOT_CLONED = shutil.ignore_patterns(
    ".git", ".smf", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"
)


def copy_repo(target):
    """A copy of the working tree as a fresh clone would have it."""
    shutil.copytree(REPO, target, ignore=NOT_CLONED, symlinks=True)
    return Path(target)


@contextlib.contextmanager
def public_tmpdir(prefix):
    """A temporary folder other users may traverse (as root the private
    PostgreSQL cluster runs as 'postgres'), removed with everything in it
    and every process still running from it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for pid in leftover_processes(path):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        # rm is much faster than shutil.rmtree on an Odoo tree and a venv
        subprocess.run(["rm", "-rf", str(path)], check=False)
        shutil.rmtree(path, ignore_errors=True)


def leftover_processes(folder):
    """Pids of live processes started from ``folder`` (command line or
    working directory inside it); zombies included."""
    folder = str(folder)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if folder in cmdline or cwd.startswith(folder):
            found.append(int(entry.name))
    return found
