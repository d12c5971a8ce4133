# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.tests import new_test_user, tagged

from odoo.addons.sms_microfunnel.tests.common import FunnelCase

T0 = datetime(2026, 3, 10, 9, 0)  # Tuesday 10:00 in Paris


@tagged("post_install", "-at_install")
class TestFunnelStepReport(FunnelCase):
    """The 3-step funnel of ``FunnelCase`` (Offer, then Reminder when the
    offer was not clicked after 24 h, or Thanks 1 h after a click) sent to
    Anna, Bruno, Cleo and Dan:

    - Offer: 4 queued, 3 delivered (Dan's fails), Anna clicks;
    - Thanks (clicked): Anna only, delivered;
    - Reminder (not clicked): Bruno, Cleo, Dan, all delivered, Cleo clicks;
    - Anna converts 2 h after the offer, Cleo 1 h after the reminder.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        fr = cls.env.ref("base.fr").id
        Partner = cls.env["res.partner"]
        cls.cleo = Partner.create(
            {"name": "Cleo", "phone": "+33655555555", "country_id": fr}
        )
        cls.dan = Partner.create(
            {"name": "Dan", "phone": "+33666666666", "country_id": fr}
        )
        cls.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": p.phone,
                    "partner_id": p.id,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "event_date": datetime(2026, 2, 10, 9, 0),
                }
                for p in (cls.cleo, cls.dan)
            ]
        )
        cls.people = cls.anna | cls.bruno | cls.cleo | cls.dan

    def _deliver(self, partner, step, state="sent", failure_type=False):
        trace = self.trace(partner, step)
        self.env["sms.tracker"].sudo().search(
            [("mailing_trace_id", "=", trace.mailing_trace_id.id)]
        )._action_update_from_sms_state(state, failure_type=failure_type)

    def _click(self, partner, step):
        self.trace(partner, step).mailing_trace_id.set_clicked()

    def _build_dataset(self):
        with freeze_time(T0):
            self.start_and_dispatch(self.people)
            for partner in (self.anna, self.bruno, self.cleo):
                self._deliver(partner, self.offer)
            self._deliver(self.dan, self.offer, "error", "sms_server")
            self._click(self.anna, self.offer)
        with freeze_time(T0 + timedelta(hours=1)):
            self.dispatch()
            self._deliver(self.anna, self.thanks)
        with freeze_time(T0 + timedelta(hours=24)):
            self.dispatch()
            for partner in (self.bruno, self.cleo, self.dan):
                self._deliver(partner, self.reminder)
            self._click(self.cleo, self.reminder)
        enrollments = self.funnel.enrollment_ids
        by_partner = {e.partner_id: e for e in enrollments}
        by_partner[self.anna].converted_at = T0 + timedelta(hours=2)
        by_partner[self.cleo].converted_at = T0 + timedelta(hours=25)
        self.env.invalidate_all()

    def test_dataset(self):
        self._build_dataset()
        states = {
            (step.name, partner.name): self.trace(partner, step).state
            for step in (self.offer, self.reminder, self.thanks)
            for partner in self.people
        }
        self.assertEqual(
            states,
            {
                ("Offer", "Anna"): "delivered",
                ("Offer", "Bruno"): "delivered",
                ("Offer", "Cleo"): "delivered",
                ("Offer", "Dan"): "failed",
                ("Reminder", "Anna"): "canceled",
                ("Reminder", "Bruno"): "delivered",
                ("Reminder", "Cleo"): "delivered",
                ("Reminder", "Dan"): "delivered",
                ("Thanks", "Anna"): "delivered",
                ("Thanks", "Bruno"): "canceled",
                ("Thanks", "Cleo"): "canceled",
                ("Thanks", "Dan"): "canceled",
            },
        )

    def test_funnel_by_step(self):
        self._build_dataset()
        lines = self.funnel._report_step_funnel()
        # the order of the step tree: the offer, then what follows it
        self.assertEqual(
            [(line["name"], line["level"]) for line in lines],
            [("Offer", 0), ("Reminder", 1), ("Thanks", 1)],
        )
        offer, reminder, thanks = lines
        figures = {
            line["name"]: (
                line["recipients"],
                line["delivered"],
                line["clicked"],
                line["converted"],
            )
            for line in lines
        }
        self.assertEqual(
            figures,
            {
                "Offer": (4, 3, 1, 2),
                "Reminder": (3, 3, 1, 1),
                "Thanks": (1, 1, 0, 1),
            },
        )
        # shares of the step's recipients
        self.assertEqual(offer["delivered_share"], 75.0)
        self.assertEqual(offer["clicked_share"], 25.0)
        self.assertEqual(offer["converted_share"], 50.0)
        self.assertEqual(reminder["delivered_share"], 100.0)
        self.assertEqual(reminder["clicked_share"], 33.3)
        self.assertEqual(reminder["converted_share"], 33.3)
        self.assertEqual(thanks["converted_share"], 100.0)
        # bar widths: recipients against the widest step
        self.assertEqual([line["width"] for line in lines], [100.0, 75.0, 25.0])
        # drop-off from the step each one follows
        self.assertFalse(offer["reference"])
        self.assertIs(offer["drop_off"], False)
        self.assertEqual(
            (reminder["reference"], reminder["drop_off"], reminder["drop_off_share"]),
            ("Offer", 1, 25.0),
        )
        self.assertEqual(
            (thanks["reference"], thanks["drop_off"], thanks["drop_off_share"]),
            ("Offer", 3, 75.0),
        )
        # the computed field the form widget draws holds the same lines
        self.assertEqual(self.funnel.report_step_funnel, lines)

    def test_funnel_totals_and_per_step_report(self):
        self._build_dataset()
        funnel = self.funnel
        self.assertEqual(funnel.report_recipient_count, 4)
        # 7 delivered / (7 delivered + 1 failed)
        self.assertAlmostEqual(funnel.report_deliverability, 87.5)
        # 2 clicking recipients / 7 delivered messages
        self.assertEqual(funnel.report_click_rate, round(200 / 7, 1))
        self.assertAlmostEqual(funnel.report_unsubscribe_rate, 0.0)
        # 2 conversions / 4 recipients
        self.assertAlmostEqual(funnel.report_conversion_rate, 50.0)
        self.assertEqual(funnel.report_revenue, 0.0)
        # the per-step measure through the report (as the pivot reads it)
        groups = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "=", funnel.id)],
            ["step_id"],
            ["converted_after_count:sum", "conversion_count:sum"],
        )
        self.assertEqual(
            {step.name: values for step, *values in groups},
            {"Offer": [2, 2], "Reminder": [1, 0], "Thanks": [1, 0]},
        )

    def test_conversion_before_a_step_is_not_counted_for_it(self):
        self._build_dataset()
        anna = self.trace(self.anna, self.offer).enrollment_id
        # Anna converted between the offer and the thanks message
        anna.converted_at = T0 + timedelta(minutes=30)
        self.env.invalidate_all()
        lines = {line["name"]: line for line in self.funnel._report_step_funnel()}
        self.assertEqual(lines["Offer"]["converted"], 2)
        self.assertEqual(lines["Thanks"]["converted"], 0)

    def test_conversion_after_the_window_is_not_counted(self):
        self._build_dataset()
        self.funnel.attribution_hours = 24
        self.env.invalidate_all()
        lines = {line["name"]: line for line in self.funnel._report_step_funnel()}
        # Cleo converted 25 h after enrolling: outside a 24 h window
        self.assertEqual(lines["Offer"]["converted"], 1)
        self.assertEqual(lines["Reminder"]["converted"], 0)
        self.assertAlmostEqual(self.funnel.report_conversion_rate, 25.0)

    def test_empty_funnel(self):
        funnel = self.env["sms.microfunnel.campaign"].create({"name": "Empty"})
        self.assertFalse(funnel.report_step_funnel)
        step = self.env["sms.microfunnel.step"].create(
            {"campaign_id": funnel.id, "name": "Only", "body": "Bonjour"}
        )
        self.env.invalidate_all()
        [line] = funnel.report_step_funnel
        self.assertEqual(line["id"], step.id)
        self.assertEqual(
            (line["recipients"], line["converted"], line["width"]), (0, 0, 0.0)
        )

    def test_won_lead_revenue_and_roi(self):
        """A lead funnel converts when the lead is won: its expected revenue
        is the conversion's revenue, and ROI = (revenue - cost) / cost."""
        lead = self.env["crm.lead"].create(
            {
                "name": "Bruno's diagnostic",
                "type": "opportunity",
                "partner_id": self.bruno.id,
                "phone": self.bruno.phone,
                "expected_revenue": 1200.0,
            }
        )
        other = self.env["crm.lead"].create(
            {
                "name": "Lost cause",
                "type": "opportunity",
                "partner_id": self.anna.id,
                "phone": self.anna.phone,
                "expected_revenue": 5000.0,
            }
        )
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Lead follow-up", "model_name": "crm.lead", "goal": "lead_won"}
        )
        self.env["sms.microfunnel.step"].create(
            {"campaign_id": funnel.id, "name": "Call", "body": "Bonjour, rappel."}
        )
        with freeze_time(T0):
            funnel.action_start()
            funnel._enroll(lead | other)
            self.dispatch()
        with freeze_time(T0 + timedelta(hours=3)):
            lead.action_set_won()
        self.env.invalidate_all()
        self.assertTrue(funnel.enrollment_ids.filtered("converted_at"))
        self.assertEqual(funnel.report_revenue, 1200.0)
        self.assertAlmostEqual(funnel.report_conversion_rate, 50.0)
        manager = new_test_user(
            self.env,
            login="step_report_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )
        funnel = funnel.with_user(manager)
        cost = funnel.report_cost
        self.assertGreater(cost, 0, "the French price list prices the SMS")
        self.assertAlmostEqual(funnel.report_cost_per_acquisition, cost)
        self.assertEqual(funnel.report_roi, round((1200.0 - cost) / cost * 100, 1))
        self.assertNotIn(
            "report_roi",
            funnel.with_user(
                new_test_user(
                    self.env,
                    login="step_report_user",
                    groups="sms_microfunnel.group_sms_funnel_user",
                )
            ).fields_get(),
        )
