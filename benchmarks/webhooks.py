#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Signed Twilio webhooks: our status and inbound routes against core's status route.

One Odoo server (``--workers 2``, no cron worker) serves one database; this
script sends signed requests from ``--connections`` keep-alive connections,
one route at a time, in rounds (core, ours, core, ours…) so that machine
noise hits both alike, and prints for each route:

* requests per second (wall clock of the round, every request answered);
* SQL queries and SQL time per request, read from Odoo's own request log
  line (``"POST … HTTP/1.1" 200 - <queries> <sql time> <other time>``);
* the answers' status codes.

Routes measured:

* core ``/sms_twilio/status/<uuid>`` (core ``sms_twilio``'s controller, with
  our monotonic-status context on top), one ``delivered`` per SMS;
* ours ``/sms_microfunnel_twilio/status/<uuid>``, the same on other SMS;
* ours again on funnel SMS, the common case: each SMS of a funnel step has
  its ``mailing.trace`` (Odoo's SMS mailing tracking, linked to the tracker)
  and its funnel trace, which the callback moves forward too;
* ours ``/sms_microfunnel_twilio/inbound``, a STOP or a reply per request
  from as many numbers; the inbound job then processes them (timed apart:
  it runs in the background in production);
* the floor: our status route again, with well-formed signatures made with
  another token, refused (403) before anything is read or written.  What is
  left is what Odoo does for every request, whatever the route (the
  registry check, the pooled connection's reset, the form parsing, the
  access log line…): no route can answer more requests per second than this
  on the same machine, so ``floor / core`` is the highest ratio any status
  route could reach against core's in that run.

Every SMS has its ``sms.tracker`` as Twilio SMS have; the funnel SMS are
those of one SMS step (its SMS mailing, enrolments of the first contacts),
left as the sender leaves them (sent to Twilio, waiting for the report).  ``--contacts``
contacts (default 100,000, created in SQL) make the job's lookups of contacts
and funnel messages meaningful.

Usage (Odoo 19's Python; PostgreSQL as for ``setup/test``)::

    python3 benchmarks/webhooks.py                     # throwaway database
    python3 benchmarks/webhooks.py --requests 2000 --rounds 3
    python3 benchmarks/webhooks.py --db smf_bench_keep # an existing one
"""

import argparse
import asyncio
import contextlib
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuid_lib
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

import smf  # noqa: E402  (the machinery of setup/run and setup/test)

TOKEN = "benchmark-webhooks-token-0123456789"
# signs the requests of the floor: well-formed signatures, not the company's
FORGED_TOKEN = "benchmark-webhooks-forged-987654321"
FLOOR_LABEL = "floor: any route, forged (403, nothing read)"
OUR_NUMBER = "+33700000042"
CORE_PATH = "/sms_twilio/status/"
STATUS_PATH = "/sms_microfunnel_twilio/status/"
INBOUND_PATH = "/sms_microfunnel_twilio/inbound"
LOG_LINE = re.compile(
    r'"POST (?P<path>\S+) HTTP/1\.1" (?P<code>\d+) - (?P<queries>\d+) '
    r"(?P<sql>[\d.]+) (?P<other>[\d.]+)"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="existing database with sms_microfunnel_twilio")
    parser.add_argument(
        "--requests", type=int, default=1000, help="requests per route and round"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per route")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="Odoo HTTP workers")
    parser.add_argument(
        "--contacts", type=int, default=100_000, help="contacts created in SQL"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--port", type=int, help="HTTP port of the Odoo server (default: a free one)"
    )
    return parser.parse_args(argv)


# -- data (in this process, committed) ------------------------------------------


def odoo_env(smf, dbname):
    import odoo  # noqa: PLC0415 - after the configuration
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        [
            f"--addons-path={smf.addons_path()}",
            *smf.db_options(),
            "-d",
            dbname,
            "--log-level=warn",
        ]
    )
    from odoo.modules.registry import Registry  # noqa: PLC0415

    return odoo, Registry(dbname)


def prepare(registry, base_url, count, contacts):
    """Company, SMS and trackers for the status routes (plain SMS for core's
    and ours, funnel SMS for ours); contacts in SQL."""
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        params = env["ir.config_parameter"]
        params.set_param("web.base.url", base_url)
        params.set_param("web.base.url.freeze", "True")
        params.set_param("sms_microfunnel_twilio.public_base_url", base_url)
        company = env.company
        company.write(
            {
                "sms_provider": "twilio",
                "sms_twilio_account_sid": "AC" + "4" * 32,
                "sms_twilio_auth_token": TOKEN,
                "country_id": env.ref("base.fr").id,
                "sms_twilio_number_ids": [
                    (0, 0, {"number": OUR_NUMBER, "country_id": env.ref("base.fr").id})
                ],
            }
        )
        sms = env["sms.sms"].create(
            [
                {
                    "number": f"+3361{index:07d}",
                    "body": "Offre de la semaine",
                    "state": "pending",
                    "record_company_id": company.id,
                }
                for index in range(2 * count)
            ]
        )
        env["sms.tracker"].create(
            [{"sms_uuid": s.uuid, "sms_twilio_company_id": company.id} for s in sms]
        )
        uuids = sms.mapped("uuid")
        existing = env["res.partner"].search_count([("name", "=like", "Bench %")])
        if max(contacts, count) > existing:
            insert_contacts(env, existing, max(contacts, count))
        funnel_uuids = prepare_funnel_sms(env, company, count)
        cr.execute("ANALYZE")
        return company.id, uuids[:count], uuids[count:], funnel_uuids


def prepare_funnel_sms(env, company, count):
    """``count`` SMS of one funnel SMS step, as the sender leaves them: each
    with its ``mailing.trace`` (status ``pending``: sent to Twilio) linked to
    its ``sms.tracker``, and its funnel trace (``sent``).  Returns their uuids."""
    company.write(
        {
            "sms_funnel_sender_label": "ACME: ",
            "sms_funnel_optout_mention": "STOP au 36111",
        }
    )
    funnel = env["sms.microfunnel.campaign"].create(
        {"name": "Benchmark offer", "model_name": "res.partner", "domain": "[]"}
    )
    step = env["sms.microfunnel.step"].create(
        {
            "campaign_id": funnel.id,
            "name": "Offer",
            "message_class": "transactional",
            "body": "Votre offre de la semaine.",
        }
    )
    funnel.action_start()
    mailing = step._channel_mailing()
    partners = env["res.partner"].search(
        [("name", "=like", "Bench %")], order="id", limit=count
    )
    traces = funnel._enroll(partners).trace_ids.sorted("id")
    now = env.cr.now()
    sms = env["sms.sms"].create(
        [
            {
                "number": trace.number,
                "body": "ACME: Votre offre de la semaine. STOP au 36111",
                "state": "pending",
                "record_company_id": company.id,
                "partner_id": trace.enrollment_id.res_id,
                "mailing_id": mailing.id,
            }
            for trace in traces
        ]
    )
    mailing_traces = env["mailing.trace"].create(
        [
            {
                "trace_type": "sms",
                "trace_status": "pending",
                "sent_datetime": now,
                "mass_mailing_id": mailing.id,
                "campaign_id": mailing.campaign_id.id,
                "model": "res.partner",
                "res_id": s.partner_id.id,
                "sms_number": s.number,
                "sms_id_int": s.id,
            }
            for s in sms
        ]
    )
    env["sms.tracker"].create(
        [
            {
                "sms_uuid": s.uuid,
                "sms_twilio_company_id": company.id,
                "sms_twilio_status": "sent",
                "mailing_trace_id": m.id,
            }
            for s, m in zip(sms, mailing_traces, strict=True)
        ]
    )
    for trace, s, m in zip(traces, sms, mailing_traces, strict=True):
        trace.write(
            {
                "state": "sent",
                "sms_id_int": s.id,
                "sms_uuid": s.uuid,
                "mailing_trace_id": m.id,
                "queued_at": now,
                "sent_at": now,
            }
        )
    env.flush_all()
    return sms.mapped("uuid")


def insert_contacts(env, start, stop):
    """Contacts ``Bench <i>`` with numbers +3362…, set-based.  The NOT NULL
    columns other modules add get their ORM default for the INSERT only."""
    from odoo.tools import SQL  # noqa: PLC0415

    cr = env.cr
    Partner = env["res.partner"]
    cr.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'res_partner' AND is_nullable = 'NO' "
        "AND column_default IS NULL"
    )
    columns = [name for (name,) in cr.fetchall() if name in Partner._fields]
    defaults = Partner.default_get(columns)
    for name, value in defaults.items():
        cr.execute(
            SQL(
                "ALTER TABLE res_partner ALTER COLUMN %s SET DEFAULT %s",
                SQL.identifier(name),
                value,
            )
        )
    cr.execute(
        """
        INSERT INTO res_partner (name, complete_name, phone, phone_sanitized,
                                 active, type, create_uid, write_uid,
                                 create_date, write_date)
        SELECT 'Bench ' || i, 'Bench ' || i, '+3362' || lpad(i::text, 7, '0'),
               '+3362' || lpad(i::text, 7, '0'), TRUE, 'contact', 1, 1,
               now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
          FROM generate_series(%s, %s) AS i
        """,
        (start, stop - 1),
    )
    for name in defaults:
        cr.execute(
            SQL(
                "ALTER TABLE res_partner ALTER COLUMN %s DROP DEFAULT",
                SQL.identifier(name),
            )
        )


# -- load ----------------------------------------------------------------------


def sign(url, params, token=TOKEN):
    twilio_signature = smf.load_file(
        "smf_twilio_signature",
        REPO / "sms_microfunnel_twilio" / "tools" / "twilio_signature.py",
    )
    return twilio_signature.compute_signature(token, url, params)


def encode_requests(base_url, items, token=TOKEN):
    """The HTTP/1.1 requests of (path, params) ``items`` signed with
    ``token``, as bytes."""
    url = urlsplit(base_url)
    raw = []
    for path, params in items:
        body = urlencode(params).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {sign(base_url + path, params, token)}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        )
        raw.append(head.encode() + body)
    return raw


async def read_response(reader):
    """(status, keep the connection) of the next answer; (None, False) when
    the server closed the connection before answering."""
    status_line = await reader.readline()
    if not status_line:
        return None, False
    length, chunked, keep = 0, False, True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _sep, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and "close" in value.lower():
            keep = False
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if not size:
                break
    elif length:
        await reader.readexactly(length)
    return int(status_line.split()[1]), keep


async def send_on_one_connection(host, port, queue, codes):
    """Send requests taken from ``queue`` one after the other, keeping the
    connection while the server does (a new one when it closes it)."""
    reader = writer = None
    try:
        while queue:
            request = queue.pop()
            status = None
            while status is None:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(request)
                status, keep = await read_response(reader)
                if not keep:
                    writer.close()
                    reader = writer = None
            codes.append(status)
    finally:
        if writer is not None:
            writer.close()


def fire(base_url, items, connections, token=TOKEN):
    """POST every (path, params) from ``connections`` keep-alive connections;
    (seconds, {status: count}).

    The requests are signed and encoded before the clock starts, then sent
    by one event loop over plain sockets: the client costs a few dozen
    microseconds of CPU per request, so the two cores it shares with the
    server and PostgreSQL go to them (a thread per connection with
    ``requests`` took about a millisecond per request, a quarter of a core
    at these rates, which narrowed the gap between the routes)."""
    url = urlsplit(base_url)
    queue = list(reversed(encode_requests(base_url, items, token)))
    codes = []

    async def send_all():
        await asyncio.gather(
            *(
                send_on_one_connection(url.hostname, url.port, queue, codes)
                for _i in range(connections)
            )
        )

    started = time.perf_counter()
    asyncio.run(send_all())
    elapsed = time.perf_counter() - started
    summary = {}
    for code in codes:
        summary[code] = summary.get(code, 0) + 1
    return elapsed, summary


def status_items(path, uuids):
    return [
        (
            path + sms_uuid,
            {
                "SmsStatus": "delivered",
                "MessageStatus": "delivered",
                "MessageSid": f"SM{sms_uuid}",
                "AccountSid": "AC" + "4" * 32,
            },
        )
        for sms_uuid in uuids
    ]


def inbound_items(count, offset):
    items = []
    for index in range(count):
        number = f"+3362{(offset + index) % 10_000_000:07d}"
        items.append(
            (
                INBOUND_PATH,
                {
                    "From": number,
                    "To": OUR_NUMBER,
                    "Body": "STOP" if index % 2 else "Merci, à demain",
                    "MessageSid": f"SM{uuid_lib.uuid4().hex}",
                    "AccountSid": "AC" + "4" * 32,
                    "NumSegments": "1",
                },
            )
        )
    return items


def log_figures(log_path, start, prefix):
    """(queries, sql seconds) per request of the log lines after ``start``
    whose path starts with ``prefix``."""
    queries, sql = [], []
    with open(log_path, encoding="utf-8", errors="replace") as log:
        log.seek(start)
        for line in log:
            match = LOG_LINE.search(line)
            if match and match["path"].startswith(prefix):
                queries.append(int(match["queries"]))
                sql.append(float(match["sql"]))
    return queries, sql


def uptime():
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "uptime unavailable"


LAUNCHER = """\
import sys
import time

if sys.argv[1:2] == ["gevent"]:
    # the websocket worker: no webhook goes through it; idle
    while True:
        time.sleep(3600)

import odoo.cli

odoo.cli.main()
"""


def odoo_server_command(directory, *args):
    """A launcher script for Odoo: with ``--workers``, Odoo starts its
    websocket worker again from its launcher (``python -m odoo`` cannot be);
    that worker, unused here, stays idle (it needs gevent's plugins, which
    some installations lack)."""
    launcher = Path(directory) / "odoo_launcher.py"
    launcher.write_text(LAUNCHER)
    return [sys.executable, str(launcher), *args]


def wait_up(url, proc, timeout=120):
    import requests  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the Odoo server stopped")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + "/web/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError("the Odoo server did not start")


def run(args, dbname, smf):
    port = args.port or smf.free_port()
    base_url = f"http://127.0.0.1:{port}"
    count = args.requests * args.rounds + 100  # + warm-up
    print(
        f"Preparing {2 * count} SMS with trackers, {count} funnel SMS and "
        f"{args.contacts} contacts…"
    )
    odoo, registry = odoo_env(smf, dbname)
    company_id, core_uuids, our_uuids, funnel_uuids = prepare(
        registry, base_url, count, args.contacts
    )
    log_path = Path(tempfile.mkdtemp(prefix="smf-bench-webhooks-")) / "odoo.log"
    cmd = odoo_server_command(
        log_path.parent,
        f"--addons-path={smf.addons_path()}",
        *smf.db_options(),
        "-d",
        dbname,
        "--http-interface=127.0.0.1",
        f"--http-port={port}",
        f"--workers={args.workers}",
        "--max-cron-threads=0",
        "--limit-time-real=600",
        "--log-level=info",
        f"--logfile={log_path}",
    )
    server = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    results = {}
    try:
        wait_up(base_url, server)
        # warm-up: registries and caches of both workers
        fire(base_url, status_items(CORE_PATH, core_uuids[:50]), args.connections)
        fire(base_url, status_items(STATUS_PATH, our_uuids[:50]), args.connections)
        fire(base_url, status_items(STATUS_PATH, funnel_uuids[:50]), args.connections)
        fire(base_url, inbound_items(100, 0), args.connections)
        core_uuids, our_uuids = core_uuids[50:], our_uuids[50:]
        funnel_uuids = funnel_uuids[50:]
        routes = {
            "core /sms_twilio/status": (
                CORE_PATH,
                lambda r: status_items(
                    CORE_PATH, core_uuids[r * args.requests : (r + 1) * args.requests]
                ),
            ),
            "ours /sms_microfunnel_twilio/status": (
                STATUS_PATH,
                lambda r: status_items(
                    STATUS_PATH, our_uuids[r * args.requests : (r + 1) * args.requests]
                ),
            ),
            "ours /sms_microfunnel_twilio/status funnel": (
                STATUS_PATH,
                lambda r: status_items(
                    STATUS_PATH,
                    funnel_uuids[r * args.requests : (r + 1) * args.requests],
                ),
            ),
            "ours /sms_microfunnel_twilio/inbound": (
                INBOUND_PATH,
                lambda r: inbound_items(args.requests, 100 + r * args.requests),
            ),
            # Odoo's own cost of a request, whatever the route: our status
            # route refuses a forged signature before reading anything
            FLOOR_LABEL: (
                STATUS_PATH,
                lambda r: status_items(
                    STATUS_PATH, our_uuids[r * args.requests : (r + 1) * args.requests]
                ),
                FORGED_TOKEN,
            ),
        }
        load_before = uptime()
        for round_ in range(args.rounds):
            for label, (prefix, items, *token) in routes.items():
                start = log_path.stat().st_size
                elapsed, codes = fire(base_url, items(round_), args.connections, *token)
                time.sleep(0.3)  # the last log lines
                queries, sql = log_figures(log_path, start, prefix)
                entry = results.setdefault(
                    label, {"rps": [], "queries": [], "sql": [], "codes": {}}
                )
                entry["rps"].append(args.requests / elapsed)
                entry["queries"] += queries
                entry["sql"] += sql
                for code, n in codes.items():
                    entry["codes"][code] = entry["codes"].get(code, 0) + n
        load_after = uptime()
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    # the inbound job, as the cron worker runs it (timed apart)
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        Inbound = env["sms.microfunnel.inbound"]
        pending = Inbound.search_count([("processed", "=", False)])
        started = time.perf_counter()
        count_before = cr.sql_log_count
        Inbound._cron_process_received()
        job_seconds = time.perf_counter() - started
        job_queries = cr.sql_log_count - count_before
        delivered = env["sms.tracker"].search_count(
            [
                ("sms_uuid", "in", [*our_uuids, *core_uuids, *funnel_uuids]),
                ("sms_twilio_status", "=", "delivered"),
            ]
        )
        # the funnel SMS' reports reached their mailing trace and funnel trace
        funnel_delivered = env["sms.microfunnel.trace"].search_count(
            [("sms_uuid", "in", funnel_uuids), ("state", "=", "delivered")]
        )
        mailing_delivered = env["mailing.trace"].search_count(
            [
                ("sms_tracker_ids.sms_uuid", "in", funnel_uuids),
                ("trace_status", "=", "sent"),
            ]
        )

    print()
    print(
        f"Signed webhooks, {args.connections} connections, --workers {args.workers}, "
        f"{args.rounds} rounds of {args.requests} requests per route"
    )
    header = (
        f"{'route':44} {'req/s (rounds)':>22} {'queries/req':>12} "
        f"{'SQL ms/req':>11}  answers"
    )
    print(header)
    print("-" * len(header))
    core_rps = statistics.mean(results["core /sms_twilio/status"]["rps"])
    for label, entry in results.items():
        rps = statistics.mean(entry["rps"])
        rounds = ", ".join(f"{value:.0f}" for value in entry["rps"])
        queries = (
            statistics.mean(entry["queries"]) if entry["queries"] else float("nan")
        )
        sql = 1000 * statistics.mean(entry["sql"]) if entry["sql"] else float("nan")
        print(
            f"{label:44} {rps:8.0f} ({rounds:>11}) {queries:12.1f} {sql:11.2f}  "
            f"{entry['codes']}  {rps / core_rps:.1f}× core"
        )
    floor_rps = statistics.mean(results[FLOOR_LABEL]["rps"])
    print(
        f"No route can beat the floor: {floor_rps / core_rps:.1f}× core is the most "
        "any status route could reach in this run."
    )
    print()
    print(
        f"Inbound job: {pending} stored messages processed in {job_seconds:.1f} s "
        f"({pending / job_seconds if job_seconds else 0:.0f}/s, "
        f"{job_queries / max(pending, 1):.0f} queries per message)"
    )
    print(f"Status callbacks applied (trackers delivered): {delivered}")
    print(
        f"Funnel SMS delivered: {funnel_delivered} funnel traces, "
        f"{mailing_delivered} mailing traces"
    )
    print(f"Machine load before: {load_before}")
    print(f"Machine load after:  {load_after}")
    print(f"Server log: {log_path}")
    print("Reproduce: python3 benchmarks/webhooks.py " + shlex.join(sys.argv[1:]))
    del odoo, company_id


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO)
    smf.say("reproduce with: " + smf.reproduce_command("benchmarks/webhooks.py", argv))
    with smf.bench_session(args, addons=("sms_microfunnel_twilio",)) as dbname:
        run(args, dbname, smf)


if __name__ == "__main__":
    main()
