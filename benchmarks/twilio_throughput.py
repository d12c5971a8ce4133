#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio sending throughput: core ``sms_twilio`` against ``sms_microfunnel_twilio``.

Both send SMS from ``sms.sms`` through Odoo's send path (ORM, trackers, result
handling) to the same loopback Twilio simulator, run as its own process
(``devtools/twilio_simulator``, a real HTTP server:
one event loop for all keep-alive connections, TCP_NODELAY, one write per
answer), which answers each message creation after ``--latencies`` seconds,
as Twilio's API does over the Internet.

* core ``sms_twilio``: its API class on the queued SMS, batches of 10 (its
  ``sms_twilio.session.batch.size``), one request after the other, in this
  process (core posts to the hard-coded ``https://api.twilio.com``: this
  script, and only it, rewrites that host to the simulator in ``requests``);
* ours: real Odoo servers (``--servers``, each with ``--cron-threads`` cron
  threads) started on the database; the SMS are queued and committed, the
  servers' crons send them (claims, commits, shared schedule).

Throughput is measured at the simulator for both, from the first create to
the last one; for ours the time from the queue's commit to its first create
(the cron threads waking up) is printed beside it.  Our servers are measured
once up: after their first pass over the jobs due since the database was
made (the autovacuum and a few dozen others, one after the other, a second
or two that a server spends once in its life, taking one of its two cron
threads away from the sending).

With ``--cpus-per-server N``, every Odoo server (ours, and this process
while it runs core's path) gets at most N cores (a control group of its own,
as a container's CPU limit does), so that the servers, not PostgreSQL and the
simulator, are what runs out of CPU.  That is how "two servers send twice as
much" can be measured on a machine with fewer cores than two servers,
PostgreSQL and the simulator need together.

Then a pacing run: ``--pace-messages`` SMS at a cap of ``--pace-mps`` with the
largest number of servers; the busiest 1-second and 10-second windows at the
simulator are printed against the cap, and the quietest full ones.

Usage (Odoo 19's Python; PostgreSQL as for ``setup/test``)::

    python3 benchmarks/twilio_throughput.py
    python3 benchmarks/twilio_throughput.py --servers 1 2 --latencies 0 0.05
    python3 benchmarks/twilio_throughput.py --db smf_bench --messages 3000
    python3 benchmarks/twilio_throughput.py --cpus-per-server 0.5

Without ``--db``, a database with the addons is built from ``setup/test``'s
template and dropped at the end. Ports: any free ones, or consecutive ones
from ``SMF_BENCH_FIRST_PORT``.
"""

import argparse
import os
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


sys.path.insert(0, str(REPO / "benchmarks"))

import twilio_kill as kill  # noqa: E402  (its simulator, servers and queue)

smf = kill.smf
ACCOUNT, TOKEN, SENDER = kill.ACCOUNT, kill.TOKEN, kill.SENDER


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="existing database with the Twilio addon")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--latencies", type=float, nargs="+", default=[0.0, 0.05], help="seconds"
    )
    parser.add_argument("--servers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cron-threads", type=int, default=2, help="per server")
    parser.add_argument("--messages", type=int, default=5000, help="ours, per run")
    parser.add_argument(
        "--core-messages",
        type=int,
        nargs="+",
        default=[1000, 100],
        help="core, per latency (it is slow at 50 ms)",
    )
    parser.add_argument("--mps", type=int, default=5000, help="cap of the runs")
    parser.add_argument("--workers", type=int, default=64, help="our HTTP threads")
    parser.add_argument("--pace-mps", type=int, default=50)
    parser.add_argument("--pace-messages", type=int, default=1500)
    parser.add_argument("--pace-latency", type=float, default=0.05)
    parser.add_argument(
        "--cpus-per-server",
        type=float,
        help="at most this many cores per Odoo server (needs a cgroup CPU controller)",
    )
    return parser.parse_args(argv)


def windows(stamps, width):
    """(busiest, quietest full) count of creates in a window of ``width`` s."""
    stamps = sorted(stamps)
    if not stamps:
        return 0, 0
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= width:
            start += 1
        best = max(best, end - start + 1)
    quietest = None
    first, last = stamps[0], stamps[-1]
    moment = first
    index = 0
    while moment + width <= last:
        while index < len(stamps) and stamps[index] < moment:
            index += 1
        count = sum(1 for s in stamps[index:] if s < moment + width)
        quietest = count if quietest is None else min(quietest, count)
        moment += 0.25
    return best, quietest


def creates(sim):
    return [e for e in sim.requests() if e["kind"] == "create"]


def sim_control(sim, what, **data):
    request = urllib.request.Request(
        f"{sim.url}/_simulator/{what}",
        data=urllib.parse.urlencode(data).encode(),
        method="POST",
    )
    token = f"{ACCOUNT}:{TOKEN}".encode()
    import base64  # noqa: PLC0415

    request.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        response.read()


def set_latency(sim, latency):
    sim_control(sim, "reset")
    if latency:
        sim_control(sim, "faults", latency=str(latency))


QUEUE = """
import os, time
env = env(context=dict(env.context, tracking_disable=True))
env.company.sms_twilio_max_mps = int(os.environ["BENCH_MPS"])
env["sms.sms"].search([]).unlink()
env["sms.tracker"].search([]).unlink()
env.cr.commit()
count = int(os.environ["BENCH_MESSAGES"])
prefix = os.environ["BENCH_PREFIX"]
env["sms.sms"].create([
    {"number": "+33%s%06d" % (prefix, index), "body": "Offre %d" % index,
     "record_company_id": env.company.id}
    for index in range(count)
])
env.cr.commit()
print("BENCH-QUEUED %.6f" % time.time())
"""


def queue(dbname, count, mps, prefix):
    out = kill.odoo_shell(
        dbname,
        QUEUE,
        {
            "BENCH_MPS": str(mps),
            "BENCH_MESSAGES": str(count),
            "BENCH_PREFIX": prefix,
        },
    )
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH-QUEUED "))
    return float(line.split()[1])


def wait_sent(db, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not kill.waiting_count(db):
            return True
        time.sleep(0.2)
    return False


def our_run(args, dbname, db, sim, servers, latency, count, mps, prefix):
    set_latency(sim, latency)
    queued_at = queue(dbname, count, mps, prefix)
    if not wait_sent(db):
        raise SystemExit("our servers did not send everything in time")
    entries = creates(sim)
    accepted = [e for e in entries if e["status"] == 201]
    if len(accepted) != count:
        raise SystemExit(f"ours: {len(accepted)} accepted for {count} SMS")
    stamps = [e["wall_time"] for e in accepted]
    elapsed = max(stamps) - min(stamps)
    return {
        "rate": (count - 1) / elapsed,
        "elapsed": elapsed,
        "start": min(stamps) - queued_at,
        "count": count,
        "one": windows(stamps, 1.0),
        "ten": windows(stamps, 10.0),
    }


def core_runs(args, dbname, sim):
    """Core sms_twilio in this process, one transaction, rolled back."""
    import odoo  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        [
            "-d",
            dbname,
            f"--addons-path={smf.addons_path()}",
            "--log-level=warn",
            "--http-interface=127.0.0.1",
            *smf.db_options(),
        ]
    )
    import requests  # noqa: PLC0415

    from odoo.modules.registry import Registry  # noqa: PLC0415

    from odoo.addons.sms_twilio.tools.sms_api import SmsApiTwilio  # noqa: PLC0415

    original = requests.Session.send

    def send(session, request, **kwargs):
        if request.url.startswith("https://api.twilio.com/"):
            request.url = sim.url + request.url[len("https://api.twilio.com") :]
        return original(session, request, **kwargs)

    requests.Session.send = send
    results = {}
    registry = Registry(dbname)
    (cap,) = smf.CpuCap.per_server(args.cpus_per_server, 1, "core")
    if cap:
        cap.join()
    try:
        for latency, count in zip(args.latencies, args.core_messages, strict=False):
            set_latency(sim, latency)
            with registry.cursor() as cr:
                env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
                records = env["sms.sms"].create(
                    [
                        {
                            "number": f"+33699{index:06d}",
                            "body": f"Offre {index}",
                            "record_company_id": env.company.id,
                        }
                        for index in range(count)
                    ]
                )
                env.flush_all()
                core_api = SmsApiTwilio(env)
                core_api._set_company(env.company)
                for batch in odoo.tools.split_every(10, records.ids):
                    records.browse(batch).with_context(sms_api=core_api)._send()
                    env.flush_all()
                env.invalidate_all()
                states = set(records.mapped("state"))
                cr.rollback()
            accepted = [e for e in creates(sim) if e["status"] == 201]
            if states != {"pending"} or len(accepted) != count:
                raise SystemExit(f"core: {len(accepted)} creates, states {states}")
            stamps = [e["wall_time"] for e in accepted]
            elapsed = max(stamps) - min(stamps)
            results[latency] = {
                "rate": (count - 1) / elapsed,
                "elapsed": elapsed,
                "start": 0.0,
                "count": count,
                "one": windows(stamps, 1.0),
                "ten": windows(stamps, 10.0),
            }
    finally:
        requests.Session.send = original
        if cap:
            cap.leave()
            cap.close()
    return results


# Jobs of the database due now or running (a running job is locked by its
# cron thread and is still due: its next call moves once it is done)
BUSY_CRONS = """
SELECT count(*) FROM ir_cron
 WHERE active AND nextcall <= (now() AT TIME ZONE 'UTC')
"""
LOCKABLE_CRONS = """
SELECT count(*) FROM (
    SELECT id FROM ir_cron WHERE active FOR NO KEY UPDATE SKIP LOCKED
) AS free
"""


def wait_idle(db, timeout=300):
    """Until no job is due or running: a server just started runs every job
    due since its database was made, one after the other (the autovacuum
    alone takes a second or more), and the sends must not start beside that
    first pass, which a server does once in its life."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        with db.cursor() as cr:
            cr.execute("BEGIN")
            cr.execute(BUSY_CRONS)
            (due,) = cr.fetchone()
            cr.execute(LOCKABLE_CRONS)
            (free,) = cr.fetchone()
            cr.execute("SELECT count(*) FROM ir_cron WHERE active")
            (active,) = cr.fetchone()
            cr.execute("ROLLBACK")
        if due or free < active:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 1:
            return True
        time.sleep(0.2)
    return False


def start_servers(dbname, count, threads, log_dir, caps):
    servers = [
        kill.Server(dbname, n, threads, log_dir, cpu_cap=cap)
        for n, cap in enumerate(caps)
    ]
    for server in servers:
        server.start()
    # up when its log says so (registry loaded, cron threads listening)
    deadline = time.monotonic() + 300
    for server in servers:
        while time.monotonic() < deadline:
            this_start = server.log.read_text().rsplit("===== start", 1)[-1]
            if "Registry loaded" in this_start:
                break
            time.sleep(0.5)
    time.sleep(3)
    db = kill.connect(dbname)
    try:
        if not wait_idle(db):
            raise SystemExit("the servers' first pass of due jobs did not end")
    finally:
        db.close()
    return servers


def line(label, result, cap):
    one, ten = result["one"], result["ten"]
    quiet = f"{ten[1] / 10:.0f}" if ten[1] is not None else "-"
    return (
        f"{label:<34} {result['count']:>5} SMS {result['elapsed']:7.2f} s "
        f"(+{result['start']:4.1f} s to start) "
        f"{result['rate']:8.1f} msg/s   busiest 1 s: {one[0]:>4}  "
        f"busiest 10 s: {ten[0] / 10:6.1f}/s  quietest 10 s: {quiet}/s  (cap {cap})"
    )


def run(args, dbname):
    import tempfile  # noqa: PLC0415

    sim = kill.Simulator(0)
    log_dir = tempfile.mkdtemp(prefix="smf-throughput-")
    try:
        kill.odoo_shell(
            dbname,
            kill.PREPARE,
            {
                "KILL_ACCOUNT": ACCOUNT,
                "KILL_TOKEN": TOKEN,
                "KILL_SENDER": SENDER,
                "KILL_URL": sim.url,
                "KILL_MPS": str(args.mps),
                "KILL_GRACE": "60",
                "KILL_WORKERS": str(args.workers),
                "KILL_MESSAGES": "0",
            },
        )
        print(f"load before: {os.getloadavg()}", flush=True)
        if args.cpus_per_server:
            print(f"every Odoo server: at most {args.cpus_per_server} core(s)")
        core = core_runs(args, dbname, sim)
        for latency, result in core.items():
            print(line(f"core sms_twilio, {latency * 1000:.0f} ms", result, "none"))
        db = kill.connect(dbname)
        ours = {}
        prefix = 10
        for count in args.servers:
            caps = smf.CpuCap.per_server(args.cpus_per_server, count, f"ours{count}")
            servers = start_servers(dbname, count, args.cron_threads, log_dir, caps)
            try:
                for latency in args.latencies:
                    prefix += 1
                    result = our_run(
                        args,
                        dbname,
                        db,
                        sim,
                        servers,
                        latency,
                        args.messages,
                        args.mps,
                        str(prefix),
                    )
                    ours[count, latency] = result
                    label = f"ours, {count} server(s), {latency * 1000:.0f} ms"
                    print(line(label, result, args.mps), flush=True)
                if count == max(args.servers):
                    prefix += 1
                    pace = our_run(
                        args,
                        dbname,
                        db,
                        sim,
                        servers,
                        args.pace_latency,
                        args.pace_messages,
                        args.pace_mps,
                        str(prefix),
                    )
                    label = (
                        f"pacing, {count} server(s), {args.pace_latency * 1000:.0f} ms"
                    )
                    print(line(label, pace, args.pace_mps), flush=True)
            finally:
                for server in servers:
                    server.stop()
                for cap in caps:
                    if cap:
                        cap.close()
        db.close()
    finally:
        sim.stop()
    print()
    print("side by side (msg/s):")
    header = "latency   core sms_twilio " + "".join(
        f"  ours {n} server(s)  (×core)" for n in args.servers
    )
    print(header)
    for latency in args.latencies:
        base = core.get(latency)
        cells = []
        for n in args.servers:
            rate = ours[n, latency]["rate"]
            ratio = f"{rate / base['rate']:.1f}×" if base else "-"
            cells.append(f"  {rate:16.1f}  ({ratio:>6})")
        core_rate = f"{base['rate']:15.1f}" if base else " " * 15
        print(f"{latency * 1000:5.0f} ms {core_rate} " + "".join(cells))
    first = min(args.servers)
    for n in sorted(args.servers):
        if n == first:
            continue
        gains = ", ".join(
            f"{ours[n, latency]['rate'] / ours[first, latency]['rate']:.2f}× at "
            f"{latency * 1000:.0f} ms"
            for latency in args.latencies
        )
        print(f"{n} servers against {first}: {gains}")
    print(
        f"pacing at cap {args.pace_mps}: busiest 1 s {pace['one'][0]} "
        f"({(pace['one'][0] / args.pace_mps - 1) * 100:+.0f} %), quietest full 1 s "
        f"{pace['one'][1]} "
        f"({((pace['one'][1] or 0) / args.pace_mps - 1) * 100:+.0f} %), busiest 10 s "
        f"{pace['ten'][0]} ({(pace['ten'][0] / 10 / args.pace_mps - 1) * 100:+.0f} %),"
        f" quietest full 10 s {pace['ten'][1]} "
        f"({((pace['ten'][1] or 0) / 10 / args.pace_mps - 1) * 100:+.0f} %)"
    )
    print(f"server logs: {log_dir}")


def main(argv=None):
    args = parse_args(argv)
    smf.say(
        "reproduce with: "
        + smf.reproduce_command("benchmarks/twilio_throughput.py", argv)
    )
    smf.CpuCap.require(args.cpus_per_server)
    with smf.bench_session(args, addons=("sms_microfunnel_twilio",)) as dbname:
        run(args, dbname)
    return 0


if __name__ == "__main__":
    sys.exit(main())
