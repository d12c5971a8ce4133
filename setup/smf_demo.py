# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""``setup/run``: the demo database, wired to the loopback Twilio simulator,
served by Odoo on 127.0.0.1."""

import hashlib
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import smf_prereq as prereq
from smf_bootstrap import say
from smf_db import (
    ADDONS,
    database_exists,
    duplicate_template,
    install_addons,
    installed_modules,
    odoo_shell,
    psql_query,
)
from smf_prereq import REPO, addons_path, db_options, odoo_command
from smf_process import ignore_signals, stop_group


def wait_http(url, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


DEMO_TWILIO_SID = "AC" + "d" * 32
DEMO_TWILIO_TOKEN = "demo-token-of-the-loopback-simulator"
DEMO_TWILIO_NUMBER = "+33700000000"


def start_simulator(port, odoo_url):
    """The loopback Twilio simulator the demo company sends through."""
    cmd = [
        prereq.PYTHON,
        "-m",
        "devtools.twilio_simulator",
        f"--port={port}",
        f"--account-sid={DEMO_TWILIO_SID}",
        f"--auth-token={DEMO_TWILIO_TOKEN}",
        f"--callback-base={odoo_url}",
        f"--inbound-url={odoo_url}/sms_microfunnel_twilio/inbound",
        "--auto-callbacks",
        "--callback-delay=2",
    ]
    return subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL
    )


def wire_demo_to_simulator(dbname, odoo_url, simulator_url):
    """Run ``demo_twilio.py`` in ``odoo shell``, unless it already ran with
    the same URLs, language and script (an ``odoo shell`` costs a registry
    load: skipping it keeps a re-run quick)."""
    script = (REPO / "setup" / "demo_twilio.py").read_text()
    wiring = " ".join(
        [
            odoo_url,
            simulator_url,
            os.environ.get("SMF_LANG") or "en_US",
            hashlib.sha256(script.encode()).hexdigest()[:16],
        ]
    )
    done = psql_query(
        "SELECT value FROM ir_config_parameter WHERE key = 'smf_setup.demo_wiring'",
        dbname,
    )
    if done == [[wiring]]:
        say("Demo company already wired to the simulator.")
        return
    proc = odoo_shell(
        dbname,
        script,
        {
            "SMF_DEMO_WIRING": wiring,
            "SMF_ODOO_URL": odoo_url,
            "SMF_TWILIO_URL": simulator_url,
            "SMF_TWILIO_SID": DEMO_TWILIO_SID,
            "SMF_TWILIO_TOKEN": DEMO_TWILIO_TOKEN,
            "SMF_TWILIO_NUMBER": DEMO_TWILIO_NUMBER,
        },
    )
    if proc.returncode or "demo company wired" not in proc.stdout:
        raise RuntimeError(
            "Could not wire the demo to the simulator:\n" + proc.stderr[-3000:]
        )


def serve_demo(args):
    dbname = os.environ.get("SMF_DB", "smf_demo")
    port = int(os.environ.get("SMF_HTTP_PORT", "8069"))
    twilio_port = int(os.environ.get("SMF_TWILIO_PORT", "8075"))
    odoo_url = f"http://127.0.0.1:{port}"
    simulator_url = f"http://127.0.0.1:{twilio_port}"
    if not database_exists(dbname):
        say(f"Creating demo database {dbname} from the template…")
        duplicate_template(dbname, demo=True)
    missing = set(ADDONS) - installed_modules(dbname, ADDONS)
    if missing:
        say(f"Installing {', '.join(sorted(missing))} with demo data in {dbname}…")
        install_addons(dbname, ADDONS)
    else:
        say(f"Reusing demo database {dbname} (both addons installed).")
    wire_demo_to_simulator(dbname, odoo_url, simulator_url)
    cmd = odoo_command(
        f"--addons-path={addons_path()}",
        *db_options(),
        "-d",
        dbname,
        f"--db-filter=^{re.escape(dbname)}$",
        "--http-interface=127.0.0.1",
        f"--http-port={port}",
        *args.odoo_args,
    )
    simulator = proc = None
    try:
        simulator = start_simulator(twilio_port, odoo_url)
        proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
        if wait_http(f"{odoo_url}/web/login", proc):
            say(
                f"\nsms_microfunnel demo is ready: {odoo_url}/odoo  "
                f"(login: admin, password: admin, database: {dbname})\n"
                f"Twilio simulator: {simulator_url} (the demo company sends through "
                "it; delivery reports come back by themselves).\n"
                "Make a contact reply STOP:\n"
                f"  curl -u {DEMO_TWILIO_SID}:{DEMO_TWILIO_TOKEN} "
                "--data-urlencode From=+33612340101 "
                f"--data-urlencode To={DEMO_TWILIO_NUMBER} -d Body=STOP "
                f"{simulator_url}/_simulator/inbound\n"
                "The demo is French (company, contacts, funnels); for a French "
                "interface: SMF_LANG=fr_FR ./setup/run, or Preferences > Language.\n"
                "Press Ctrl-C to stop.\n"
            )
        return proc.wait()
    except KeyboardInterrupt:
        say("Stopping…")
        return 0
    finally:
        ignore_signals()
        stop_group(proc)
        stop_group(simulator, timeout=5)
