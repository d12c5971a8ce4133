# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Child process groups: stopped with everything they leave behind."""

import contextlib
import os
import signal
import subprocess
import time


class Terminated(KeyboardInterrupt):
    """SIGTERM: unwinds like Ctrl-C, so every ``finally`` stops what it started."""


def terminate_on_sigterm():
    def _terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, _terminate)


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
