#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Kill test: exactly-once Twilio sending through SIGKILLs of real Odoo servers.

The queue holds ``--messages`` SMS of a Twilio company pointed at the loopback
Twilio simulator (a separate process that records every request). Real Odoo
servers (``--servers``, each with ``--cron-threads`` cron threads, so
``servers × threads`` parallel senders) send them; one of them is killed with
SIGKILL ``--kills`` times, each time at a random moment while messages are
being sent, and started again. At the end every message must have reached
the simulator exactly once, or be in error with its reason:

* duplicates: SMS (by uuid, in the ``StatusCallback`` URL) created twice;
* lost: SMS neither created at the simulator nor failed with a reason;
* resumed: seconds from each restart to the first message it sent.

Usage (Odoo 19's Python; PostgreSQL as for ``setup/test``)::

    python3 benchmarks/twilio_kill.py                       # 2,000 SMS, 10 kills
    python3 benchmarks/twilio_kill.py --servers 2 --kills 12 --messages 3000
    python3 benchmarks/twilio_kill.py --db smf_kill --keep  # reuse / keep a database

Ports: any free ones, or consecutive ones from ``SMF_BENCH_FIRST_PORT``.
Without ``--db``, a database with the addons is built from ``setup/test``'s
template and dropped at the end. Exits 1 when a message was duplicated or lost.
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

import smf  # noqa: E402  (the machinery of setup/run and setup/test)

ACCOUNT = "AC" + "c" * 32
TOKEN = "kill-test-auth-token"
SENDER = "+33700000007"
UUID_RE = re.compile(r"/sms(?:_microfunnel)?_twilio/status/([0-9a-f]{32})")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="existing database with the Twilio addon")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--servers", type=int, default=1, help="Odoo servers")
    parser.add_argument("--cron-threads", type=int, default=2, help="per server")
    parser.add_argument("--mps", type=int, default=50, help="Twilio cap")
    parser.add_argument("--latency", type=float, default=0.02, help="simulator (s)")
    parser.add_argument("--workers", type=int, default=16, help="HTTP threads")
    parser.add_argument("--crash-grace", type=int, default=3, help="seconds")
    parser.add_argument(
        "--max-delay", type=float, default=3.0, help="kill within this (s)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600, help="overall (s)")
    return parser.parse_args(argv)


PREPARE = """
import json, os
env = env(context=dict(env.context, tracking_disable=True))
company = env.company
company.write({
    "sms_provider": "twilio",
    "sms_twilio_account_sid": os.environ["KILL_ACCOUNT"],
    "sms_twilio_auth_token": os.environ["KILL_TOKEN"],
    "sms_twilio_max_mps": int(os.environ["KILL_MPS"]),
    "sms_twilio_number_ids": [(5, 0), (0, 0, {
        "number": os.environ["KILL_SENDER"], "country_id": env.ref("base.fr").id})],
})
ICP = env["ir.config_parameter"].sudo()
ICP.set_param("sms_microfunnel_twilio.api_base_url", os.environ["KILL_URL"])
ICP.set_param("sms_microfunnel_twilio.crash_grace", os.environ["KILL_GRACE"])
ICP.set_param("sms_microfunnel_twilio.max_workers", os.environ["KILL_WORKERS"])
ICP.set_param("sms_microfunnel_twilio.timeout", "5")
count = int(os.environ["KILL_MESSAGES"])
records = env["sms.sms"].create([
    {"number": "+336%08d" % index, "body": "Offre %d : -20 %% ce week-end" % index,
     "record_company_id": company.id}
    for index in range(count)
])
env.cr.commit()
print("KILL-UUIDS " + json.dumps(records.mapped("uuid")))
"""


_next_port = [int(os.environ.get("SMF_BENCH_FIRST_PORT") or 0)]


def bench_port():
    """A port for a server or the simulator: the next one from
    ``SMF_BENCH_FIRST_PORT`` when set (a range of one's own on a shared
    machine), otherwise any free one."""
    if not _next_port[0]:
        return smf.free_port()
    port = _next_port[0]
    _next_port[0] += 1
    return port


def odoo_shell(dbname, script, env_vars):
    proc = smf.odoo_shell(dbname, script, env_vars)
    if proc.returncode:
        raise RuntimeError(f"odoo shell failed:\n{proc.stderr[-3000:]}")
    return proc.stdout


def connect(dbname):
    import psycopg2  # noqa: PLC0415 - Odoo's Python has it

    kwargs = {"dbname": dbname}
    for key, value in zip(
        ("host", "port", "user", "password"), smf.pg_args(), strict=True
    ):
        if value:
            kwargs[key] = value
    connection = psycopg2.connect(**kwargs)
    connection.autocommit = True
    return connection


def query(connection, sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class Simulator:
    def __init__(self, latency):
        cmd = [
            sys.executable,
            "-m",
            "devtools.twilio_simulator",
            f"--port={bench_port() if _next_port[0] else 0}",
            f"--account-sid={ACCOUNT}",
            f"--auth-token={TOKEN}",
            "--no-auto-callbacks",
            f"--latency={latency}",
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.url = self.proc.stdout.readline().strip()
        self.http = requests.Session()
        self.http.trust_env = False

    def requests(self):
        response = self.http.get(
            f"{self.url}/_simulator/requests", auth=(ACCOUNT, TOKEN), timeout=60
        )
        response.raise_for_status()
        return response.json()["requests"]

    def stop(self):
        smf.stop_group(self.proc, timeout=5)


class Server:
    def __init__(self, dbname, number, threads, log_dir, cpu_cap=None):
        self.dbname = dbname
        self.number = number
        self.threads = threads
        # a smf.CpuCap: at most so many cores for this server
        self.cpu_cap = cpu_cap
        self.log = Path(log_dir) / f"odoo-{number}.log"
        self.proc = None
        self.started = None

    def start(self):
        cmd = smf.odoo_command(
            f"--addons-path={smf.addons_path()}",
            *smf.db_options(),
            "-d",
            self.dbname,
            f"--db-filter=^{re.escape(self.dbname)}$",
            "--http-interface=127.0.0.1",
            f"--http-port={bench_port()}",
            f"--max-cron-threads={self.threads}",
            "--workers=0",
            "--log-level=info",
        )
        with self.log.open("a") as log:
            log.write(f"\n===== start at {time.time():.3f}\n")
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if self.cpu_cap:
            self.cpu_cap.join(self.proc.pid)
        self.started = time.time()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        smf.stop_group(self.proc)


def creates_by_uuid(entries):
    """{uuid: [wall time of each accepted create]}"""
    accepted = {}
    for entry in entries:
        if entry["kind"] != "create" or entry["status"] != 201:
            continue
        callback = (entry["form"].get("StatusCallback") or [""])[0]
        match = UUID_RE.search(callback)
        if match:
            accepted.setdefault(match.group(1), []).append(entry["wall_time"])
    return accepted


def waiting_count(connection):
    return query(
        connection,
        "SELECT count(*) FROM sms_sms WHERE state IN ('outgoing', 'process')",
    )[0][0]


def done_count(connection):
    """Messages accepted by Twilio so far (their tracker has a SID)."""
    return query(
        connection,
        "SELECT count(*) FROM sms_tracker WHERE sms_twilio_sid IS NOT NULL",
    )[0][0]


def say(message):
    print(message, flush=True)


def run(args, dbname, out=say):
    rng = random.Random(args.seed)
    sim = Simulator(args.latency)
    log_dir = tempfile.mkdtemp(prefix="smf-kill-")
    servers = [
        Server(dbname, number, args.cron_threads, log_dir)
        for number in range(args.servers)
    ]
    try:
        stdout = odoo_shell(
            dbname,
            PREPARE,
            {
                "KILL_ACCOUNT": ACCOUNT,
                "KILL_TOKEN": TOKEN,
                "KILL_SENDER": SENDER,
                "KILL_URL": sim.url,
                "KILL_MPS": str(args.mps),
                "KILL_GRACE": str(args.crash_grace),
                "KILL_WORKERS": str(args.workers),
                "KILL_MESSAGES": str(args.messages),
            },
        )
        line = next(ln for ln in stdout.splitlines() if ln.startswith("KILL-UUIDS "))
        uuids = json.loads(line.split(" ", 1)[1])
        db = connect(dbname)
        baseline = done_count(db)
        started = time.monotonic()
        deadline = started + args.timeout
        restarts = []  # (server, start wall time)
        for server in servers:
            server.start()
            restarts.append((server.number, server.started))
        kills = 0
        while kills < args.kills and time.monotonic() < deadline:
            before = done_count(db)
            if not waiting_count(db):
                out(f"  all messages sent after {kills} kills")
                break
            # wait for this round's sending to be under way, then a random moment
            while time.monotonic() < deadline:
                time.sleep(0.2)
                if done_count(db) > before:
                    break
            time.sleep(rng.uniform(0, args.max_delay))
            victim = rng.choice(servers)
            victim.kill()
            kills += 1
            out(
                f"  kill {kills}: server {victim.number} (SIGKILL), "
                f"{done_count(db) - baseline} of {len(uuids)} sent so far"
            )
            victim.start()
            restarts.append((victim.number, victim.started))
        while waiting_count(db) and time.monotonic() < deadline:
            time.sleep(1)
        elapsed = time.monotonic() - started
        left = waiting_count(db)
    finally:
        for server in servers:
            server.stop()
    entries = sim.requests()
    sim.stop()
    accepted = creates_by_uuid(entries)
    counts = Counter({uuid: len(accepted.get(uuid, [])) for uuid in uuids})
    duplicates = sorted(uuid for uuid, count in counts.items() if count > 1)
    not_sent = [uuid for uuid, count in counts.items() if count == 0]
    reasons = {}
    if not_sent:
        rows = query(
            db,
            "SELECT uuid, state, failure_type FROM sms_sms WHERE uuid = ANY(%s)",
            [not_sent],
        )
        for uuid, state, failure in rows:
            if state in ("error", "canceled") and failure:
                reasons[uuid] = failure
    db.close()
    lost = [uuid for uuid in not_sent if uuid not in reasons]
    lookups = sum(1 for e in entries if e["kind"] == "list")
    resumed = []
    all_times = sorted(t for times in accepted.values() for t in times)
    for _number, at in restarts[1:]:
        after = [t for t in all_times if t >= at]
        if after:
            resumed.append(after[0] - at)
    figures = {
        "messages": len(uuids),
        "kills": kills,
        "servers": args.servers,
        "cron_threads": args.cron_threads,
        "elapsed": elapsed,
        "accepted": sum(1 for c in counts.values() if c),
        "creates": sum(counts.values()),
        "duplicates": len(duplicates),
        "not_sent_with_reason": len(reasons),
        "lost": len(lost),
        "left_waiting": left,
        "lookups": lookups,
        "resumed_max": max(resumed) if resumed else None,
        "resumed_median": sorted(resumed)[len(resumed) // 2] if resumed else None,
        "logs": log_dir,
    }
    return figures


def report(figures, out=say):
    out(
        f"{figures['messages']} SMS, {figures['servers']} server(s) × "
        f"{figures['cron_threads']} cron threads, {figures['kills']} SIGKILLs, "
        f"done in {figures['elapsed']:.0f} s"
    )
    out(
        f"  simulator: {figures['accepted']} messages accepted, "
        f"{figures['creates']} creates, duplicates {figures['duplicates']}, "
        f"lost {figures['lost']}, not sent with a reason "
        f"{figures['not_sent_with_reason']}, still waiting {figures['left_waiting']}"
    )
    if figures["resumed_max"] is not None:
        out(
            f"  after each restart the first message left within "
            f"{figures['resumed_median']:.1f} s (median) / "
            f"{figures['resumed_max']:.1f} s (max), Odoo's start included"
        )
    out(
        f"  orphans looked up at the simulator: {figures['lookups']} list requests"
        f"  (server logs: {figures['logs']})"
    )


def main(argv=None):
    args = parse_args(argv)
    smf.say(
        "reproduce with: " + smf.reproduce_command("benchmarks/twilio_kill.py", argv)
    )
    with smf.bench_session(args, addons=("sms_microfunnel_twilio",)) as dbname:
        figures = run(args, dbname)
    report(figures)
    ok = (
        not figures["duplicates"]
        and not figures["lost"]
        and not figures["left_waiting"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
