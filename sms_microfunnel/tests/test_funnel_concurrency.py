# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime

import psycopg2
from freezegun import freeze_time

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, tagged
from odoo.tests.common import get_db_name

from odoo.addons.sms_microfunnel.tests.common import (
    remove_committed_funnel,
    run_dispatch_jobs,
)

N = 24
# a link that a placeholder completes: known once rendered, so the
# dispatchers create its tracker (a written link's exists from the start)
URL = "https://shop.example.com/contact"
BODY = "Offre du jour : https://shop.example.com/{{ object.type }}"


@tagged("post_install", "-at_install")
class TestFunnelConcurrency(BaseCase):
    """Two dispatchers on two real database connections never send twice.

    The data is committed (each worker has its own transaction), so the test
    cleans up after itself.
    """

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            company = env.company
            company.write(
                {
                    "country_id": env.ref("base.fr").id,
                    "sms_funnel_sender_label": "ACME: ",
                    "sms_funnel_optout_mention": "STOP au 36111",
                }
            )
            partners = env["res.partner"].create(
                [
                    {
                        "name": f"Concurrent {i}",
                        "phone": f"+336770000{i:02d}",
                        "tz": "Europe/Paris",
                    }
                    for i in range(N)
                ]
            )
            env["sms.microfunnel.consent.event"]._record(
                [
                    {
                        "event_type": "confirmed",
                        "number": p.phone,
                        "partner_id": p.id,
                        "source": "web_form",
                        "wording": "OK",
                        "event_date": datetime(2026, 1, 5),
                    }
                    for p in partners
                ]
            )
            funnel = env["sms.microfunnel.campaign"].create(
                {"name": "Concurrency", "model_name": "res.partner"}
            )
            env["sms.microfunnel.step"].create(
                {"campaign_id": funnel.id, "name": "Offer", "body": BODY}
            )
            with freeze_time("2026-03-10 09:00:00"):
                funnel.action_start()
                funnel._enroll(partners)
            self.funnel_id, self.partner_ids = funnel.id, partners.ids
            self.numbers = partners.mapped("phone")

    def tearDown(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            remove_committed_funnel(env, self.funnel_id, self.partner_ids, self.numbers)
        super().tearDown()

    def test_two_dispatchers_never_send_twice(self):
        self.assertFalse(run_dispatch_jobs(self.registry, 2, 4, "2026-03-10 09:00:00"))
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            sms = env["sms.sms"].search([("number", "in", self.numbers)])
            self.assertEqual(len(sms), N)
            self.assertEqual(len(set(sms.mapped("number"))), N, "one SMS per recipient")
            traces = env["sms.microfunnel.trace"].search(
                [("campaign_id", "=", self.funnel_id)]
            )
            self.assertEqual(set(traces.mapped("state")), {"queued"})

    def test_claim_after_a_concurrent_commit_starts_again(self):
        """A worker whose snapshot predates another worker's commit cannot lock
        the rows that worker changed: it gets None (no error logged), and a
        fresh transaction claims normally."""
        with self.registry.cursor() as cr_a:
            Trace = api.Environment(cr_a, SUPERUSER_ID, {})["sms.microfunnel.trace"]
            candidates = Trace.search([("campaign_id", "=", self.funnel_id)])
            self.assertEqual(len(candidates), N)  # A's snapshot is taken
            with self.registry.cursor() as cr_b:
                other = api.Environment(cr_b, SUPERUSER_ID, {})[
                    "sms.microfunnel.trace"
                ].browse(candidates[:1].ids)
                other.write({"state": "canceled", "cancel_reason": "exited"})
            # B committed after A began
            self.assertIsNone(Trace._claim(candidates, 4))
            cr_a.rollback()
            claimed = Trace._claim(candidates, 4)
            self.assertEqual(claimed, candidates[:4])

    def _trackers(self, env):
        return env["link.tracker"].search([("url", "=", URL)])

    def test_two_dispatchers_make_one_link_tracker(self):
        """The first chunks of a step composed at the same time by two
        dispatchers: the later one to commit finds it may not create the
        step's tracker of the link (serialization error, nothing logged) and,
        from a fresh snapshot, uses the one the other created."""
        with (
            freeze_time("2026-03-10 09:00:00"),
            self.registry.cursor() as cr_a,
            self.registry.cursor() as cr_b,
        ):
            now = datetime(2026, 3, 10, 9, 0)
            trace_a = api.Environment(cr_a, SUPERUSER_ID, {})["sms.microfunnel.trace"]
            trace_b = api.Environment(cr_b, SUPERUSER_ID, {})["sms.microfunnel.trace"]
            chunk_a = trace_a._claim_due(now, 4)
            chunk_b = trace_b._claim_due(now, 4)  # skips the rows A holds
            self.assertEqual(len(chunk_a), 4)
            self.assertEqual(len(chunk_b), 4)
            self.assertFalse(set(chunk_a.ids) & set(chunk_b.ids))
            self.assertFalse(self._trackers(trace_b.env))  # B's snapshot
            chunk_a._dispatch(chunk_a, now)
            cr_a.commit()
            with (
                self.assertRaises(psycopg2.extensions.TransactionRollbackError),
                self.assertNoLogs("odoo.sql_db", "ERROR"),
            ):
                chunk_b._dispatch(chunk_b, now)
            cr_b.rollback()
            trace_b._cron_dispatch(batch_size=4)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            tracker = self._trackers(env)
            self.assertEqual(len(tracker), 1)
            sms = env["sms.sms"].search([("number", "in", self.numbers)])
            self.assertEqual(len(sms), N)
            self.assertTrue(
                all(f"/r/{tracker.code}/s/{s.id}" in s.body for s in sms),
                sms.mapped("body"),
            )

    def test_dispatch_jobs_at_once_make_one_link_tracker(self):
        """Two dispatch jobs started together (their first chunks race for
        the tracker): one tracker, every SMS sent once."""
        self.assertFalse(run_dispatch_jobs(self.registry, 2, 6, "2026-03-10 09:00:00"))
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            self.assertEqual(len(self._trackers(env)), 1)
            sms = env["sms.sms"].search([("number", "in", self.numbers)])
            self.assertEqual(len(set(sms.mapped("number"))), N)
            self.assertEqual(len(sms), N)
