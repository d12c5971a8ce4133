#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Benchmark: the SMS pre-flight check over 100,000 contacts.

Not a test (never collected by ``setup/test``): it measures.  It

1. takes ``--db`` (a database where ``sms_microfunnel`` is installed), or else
   copies the cached template of ``setup/smf.py`` into a throwaway database
   and installs ``sms_microfunnel`` in it (dropped at the end unless
   ``--keep``);
2. inserts ``--count`` contacts set-based (``INSERT ... SELECT
   generate_series``) with a mix of consent states, blacklisted numbers, no or
   invalid numbers, duplicates, US (Florida) numbers with recent marketing SMS
   traces and New Caledonia numbers (window closed at the default time);
3. runs the pre-flight wizard (``sms.microfunnel.preflight``, i.e. the gate)
   on them, twice (cold and warm caches), and prints the timings, the SQL
   query counts and the report;
4. rolls everything back (``--db`` is left as it was).

Usage (Odoo 19 importable from ``$PYTHON``, PostgreSQL as for ``setup/test``)::

    python3 benchmarks/preflight_100k.py [--db NAME] [--count 100000]
                                         [--at "2026-03-16 14:00:00"] [--keep]
"""

import argparse
import cProfile
import pstats
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "setup"))

import smf  # noqa: E402  (the machinery of setup/run and setup/test)

# share of the audience per kind, out of 100 (column ``k`` = i % 100)
MIX = """
  0-54  French mobile, confirmed consent          -> sendable
 55-64  French mobile, no consent                 -> blocked no_consent
 65-69  French mobile, double opt-in pending      -> blocked pending_doi
 70-72  French mobile, consent without proof      -> blocked unproven_consent
 73-77  French mobile, opted out + phone.blacklist -> blocked opted_out
 78-80  no number                                 -> blocked no_number
 81-82  unusable number                           -> blocked invalid_number
 83-84  number of an earlier contact              -> blocked duplicate
 85-89  Florida (305), confirmed, 3 SMS in 24 h   -> deferred frequency_cap
 90-94  Florida (305), confirmed                  -> sendable (08:00-20:00 ET)
 95-99  New Caledonia (+687), confirmed           -> deferred window_closed
"""

FILL = [
    """
    CREATE TEMP TABLE smf_bench ON COMMIT DROP AS
    SELECT i, i %% 100 AS k,
           CASE
             WHEN i %% 100 BETWEEN 78 AND 80 THEN NULL
             WHEN i %% 100 BETWEEN 81 AND 82 THEN 'n/a'
             WHEN i %% 100 BETWEEN 83 AND 84
               THEN '+336' || lpad((i - i %% 100 + 1)::text, 8, '0')
             WHEN i %% 100 BETWEEN 85 AND 94 THEN '+1305' || lpad(i::text, 7, '0')
             -- one New Caledonia number each (5 per 100 contacts: 2,000,000
             -- contacts fit in the 100,000 numbers +6877xxxxx)
             WHEN i %% 100 >= 95
               THEN '+6877' || lpad((i / 100 * 5 + i %% 100 - 95)::text, 5, '0')
             ELSE '+336' || lpad(i::text, 8, '0')
           END AS phone,
           CASE
             WHEN i %% 100 BETWEEN 55 AND 64 THEN NULL
             WHEN i %% 100 BETWEEN 65 AND 69 THEN 'pending'
             WHEN i %% 100 BETWEEN 70 AND 72 THEN 'unproven'
             WHEN i %% 100 BETWEEN 73 AND 77 THEN 'withdrawn'
             WHEN i %% 100 BETWEEN 78 AND 84 THEN NULL
             ELSE 'confirmed'
           END AS consent
      FROM generate_series(1, %(count)s) AS i
    """,
    """
    ALTER TABLE smf_bench ADD COLUMN partner_id integer
    """,
    """
    WITH inserted AS (
        INSERT INTO res_partner (name, complete_name, phone, phone_sanitized,
                                 country_id, state_id, active, type, lang,
                                 create_uid, write_uid, create_date, write_date)
        SELECT 'SMF bench ' || b.i, 'SMF bench ' || b.i, b.phone,
               CASE WHEN b.phone LIKE '+%%' THEN b.phone END,
               CASE WHEN b.k BETWEEN 85 AND 94 THEN %(us)s
                    WHEN b.k >= 95 THEN %(nc)s
                    ELSE %(fr)s END,
               CASE WHEN b.k BETWEEN 85 AND 94 THEN %(fl)s END,
               TRUE, 'contact', 'en_US', 1, 1, %(now)s, %(now)s
          FROM smf_bench b
         ORDER BY b.i
     RETURNING id, name
    )
    UPDATE smf_bench b SET partner_id = inserted.id
      FROM inserted WHERE inserted.name = 'SMF bench ' || b.i
    """,
    """
    INSERT INTO sms_microfunnel_consent (number, company_id, purpose, state,
                                         legal_basis, partner_id, last_event_date,
                                         create_uid, write_uid, create_date,
                                         write_date)
    SELECT b.phone, %(company)s, 'marketing', b.consent, 'consent', b.partner_id,
           %(now)s, 1, 1, %(now)s, %(now)s
      FROM smf_bench b
     WHERE b.consent IS NOT NULL
    """,
    """
    INSERT INTO phone_blacklist (number, active, create_uid, write_uid,
                                 create_date, write_date)
    SELECT b.phone, TRUE, 1, 1, %(now)s, %(now)s
      FROM smf_bench b
     WHERE b.consent = 'withdrawn'
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO mailing_trace (trace_type, model, res_id, sms_number, trace_status,
                               sent_datetime, create_uid, write_uid, create_date,
                               write_date)
    SELECT 'sms', 'res.partner', b.partner_id, b.phone, 'sent',
           %(at)s - make_interval(hours => g), 1, 1, %(now)s, %(now)s
      FROM smf_bench b CROSS JOIN generate_series(1, 3) AS g
     WHERE b.k BETWEEN 85 AND 89
    """,
    "ANALYZE res_partner",
    "ANALYZE sms_microfunnel_consent",
    "ANALYZE phone_blacklist",
    "ANALYZE mailing_trace",
]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="existing database with sms_microfunnel")
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument(
        "--at",
        default="2026-03-16 14:00:00",
        help="UTC time of the check (a Monday afternoon in Paris by default)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the throwaway database"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the gate"
    )
    return parser.parse_args(argv)


def default_required_columns(Model):
    """Give the NOT NULL columns of ``Model`` that the set-based INSERT leaves
    out (added by other installed modules, e.g. accounting's
    ``autopost_bills`` on contacts) their ORM default as a column default,
    for this transaction only (rolled back with the data)."""
    from odoo.tools import SQL  # noqa: PLC0415 - Odoo is imported late

    cr = Model.env.cr
    cr.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = %s AND is_nullable = 'NO' AND column_default IS NULL",
        [Model._table],
    )
    columns = [name for (name,) in cr.fetchall() if name in Model._fields]
    for name, value in Model.default_get(columns).items():
        cr.execute(
            SQL(
                "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT %s",
                SQL.identifier(Model._table),
                SQL.identifier(name),
                value,
            )
        )


def run(dbname, count, at, profile=False):
    # imported here: the prerequisite check explains a missing Odoo first
    from odoo import api  # noqa: PLC0415
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
    registry = Registry(dbname)
    with registry.cursor() as cr:
        env = api.Environment(cr, api.SUPERUSER_ID, {})
        company = env.company
        company.country_id = env.ref("base.fr")
        company.partner_id.tz = "Europe/Paris"
        env.flush_all()
        params = {
            "count": count,
            "company": company.id,
            "fr": env.ref("base.fr").id,
            "us": env.ref("base.us").id,
            "nc": env.ref("base.nc").id,
            "fl": env.ref("base.state_us_10").id,
            "now": datetime.now(timezone.utc).replace(tzinfo=None),
            "at": at,
        }
        for model in ("res.partner", "sms.microfunnel.consent"):
            default_required_columns(env[model])
        started = time.monotonic()
        for statement in FILL:
            cr.execute(statement, params)
        fill_time = time.monotonic() - started
        env.invalidate_all()
        smf.say(f"Inserted {count:,} contacts set-based in {fill_time:.2f} s")

        domain = "[('name', '=like', 'SMF bench %')]"
        wizard = env["sms.microfunnel.preflight"].create(
            {"res_model": "res.partner", "domain": domain, "check_at": at}
        )
        results = []
        for label in ("cold", "warm"):
            env.invalidate_all()
            queries = cr.sql_log_count
            started = time.monotonic()
            wizard.action_check()
            env.flush_all()
            elapsed = time.monotonic() - started
            results.append((label, elapsed, cr.sql_log_count - queries))

        # the two parts: audience search, then the gate alone
        env.invalidate_all()
        started = time.monotonic()
        queries = cr.sql_log_count
        audience = wizard._audience()
        search_time = time.monotonic() - started
        search_queries = cr.sql_log_count - queries
        env.invalidate_all()
        started = time.monotonic()
        queries = cr.sql_log_count
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        env["sms.microfunnel.gate"]._evaluate(audience, "marketing", company, at)
        if profiler:
            profiler.disable()
        gate_time = time.monotonic() - started
        gate_queries = cr.sql_log_count - queries

        total = wizard.total_count
        smf.say(f"\nPre-flight over {total:,} contacts (check at {at} UTC)")
        for label, elapsed, queries in results:
            smf.say(f"  wizard, {label} caches: {elapsed:6.2f} s, {queries} queries")
        smf.say(f"  search alone: {search_time:6.2f} s, {search_queries} queries")
        smf.say(f"  gate alone:   {gate_time:6.2f} s, {gate_queries} queries")
        smf.say(
            f"\n  sendable {wizard.allow_count:,}, deferred {wizard.defer_count:,}, "
            f"blocked {wizard.block_count:,}"
        )
        for line in wizard.line_ids:
            until = f"  earliest {line.until_min} UTC" if line.until_min else ""
            smf.say(
                f"    {line.action:<6} {line.reason or '':<17} {line.count:>8,}{until}"
            )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        cr.rollback()
    return results


def main(argv=None):
    args = parse_args(argv)
    at = datetime.fromisoformat(args.at)
    with smf.bench_session(args) as dbname:
        run(dbname, args.count, at, args.profile)
    command = ["python3", "benchmarks/preflight_100k.py", "--count", str(args.count)]
    command += ["--at", args.at]
    if args.db:
        command += ["--db", args.db]
    smf.say("\nReproduce: " + shlex.join(command))
    smf.say(f"{MIX.rstrip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
