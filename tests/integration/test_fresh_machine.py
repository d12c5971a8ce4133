"""The README's promise on a machine without Odoo: ``./setup/run`` alone.

A copy of the repository (a fresh clone, no ``.smf/``), a new virtual
environment without Odoo as ``$PYTHON``, ``ODOO_SOURCE`` pointing at an archive
of this machine's Odoo 19.0 built for the test (outside the repository), and
``PGPORT`` at a port where nothing listens, so the private cluster starts.

1. the bootstrap is interrupted (Ctrl-C) while the requirements install; it
   leaves nothing running;
2. the next run recovers, serves ``/web/login`` and the demo funnel's SMS
   reach the simulator; Ctrl-C stops Odoo, the simulator and the cluster;
3. a third run reuses everything and is ready quickly; SIGTERM stops it all.

Slow on its first run on a machine: it archives Odoo (kept in ~/.cache/smf-tests
for the next runs) and installs Odoo's requirements from the package index
(pip's own cache, outside the repository, serves later runs).
"""

import base64
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import smf
from .fixtures import copy_repo, leftover_processes, public_tmpdir

READY_TIMEOUT = 25 * 60  # first run: pip downloads and builds Odoo's requirements


def port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def odoo_source_root():
    out = subprocess.run(
        [smf.PYTHON, "-c", "import odoo, os; print(os.path.dirname(odoo.__path__[0]))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return Path(out) if out and (Path(out) / "odoo" / "release.py").exists() else None


def odoo_archive(source):
    """An archive of this machine's Odoo tree, as a user would download it.

    Built once per Odoo version and tree into the user's cache (outside the
    repository): it takes minutes and a few hundred MB."""
    digest = hashlib.sha256(str(source).encode())
    digest.update((source / "odoo" / "release.py").read_bytes())
    # a module added, removed or updated in place changes its folder's times
    for folder in (source / "addons", source / "odoo" / "addons"):
        for entry in sorted(folder.iterdir()):
            digest.update(f"{entry.name}{entry.stat().st_mtime_ns}".encode())
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    archive = cache / "smf-tests" / f"odoo-19.0-{digest.hexdigest()[:12]}.tar.gz"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    for old in archive.parent.glob("odoo-19.0-*.tar.gz"):
        old.unlink()  # one archive at a time
    partial = archive.with_name(f"{archive.name}.{os.getpid()}.part")
    try:
        subprocess.run(
            [
                "tar",
                "-C",
                str(source.parent),
                "--exclude=.git",
                "--exclude=custom_addons",
                "--exclude=__pycache__",
                "--exclude=*.egg-info",
                "-I",
                "gzip -1",
                "-cf",
                str(partial),
                source.name,
            ],
            check=True,
            timeout=1200,
        )
        partial.replace(archive)
    finally:
        partial.unlink(missing_ok=True)
    return archive


class Run:
    """``setup/run`` in its own process group, output collected."""

    def __init__(self, repo, env):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(repo / "setup" / "run")],
            env=env,
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = []
        self.ready_after = None
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if "demo is ready" in line:
                self.ready_after = time.monotonic() - self.started
                self.ready.set()
        self.ready.set()  # it stopped: whoever waits must not wait in vain

    def wait_ready(self, timeout):
        """True once the demo is served; False when it stopped or timed out."""
        return self.ready.wait(timeout) and self.ready_after is not None

    @property
    def output(self):
        return "".join(self.lines)

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output):
                return True
            if self.proc.poll() is not None:
                time.sleep(0.5)  # let the reader thread catch up
                return bool(re.search(pattern, self.output))
            time.sleep(0.5)
        return False

    def signal(self, signum, group=True):
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=120)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def simulator_messages(port):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_simulator/messages")
    token = base64.b64encode(
        f"{smf.DEMO_TWILIO_SID}:{smf.DEMO_TWILIO_TOKEN}".encode()
    ).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["messages"]


def assert_all_stopped(run, tmp, ports):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        leftover_processes(tmp) or any(port_open(p) for p in ports)
    ):
        time.sleep(0.5)
    assert not leftover_processes(tmp), (
        f"processes left behind: {leftover_processes(tmp)}\n{run.output[-3000:]}"
    )
    for port in ports:
        assert not port_open(port), f"port {port} still listens\n{run.output[-3000:]}"


@pytest.mark.skipif(os.name != "posix", reason="POSIX process groups and signals")
def test_fresh_machine_setup_run():
    source = odoo_source_root()
    if source is None:
        pytest.skip("no Odoo 19.0 source on this machine to build ODOO_SOURCE from")
    timings = {}
    runs = []
    with public_tmpdir("smf-fresh-") as tmp:
        try:
            started = time.monotonic()
            archive = odoo_archive(source)
            timings["archive"] = time.monotonic() - started
            repo = copy_repo(tmp / "clone")
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(tmp / "py")],
                check=True,
            )
            python = tmp / "py" / "bin" / "python"
            # A new user's interpreter and pip: nothing of this machine's
            # Odoo, PostgreSQL settings or pip mirrors (PyPI only).
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("PG", "PIP_", "SMF_", "ODOO"))
                and k not in ("PYTHONPATH", "VIRTUAL_ENV")
            }
            probe = subprocess.run(
                [str(python), "-c", "import odoo"],
                env=env,
                capture_output=True,
                check=False,
            )
            assert probe.returncode, "the new virtual environment must not have Odoo"
            pg_port, http_port, twilio_port = (smf.free_port() for _ in range(3))
            assert not port_open(pg_port)
            env.update(
                PYTHON=str(python),
                ODOO_SOURCE=str(archive),
                PGPORT=str(pg_port),
                PIP_CONFIG_FILE=os.devnull,
                SMF_HTTP_PORT=str(http_port),
                SMF_TWILIO_PORT=str(twilio_port),
            )

            # 1. Ctrl-C while pip installs Odoo's requirements
            run = Run(repo, env)
            runs.append(run)
            assert run.wait_for(r"Python requirements", 600), run.output
            # pip has started; with a warm cache the whole step can take less
            # than 20 s on an idle machine, so interrupt it early
            time.sleep(2)
            rc = run.signal(signal.SIGINT)
            assert rc == 130, run.output
            assert "[1/4] Unpacking Odoo's source" in run.output
            assert "Odoo 19.0 ready" not in run.output, "interrupted too late"
            assert "interrupted" in run.output and "Traceback" not in run.output
            assert_all_stopped(run, tmp, [])
            timings["interrupted bootstrap"] = time.monotonic() - run.started

            # 2. again: recovers, serves, SMS reach the simulator, Ctrl-C stops all
            run = Run(repo, env)
            runs.append(run)
            assert run.wait_ready(READY_TIMEOUT), run.output[-5000:]
            timings["bootstrap to ready"] = run.ready_after
            out = run.output
            # finished steps are kept, the interrupted one runs again
            assert "[1/4] Odoo source: reusing" in out, out
            assert re.search(r"\[3/4\] Python requirements.*\n +done in \d+\.\d s", out)
            assert "Odoo 19.0 ready in" in out
            assert "Private PostgreSQL cluster started" in out
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/web/login", timeout=30
            ) as response:
                assert response.status == 200
            deadline = time.monotonic() + 240
            messages = []
            while (
                time.monotonic() < deadline
                and len([m for m in messages if "bienvenue" in m["body"].lower()]) < 3
            ):
                messages = simulator_messages(twilio_port)
                time.sleep(3)
            welcome = [m for m in messages if "bienvenue" in m["body"].lower()]
            assert len(welcome) >= 3, f"the demo funnel's SMS: {messages}"
            cluster_port = int((repo / ".smf" / "postgresql" / "port").read_text())
            assert port_open(cluster_port)
            assert run.signal(signal.SIGINT) == 0, run.output[-3000:]
            assert "Private PostgreSQL cluster stopped" in run.output
            assert_all_stopped(run, tmp, [http_port, twilio_port, cluster_port])
            assert not (
                repo / ".smf" / "postgresql" / "data" / "postmaster.pid"
            ).exists()

            # 3. a re-run reuses everything; SIGTERM (to setup/run alone) stops all
            run = Run(repo, env)
            runs.append(run)
            assert run.wait_ready(300), run.output[-5000:]
            timings["re-run to ready"] = run.ready_after
            out = run.output
            assert "Reusing demo database" in out
            assert "Demo company already wired to the simulator" in out
            assert "[1/4]" not in out, "the re-run bootstrapped again"
            assert "Creating the private PostgreSQL cluster" not in out
            with urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/web/login", timeout=30
            ) as response:
                assert response.status == 200
            assert run.signal(signal.SIGTERM, group=False) == 0, run.output[-3000:]
            assert_all_stopped(run, tmp, [http_port, twilio_port, cluster_port])
        finally:
            for run in runs:
                run.kill()
            cluster = tmp / "clone" / ".smf" / "postgresql" / "data"
            if (cluster / "postmaster.pid").exists():
                with contextlib.suppress(smf.StepFailed):
                    smf.smf_postgres.Cluster(cluster.parent).run(
                        "stop", "pg_ctl", "-D", cluster, "-m", "immediate", "stop"
                    )
            summary = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
            # shown with -s, or with the failure
            print(f"fresh-machine timings: {summary}")
