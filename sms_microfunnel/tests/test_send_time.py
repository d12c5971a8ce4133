# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send-time targeting: step slots, the best hour, the time-of-day analysis."""

from datetime import datetime, timedelta

from freezegun import freeze_time
from psycopg2 import IntegrityError

from odoo.exceptions import UserError
from odoo.tests import Form, tagged
from odoo.tools import mute_logger

from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

# Friday 2026-03-27 13:00 in Paris (CET); clocks go forward on Sunday 29 March
FRIDAY_BEFORE_SPRING = "2026-03-27 12:00:00"
# Friday 2026-10-23 14:00 in Paris (CEST); clocks go back on Sunday 25 October
FRIDAY_BEFORE_AUTUMN = "2026-10-23 12:00:00"


class SendTimeCase(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.newyork = Partner.create(
            {
                "name": "Nora",
                "phone": "+12127363100",
                "country_id": cls.env.ref("base.us").id,
            }
        )
        cls.history_funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Last year's offers", "model_name": "res.partner"}
        )
        cls.history_step = cls.env["sms.microfunnel.step"].create(
            {"campaign_id": cls.history_funnel.id, "name": "Old", "body": "Old."}
        )
        cls.history_step_2 = cls.env["sms.microfunnel.step"].create(
            {"campaign_id": cls.history_funnel.id, "name": "Older", "body": "Old."}
        )

    def history(
        self,
        partner,
        when,
        clicked=False,
        replied=False,
        funnel=None,
        step=None,
        enrollment=None,
    ):
        """A message ``partner`` received at ``when`` (naive UTC), delivered."""
        funnel = funnel or self.history_funnel
        enrollment = enrollment or self.env["sms.microfunnel.enrollment"].sudo().create(
            {
                "campaign_id": funnel.id,
                "res_model": "res.partner",
                "res_id": partner.id,
                "partner_id": partner.id,
                "number": partner.phone_sanitized,
                "state": "completed",
                "enrolled_at": when,
            }
        )
        return (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .create(
                {
                    "enrollment_id": enrollment.id,
                    "step_id": (step or funnel.step_ids[:1]).id,
                    "due_at": when,
                    "queued_at": when,
                    "state": "delivered",
                    "send_tz": partner.tz or "Europe/Paris",
                    "clicked_at": clicked and when + timedelta(minutes=5),
                    "replied_at": replied and when + timedelta(minutes=9),
                }
            )
        )

    def extra_partners(self, count):
        Partner = self.env["res.partner"]
        return Partner.create(
            [
                {
                    "name": f"Past {i}",
                    "phone": f"+3361234560{i}",
                    "country_id": self.env.ref("base.fr").id,
                    "tz": "Europe/Paris",
                }
                for i in range(count)
            ]
        )

    def assert_trigger_at(self, when):
        trigger = self.env["ir.cron.trigger"].search(
            [("cron_id", "=", self.cron.id), ("call_at", "=", when)]
        )
        self.assertTrue(trigger, "the dispatcher wakes itself at the slot opening")


@tagged("post_install", "-at_install")
class TestSendSlot(SendTimeCase):
    def test_inside_the_slot_sends_now(self):
        self.offer.send_slot = "b2b"
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.state, "queued")
        self.assertEqual(trace.send_slot_source, "step")
        self.assertEqual(trace.send_tz, "Europe/Paris")
        self.assertEqual((trace.send_weekday, trace.send_hour), ("1", "10"))

    def test_b2b_defers_across_spring_dst(self):
        self.offer.send_slot = "b2b"
        with freeze_time(FRIDAY_BEFORE_SPRING):
            self.start_and_dispatch(self.anna)
            trace = self.trace(self.anna, self.offer)
            # the legal window is open (Friday 13:00) but the slot is not
            self.assertEqual(trace.state, "deferred")
            self.assertEqual(trace.defer_reason, "send_slot")
            # Tuesday 31 March 10:00 CEST = 08:00 UTC (it was 09:00 UTC in CET)
            self.assertEqual(trace.due_at, datetime(2026, 3, 31, 8, 0))
            self.assertFalse(self.outgoing(self.anna))
            self.assert_trigger_at(trace.due_at)
        with freeze_time("2026-03-31 07:59:00"):
            self.dispatch()
            self.assertEqual(trace.state, "deferred", "not a minute early")
        with freeze_time("2026-03-31 08:00:30"):
            self.dispatch()
        self.assertEqual(trace.state, "queued")
        self.assertEqual(len(self.outgoing(self.anna)), 1)
        self.assertEqual((trace.send_weekday, trace.send_hour), ("1", "10"))

    def test_b2b_defers_across_autumn_dst(self):
        self.offer.send_slot = "b2b"
        with freeze_time(FRIDAY_BEFORE_AUTUMN):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.defer_reason, "send_slot")
        # Tuesday 27 October 10:00 CET = 09:00 UTC
        self.assertEqual(trace.due_at, datetime(2026, 10, 27, 9, 0))

    def test_b2b_afternoon_the_same_day(self):
        self.offer.send_slot = "b2b"
        with freeze_time("2026-03-10 10:30:00"):  # Tuesday 11:30 in Paris
            self.start_and_dispatch(self.anna)
        self.assertEqual(
            self.trace(self.anna, self.offer).due_at, datetime(2026, 3, 10, 14, 0)
        )

    def test_closed_window_then_slot(self):
        """Sunday: the window opens Monday 08:00, the evening slot at 18:00."""
        self.offer.send_slot = "b2c_evening"
        with freeze_time("2026-03-15 10:00:00"):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.defer_reason, "send_slot")
        self.assertEqual(trace.due_at, datetime(2026, 3, 16, 17, 0))

    def test_slot_opening_with_the_window_keeps_the_window_reason(self):
        self.offer.write(
            {
                "send_slot": "custom",
                "send_slot_line_ids": [
                    (0, 0, {"weekday": "mon_fri", "hour_from": 8, "hour_to": 9.5})
                ],
            }
        )
        with freeze_time("2026-03-15 10:00:00"):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.defer_reason, "window_closed")
        self.assertEqual(trace.due_at, datetime(2026, 3, 16, 7, 0))

    def test_weekend_slot_waits_for_saturday(self):
        self.offer.send_slot = "weekend"
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.defer_reason, "send_slot")
        # Saturday 14 March 10:00 in Paris
        self.assertEqual(trace.due_at, datetime(2026, 3, 14, 9, 0))

    def test_slot_outside_the_country_policy_is_canceled_with_a_reason(self):
        # marketing is closed on Sundays in France: a Sunday slot never opens
        self.offer.write(
            {
                "send_slot": "custom",
                "send_slot_line_ids": [
                    (0, 0, {"weekday": "6", "hour_from": 10, "hour_to": 12})
                ],
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.state, "canceled")
        self.assertEqual(trace.cancel_reason, "no_slot")
        self.assertFalse(self.outgoing(self.anna))

    def test_step_form_custom_hours(self):
        with Form(self.offer) as form:
            form.send_slot = "custom"
            with form.send_slot_line_ids.new() as line:
                line.weekday = "2"
                line.hour_from = 18
                line.hour_to = 19.5
            with form.send_slot_line_ids.new() as line:
                line.weekday = "mon_fri"
                line.hour_from = 9
                line.hour_to = 10
        spans = self.offer.send_slot_line_ids._spans()
        self.assertEqual(spans[0], (2, 1080, 1170))
        self.assertEqual(spans[1:], [(day, 540, 600) for day in range(5)])
        with (
            self.assertRaises(IntegrityError),
            mute_logger("odoo.sql_db"),
            self.cr.savepoint(),
        ):
            self.offer.send_slot_line_ids[0].hour_to = 17
            self.offer.send_slot_line_ids.flush_recordset()

    def test_custom_slot_without_hours_cannot_start(self):
        self.offer.send_slot = "custom"
        with self.assertRaisesRegex(UserError, "custom send slot without hours"):
            self.funnel.action_start()

    def test_transactional_slot_in_the_numbers_zone(self):
        """No window applies to a transactional SMS: the slot is read in the
        recipient's zone, here the number's (the contact has none)."""
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Appointments", "model_name": "res.partner"}
        )
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Reminder",
                "message_class": "transactional",
                "send_slot": "b2c_evening",
                "body": "Your appointment is tomorrow.",
            }
        )
        # Tuesday 10 March 14:00 UTC: 10:00 in New York (EDT), 15:00 in Paris
        with freeze_time("2026-03-10 14:00:00"):
            funnel.action_start()
            funnel._enroll(self.newyork | self.anna)
            self.dispatch()
        nora, anna = self.trace(self.newyork, step), self.trace(self.anna, step)
        self.assertEqual(nora.send_tz, "America/New_York")
        self.assertEqual(nora.defer_reason, "send_slot")
        self.assertEqual(nora.due_at, datetime(2026, 3, 10, 22, 0))
        self.assertEqual(anna.send_tz, "Europe/Paris")
        self.assertEqual(anna.due_at, datetime(2026, 3, 10, 17, 0))

    def test_local_hour_of_a_message_without_slot(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Notices", "model_name": "res.partner"}
        )
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Notice",
                "message_class": "transactional",
                "body": "Your file was updated.",
            }
        )
        with freeze_time("2026-03-10 14:00:00"):
            funnel.action_start()
            funnel._enroll(self.newyork | self.anna)
            self.dispatch()
        nora, anna = self.trace(self.newyork, step), self.trace(self.anna, step)
        self.assertEqual((nora.state, anna.state), ("queued", "queued"))
        self.assertFalse(nora.send_slot_source)
        self.assertEqual((nora.send_weekday, nora.send_hour), ("1", "10"))
        self.assertEqual((anna.send_weekday, anna.send_hour), ("1", "15"))

    def test_dry_run_shows_the_slot(self):
        self.offer.send_slot = "b2b"
        lines = self.funnel._simulate(self.anna, start_at=datetime(2026, 3, 27, 12))
        offer = next(line for line in lines if line["step_name"] == "Offer")
        self.assertEqual(offer["outcome"], "defer")
        self.assertEqual(offer["reason"], "send_slot")
        self.assertEqual(offer["send_at"], datetime(2026, 3, 31, 8, 0))


@tagged("post_install", "-at_install")
class TestBestHour(SendTimeCase):
    def setUp(self):
        super().setUp()
        self.offer.write({"send_best_hour": True, "send_best_hour_min_sample": 5})

    def anna_history(self):
        # two clicked messages on Wednesdays at 18:xx, three ignored ones
        self.history(self.anna, datetime(2026, 2, 25, 17, 20), clicked=True)
        self.history(self.anna, datetime(2026, 3, 4, 17, 15), replied=True)
        self.history(self.anna, datetime(2026, 2, 24, 9, 10))
        self.history(self.anna, datetime(2026, 3, 3, 9, 10))
        self.history(self.anna, datetime(2026, 2, 26, 14, 5))

    def test_contact_best_hour(self):
        self.anna_history()
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
            trace = self.trace(self.anna, self.offer)
            self.assertEqual(trace.defer_reason, "send_slot")
            # Wednesday 11 March 18:00 in Paris
            self.assertEqual(trace.due_at, datetime(2026, 3, 11, 17, 0))
            self.assertEqual(trace.send_slot_source, "contact")
        with freeze_time("2026-03-11 17:00:30"):
            self.dispatch()
        self.assertEqual(trace.state, "queued")
        self.assertEqual((trace.send_weekday, trace.send_hour), ("2", "18"))

    def test_best_hour_outside_the_legal_window_is_ignored(self):
        # Anna clicks on Sundays (no marketing SMS on Sundays in France)
        self.history(self.anna, datetime(2026, 3, 1, 9, 20), clicked=True)
        self.history(self.anna, datetime(2026, 3, 8, 9, 15), replied=True)
        self.history(self.anna, datetime(2026, 2, 24, 9, 10))
        self.history(self.anna, datetime(2026, 3, 3, 9, 10))
        self.history(self.anna, datetime(2026, 2, 26, 14, 5))
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.state, "queued", "the legal window alone decides")
        self.assertFalse(trace.send_slot_source)
        self.assertFalse(trace.cancel_reason)

    def test_not_enough_history_falls_back_to_the_step_slot(self):
        self.offer.send_slot = "b2b"
        self.history(self.bruno, datetime(2026, 2, 25, 17, 20), clicked=True)
        self.history(self.bruno, datetime(2026, 3, 4, 17, 15), clicked=True)
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.bruno)
        trace = self.trace(self.bruno, self.offer)
        self.assertEqual(trace.state, "queued", "Tuesday 10:00 is in the B2B slot")
        self.assertEqual(trace.send_slot_source, "step")

    def test_not_enough_history_and_no_slot_sends_in_the_window(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.bruno)
        trace = self.trace(self.bruno, self.offer)
        self.assertEqual(trace.state, "queued")
        self.assertFalse(trace.send_slot_source)

    def test_history_without_engagement_is_no_signal(self):
        self.offer.send_slot = "b2b"
        for day in range(6):
            self.history(self.anna, datetime(2026, 2, 16 + day, 17, 0))
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        self.assertEqual(self.trace(self.anna, self.offer).send_slot_source, "step")

    def test_funnel_audience_best_hour(self):
        """Bruno has no history: the funnel's audience answers (each hour of
        the week needs the minimum sample), before the company's."""
        self.offer.send_best_hour_min_sample = 3
        past = self.extra_partners(6)
        # Thursday 15:xx in Paris: 2 of 3 clicked; Tuesday 10:xx: 1 of 3
        for partner, clicked in zip(past[:3], (True, True, False), strict=True):
            self.history(
                partner,
                datetime(2026, 3, 5, 14, 30),
                clicked=clicked,
                funnel=self.funnel,
            )
        for partner, clicked in zip(past[3:], (True, False, False), strict=True):
            self.history(
                partner,
                datetime(2026, 3, 3, 9, 30),
                clicked=clicked,
                funnel=self.funnel,
            )
        # the company's history elsewhere points to Saturday: not used
        for partner in past[:3]:
            self.history(partner, datetime(2026, 3, 7, 10, 0), clicked=True)
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.bruno)
        trace = self.trace(self.bruno, self.offer)
        self.assertEqual(trace.send_slot_source, "funnel")
        # Thursday 12 March 15:00 in Paris
        self.assertEqual(trace.due_at, datetime(2026, 3, 12, 14, 0))

    def test_segment_best_hour(self):
        """Bruno has no history and was enrolled from a segment: the segment's
        messages in other funnels answer, before this funnel's audience."""
        self.offer.send_best_hour_min_sample = 3
        segment = self.env["sms.microfunnel.segment"].create(
            {
                "name": "Reconversion",
                "domain": str([("id", "=", self.bruno.id)]),
            }
        )
        self.funnel.segment_id = segment
        past = self.extra_partners(6)
        # the segment, in another funnel: Thursday 15:xx in Paris, 3 of 3
        for partner in past[:3]:
            trace = self.history(partner, datetime(2026, 3, 5, 14, 30), clicked=True)
            trace.enrollment_id.segment_id = segment
        # this funnel's audience: Saturday 11:xx, 3 of 3 (not used)
        for partner in past[3:]:
            self.history(
                partner, datetime(2026, 3, 7, 10, 0), clicked=True, funnel=self.funnel
            )
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.bruno)
        trace = self.trace(self.bruno, self.offer)
        self.assertEqual(trace.enrollment_id.segment_id, segment)
        self.assertEqual(trace.send_slot_source, "segment")
        # Thursday 12 March 15:00 in Paris
        self.assertEqual(trace.due_at, datetime(2026, 3, 12, 14, 0))
        report = self.env["sms.microfunnel.send.time.report"]._read_group(
            [("segment_id", "=", segment.id)], ["weekday", "hour"], ["sent_count:sum"]
        )
        self.assertEqual(report, [("3", "15", 3)])

    def test_company_best_hour(self):
        self.offer.send_best_hour_min_sample = 3
        past = self.extra_partners(3)
        for partner in past:
            # Saturday 11:xx in Paris, in another funnel of the company
            self.history(partner, datetime(2026, 3, 7, 10, 0), clicked=True)
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.bruno)
        trace = self.trace(self.bruno, self.offer)
        self.assertEqual(trace.send_slot_source, "company")
        self.assertEqual(trace.due_at, datetime(2026, 3, 14, 10, 0))

    def test_other_company_history_is_not_used(self):
        self.offer.send_best_hour_min_sample = 3
        other = self.env["res.company"].create({"name": "Other Co"})
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Theirs", "model_name": "res.partner", "company_id": other.id}
        )
        self.env["sms.microfunnel.step"].create(
            {"campaign_id": funnel.id, "name": "Theirs", "body": "x"}
        )
        for partner in self.extra_partners(3):
            self.history(partner, datetime(2026, 3, 7, 10), clicked=True, funnel=funnel)
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.bruno)
        trace = self.trace(self.bruno, self.offer)
        self.assertEqual(trace.state, "queued")
        self.assertFalse(trace.send_slot_source)


@tagged("post_install", "-at_install")
class TestSendTimeReport(SendTimeCase):
    def cells(self, domain=()):
        rows = (
            self.env["sms.microfunnel.send.time.report"]
            .sudo()
            ._read_group(
                list(domain),
                ["weekday", "hour"],
                [
                    "sent_count:sum",
                    "click_rate:avg",
                    "reply_rate:avg",
                    "conversion_count:sum",
                    "conversion_rate:avg",
                ],
            )
        )
        return {(w, h): tuple(values) for w, h, *values in rows}

    def test_rates_by_local_weekday_and_hour(self):
        past = self.extra_partners(4)
        # Tuesday 10:xx in Paris: 1 click of 2; Wednesday 18:xx: 1 reply of 1
        self.history(past[0], datetime(2026, 3, 3, 9, 10), clicked=True)
        self.history(past[1], datetime(2026, 3, 3, 9, 40))
        self.history(past[2], datetime(2026, 3, 4, 17, 10), replied=True)
        failed = self.history(past[3], datetime(2026, 3, 4, 17, 20))
        failed.state = "failed"
        cells = self.cells([("campaign_id", "=", self.history_funnel.id)])
        self.assertEqual(cells[("1", "10")][:3], (2, 50.0, 0.0))
        # the failed message is not in the denominator
        self.assertEqual(cells[("2", "18")][:3], (1, 0.0, 100.0))

    def test_recipient_local_hour_and_funnel_filter(self):
        nora = self.history(self.newyork, datetime(2026, 3, 10, 14, 0))
        nora.send_tz = "America/New_York"
        self.history(self.anna, datetime(2026, 3, 10, 14, 0), clicked=True)
        other = self.env["sms.microfunnel.campaign"].create(
            {"name": "Other", "model_name": "res.partner"}
        )
        self.env["sms.microfunnel.step"].create(
            {"campaign_id": other.id, "name": "Other", "body": "x"}
        )
        self.history(self.bruno, datetime(2026, 3, 10, 14, 0), funnel=other)
        cells = self.cells([("campaign_id", "=", self.history_funnel.id)])
        self.assertEqual(set(cells), {("1", "10"), ("1", "15")})
        self.assertEqual(cells[("1", "10")][1], 0.0)
        self.assertEqual(cells[("1", "15")][1], 100.0)

    def test_conversion_goes_to_the_last_message_before_it(self):
        enrollment = (self.history(self.anna, datetime(2026, 3, 3, 9, 0))).enrollment_id
        self.history(
            self.anna,
            datetime(2026, 3, 4, 17, 0),
            step=self.history_step_2,
            enrollment=enrollment,
        )
        enrollment.converted_at = datetime(2026, 3, 4, 18, 0)
        cells = self.cells([("campaign_id", "=", self.history_funnel.id)])
        self.assertEqual(cells[("1", "10")][3:], (0, 0.0))
        self.assertEqual(cells[("2", "18")][3:], (1, 100.0))
        # converted before the second message: the first one gets it
        enrollment.converted_at = datetime(2026, 3, 4, 12, 0)
        cells = self.cells([("campaign_id", "=", self.history_funnel.id)])
        self.assertEqual(cells[("1", "10")][3:], (1, 100.0))
        self.assertEqual(cells[("2", "18")][3:], (0, 0.0))

    def test_dispatched_messages_reach_the_analysis(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna | self.bruno)
        anna = self.trace(self.anna, self.offer)
        anna.mailing_trace_id.set_clicked()
        cells = self.cells([("campaign_id", "=", self.funnel.id)])
        self.assertEqual(cells[("1", "10")][:2], (2, 50.0))
        action = self.env.ref("sms_microfunnel.action_sms_send_time_report")
        self.assertEqual(action.res_model, "sms.microfunnel.send.time.report")
