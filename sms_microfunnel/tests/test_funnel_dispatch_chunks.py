# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The chunked dispatch: work per chunk, not per recipient."""

import re
from datetime import datetime
from unittest.mock import patch

from freezegun import freeze_time

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, HttpCase, TransactionCase, tagged
from odoo.tests.common import get_db_name
from odoo.tools import SQL

from odoo.addons.sms_microfunnel.tests.common import (
    TUESDAY_10H_PARIS,
    recorded_queries,
    remove_committed_funnel,
    rows_read,
    run_dispatch_jobs,
)

from ..models import sms_microfunnel_enrollment, sms_microfunnel_trace

BODY = "Bonjour {{ object.name }}, -20 % cette semaine : https://shop.example.com/offre"


def make_audience(env, count, prefix, start=0):
    """``count`` French contacts with confirmed consent (set-based events)."""
    fr = env.ref("base.fr").id
    partners = env["res.partner"].create(
        [
            {
                "name": f"{prefix} {i}",
                "phone": f"+3367{start + i:07d}",
                "country_id": fr,
                "tz": "Europe/Paris",
                "lang": "fr_FR" if i % 2 else "en_US",
            }
            for i in range(count)
        ]
    )
    env["sms.microfunnel.consent.event"]._record(
        [
            {
                "event_type": "confirmed",
                "number": p.phone_sanitized,
                "partner_id": p.id,
                "source": "web_form",
                "wording": "OK",
                "event_date": datetime(2026, 1, 5),
            }
            for p in partners
        ]
    )
    return partners


def configure(env):
    env.company.write(
        {
            "country_id": env.ref("base.fr").id,
            "sms_funnel_sender_label": "ACME: ",
            "sms_funnel_optout_mention": "STOP au 36111",
            "sms_funnel_max_segments": 3,
        }
    )
    env.company.partner_id.tz = "Europe/Paris"
    if not env["res.lang"]._lang_get("fr_FR"):
        env["res.lang"]._activate_lang("fr_FR")


class ChunkCase(TransactionCase):
    """A configured company and a one-step funnel for an audience."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        configure(cls.env)
        cls.Trace = cls.env["sms.microfunnel.trace"]

    def funnel_for(self, partners, body=BODY):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": f"Chunks {len(partners)}", "model_name": "res.partner"}
        )
        step = self.env["sms.microfunnel.step"].create(
            {"campaign_id": funnel.id, "name": "Offer", "body": body}
        )
        funnel.action_start()
        enrollments = funnel._enroll(partners)
        return funnel, step, enrollments.trace_ids


@tagged("post_install", "-at_install")
class TestChunkedDispatch(ChunkCase):
    def dispatch_counting(self, traces):
        self.env.flush_all()
        self.env.invalidate_all()
        before = self.env.cr.sql_log_count
        self.Trace._dispatch(traces, datetime(2026, 3, 10, 9, 0))
        self.env.flush_all()
        return self.env.cr.sql_log_count - before

    def test_queries_per_chunk_do_not_grow_with_its_size(self):
        """The same number of queries for 10 and for 100 recipients: nothing
        is done per recipient (render, links, prices, languages, writes)."""
        with freeze_time(TUESDAY_10H_PARIS):
            small = make_audience(self.env, 10, "Small", start=0)
            large = make_audience(self.env, 100, "Large", start=1000)
            __, __, small_traces = self.funnel_for(small)
            __, __, large_traces = self.funnel_for(large)
            # warm the caches shared by every chunk (policies, prices…)
            warm = make_audience(self.env, 3, "Warm", start=5000)
            __, __, warm_traces = self.funnel_for(warm)
            self.dispatch_counting(warm_traces)
            small_queries = self.dispatch_counting(small_traces)
            large_queries = self.dispatch_counting(large_traces)
        self.assertEqual(set(small_traces.mapped("state")), {"queued"})
        self.assertEqual(set(large_traces.mapped("state")), {"queued"})
        self.assertEqual(large_queries, small_queries)
        self.assertLess(large_queries, 60)

    def test_enrolment_queries_do_not_grow_with_the_audience(self):
        with freeze_time(TUESDAY_10H_PARIS):
            warm = make_audience(self.env, 3, "Warm", start=5000)
            small = make_audience(self.env, 10, "Small", start=0)
            large = make_audience(self.env, 100, "Large", start=1000)
            counts = []
            # the first enrolment warms the caches shared by every enrolment
            for partners in (warm, small, large):
                funnel = self.env["sms.microfunnel.campaign"].create(
                    {"name": "Enrol", "model_name": "res.partner"}
                )
                self.env["sms.microfunnel.step"].create(
                    {"campaign_id": funnel.id, "name": "Offer", "body": BODY}
                )
                funnel.action_start()
                self.env.flush_all()
                self.env.invalidate_all()
                before = self.env.cr.sql_log_count
                enrollments = funnel._enroll(partners)
                self.env.flush_all()
                counts.append(self.env.cr.sql_log_count - before)
                self.assertEqual(len(enrollments.trace_ids), len(partners))
                self.assertEqual(
                    set(enrollments.mapped("number")),
                    set(partners.mapped("phone_sanitized")),
                )
                self.assertEqual(enrollments.trace_ids.company_id, self.env.company)
        self.assertEqual(counts[1], counts[2])

    def test_enrolment_in_chunks_skips_those_already_in(self):
        """Records already enrolled are skipped in whichever chunk they fall
        (looked up chunk by chunk), the others get one enrolment and one
        first trace each."""
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 8, "Chunked")
            funnel, __, __ = self.funnel_for(partners[1] | partners[5])
            with patch.object(sms_microfunnel_enrollment, "ENROL_CHUNK", 3):
                enrollments = funnel._enroll(partners)
        self.assertEqual(
            sorted(enrollments.mapped("res_id")),
            sorted((partners - partners[1] - partners[5]).ids),
        )
        everyone = self.env["sms.microfunnel.enrollment"].search(
            [("campaign_id", "=", funnel.id)]
        )
        self.assertEqual(sorted(everyone.mapped("res_id")), sorted(partners.ids))
        self.assertEqual(len(everyone.trace_ids), 8)

    def test_cap_lookup_reads_an_index(self):
        """The frequency caps' lookup of a chunk's numbers in Odoo's SMS
        mailing traces goes through an index, not through every SMS trace."""
        gate = self.env["sms.microfunnel.gate"]
        with recorded_queries(self.env) as queries:
            gate._recent_mailing_subjects(["+33677000001"], datetime(2026, 3, 1))
        (query,) = [q for q in queries if "mailing_trace" in q.code]
        self.env.cr.execute("SET LOCAL enable_seqscan = off")
        self.env.cr.execute(SQL("EXPLAIN %s", query))
        plan = "\n".join(row[0] for row in self.env.cr.fetchall())
        self.assertIn("mailing_trace__sms_number_index", plan)

    def test_due_claim_reads_its_index_and_sent_traces_update_in_place(self):
        """The dispatch claims due traces through the partial index of the
        generated "due" column; moving a queued trace on (its status
        callback: sent, delivered) changes no indexed column, so PostgreSQL
        updates the row in place (HOT) instead of adding an entry to each of
        the table's indexes."""
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 3, "Claim")
            __, __, traces = self.funnel_for(partners)
            self.env.flush_all()
            self.env.cr.execute(
                SQL(
                    "SELECT dispatch_due FROM sms_microfunnel_trace WHERE id = ANY(%s)",
                    traces.ids,
                )
            )
            self.assertEqual({row[0] for row in self.env.cr.fetchall()}, {True})
            self.env.cr.execute("SET LOCAL enable_seqscan = off")
            self.env.cr.execute(
                SQL(
                    "EXPLAIN SELECT t.id %s ORDER BY t.due_at, t.id LIMIT 10 "
                    "FOR UPDATE OF t SKIP LOCKED",
                    self.Trace._due_sql(datetime(2026, 3, 10, 9, 0)),
                )
            )
            plan = "\n".join(row[0] for row in self.env.cr.fetchall())
            self.assertIn("sms_microfunnel_trace_due_claim_index", plan)
            self.Trace._dispatch(traces, datetime(2026, 3, 10, 9, 0))
            self.env.flush_all()
        self.assertEqual(set(traces.mapped("state")), {"queued"})
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM sms_microfunnel_trace "
                "WHERE id = ANY(%s) AND dispatch_due",
                traces.ids,
            )
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)

        def hot_updates():
            self.env.cr.execute(
                "SELECT pg_stat_get_xact_tuples_updated(%s::regclass), "
                "pg_stat_get_xact_tuples_hot_updated(%s::regclass)",
                ["sms_microfunnel_trace", "sms_microfunnel_trace"],
            )
            return self.env.cr.fetchone()

        # what a status callback writes is in no index of the traces (key,
        # expression or predicate); the "due" column is, but stays false
        self.env.cr.execute(
            r"""
            SELECT DISTINCT a.attname
              FROM pg_index i
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0
             WHERE i.indrelid = 'sms_microfunnel_trace'::regclass
               AND (a.attnum = ANY(i.indkey)
                    OR pg_get_expr(i.indpred, i.indrelid)
                       ~ ('\m' || a.attname || '\M')
                    OR pg_get_expr(i.indexprs, i.indrelid)
                       ~ ('\m' || a.attname || '\M'))
            """
        )
        indexed = {row[0] for row in self.env.cr.fetchall()}
        self.assertIn("dispatch_due", indexed)
        written = {"state", "sent_at", "delivered_at", "failure_type", "write_date"}
        self.assertFalse(indexed & written, "a status update would touch an index")
        # and PostgreSQL does update it in place: one update (the page keeps
        # a fifth free for them; several updates in one transaction, with no
        # old version that can be pruned yet, may fill it)
        updated, hot = hot_updates()
        self.env.cr.execute(
            SQL(
                "UPDATE sms_microfunnel_trace SET state = 'sent', sent_at = now() "
                "WHERE id = %s",
                traces[0].id,
            )
        )
        self.assertEqual(hot_updates(), (updated + 1, hot + 1))

    def test_a_database_of_the_previous_version_gets_the_due_column(self):
        """Upgrading a database whose traces have no "due" column yet and
        still carry the indexes of earlier versions (the state-limited claim
        index, the state and enrolment indexes that Odoo keeps once their
        field loses ``index``): the column is added and filled, the claim
        index created, the former indexes dropped."""
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 2, "Upgrade")
            __, __, traces = self.funnel_for(partners)
            self.Trace._dispatch(traces[0], datetime(2026, 3, 10, 9, 0))
            self.env.flush_all()
        cr = self.env.cr
        cr.execute("ALTER TABLE sms_microfunnel_trace DROP COLUMN dispatch_due")
        former = {
            "sms_microfunnel_trace_due_index": "sms_microfunnel_trace "
            "(due_at, id) WHERE state IN ('scheduled', 'deferred')",
            "sms_microfunnel_trace__state_index": "sms_microfunnel_trace (state)",
            "sms_microfunnel_trace__enrollment_id_index": "sms_microfunnel_trace "
            "(enrollment_id)",
            "sms_microfunnel_enrollment__state_index": "sms_microfunnel_enrollment "
            "(state)",
            "sms_microfunnel_trace__sms_id_int_index": "sms_microfunnel_trace "
            "(sms_id_int) WHERE sms_id_int IS NOT NULL",
        }
        for name, definition in former.items():
            cr.execute(f"CREATE INDEX {name} ON {definition}")
        self.env["sms.microfunnel.trace"].init()
        self.env["sms.microfunnel.enrollment"].init()
        cr.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN "
            "('sms_microfunnel_trace', 'sms_microfunnel_enrollment')"
        )
        names = {row[0] for row in cr.fetchall()}
        self.assertFalse(names & set(former))
        self.assertIn("sms_microfunnel_trace_due_claim_index", names)
        cr.execute(
            SQL(
                "SELECT id, dispatch_due FROM sms_microfunnel_trace WHERE id = ANY(%s)",
                traces.ids,
            )
        )
        self.assertEqual(dict(cr.fetchall()), {traces[0].id: False, traces[1].id: True})
        cr.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'sms_microfunnel_trace'"
        )
        self.assertIn("fillfactor=80", cr.fetchone()[0])

    def test_the_last_chunks_are_shared_among_the_running_jobs(self):
        """Near the end of the due traces, a job's next chunk is its share of
        what is left among the dispatch jobs running now (those whose row
        Odoo's cron runner holds locked), so that they finish together;
        before that, and for a job alone, the chunk keeps its size."""
        now = datetime(2026, 3, 10, 9, 0)
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 10, "Share")
            __, __, traces = self.funnel_for(partners)
        crons = self.Trace._dispatch_crons().filtered("active")
        self.assertEqual(len(crons), 4)
        share = self.Trace._share_of_the_rest
        left = self.Trace._count_due(now)
        self.assertGreaterEqual(left, 10)
        big = left  # two chunks of it would take more than is left
        small = left // 3  # two chunks of it leave some for later
        with patch.object(sms_microfunnel_trace, "MIN_CHUNK", 1):
            # no job runs (called directly): nothing to share with
            self.assertEqual(self.Trace._running_jobs(crons), 0)
            self.assertEqual(share(now, big, crons), big)
            # two jobs run: the cron runner of each holds its job's row
            with Registry(get_db_name()).cursor() as runner:
                runner.execute(
                    "SELECT id FROM ir_cron WHERE id = ANY(%s) FOR NO KEY UPDATE",
                    [crons.ids[:2]],
                )
                self.assertEqual(self.Trace._running_jobs(crons), 2)
                self.assertEqual(share(now, big, crons), -(-left // 2))
                self.assertEqual(share(now, small, crons), small)
                self.assertEqual(share(now, big, crons[:1]), big)
                with freeze_time(TUESDAY_10H_PARIS):
                    self.Trace._dispatch(traces[:6], now)
                self.assertEqual(share(now, big, crons), -(-(left - 6) // 2))
                # never below the smallest chunk
                with patch.object(sms_microfunnel_trace, "MIN_CHUNK", 1000):
                    self.assertEqual(share(now, big, crons), 1000)
                runner.rollback()
            # the count locked nothing: another server takes any free job
            with Registry(get_db_name()).cursor() as other:
                other.execute(
                    "SELECT count(*) FROM (SELECT id FROM ir_cron WHERE id = ANY(%s) "
                    "FOR NO KEY UPDATE NOWAIT) AS taken",
                    [crons.ids],
                )
                self.assertEqual(other.fetchone()[0], 4)
                other.rollback()

    def test_batch_composition_is_the_single_composition(self):
        """Each SMS of a chunk reads exactly as ``_compose`` writes it for
        that recipient alone (language, placeholders, links, sender, opt-out,
        price), with the real ``/s/<sms id>`` suffix on its short link."""
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 6, "Compose")
            __, __, traces = self.funnel_for(partners)
            self.Trace._dispatch(traces, datetime(2026, 3, 10, 9, 0))
        rules = self.env["sms.microfunnel.message.rules"]
        codes = set()
        for trace in traces:
            partner = trace.enrollment_id._record()
            alone = rules._compose(
                BODY,
                record=partner,
                company=self.env.company,
                number=trace.number,
                # the step's links are tracked with its SMS mailing's UTM values
                link_tracker_vals=trace.step_id.mailing_id._get_link_tracker_values(),
            )
            expected = re.sub(r"(/r/\w+)", rf"\1/s/{trace.sms_id_int}", alone["text"])
            sms = self.env["sms.sms"].browse(trace.sms_id_int)
            self.assertEqual(sms.body, expected)
            self.assertEqual(trace.body, expected)
            self.assertEqual(trace.cost, alone["cost"])
            self.assertEqual(trace.segments, alone["segments"])
            self.assertIn(f"/s/{sms.id}", sms.body)
            self.assertEqual(sms.partner_id, partner)
            self.assertEqual(sms.state, "outgoing")
            self.assertEqual(
                sms.sms_tracker_id.mailing_trace_id, trace.mailing_trace_id
            )
            codes.add(sms.body.split("/r/")[1].split("/s/")[0])
            self.assertTrue(trace.first_attempt)
            self.assertTrue(trace.send_hour)
        self.assertEqual(len(codes), 1, "one link tracker for the step's link")
        self.assertIn("Bonjour", traces[0].body)

    def test_a_chunk_reads_the_fields_its_bodies_name(self):
        """The enrolled records' fields read with the chunk are those its
        bodies name (``object.<field>``) and those the composition uses; a
        field a body reaches otherwise is read on first use, and renders."""
        body = (
            "Bonjour {{ object.name }} ({{ object['function'] }}) : "
            "https://shop.example.com/offre"
        )
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 4, "Fields")
            for index, partner in enumerate(partners):
                partner.function = f"Poste {index}"
            __, step, traces = self.funnel_for(partners, body=body)
            self.env.flush_all()
            self.env.invalidate_all()
            __, records = traces._chunk_records(traces._chunk_rows(), {step.id: step})
            record = next(iter(records.values()))
            fields_ = record._fields
            for name in ("name", "lang", "country_id", "phone_sanitized"):
                self.assertFalse(list(fields_[name]._cache_missing_ids(record)), name)
            for name in ("email", "function", "street"):
                self.assertTrue(list(fields_[name]._cache_missing_ids(record)), name)
            self.Trace._dispatch(traces, datetime(2026, 3, 10, 9, 0))
        self.assertEqual(set(traces.mapped("state")), {"queued"})
        for trace in traces:
            partner = trace.enrollment_id._record()
            sms = self.env["sms.sms"].browse(trace.sms_id_int)
            self.assertIn(f"Bonjour {partner.name} ({partner.function})", sms.body)

    def test_written_links_are_tracked_before_the_dispatch(self):
        """The links written in a step's texts get their trackers (the step
        mailing's UTM values) when the funnel starts, and when a running
        step's or variant's text changes: parallel dispatchers find them.  A
        link that a placeholder completes is tracked once rendered."""
        offer = "https://shop.example.com/offre"
        body = BODY + " https://shop.example.com/{{ object.type }}"
        Tracker = self.env["link.tracker"]
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 3, "Tracked")
            __, step, traces = self.funnel_for(partners, body=body)
            source = step.mailing_id.source_id
            started = Tracker.search([("source_id", "=", source.id)])
            self.assertEqual(started.mapped("url"), [offer])
            self.assertEqual(started.campaign_id, step.mailing_id.campaign_id)
            self.assertEqual(started.medium_id, step.mailing_id.medium_id)
            self.Trace._dispatch(traces, datetime(2026, 3, 10, 9, 0))
            after = Tracker.search([("source_id", "=", source.id)])
            self.assertEqual(
                sorted(after.mapped("url")),
                sorted([offer, "https://shop.example.com/contact"]),
            )
            for trace in traces:
                sms_body = self.env["sms.sms"].browse(trace.sms_id_int).body
                self.assertIn(f"/r/{started.code}/s/{trace.sms_id_int}", sms_body)
            step.body = "Dernier jour : https://shop.example.com/fin"
            self.env["sms.microfunnel.step.variant"].create(
                [
                    {"step_id": step.id, "name": "A", "body": step.body},
                    {
                        "step_id": step.id,
                        "name": "B",
                        "body": "Fin : https://shop.example.com/b",
                    },
                ]
            )
            self.assertEqual(
                sorted(Tracker.search([("source_id", "=", source.id)]).mapped("url")),
                sorted(
                    [
                        offer,
                        "https://shop.example.com/contact",
                        "https://shop.example.com/fin",
                        "https://shop.example.com/b",
                    ]
                ),
            )

    def test_dispatch_jobs_run_every_minute_and_wake_together(self):
        crons = self.Trace._dispatch_crons()
        self.assertEqual(
            len(crons), 4, "a job per cron thread of two servers (two threads each)"
        )
        self.assertEqual(len(crons.filtered("active")), 4)
        for cron in crons:
            self.assertEqual((cron.interval_number, cron.interval_type), (1, "minutes"))
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 2, "Wake")
            self.funnel_for(partners)
        triggers = self.env["ir.cron.trigger"].search([("cron_id", "in", crons.ids)])
        self.assertEqual(triggers.cron_id, crons)


@tagged("post_install", "-at_install")
class TestChunkedDispatchLinks(HttpCase):
    def test_recipient_suffix_resolves_through_the_click_route(self):
        configure(self.env)
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 2, "Click")
            funnel = self.env["sms.microfunnel.campaign"].create(
                {"name": "Clicks", "model_name": "res.partner"}
            )
            self.env["sms.microfunnel.step"].create(
                {"campaign_id": funnel.id, "name": "Offer", "body": BODY}
            )
            funnel.action_start()
            traces = funnel._enroll(partners).trace_ids
            self.env["sms.microfunnel.trace"]._dispatch(
                traces, datetime(2026, 3, 10, 9, 0)
            )
        first, second = traces.sorted("id")
        body = self.env["sms.sms"].browse(first.sms_id_int).body
        path = "/r/" + body.split("/r/")[1].split()[0]
        self.assertTrue(path.endswith(f"/s/{first.sms_id_int}"))
        response = self.url_open(path, allow_redirects=False)
        self.assertEqual(response.status_code, 301)
        self.assertTrue(
            response.headers["Location"].startswith("https://shop.example.com/offre"),
            response.headers["Location"],
        )
        self.env.invalidate_all()
        self.assertTrue(first.clicked_at, "the click reached this recipient's trace")
        self.assertFalse(second.clicked_at, "and not the other recipient's")


@tagged("post_install", "-at_install")
class TestChunkedDispatchWorkers(BaseCase):
    """Workers on their own database connections (committed data, cleaned up
    after): exactly once with several workers, and resume after a crash."""

    N = 30

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            configure(env)
            with freeze_time(TUESDAY_10H_PARIS):
                partners = make_audience(env, self.N, "Worker", start=9000)
                funnel = env["sms.microfunnel.campaign"].create(
                    {"name": "Workers", "model_name": "res.partner"}
                )
                env["sms.microfunnel.step"].create(
                    {"campaign_id": funnel.id, "name": "Offer", "body": BODY}
                )
                funnel.action_start()
                funnel._enroll(partners)
            self.funnel_id, self.partner_ids = funnel.id, partners.ids
            self.numbers = partners.mapped("phone_sanitized")

    def tearDown(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            remove_committed_funnel(env, self.funnel_id, self.partner_ids, self.numbers)
        super().tearDown()

    def run_workers(self, count, batch_size):
        return run_dispatch_jobs(self.registry, count, batch_size, TUESDAY_10H_PARIS)

    def outcome(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            sms = env["sms.sms"].search([("number", "in", self.numbers)])
            traces = env["sms.microfunnel.trace"].search(
                [("campaign_id", "=", self.funnel_id)]
            )
            trackers = env["sms.tracker"].search(
                [("mailing_trace_id", "in", traces.mailing_trace_id.ids)]
            )
            return (
                len(sms),
                len(set(sms.mapped("number"))),
                sorted(traces.mapped("state")),
                len(trackers),
                set(traces.mapped("sms_id_int")) == set(sms.ids),
            )

    def test_three_workers_queue_each_trace_exactly_once(self):
        self.assertFalse(self.run_workers(3, batch_size=4))
        count, numbers, states, trackers, linked = self.outcome()
        self.assertEqual(count, self.N)
        self.assertEqual(numbers, self.N, "one SMS per recipient")
        self.assertEqual(set(states), {"queued"})
        self.assertEqual(trackers, self.N)
        self.assertTrue(linked)

    def dispatch_by_chunks(self, batch_size, between_chunks=None):
        """One dispatch job in chunks of ``batch_size``, as Odoo's cron
        thread runs it; ``between_chunks(n)`` runs on a cursor of its own
        (committed) before the chunk ``n`` (2, 3…) is claimed.  Returns the
        queries of each chunk (counted from one commit to the next)."""
        Trace = self.registry["sms.microfunnel.trace"]
        original = Trace._claim_due
        claims = []

        def claim_due(self_, now, limit):
            claims.append(limit)
            if between_chunks and len(claims) > 1:
                with self.registry.cursor() as other:
                    between_chunks(
                        api.Environment(other, SUPERUSER_ID, {}), len(claims)
                    )
            return original(self_, now, limit)

        counts = []
        with (
            freeze_time(TUESDAY_10H_PARIS),
            self.registry.cursor() as cr,
            patch.object(Trace, "_claim_due", claim_due),
        ):
            commit = cr.commit
            start = [cr.sql_log_count]

            def counting_commit():
                counts.append(cr.sql_log_count - start[0])
                commit()
                start[0] = cr.sql_log_count

            cr.commit = counting_commit
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["sms.microfunnel.trace"]._cron_dispatch(batch_size=batch_size)
        return counts

    def test_a_run_reads_its_configuration_once(self):
        """The steps, policies, prices, company, SMS mailing and link trackers
        a chunk reads are read by the first chunk of a run only: Odoo's
        commit empties the ORM cache, the run puts them back when one query
        shows none of their rows changed."""
        # chunks of 7, 7, 7, 7, 2, then the cursor's own last commit
        counts = self.dispatch_by_chunks(7)[:-1]
        self.assertEqual(len(counts), 5, counts)
        first, later = counts[0], counts[1:]
        self.assertEqual(len(set(later)), 1, counts)
        self.assertLessEqual(later[0], 16, counts)
        self.assertGreater(first, later[0] + 20, counts)
        count, numbers, states, trackers, linked = self.outcome()
        self.assertEqual((count, numbers, trackers), (self.N, self.N, self.N))
        self.assertEqual(set(states), {"queued"})
        self.assertTrue(linked)

    def test_a_policy_changed_during_a_run_applies_to_its_next_chunk(self):
        """A compliance officer closes today in the French policy while a
        run is under way (another connection, committed after the first
        chunk): the run's next chunks defer instead of sending."""
        holidays = []

        def close_today(env, chunk):
            if chunk == 2:
                policy = env["sms.microfunnel.policy"].search(
                    [
                        ("country_id.code", "=", "FR"),
                        ("state_id", "=", False),
                        ("message_class", "=", "marketing"),
                    ]
                )
                self.assertTrue(policy)
                holiday = env["sms.microfunnel.policy.holiday"].create(
                    [
                        {"policy_id": p.id, "kind": "date", "date": "2026-03-10"}
                        for p in policy
                    ]
                )
                holidays.extend(holiday.ids)

        try:
            self.dispatch_by_chunks(7, between_chunks=close_today)
        finally:
            with self.registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                env["sms.microfunnel.policy.holiday"].browse(holidays).unlink()
        self.assertTrue(holidays)
        count, __, states, __, __ = self.outcome()
        self.assertEqual(count, 7)
        self.assertEqual(states.count("queued"), 7)
        self.assertEqual(states.count("deferred"), self.N - 7)

    def test_a_crashed_chunk_is_picked_up_again(self):
        """A worker dies in its third chunk: the two chunks it committed stay
        queued, the third is rolled back whole (no SMS, no tracker) and the
        next run queues the rest, each trace once."""
        Trace = self.registry["sms.microfunnel.trace"]
        original = Trace._insert_sms
        calls = []

        def crash(self_, rows, *args):
            calls.append(len(rows))
            if len(calls) == 3:
                original(self_, rows, *args)
                raise RuntimeError("worker killed in the middle of a chunk")
            return original(self_, rows, *args)

        with patch.object(Trace, "_insert_sms", crash):
            errors = self.run_workers(1, batch_size=7)
        self.assertEqual(len(errors), 1)
        count, __, states, trackers, __ = self.outcome()
        self.assertEqual(count, 14, "two committed chunks of 7")
        self.assertEqual(states.count("queued"), 14)
        self.assertEqual(states.count("scheduled"), self.N - 14)
        self.assertEqual(trackers, 14)
        self.assertFalse(self.run_workers(1, batch_size=7))
        count, numbers, states, trackers, linked = self.outcome()
        self.assertEqual((count, numbers, trackers), (self.N, self.N, self.N))
        self.assertEqual(set(states), {"queued"})
        self.assertTrue(linked)


@tagged("post_install", "-at_install")
class TestChunkRowsLookup(ChunkCase):
    """Last in this file: the rows it adds, though rolled back, grow the
    tables' files, and PostgreSQL plans by their size (the claim's plan
    asserted above would change)."""

    def test_a_chunk_reads_its_own_enrolments_and_traces(self):
        """A chunk's rows come with their enrolment and the "already queued"
        check read per trace through their indexes, not by hashing every
        enrolment and queued trace of the database (a cost that would grow
        with each audience ever sent)."""
        with freeze_time(TUESDAY_10H_PARIS):
            partners = make_audience(self.env, 400, "Rows")
            __, __, traces = self.funnel_for(partners)
        self.env.flush_all()
        cr = self.env.cr
        sent, chunk = traces[:200], traces[200:]
        cr.execute(
            SQL(
                "UPDATE sms_microfunnel_trace SET queued_at = now() WHERE id = ANY(%s)",
                sent.ids,
            )
        )
        with recorded_queries(self.env) as queries:
            rows = chunk._chunk_rows()
        self.assertEqual(set(rows), set(chunk.ids))
        self.assertFalse(any(row["enrollment_queued"] for row in rows.values()))
        (query,) = queries
        read = rows_read(self.env, query)
        # each trace's enrolment, and the traces of that enrolment (one step
        # here: the trace itself), not the 400 of the database
        self.assertLessEqual(read["e"], len(chunk))
        self.assertLessEqual(read["o"], len(chunk))
