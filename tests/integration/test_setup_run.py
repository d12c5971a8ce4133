"""``./setup/run``: precise prerequisite errors, a demo served on HTTP, safe re-runs."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.cookiejar import CookieJar

from .conftest import REPO, smf

RUN = str(REPO / "setup" / "run")


def run_setup(env_overrides, timeout=120):
    env = dict(os.environ, **env_overrides)
    return subprocess.run(
        [RUN], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_missing_odoo_is_reported(tmp_path):
    python = tmp_path / "python-without-odoo"
    # -S skips site-packages, where Odoo is installed
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    result = run_setup({"PYTHON": str(python)})
    assert result.returncode == 2
    assert "Odoo 19.0 is not importable" in result.stderr
    assert "PYTHON" in result.stderr


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
        {"PGHOST": str(tmp_path / "no-socket-here"), "PYTHON": sys.executable}
    )
    assert result.returncode == 2
    assert "PostgreSQL is not reachable" in result.stderr


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

    def interrupt(self):
        """What Ctrl-C in the terminal does: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
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
            assert demo.ready.wait(300), (
                f"run #{attempt} never got ready:\n{demo.output}"
            )
            assert f"http://127.0.0.1:{port}/odoo" in demo.output
            assert "login: admin" in demo.output
            assert f"Twilio simulator: http://127.0.0.1:{twilio_port}" in demo.output
            assert _port_open(twilio_port), "the Twilio simulator runs beside Odoo"
            states.append(demo_state(port, dbname))
            assert demo.interrupt() == 0, demo.output
            deadline = time.monotonic() + 10
            while _port_open(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _port_open(port), "Ctrl-C left Odoo listening"
            assert not _port_open(twilio_port), "Ctrl-C left the simulator running"
            if attempt == 1:
                assert "Creating demo database" in demo.output
            else:
                assert "Reusing demo database" in demo.output
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
