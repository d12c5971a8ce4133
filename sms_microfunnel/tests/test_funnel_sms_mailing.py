# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Funnel SMS steps report through Odoo's SMS mailing traces: one SMS
``mailing.mailing`` per step, a ``mailing.trace`` per SMS linked to its
``sms.sms`` and ``sms.tracker``, short links through Odoo's rewriter and click
route, so that Odoo's SMS marketing statistics and UTM reports count them."""

import re
from unittest.mock import patch

from freezegun import freeze_time

from odoo import fields
from odoo.tests import HttpCase, tagged

from odoo.addons.sms_microfunnel.models.sms_microfunnel_trace import reserve_ids
from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase
from odoo.addons.sms_microfunnel.tools import sms_encoding

LINK_BODY = "Bonjour {{ object.name }}, -20 % : https://shop.example.com/offre"


class SmsMailingCase(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.utm_campaign = cls.env["utm.campaign"].create({"name": "Spring offer"})
        cls.funnel.utm_campaign_id = cls.utm_campaign
        cls.offer.body = LINK_BODY

    def start_and_dispatch(self, partners):
        """Start the funnel, enrol ``partners`` and dispatch their due SMS."""
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            traces = self.funnel._enroll(partners).trace_ids
            traces._dispatch(traces, fields.Datetime.now())
        self.env.invalidate_all()

    def tracker(self, trace):
        return (
            self.env["sms.tracker"].sudo().search([("sms_uuid", "=", trace.sms_uuid)])
        )


@tagged("post_install", "-at_install")
class TestFunnelSmsMailing(SmsMailingCase):
    def test_sms_step_has_its_sms_mailing_and_one_trace_per_sms(self):
        self.start_and_dispatch(self.anna | self.bruno)
        mailing = self.offer.mailing_id
        self.assertTrue(mailing, "the SMS step got its SMS mailing")
        self.assertEqual(mailing.mailing_type, "sms")
        self.assertEqual(mailing.campaign_id, self.utm_campaign)
        self.assertEqual(
            mailing.medium_id, self.env.ref("mass_mailing_sms.utm_medium_sms")
        )
        self.assertTrue(mailing.source_id)
        self.assertEqual(mailing.mailing_model_real, "res.partner")
        for partner in (self.anna, self.bruno):
            trace = self.trace(partner, self.offer)
            self.assertEqual(trace.state, "queued")
            mailing_trace = trace.mailing_trace_id
            sms = self.env["sms.sms"].sudo().browse(trace.sms_id_int)
            self.assertEqual(
                (
                    mailing_trace.trace_type,
                    mailing_trace.trace_status,
                    mailing_trace.mass_mailing_id,
                    mailing_trace.campaign_id,
                    mailing_trace.model,
                    mailing_trace.res_id,
                    mailing_trace.sms_number,
                    mailing_trace.sms_id_int,
                    mailing_trace.sms_id,
                ),
                (
                    "sms",
                    "outgoing",
                    mailing,
                    self.utm_campaign,
                    "res.partner",
                    partner.id,
                    partner.phone,
                    sms.id,
                    sms,
                ),
            )
            self.assertTrue(mailing_trace.sms_code)
            self.assertEqual(sms.mailing_id, mailing)
            self.assertEqual(sms.mailing_trace_ids, mailing_trace)
            self.assertEqual(self.tracker(trace).mailing_trace_id, mailing_trace)
            self.assertEqual(mailing_trace.sms_tracker_ids, self.tracker(trace))
            # Odoo's rewriter: the step's short link ends with /s/<sms id>
            self.assertRegex(sms.body, rf"/r/\w+/s/{sms.id}(\s|$)")
            self.assertEqual(trace.body, sms.body)
        # one link tracker for the step's link, with the mailing's UTM values
        codes = {
            re.search(r"/r/(\w+)/s/", self.trace(p, self.offer).body)[1]
            for p in (self.anna, self.bruno)
        }
        self.assertEqual(len(codes), 1)
        link = (
            self.env["link.tracker.code"].search([("code", "in", list(codes))]).link_id
        )
        self.assertEqual(
            (link.url, link.mass_mailing_id, link.campaign_id, link.medium_id),
            (
                "https://shop.example.com/offre",
                mailing,
                self.utm_campaign,
                mailing.medium_id,
            ),
        )
        # the next SMS step gets its own mailing, this one is reused
        with freeze_time("2026-03-11 09:30:00"):
            self.dispatch()
        reminder = self.trace(self.anna, self.reminder)
        self.assertEqual(reminder.state, "queued")
        self.assertEqual(self.reminder.mailing_id.mailing_type, "sms")
        self.assertNotEqual(self.reminder.mailing_id, mailing)
        self.assertEqual(
            reminder.mailing_trace_id.mass_mailing_id, self.reminder.mailing_id
        )
        self.assertEqual(
            self.env["mailing.mailing"].search_count(
                [("id", "in", (self.offer | self.reminder).mailing_id.ids)]
            ),
            2,
        )

    def test_delivery_reports_reach_the_mailing_trace_and_the_funnel_trace(self):
        self.start_and_dispatch(self.anna | self.bruno)
        anna = self.trace(self.anna, self.offer)
        bruno = self.trace(self.bruno, self.offer)
        self.tracker(anna)._action_update_from_sms_state("pending")
        self.assertEqual(anna.mailing_trace_id.trace_status, "pending")
        self.assertEqual(anna.state, "sent")
        self.assertTrue(anna.sent_at)
        self.tracker(anna)._action_update_from_sms_state("sent")
        self.assertEqual(anna.mailing_trace_id.trace_status, "sent")
        self.assertEqual(anna.state, "delivered")
        self.assertTrue(anna.delivered_at)
        # a late report moves neither back
        self.tracker(anna)._action_update_from_sms_state("pending")
        self.assertEqual(anna.mailing_trace_id.trace_status, "sent")
        self.assertEqual(anna.state, "delivered")
        # the provider says the number does not exist: a bounce
        self.tracker(bruno)._action_update_from_provider_error("invalid_destination")
        self.assertEqual(bruno.mailing_trace_id.trace_status, "bounce")
        self.assertEqual(bruno.mailing_trace_id.failure_type, "sms_invalid_destination")
        self.assertEqual(bruno.state, "bounced")
        self.assertEqual(bruno.failure_type, "sms_invalid_destination")

    def test_odoo_sms_statistics_count_funnel_sms(self):
        self.start_and_dispatch(self.anna | self.bruno)
        anna = self.trace(self.anna, self.offer)
        bruno = self.trace(self.bruno, self.offer)
        self.tracker(anna)._action_update_from_sms_state("sent")
        self.tracker(bruno)._action_update_from_sms_state(
            "error", failure_type="sms_server"
        )
        anna.mailing_trace_id.set_clicked()
        self.env.flush_all()
        mailing = self.offer.mailing_id
        mailing.invalidate_recordset()
        self.assertEqual(
            (mailing.expected, mailing.sent, mailing.delivered, mailing.failed),
            (2, 1, 1, 1),
        )
        self.assertEqual(mailing.clicked, 1)
        self.assertTrue(anna.clicked_at, "the funnel trace follows the mailing trace")
        self.assertFalse(bruno.clicked_at)
        self.assertEqual(bruno.state, "failed")
        # the mailing analysis (mailing.trace.report) and the UTM campaign
        rows = self.env["mailing.trace.report"].search_read(
            [("mailing_type", "=", "sms"), ("name", "=", mailing.name)],
            ["sent", "delivered", "clicked", "error"],
        )
        self.assertEqual(
            [(r["sent"], r["delivered"], r["clicked"], r["error"]) for r in rows],
            [(1, 1, 1, 1)],
        )
        # one SMS mailing per SMS step of the funnel, in its UTM campaign
        sms_steps = self.funnel.step_ids.filtered(lambda s: s.step_type == "sms")
        self.assertEqual(len(sms_steps), 3)
        self.assertEqual(self.utm_campaign.mailing_sms_ids, sms_steps.mailing_id)
        self.assertEqual(self.utm_campaign.mailing_sms_count, 3)


@tagged("post_install", "-at_install")
class TestShortLinkSuffix(SmsMailingCase):
    """The dispatch has Odoo's SMS mailing rewriter (``sms.sms.
    _update_body_short_links``) add ``/s/<sms id>`` to the short links of a
    chunk's SMS, once for the whole chunk, before inserting them."""

    def test_queued_bodies_are_made_by_odoos_rewriter(self):
        SmsSms = type(self.env["sms.sms"])
        rewriter = SmsSms._update_body_short_links
        calls = []

        def spy(records):
            bodies = rewriter(records)
            calls.append((records.ids, bodies))
            return bodies

        with patch.object(SmsSms, "_update_body_short_links", spy):
            self.start_and_dispatch(self.anna | self.bruno)
        traces = self.trace(self.anna, self.offer) | self.trace(self.bruno, self.offer)
        self.assertEqual(traces.mapped("state"), ["queued", "queued"])
        sms = self.env["sms.sms"].sudo().browse(traces.mapped("sms_id_int"))
        self.assertEqual(len(calls), 1, "one rewrite for the whole chunk")
        ids, bodies = calls[0]
        self.assertEqual(sorted(ids), sorted(sms.ids))
        self.assertEqual({one.id: one.body for one in sms}, bodies)
        for trace in traces:
            body = bodies[trace.sms_id_int]
            self.assertRegex(body, rf"/r/\w+/s/{trace.sms_id_int}(\s|$)")
            # counted and priced on the final body
            self.assertEqual(trace.body, body)
            analysis = sms_encoding.analyze(body)
            self.assertEqual(
                (trace.segments, trace.encoding),
                (analysis["segments"], analysis["encoding"]),
            )
        # the reserved ids left nothing in the ORM cache
        self.env.invalidate_all()
        self.assertEqual(sms.mapped("body"), [bodies[i] for i in sms.ids])

    def test_bodies_of_reserved_ids_as_odoo_rewrites_them(self):
        """``_with_recipient_suffixes`` on ids reserved for SMS not inserted
        yet gives what the rewriter gives the same SMS once they exist."""
        SmsSms = self.env["sms.sms"].sudo()
        rules = self.env["sms.microfunnel.message.rules"]
        base = SmsSms.get_base_url()
        mailing = self.env["mailing.mailing"].create(
            {"name": "Suffix", "subject": "Suffix", "mailing_type": "sms"}
        )
        bodies = [
            f"Hi Anna, 20% off: {base}/r/aB3",
            f"{base}/r/aB3 again {base}/r/aB3, and {base}/r/aB3x. ({base}/r/aB3)",
            f"Two links {base}/r/aB3 {base}/r/Zz9?utm_source=x&a=1 end",
            f"Not ours https://other.example.com/r/aB3 nor {base}/shop/r/aB3",
            f"Already {base}/r/aB3/s/77 and {base}/r/aB3#top",
            f"Salut Zoë\n{base}/r/aB3\nSTOP au 36111",
            f"{base}/r/aB3/{base}/r/aB3-x {base}/r/aB3~ {base}/r/aB3@",
            "No link at all",
            "",
        ]
        ids = reserve_ids(self.env, "sms.sms", len(bodies))
        with self.assertQueryCount(0):  # read from the cache, not the table
            got = rules._with_recipient_suffixes(bodies, ids, mailing)
        self.assertEqual(got[0], f"Hi Anna, 20% off: {base}/r/aB3/s/{ids[0]}")
        self.assertEqual(got[-2:], ["No link at all", ""])
        # the same SMS once they exist, rewritten by Odoo
        self.env.cr.execute(
            "INSERT INTO sms_sms (id, number, body, mailing_id, state, uuid)"
            " SELECT id, '+33612345678', body, %s, 'outgoing', md5(id::text)"
            " FROM unnest(%s::int4[], %s::text[]) AS u(id, body)",
            [mailing.id, ids, [body or None for body in bodies]],
        )
        expected = SmsSms.browse(ids)._update_body_short_links()
        self.assertEqual(got, [expected[i] or "" for i in ids])
        # nothing of the reserved ids stayed in the cache
        self.assertEqual(SmsSms.browse(ids).mapped("body")[0], bodies[0])

    def test_counted_before_the_sms_exists_at_its_length(self):
        """Without an SMS id (previews, pre-flight, the browser counter) the
        rewriter is given a stand-in id as long as the next id."""
        rules = self.env["sms.microfunnel.message.rules"]
        base = self.env["sms.sms"].get_base_url()
        text = f"Offer {base}/r/aB3 now"
        counted = rules._with_recipient_suffixes([text])[0]
        next_id = rules._next_sms_id()
        self.assertRegex(counted, rf"^Offer {base}/r/aB3/s/\d+ now$")
        suffix = counted[len(f"Offer {base}/r/aB3") : -len(" now")]
        self.assertEqual(len(suffix), len(f"/s/{next_id}"))
        context = rules.get_counter_context()
        self.assertEqual(len(context["recipient_suffix"]), len(f"/s/{next_id}"))


@tagged("post_install", "-at_install")
class TestFunnelSmsClickRoute(SmsMailingCase, HttpCase):
    def test_click_on_the_short_link_lands_on_the_mailing_trace(self):
        self.start_and_dispatch(self.anna | self.bruno)
        anna = self.trace(self.anna, self.offer)
        bruno = self.trace(self.bruno, self.offer)
        self.tracker(anna)._action_update_from_sms_state("sent")
        path = re.search(r"/r/\w+/s/\d+", anna.body)[0]
        self.assertTrue(path.endswith(f"/s/{anna.sms_id_int}"))
        response = self.url_open(path, allow_redirects=False)
        self.assertEqual(response.status_code, 301)
        location = response.headers["Location"]
        self.assertTrue(location.startswith("https://shop.example.com/offre?"))
        # the link carries the SMS mailing's UTM values
        self.assertIn("utm_campaign=Spring+offer", location)
        self.assertIn("utm_medium=SMS", location)
        self.env.invalidate_all()
        click = self.env["link.tracker.click"].search(
            [("mailing_trace_id", "=", anna.mailing_trace_id.id)]
        )
        self.assertEqual(len(click), 1, "Odoo's route recorded the click")
        self.assertEqual(click.mass_mailing_id, self.offer.mailing_id)
        self.assertEqual(click.campaign_id, self.utm_campaign)
        self.assertTrue(anna.mailing_trace_id.links_click_datetime)
        self.assertFalse(bruno.mailing_trace_id.links_click_datetime)
        self.assertTrue(anna.clicked_at, "the click reached the funnel trace")
        self.assertFalse(bruno.clicked_at)
        self.assertEqual(anna.state, "delivered", "a click changes no delivery state")
        offer = self.funnel._report_step_funnel()[0]
        self.assertEqual(
            (offer["name"], offer["recipients"], offer["delivered"], offer["clicked"]),
            ("Offer", 2, 1, 1),
        )
        self.assertEqual(self.offer.mailing_id.clicked, 1)
