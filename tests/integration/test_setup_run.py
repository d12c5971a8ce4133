"""``./setup/run``: precise prerequisite errors, a demo served on HTTP, safe re-runs."""

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
from http.cookiejar import CookieJar
from pathlib import Path

from .conftest import REPO, smf
from .fixtures import copy_repo, leftover_processes, public_tmpdir

RUN = str(REPO / "setup" / "run")


def run_setup(env_overrides, timeout=120):
    env = dict(os.environ, **env_overrides)
    return subprocess.run(
        [RUN], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def python_without_odoo(folder):
    """An interpreter that cannot import Odoo (-S skips site-packages)."""
    python = Path(folder) / "python-without-odoo"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    return python


def run_in_copy(repo, env_overrides, *args, timeout=300):
    env = dict(os.environ, **env_overrides)
    return subprocess.run(
        [str(repo / "setup" / "run"), *args],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_missing_odoo_with_a_wrong_source_is_reported():
    with public_tmpdir("smf-boot-") as tmp:
        repo = copy_repo(tmp / "clone")
        python = python_without_odoo(tmp)
        result = run_in_copy(
            repo, {"PYTHON": str(python), "ODOO_SOURCE": str(tmp / "nothing")}
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"ODOO_SOURCE={tmp / 'nothing'} does not exist" in result.stderr
        assert "Traceback" not in result.stderr

        odoo17 = tmp / "odoo-17" / "odoo"
        odoo17.mkdir(parents=True)
        (odoo17 / "release.py").write_text(
            "version_info = (17, 0, 0, 'final', 0, '')\n"
        )
        archive = tmp / "odoo-17.tar.gz"
        subprocess.run(
            ["tar", "-C", str(tmp), "-czf", str(archive), "odoo-17"], check=True
        )
        result = run_in_copy(repo, {"PYTHON": str(python), "ODOO_SOURCE": str(archive)})
        assert result.returncode == 2, result.stdout + result.stderr
        assert "holds Odoo 17.0; these addons need Odoo 19.0" in result.stderr
        assert "[1/4] Unpacking" in result.stdout
        assert not (repo / ".smf" / "odoo").exists()


def test_failed_bootstrap_step_names_step_log_and_its_end():
    """A requirement pip cannot find: the step, its log's path and last lines."""
    with public_tmpdir("smf-boot-") as tmp:
        repo = copy_repo(tmp / "clone")
        odoo = tmp / "odoo19"
        (odoo / "odoo").mkdir(parents=True)
        (odoo / "odoo" / "release.py").write_text(
            "version_info = (19, 0, 0, 'final', 0, '')\n"
        )
        (odoo / "requirements.txt").write_text("smf-no-such-package-zz==1.0\n")
        env = {"PYTHON": str(python_without_odoo(tmp)), "ODOO_SOURCE": str(odoo)}
        # no index at all: pip fails at once, offline
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS="")
        result = run_in_copy(repo, env)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "[2/4] Virtual environment" in result.stdout
        assert re.search(r"done in \d+\.\d s", result.stdout)
        log = repo / ".smf" / "logs" / "requirements.log"
        assert "step 'Python requirements' failed (exit 1)" in result.stderr
        assert str(log) in result.stderr
        assert "smf-no-such-package-zz" in result.stderr  # the log's last lines
        assert "Traceback" not in result.stderr
        assert log.exists()


def test_unknown_python_is_reported():
    result = run_setup({"PYTHON": "/nonexistent/python3"})
    assert result.returncode == 2
    assert "'/nonexistent/python3' not found" in result.stderr


def test_wrong_odoo_version_is_reported(tmp_path):
    fake = tmp_path / "odoo"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "release.py").write_text("series = '17.0'\nversion = '17.0'\n")
    result = run_setup({"PYTHONPATH": str(tmp_path), "PYTHON": sys.executable})
    assert result.returncode == 2
    assert "imports Odoo 17.0" in result.stderr
    assert "need Odoo 19.0" in result.stderr


def test_unreachable_postgresql_is_reported(tmp_path, odoo_ready):
    result = run_setup(
        {
            "PGHOST": str(tmp_path / "no-socket-here"),
            "PYTHON": sys.executable,
            "SMF_POSTGRES": "server",
        }
    )
    assert result.returncode == 2
    assert "PostgreSQL is not reachable" in result.stderr
    assert "private cluster" not in result.stdout


def test_server_that_rejects_the_role_is_reported_not_replaced(odoo_ready):
    """A server answers but refuses the configured role: the user chose that
    server, so no private cluster hides the mistake."""
    result = run_setup({"PGUSER": "smf_no_such_role", "PYTHON": sys.executable})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PostgreSQL is not reachable" in result.stderr
    assert "smf_no_such_role" in result.stderr
    assert "private cluster" not in result.stdout


def test_private_cluster_when_no_server_answers(odoo_ready):
    with public_tmpdir("smf-pg-") as tmp:
        repo = copy_repo(tmp / "clone")
        port = smf.free_port()
        env = dict(os.environ, PGPORT=str(port), PYTHON=sys.executable)
        outputs = []
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, str(repo / "setup" / "smf.py"), "check"],
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert result.returncode == 0, result.stdout + result.stderr
            outputs.append(result.stdout)
            assert "No PostgreSQL server answers" in result.stdout
            assert "Private PostgreSQL cluster started" in result.stdout
            assert "Private PostgreSQL cluster stopped" in result.stdout
            cluster_port = int((repo / ".smf" / "postgresql" / "port").read_text())
            assert not _port_open(cluster_port)
            assert not leftover_processes(tmp)
        assert "Creating the private PostgreSQL cluster" in outputs[0]
        assert "Creating the private PostgreSQL cluster" not in outputs[1]


def children_of(pid):
    """Processes whose parent is ``pid`` or that run in its session."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, session = int(fields[1]), int(fields[3])
        if ppid == pid or session == pid:
            found.append(int(entry.name))
    return found


def _port_open(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Demo:
    """``./setup/run`` in the background, its output collected line by line."""

    def __init__(self, dbname, port, twilio_port):
        self.port = port
        env = dict(
            os.environ,
            SMF_DB=dbname,
            SMF_HTTP_PORT=str(port),
            SMF_TWILIO_PORT=str(twilio_port),
            PYTHON=sys.executable,
        )

        self.proc = subprocess.Popen(
            [RUN],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if "demo is ready" in line:
                self.ready.set()
        self.ready.set()  # stopped: do not wait in vain (the output says why)

    def interrupt(self):
        """What Ctrl-C in the terminal does: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=60)

    def terminate(self):
        """What ``kill`` or a service manager does: SIGTERM to setup/run alone."""
        self.proc.terminate()
        return self.proc.wait(timeout=60)

    @property
    def output(self):
        return "".join(self.lines)


def jsonrpc(opener, url, params):
    payload = json.dumps(
        {"jsonrpc": "2.0", "method": "call", "params": params}
    ).encode()
    request = urllib.request.Request(url, payload, {"Content-Type": "application/json"})
    with opener.open(request, timeout=30) as response:
        body = json.load(response)
    assert "error" not in body, body
    return body["result"]


def demo_state(port, dbname):
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(CookieJar())
    )
    base = f"http://127.0.0.1:{port}"
    with opener.open(f"{base}/web/login", timeout=30) as response:
        assert response.status == 200
    session = jsonrpc(
        opener,
        f"{base}/web/session/authenticate",
        {"db": dbname, "login": "admin", "password": "admin"},
    )
    assert session["uid"]

    def call(model, method, *args, **kwargs):
        return jsonrpc(
            opener,
            f"{base}/web/dataset/call_kw/{model}/{method}",
            {"model": model, "method": method, "args": list(args), "kwargs": kwargs},
        )

    menus = call("ir.ui.menu", "load_menus", False)
    user = call("res.users", "read", [session["uid"]], ["company_id"])[0]
    user_company = user["company_id"][0]
    xmlids = {m.get("xmlid") for m in menus.values() if isinstance(m, dict)}
    french_menu = call(
        "ir.ui.menu",
        "search_read",
        [("parent_id", "=", False), ("web_icon", "like", "sms_microfunnel,")],
        ["name"],
        context={"lang": "fr_FR"},
    )
    return {
        "has_funnel_menu": "sms_microfunnel.menu_sms_funnel_root" in xmlids,
        "languages": sorted(
            lang["code"] for lang in call("res.lang", "search_read", [], ["code"])
        ),
        "french_menu": [menu["name"] for menu in french_menu],
        "demo_contact_langs": sorted(
            {
                partner["lang"]
                for partner in call(
                    "res.partner",
                    "search_read",
                    [("phone_sanitized", "in", ["+33612340101", "+33612340102"])],
                    ["lang"],
                )
            }
        ),
        "company_name": call(
            "res.company", "read", [user_company], ["name", "partner_id"]
        )[0]["name"],
        "partners": call("res.partner", "search_count", []),
        "templates": call("sms.template", "search_count", []),
        "provider": call(
            "res.company",
            "read",
            [user_company],
            ["sms_provider"],
        )[0]["sms_provider"],
    }


def test_run_serves_demo_and_is_safe_to_rerun(odoo_ready):
    dbname = f"smf_test_{os.getpid()}_run"
    port = smf.free_port()
    twilio_port = smf.free_port()
    try:
        states = []
        for attempt in (1, 2):
            demo = Demo(dbname, port, twilio_port)
            assert demo.ready.wait(300) and "demo is ready" in demo.output, (
                f"run #{attempt} never got ready:\n{demo.output}"
            )
            assert f"http://127.0.0.1:{port}/odoo" in demo.output
            assert "login: admin" in demo.output
            assert f"Twilio simulator: http://127.0.0.1:{twilio_port}" in demo.output
            assert _port_open(twilio_port), "the Twilio simulator runs beside Odoo"
            states.append(demo_state(port, dbname))
            # the first run stops on Ctrl-C, the second on SIGTERM
            how = "Ctrl-C" if attempt == 1 else "SIGTERM"
            stop = demo.interrupt if attempt == 1 else demo.terminate
            started = children_of(demo.proc.pid)  # Odoo and the simulator
            assert len(started) >= 2, started
            assert stop() == 0, demo.output
            deadline = time.monotonic() + 10
            while _port_open(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _port_open(port), f"{how} left Odoo listening"
            assert not _port_open(twilio_port), f"{how} left the simulator running"
            alive = [pid for pid in started if Path(f"/proc/{pid}").exists()]
            assert not alive, f"{how} left processes behind: {alive}"
            if attempt == 1:
                assert "Creating demo database" in demo.output
            else:
                assert "Reusing demo database" in demo.output
                assert "Demo company already wired" in demo.output
        assert states[0]["has_funnel_menu"]
        assert states[0]["provider"] == "twilio", "demo company sends via the simulator"
        assert states[0]["templates"] >= 2, "our demo SMS templates are missing"
        # French first: the language, the app's French menu, French contacts
        assert "fr_FR" in states[0]["languages"]
        assert states[0]["french_menu"] == ["Parcours SMS"]
        assert states[0]["demo_contact_langs"] == ["fr_FR"]
        assert states[0]["company_name"] == "Horizon Formation"
        assert states[0] == states[1], "re-running setup/run changed the demo data"
    finally:
        if smf.database_exists(dbname):
            smf.run_odoo_db("drop", dbname)
