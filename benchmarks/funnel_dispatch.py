#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Benchmark: one funnel SMS step from "due" to queued, against Odoo's own
SMS mailing, side by side on the same database in one run.

Not a test (never collected by ``setup/test``): it measures.  It

1. takes ``--db`` (a database where ``sms_microfunnel`` is installed), or else
   copies the cached template of ``setup/smf.py`` into a throwaway database
   and installs ``sms_microfunnel`` in it (dropped at the end unless
   ``--keep``);
2. per audience size, inserts the contacts set-based (``INSERT ... SELECT
   generate_series``): US numbers (New York area code), a US time zone whose
   TCPA window is open (when none is, from 06:00 to 13:00 UTC, every phase
   runs with the clock Odoo reads shifted back, ``--clock-shift``),
   confirmed marketing consent;
3. **Odoo's path** (``--odoo-sizes``): an SMS mailing (``mailing.mailing``,
   ``mailing_type = 'sms'``) with the same text, a placeholder and a tracked
   link, sent with ``action_send_sms`` (Odoo's composer: ``sms.sms`` +
   ``mailing.trace`` + ``sms.tracker`` queued);
4. **our path** (``--sizes``): a funnel with one SMS step of the same text;
   enrolment of the whole audience as the launch does it (``_enroll`` in one
   transaction up to ``ENROL_NOW_MAX`` records; beyond, the dispatch job's
   enrolment of due audiences, one commit per chunk), then the dispatch jobs
   (``_cron_dispatch``) until nothing is due, as one server runs them: one
   per cron thread (``--cron-threads``, Odoo's default ``max_cron_threads``
   of 2: the dispatch job and its worker 2, claiming disjoint chunks), each
   with its own cursor in one process: every gate (consent, blacklist,
   suppression, window in the recipient's zone, caps, send slot, dedup,
   message rules, a per-recipient tracked link, price), ``sms.sms`` +
   ``sms.tracker`` queued, committed chunk by chunk;
5. prints, side by side: seconds, recipients per second, SQL queries per
   1,000 recipients, peak RSS of the process (each phase runs in its own
   Odoo process, so the peak is that phase's), commits, and checks the
   result (one SMS per recipient, every link ends with ``/s/<sms id>``).

Usage (Odoo 19 importable from ``$PYTHON``, PostgreSQL as for ``setup/test``)::

    python3 benchmarks/funnel_dispatch.py [--db NAME] [--keep]
        [--sizes 10000,100000,1000000] [--odoo-sizes 10000,20000]
        [--workers 1] [--cron-threads 2]
    python3 benchmarks/funnel_dispatch.py --sizes 100000 --odoo-sizes '' \
        --workers 1,2,2,1 --cpus-per-server 0.25

With ``--workers 1,2`` each size is dispatched by one server, then by two on a
new audience, and the ratio is printed.  Two servers can only queue twice as
much as one when CPU is left for them: on a machine where one server and
PostgreSQL already use every core, ``--cpus-per-server`` gives each dispatch
process (each server) a CPU quota of its own (a Linux control group, as a
container's CPU limit), so that the servers are what runs out of CPU.
Each run adds its audience to the same database, so a later run inserts into
larger tables: ``--workers 1,2,2,1`` runs each count early and late once and
compares their means.
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))
sys.path.insert(0, str(REPO / "benchmarks"))

import smf  # noqa: E402  (the machinery of setup/run and setup/test)

BODY = "Hi {{ object.name }}, 20% off today only: https://shop.example.com/deal"
US_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
)

FILL = [
    """
    INSERT INTO res_partner (name, complete_name, phone, phone_sanitized,
                             country_id, tz, active, type, lang,
                             create_uid, write_uid, create_date, write_date)
    SELECT %(prefix)s || i, %(prefix)s || i,
           '+1212' || (2000000 + %(offset)s + i)::text,
           '+1212' || (2000000 + %(offset)s + i)::text,
           %(us)s, %(tz)s, TRUE, 'contact', 'en_US', 1, 1, %(now)s, %(now)s
      FROM generate_series(1, %(count)s) AS i
    """,
    """
    INSERT INTO sms_microfunnel_consent (number, company_id, purpose, state,
                                         legal_basis, partner_id, last_event_date,
                                         create_uid, write_uid, create_date,
                                         write_date)
    SELECT p.phone_sanitized, %(company)s, 'marketing', 'confirmed', 'consent',
           p.id, %(now)s, 1, 1, %(now)s, %(now)s
      FROM res_partner p
     WHERE p.name LIKE %(prefix)s || '%%'
    """,
    "ANALYZE res_partner",
    "ANALYZE sms_microfunnel_consent",
]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="existing database with sms_microfunnel")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--odoo-sizes", default="10000,20000")
    parser.add_argument(
        "--workers",
        default="1",
        help="parallel dispatch processes for our path (2: two Odoo servers); "
        "several (1,2 or 1,2,2,1) measure each size with each, on a new "
        "audience, and compare the mean times",
    )
    parser.add_argument(
        "--cpus-per-server",
        type=float,
        help="at most this many cores for each dispatch process (a cgroup of "
        "its own), so that the servers, not PostgreSQL, run out of CPU",
    )
    parser.add_argument(
        "--cron-threads",
        type=int,
        default=2,
        help="cron threads of each server running the dispatch jobs (Odoo's "
        "default max_cron_threads is 2)",
    )
    parser.add_argument(
        "--clock-shift",
        default="auto",
        help="hours to shift the clock Odoo reads by, so that a US "
        "zone is in its window: auto (only when none is now), none, or -N",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    # internal: one phase in its own process
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tz", help=argparse.SUPPRESS)
    parser.add_argument("--run", default="", help=argparse.SUPPRESS)
    parser.add_argument("--first-job", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--wait-go", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def shifted_now(hours):
    """Aware UTC now on the clock shifted by ``hours``."""
    return datetime.now(timezone.utc) + timedelta(hours=hours)


def open_zone(shift_hours=0):
    """A US zone where it is between 09:00 and 20:00 at the clock shifted by
    ``shift_hours``: inside the federal 08:00-21:00 window with an hour's
    margin on each side, for a run of up to an hour.  None when no US zone is
    (from 06:00 to 13:00 UTC on the real clock)."""
    now = shifted_now(shift_hours)
    for name in US_ZONES:
        local = now.astimezone(ZoneInfo(name))
        if 9 <= local.hour < 20:
            return name
    return None


def open_zone_time(zone, shift_hours):
    return shifted_now(shift_hours).astimezone(ZoneInfo(zone)).strftime("%H:%M")


def clock_shift(wanted):
    """(hours, zone): the shift of the phases' clock (0: none) and the US zone
    whose window is open at that clock.  ``wanted`` is ``auto`` (no shift
    when a US zone is open now, else the smallest shift back that opens one),
    ``none`` or a number of hours (see ``shift_odoo_clock``)."""
    if wanted == "none":
        return 0, open_zone()
    if wanted != "auto":
        return int(wanted), open_zone(int(wanted))
    for hours in range(0, -24, -1):
        zone = open_zone(hours)
        if zone:
            return hours, zone
    return 0, None


CLOCK_FUNCTIONS = ("Datetime.now", "Date.today", "Date.context_today")


def shift_odoo_clock(hours):
    """Shift the clock Odoo's code reads (``fields.Datetime.now``,
    ``fields.Date.today``, ``fields.Date.context_today``: the product reads
    the time through them only) by ``hours``, in this process.  Their code is
    swapped in place, so field defaults that hold them shift too.  Only the
    wall clock that Odoo's code reads moves: timings, PostgreSQL and the
    interpreter are untouched (a preloaded fake clock, such as libfaketime,
    slows down the interpreter's thread switches tenfold)."""
    if not hours:
        return
    import inspect  # noqa: PLC0415
    import textwrap  # noqa: PLC0415

    from odoo.orm import fields_temporal  # noqa: PLC0415

    namespace = vars(fields_temporal)
    namespace["_bench_shift"] = timedelta(hours=hours)
    for dotted in CLOCK_FUNCTIONS:
        class_name, name = dotted.split(".")
        function = getattr(getattr(fields_temporal, class_name), name)
        source = textwrap.dedent(inspect.getsource(function))
        source = "\n".join(
            line for line in source.splitlines() if not line.startswith("@")
        )
        shifted = source.replace(
            "datetime.now()", "(datetime.now() + _bench_shift)"
        ).replace("date.today()", "(datetime.now() + _bench_shift).date()")
        if shifted == source:
            raise SystemExit(f"cannot shift the clock of {dotted}")
        compiled = {}
        shifted = "from __future__ import annotations\n" + shifted
        exec(shifted, namespace, compiled)  # noqa: S102 - Odoo's own source
        function.__code__ = compiled[name].__code__


def bench_now():
    """Naive UTC now at the phases' clock."""
    return shifted_now(SHIFT).replace(tzinfo=None)


# ---------------------------------------------------------------------------
# phases (each in its own Odoo process: its peak RSS is the phase's)
# ---------------------------------------------------------------------------


def odoo_env(dbname):
    from odoo import api  # noqa: PLC0415 - Odoo is imported late
    from odoo.modules.registry import Registry  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(
        [
            f"--addons-path={smf.addons_path()}",
            *smf.db_options(),
            "--http-interface=127.0.0.1",
            "--log-level=warn",
        ],
        setup_logging=True,
    )
    if os.environ.get("SMF_LOG_SQL"):
        import logging  # noqa: PLC0415

        logging.getLogger("odoo.sql_db").setLevel(logging.DEBUG)
    registry = Registry(dbname)
    cr = registry.cursor()
    return api.Environment(cr, api.SUPERUSER_ID, {})


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Counter:
    """Queries and commits of a cursor from now on."""

    def __init__(self, cr):
        self.cr = cr
        self.queries = cr.sql_log_count
        self.commits = 0
        self.started = time.monotonic()
        original = cr.commit

        def commit():
            self.commits += 1
            return original()

        cr.commit = commit

    def result(self, count, **extra):
        elapsed = time.monotonic() - self.started
        return {
            "count": count,
            "seconds": round(elapsed, 2),
            "per_second": round(count / elapsed) if elapsed else 0,
            "queries": self.cr.sql_log_count - self.queries,
            "commits": self.commits,
            "rss_mb": round(rss_mb()),
            **extra,
        }


def start_profile():
    """A cProfile of the phase when SMF_PROFILE is set (printed on stderr)."""
    if not os.environ.get("SMF_PROFILE"):
        return None
    import cProfile  # noqa: PLC0415

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def stop_profile(profiler):
    if profiler:
        import pstats  # noqa: PLC0415

        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


def phase_fill(env, size, tz, prefix):
    from preflight_100k import default_required_columns  # noqa: PLC0415

    cr = env.cr
    company = env.company
    company.write(
        {
            "country_id": env.ref("base.us").id,
            "sms_funnel_sender_label": "ACME: ",
            "sms_funnel_optout_mention": "Reply STOP to opt out",
        }
    )
    company.partner_id.tz = "America/New_York"
    env.flush_all()
    for model in ("res.partner", "sms.microfunnel.consent"):
        default_required_columns(env[model])
    cr.execute(
        "SELECT COALESCE(MAX(substring(phone_sanitized from 6)::bigint), 2000000)"
        " - 2000000 FROM res_partner WHERE phone_sanitized LIKE '+1212%%'"
    )
    offset = cr.fetchone()[0]
    params = {
        "prefix": prefix,
        "count": size,
        "offset": offset,
        "us": env.ref("base.us").id,
        "tz": tz,
        "company": company.id,
        "now": bench_now(),
    }
    started = time.monotonic()
    for statement in FILL:
        cr.execute(statement, params)
    cr.commit()
    return {"seconds": round(time.monotonic() - started, 2)}


def phase_odoo_send(env, size, prefix):
    """Odoo's own SMS mailing on the audience (its composer, mass mode)."""
    Partner = env["res.partner"]
    domain = [("name", "=like", f"{prefix}%")]
    mailing = env["mailing.mailing"].create(
        {
            "name": f"Odoo SMS mailing {size}",
            "subject": f"Odoo SMS mailing {size}",
            "mailing_type": "sms",
            "body_plaintext": BODY,
            "mailing_model_id": env["ir.model"]._get_id("res.partner"),
            "mailing_domain": repr(domain),
            "sms_allow_unsubscribe": False,
        }
    )
    env.cr.commit()
    env.invalidate_all()
    counter = Counter(env.cr)
    try:
        mailing.action_send_sms()
        env.cr.commit()
    except Exception as error:  # noqa: BLE001 - the failure is the figure
        env.cr.rollback()
        return {"count": size, "error": f"{type(error).__name__}: {error}"[:160]}
    result = counter.result(size)
    queued = env["sms.sms"].search_count(
        [("mailing_id", "=", mailing.id), ("state", "=", "outgoing")]
    )
    result["check"] = f"{queued:,} sms.sms queued"
    del Partner
    return result


def phase_enrol(env, size, prefix, funnel_name):
    """A funnel with one SMS step; enrol the audience as the launch does: at
    once (one transaction) up to ``ENROL_NOW_MAX`` records, beyond by the
    dispatch job's enrolment of due audiences, one commit per chunk (run
    here outside Odoo's cron runner, so with no time limit)."""
    from odoo.addons.sms_microfunnel.models.sms_microfunnel_campaign import (  # noqa: PLC0415
        ENROL_NOW_MAX,
    )

    funnel = env["sms.microfunnel.campaign"].create(
        {
            "name": funnel_name,
            "model_name": "res.partner",
            "domain": repr([("name", "=like", f"{prefix}%")]),
        }
    )
    env["sms.microfunnel.step"].create(
        {"campaign_id": funnel.id, "name": "Offer", "body": BODY}
    )
    funnel.action_start()
    partners = env["res.partner"].search([("name", "=like", f"{prefix}%")])
    in_job = len(partners) > ENROL_NOW_MAX
    if in_job:
        funnel._enroll_in_background()
    env.cr.commit()
    env.invalidate_all()
    counter = Counter(env.cr)
    profiler = start_profile()
    if in_job:
        del partners
        funnel._cron_scheduled_enrolments()
    else:
        funnel._enroll(partners)
    env.cr.commit()
    stop_profile(profiler)
    result = counter.result(size)
    result["funnel_id"] = funnel.id
    return result


def phase_dispatch(env, size, funnel_id, cron_threads=1, first_job=1, wait_go=False):
    """The dispatch jobs until nothing is due, as one Odoo server runs them:
    ``cron_threads`` cron threads (Odoo's default ``max_cron_threads`` is 2),
    each running one of the dispatch jobs from ``first_job`` on (1: the
    main job, 2…: its parallel workers ``ir_cron_sms_funnel_dispatch_worker_N``;
    a second server runs jobs 3 and 4, as Odoo's cron runner gives a job to
    one server at a time), each with its own cursor, each calling its job
    again while traces are due (as Odoo's cron runner does while a job
    reports work left)."""
    import threading  # noqa: PLC0415

    from odoo import api  # noqa: PLC0415

    registry = env.registry
    counters, errors = [], []

    # the dispatch jobs' rows: job 1 is the main one, then its workers
    job_ids = {
        number: env.ref(
            "sms_microfunnel.ir_cron_sms_funnel_dispatch"
            + (f"_worker_{number}" if number > 1 else "")
        ).id
        for number in range(first_job, first_job + cron_threads)
    }

    def job(index):
        number = first_job + index
        with registry.cursor() as runner_cr, registry.cursor() as cr:
            # Odoo's cron runner holds the row of the job it runs locked on a
            # cursor of its own while the job runs on another
            runner_cr.execute(
                "SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE",
                [job_ids[number]],
            )
            thread_env = api.Environment(cr, env.uid, {})
            Trace = thread_env["sms.microfunnel.trace"]
            counter = Counter(cr)
            counters.append(counter)
            try:
                while True:
                    commits = counter.commits
                    Trace._cron_dispatch(worker=number if number > 1 else False)
                    if counter.commits == commits:
                        # nothing left that another job does not hold: the
                        # cron thread waits for its next trigger
                        break
                    cr.commit()
                    now = bench_now()
                    if not Trace._count_due(now, cap=1):
                        break
            except Exception as error:  # noqa: BLE001 - reported as the figure
                errors.append(f"{type(error).__name__}: {error}"[:160])

    env.cr.commit()
    if wait_go:
        # several servers: each starts when all are up (see spawn)
        print("READY", flush=True)
        sys.stdin.readline()
    counter = Counter(env.cr)
    profiler = start_profile()
    threads = [
        threading.Thread(target=job, args=(index,)) for index in range(cron_threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop_profile(profiler)
    if errors:
        return {"count": size, "error": "; ".join(errors)}
    result = counter.result(size, ended=time.time())
    result["queries"] += sum(c.cr.sql_log_count - c.queries for c in counters)
    result["commits"] += sum(c.commits for c in counters)
    return result


def phase_check(env, funnel_id):
    cr = env.cr
    cr.execute(
        r"""
        SELECT count(*) FILTER (WHERE t.state = 'queued'),
               count(DISTINCT s.id),
               count(*) FILTER (WHERE s.body ~ ('/r/\w+/s/' || s.id || '(\D|$)')),
               count(DISTINCT k.id),
               count(*) FILTER (WHERE t.state NOT IN ('queued')),
               count(DISTINCT l.id),
               count(DISTINCT m.id) FILTER (WHERE m.sms_id_int = s.id)
          FROM sms_microfunnel_trace t
          LEFT JOIN sms_sms s ON s.id = t.sms_id_int
          LEFT JOIN mailing_trace m ON m.id = t.mailing_trace_id
          LEFT JOIN sms_tracker k ON k.mailing_trace_id = m.id
          LEFT JOIN link_tracker_code c
                 ON c.code = substring(s.body from '/r/(\w+)/s/')
          LEFT JOIN link_tracker l ON l.id = c.link_id
         WHERE t.campaign_id = %s
        """,
        [funnel_id],
    )
    queued, sms, suffixed, trackers, other, links, mailing_traces = cr.fetchone()
    return {
        "check": f"{queued:,} traces queued, {sms:,} sms.sms ({suffixed:,} with "
        f"/r/<code>/s/<sms id>), {mailing_traces:,} mailing.trace, "
        f"{trackers:,} sms.tracker, {links} link tracker(s), {other:,} not queued"
    }


def run_phase(args):
    global SHIFT
    SHIFT = int(args.clock_shift)
    env = odoo_env(args.db)
    shift_odoo_clock(SHIFT)
    run = args.run
    prefix = f"SMF dispatch {run} {args.size} "
    funnel_name = f"Dispatch benchmark {run} {args.size}"
    if args.phase == "fill":
        result = phase_fill(env, args.size, args.tz, prefix)
    elif args.phase == "odoo":
        prefix = f"SMF odoo {run} {args.size} "
        result = phase_odoo_send(env, args.size, prefix)
    elif args.phase == "odoo-fill":
        prefix = f"SMF odoo {run} {args.size} "
        result = phase_fill(env, args.size, args.tz, prefix)
    elif args.phase == "enrol":
        result = phase_enrol(env, args.size, prefix, funnel_name)
    elif args.phase == "dispatch":
        funnel = env["sms.microfunnel.campaign"].search(
            [("name", "=", funnel_name)], limit=1
        )
        result = phase_dispatch(
            env, args.size, funnel.id, args.cron_threads, args.first_job, args.wait_go
        )
    elif args.phase == "check":
        funnel = env["sms.microfunnel.campaign"].search(
            [("name", "=", funnel_name)], limit=1
        )
        result = phase_check(env, funnel.id)
    else:
        raise SystemExit(f"unknown phase {args.phase}")
    env.cr.rollback()
    env.cr.close()
    print("RESULT " + json.dumps(result), flush=True)


RUN = str(int(time.time()))
SHIFT = 0  # hours the phases' clock is shifted (see clock_shift)


def spawn(
    dbname, phase, size, tz=None, parallel=1, cron_threads=1, cpus=None, run=None
):
    command = [
        sys.executable,
        __file__,
        "--db",
        dbname,
        "--phase",
        phase,
        "--size",
        str(size),
        "--run",
        run or RUN,
        "--clock-shift",
        str(SHIFT),
    ]
    if tz:
        command += ["--tz", tz]
    if phase == "dispatch":
        command += ["--cron-threads", str(cron_threads)]
    caps = smf.CpuCap.per_server(cpus, parallel, phase)
    together = parallel > 1 and phase == "dispatch"
    if together:
        command += ["--wait-go"]
    procs = []
    for number, cap in enumerate(caps):
        # each server runs its own dispatch jobs
        first_job = ["--first-job", str(1 + number * cron_threads)]
        procs.append(
            subprocess.Popen(
                command + first_job,
                stdin=subprocess.PIPE if together else None,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        if cap:
            cap.join(procs[-1].pid)
    if together:
        # the servers start dispatching together once all are up (loading
        # Odoo is not part of the figure, as for one server)
        for proc in procs:
            while (out := proc.stdout.readline()) and out.strip() != "READY":
                pass
        go = time.time()
        for proc in procs:
            proc.stdin.write("GO\n")
            proc.stdin.flush()
    results = []
    for proc, cap in zip(procs, caps, strict=True):
        out, _err = proc.communicate()
        if cap:
            cap.close()
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if not lines:
            results.append({"error": f"phase {phase} failed (exit {proc.returncode})"})
        else:
            results.append(json.loads(lines[-1][len("RESULT ") :]))
    if parallel == 1:
        return results[0]
    if any("error" in r for r in results):
        return {"error": "; ".join(r["error"] for r in results if "error" in r)}
    wall = max(r["ended"] for r in results) - go
    merged = {
        "count": size,
        "seconds": round(wall, 2),
        "per_second": round(size / wall),
        "queries": sum(r.get("queries", 0) for r in results),
        "commits": sum(r.get("commits", 0) for r in results),
        "rss_mb": max(r.get("rss_mb", 0) for r in results),
        "note": f"{parallel} processes",
    }
    return merged


def mean_seconds(results):
    """Mean time of ``results`` (None when one of them failed)."""
    seconds = [r.get("seconds") for r in results]
    if not seconds or not all(seconds):
        return None
    return sum(seconds) / len(seconds)


def line(label, result):
    if "error" in result:
        return f"  {label:<44} FAILED: {result['error']}"
    count = result.get("count") or 0
    per_1000 = result["queries"] / count * 1000 if count else 0
    return (
        f"  {label:<44} {result['seconds']:>8.2f} s {result['per_second']:>7,}/s "
        f"{per_1000:>8.1f} q/1000 {result['rss_mb']:>6} MB "
        f"{result['commits']:>5} commits"
    )


def run_funnels(args, dbname, sizes, workers, tz, rows, checks):
    """Our path at each size with each number of servers: a new audience,
    its enrolment, its dispatch, the check.  {(size, servers): [result of
    each run]}"""
    dispatched = {}
    for size in sizes:
        for position, servers in enumerate(workers):
            label = f"funnel {size:,}"
            if len(workers) > 1:
                label += f", {servers} server(s)"
            smf.say(f"Funnel step, {size:,} contacts, {servers} server(s)…")
            # an audience of its own for each run
            run = f"{RUN}-{position}-{servers}"
            spawn(dbname, "fill", size, tz, run=run)
            rows.append((f"{label}: enrolment", spawn(dbname, "enrol", size, run=run)))
            smf.say(line(*rows[-1]))
            result = spawn(
                dbname,
                "dispatch",
                size,
                parallel=servers,
                cron_threads=args.cron_threads,
                cpus=args.cpus_per_server,
                run=run,
            )
            dispatched.setdefault((size, servers), []).append(result)
            rows.append((f"{label}: due -> queued", result))
            smf.say(line(*rows[-1]))
            checks.append(f"{label}: {spawn(dbname, 'check', size, run=run)['check']}")
            smf.say("  " + checks[-1])
    return dispatched


def main(argv=None):
    args = parse_args(argv)
    if args.phase:
        run_phase(args)
        return 0
    smf.CpuCap.require(args.cpus_per_server)
    workers = [int(n) for n in args.workers.split(",") if n]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    odoo_sizes = [int(s) for s in args.odoo_sizes.split(",") if s]
    global SHIFT
    SHIFT, tz = clock_shift(args.clock_shift)
    local_start = open_zone_time(tz, SHIFT) if tz else None
    if not tz:
        smf.say(
            "No US zone is between 09:00 and 20:00 at that clock: the"
            " recipients would be outside their window."
        )
        return 2
    rows, checks = [], []
    with smf.bench_session(args) as dbname:
        smf.say(f"uptime: {subprocess.check_output(['uptime'], text=True).strip()}")
        for size in odoo_sizes:
            smf.say(f"Odoo's SMS mailing, {size:,} contacts…")
            spawn(dbname, "odoo-fill", size, tz)
            result = spawn(dbname, "odoo", size)
            rows.append((f"Odoo SMS mailing {size:,}: queued", result))
            smf.say(line(*rows[-1]))
            if "check" in result:
                checks.append(f"Odoo {size:,}: {result['check']}")
        dispatched = run_funnels(args, dbname, sizes, workers, tz, rows, checks)
        smf.say(f"\nuptime: {subprocess.check_output(['uptime'], text=True).strip()}")
    smf.say(f"Recipients in {tz} (window open), one placeholder and one link each.")
    if SHIFT:
        smf.say(
            f"No US zone is in its window now: every phase (Odoo's path and "
            f"ours) ran with Odoo's clock {SHIFT:+d} h, "
            f"{tz} at {local_start} local at the start."
        )
    cap = (
        f", each at most {args.cpus_per_server} core(s)" if args.cpus_per_server else ""
    )
    smf.say(
        f"Dispatch: {args.workers} server(s){cap}, {args.cron_threads} cron "
        "thread(s) each running a dispatch job."
    )
    smf.say(
        f"\n  {'':<44} {'time':>10} {'rate':>9} {'queries':>13} {'peak RSS':>9} "
        f"{'commits':>13}"
    )
    for label, result in rows:
        smf.say(line(label, result))
    smf.say("")
    for check in checks:
        smf.say("  " + check)
    counts = list(dict.fromkeys(workers))
    for size in sizes:
        one = mean_seconds(dispatched.get((size, counts[0]), []))
        for servers in counts[1:]:
            more = mean_seconds(dispatched.get((size, servers), []))
            if one and more:
                runs = [len(dispatched[size, n]) for n in (counts[0], servers)]
                of = (
                    "" if runs == [1, 1] else " (means of {} and {} runs)".format(*runs)
                )
                smf.say(
                    f"  {size:,} due -> queued, {servers} server(s) against "
                    f"{counts[0]}: {one / more:.2f}× the rate{of}"
                )
    command = ["python3", "benchmarks/funnel_dispatch.py", "--sizes", args.sizes]
    command += ["--odoo-sizes", args.odoo_sizes, "--workers", args.workers]
    command += ["--cron-threads", str(args.cron_threads)]
    if args.cpus_per_server:
        command += ["--cpus-per-server", str(args.cpus_per_server)]
    if args.clock_shift != "auto":
        command += ["--clock-shift", args.clock_shift]
    if args.db:
        command += ["--db", args.db]
    smf.say("\nReproduce: " + shlex.join(command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
