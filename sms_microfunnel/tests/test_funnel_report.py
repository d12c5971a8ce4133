# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import io
import shutil
from datetime import datetime

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.pdf import PdfFileReader

from odoo.addons.sms_microfunnel.models.sms_microfunnel_campaign import RATE_MEASURES
from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

MEASURES = [
    "recipient_count:sum",
    "sent_count:sum",
    "delivered_count:sum",
    "failed_count:sum",
    "clicked_count:sum",
    "replied_count:sum",
    "optout_count:sum",
    "conversion_count:sum",
    "segments:sum",
    "deliverability_rate:avg",
    "click_rate:avg",
    "unsubscribe_rate:avg",
    "conversion_rate:avg",
]


@tagged("post_install", "-at_install")
class TestFunnelReport(FunnelCase):
    """Five consented contacts go through a one-step funnel whose goal is a
    click: Anna clicks (converted), Bruno answers STOP, Cleo is delivered,
    Dan fails and Eve bounces."""

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
        cls.eve = Partner.create(
            {"name": "Eve", "phone": "+33677777777", "country_id": fr}
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
                for p in (cls.cleo, cls.dan, cls.eve)
            ]
        )
        cls.metrics_funnel = cls.env["sms.microfunnel.campaign"].create(
            {
                "name": "Spring offer",
                "model_name": "res.partner",
                "goal": "link_clicked",
                "attribution_hours": 48,
            }
        )
        cls.spring = cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.metrics_funnel.id,
                "name": "Spring",
                "body": "Bonjour, offre de printemps.",
            }
        )
        cls.user = new_test_user(
            cls.env,
            login="funnel_report_user",
            groups="sms_microfunnel.group_sms_funnel_user",
        )
        cls.manager = new_test_user(
            cls.env,
            login="funnel_report_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )

    def _tracker(self, partner):
        trace = self.trace(partner, self.spring)
        return (
            self.env["sms.tracker"]
            .sudo()
            .search([("mailing_trace_id", "=", trace.mailing_trace_id.id)])
        )

    def _build_dataset(self):
        people = self.anna | self.bruno | self.cleo | self.dan | self.eve
        with freeze_time(TUESDAY_10H_PARIS):
            self.metrics_funnel.action_start()
            self.metrics_funnel._enroll(people)
            self.dispatch()
            for partner in (self.anna, self.bruno, self.cleo):
                self._tracker(partner)._action_update_from_sms_state("sent")
            self._tracker(self.dan)._action_update_from_sms_state(
                "error", failure_type="sms_server"
            )
            self._tracker(self.eve)._action_update_from_sms_state(
                "error", failure_type="sms_number_format"
            )
            self.trace(self.anna, self.spring).mailing_trace_id.set_clicked()
            self.env["sms.microfunnel.inbound"]._process_inbound(
                self.bruno.phone, "36111", "STOP", "SM-report-1", provider="test"
            )
        self.env.invalidate_all()

    def _figures(self, env=None, domain=None):
        Report = (env or self.env)["sms.microfunnel.report"]
        domain = domain or [("campaign_id", "=", self.metrics_funnel.id)]
        return dict(
            zip(MEASURES, Report._read_group(domain, [], MEASURES)[0], strict=True)
        )

    def test_funnel_figures(self):
        self._build_dataset()
        states = {
            p.name: self.trace(p, self.spring).state
            for p in (self.anna, self.bruno, self.cleo, self.dan, self.eve)
        }
        self.assertEqual(
            states,
            {
                "Anna": "delivered",
                "Bruno": "delivered",
                "Cleo": "delivered",
                "Dan": "failed",
                "Eve": "bounced",
            },
        )
        figures = self._figures()
        self.assertEqual(figures["recipient_count:sum"], 5)
        self.assertEqual(figures["sent_count:sum"], 5)
        self.assertEqual(figures["delivered_count:sum"], 3)
        self.assertEqual(figures["failed_count:sum"], 2)
        self.assertEqual(figures["clicked_count:sum"], 1)
        self.assertEqual(figures["replied_count:sum"], 1)
        self.assertEqual(figures["optout_count:sum"], 1)
        self.assertEqual(figures["conversion_count:sum"], 1)
        self.assertEqual(figures["segments:sum"], 5)
        # 3 delivered / (3 delivered + 1 failed + 1 bounced)
        self.assertAlmostEqual(figures["deliverability_rate:avg"], 60.0)
        # 1 clicking recipient / 3 delivered
        self.assertAlmostEqual(figures["click_rate:avg"], 100 / 3)
        # 1 STOP / 5 enrollments that received an SMS
        self.assertAlmostEqual(figures["unsubscribe_rate:avg"], 20.0)
        # 1 conversion / 5 enrollments that received an SMS
        self.assertAlmostEqual(figures["conversion_rate:avg"], 20.0)

    def test_conversion_outside_window_is_not_counted(self):
        self._build_dataset()
        anna = self.trace(self.anna, self.spring).enrollment_id
        anna.converted_at = datetime(2026, 3, 20, 9, 0)
        self.env.invalidate_all()
        figures = self._figures()
        self.assertEqual(figures["conversion_count:sum"], 0)
        self.assertAlmostEqual(figures["conversion_rate:avg"], 0.0)

    def test_multi_company_and_cost(self):
        self._build_dataset()
        other = self.env["res.company"].create({"name": "Other SMS Co"})
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Other funnel", "company_id": other.id}
        )
        step = self.env["sms.microfunnel.step"].create(
            {"campaign_id": funnel.id, "name": "Hi", "body": "Hello"}
        )
        enrollment = self.env["sms.microfunnel.enrollment"].create(
            {
                "campaign_id": funnel.id,
                "res_model": "res.partner",
                "res_id": self.anna.id,
            }
        )
        self.env["sms.microfunnel.trace"].create(
            {
                "enrollment_id": enrollment.id,
                "step_id": step.id,
                "campaign_id": funnel.id,
                "due_at": fields.Datetime.now(),
                "queued_at": fields.Datetime.now(),
                "state": "delivered",
                "segments": 1,
            }
        )
        self.env.invalidate_all()
        self.assertEqual(
            self.env["sms.microfunnel.report"].search_count(
                [("company_id", "=", other.id)]
            ),
            1,
        )
        Report = self.env["sms.microfunnel.report"].with_user(self.user)
        self.assertFalse(Report.search([("campaign_id", "=", funnel.id)]))
        self.assertEqual(set(Report.search([]).company_id), {self.company})
        self.assertEqual(
            self._figures(env=self.user.with_context(active_test=True).env)[
                "recipient_count:sum"
            ],
            5,
        )
        # costs are for managers only
        self.assertNotIn("cost", Report.fields_get())
        with self.assertRaises(AccessError):
            Report.search([], limit=1).read(["cost"])
        manager_report = self.env["sms.microfunnel.report"].with_user(self.manager)
        self.assertIn("cost", manager_report.fields_get())
        manager_report.search([], limit=1).read(["cost"])
        self.assertNotIn(
            "report_cost_per_acquisition",
            self.metrics_funnel.with_user(self.user).fields_get(),
        )
        rows = self.env["sms.microfunnel.report"].search(
            [("campaign_id", "=", self.metrics_funnel.id)]
        )
        total = sum(rows.mapped("cost"))
        self.assertGreater(total, 0, "the French price list prices the SMS")
        # the form shows it in the company currency
        company = self.metrics_funnel.company_id
        prices = self.env["sms.microfunnel.price"]._get_price(
            company=company, country=company.country_id
        )
        total = prices.currency_id._convert(
            total, company.currency_id, company, fields.Date.today()
        )
        self.assertAlmostEqual(self.metrics_funnel.report_cost, total)
        self.assertAlmostEqual(
            self.metrics_funnel.report_cost_per_acquisition, total / 1
        )

    def test_dashboard_rates_equal_the_report(self):
        """The funnels' key rates (kanban, form, alerts, PDF) are counted
        apart from the report view, for speed: they equal the view's figures
        grouped by funnel, per funnel, over every kind of trace."""
        self._build_dataset()
        Trace = self.env["sms.microfunnel.trace"]
        second = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": self.metrics_funnel.id,
                "name": "Reminder",
                "body": "Rappel.",
                "sequence": 20,
            }
        )
        now = fields.Datetime.now()
        # a second attempt of Anna (not a recipient again), one of Cleo still
        # queued, one of Dan not queued yet (outside the report)
        for partner, state, queued in (
            (self.anna, "delivered", True),
            (self.cleo, "queued", True),
            (self.dan, "scheduled", False),
        ):
            first = self.trace(partner, self.spring)
            Trace.create(
                {
                    "enrollment_id": first.enrollment_id.id,
                    "step_id": second.id,
                    "due_at": now,
                    "queued_at": now if queued else False,
                    "state": state,
                    "segments": 1,
                    "cost": 0.07,
                    "clicked_at": now if state == "delivered" else False,
                }
            )
        # Cleo converts too late (outside the 48 h window), Eve in time
        self.trace(self.cleo, self.spring).enrollment_id.write(
            {"converted_at": datetime(2026, 3, 30, 9, 0)}
        )
        self.trace(self.eve, self.spring).enrollment_id.write(
            {"converted_at": datetime(2026, 3, 10, 12, 0)}
        )
        # a funnel without any queued message
        empty = self.env["sms.microfunnel.campaign"].create({"name": "Empty"})
        funnels = self.metrics_funnel | empty
        self.env.flush_all()
        measures = RATE_MEASURES
        groups = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "in", funnels.ids)], ["campaign_id"], measures
        )
        expected = {
            funnel.id: dict(zip(measures, values, strict=True))
            for funnel, *values in groups
        }
        rates = funnels._rates()
        self.assertEqual(set(rates), {self.metrics_funnel.id})
        self.assertEqual(set(expected), set(rates))
        got = rates[self.metrics_funnel.id]
        for measure in measures:
            want = expected[self.metrics_funnel.id][measure]
            self.assertAlmostEqual(got[measure], want, msg=measure)
        # the figures themselves: 5 recipients, 4 delivered of 6 final, one
        # click of Anna per delivered message, Anna and Eve converted
        self.assertEqual(got["recipient_count:sum"], 5)
        self.assertEqual(got["delivered_count:sum"], 4)
        self.assertEqual(got["conversion_count:sum"], 2)
        self.assertAlmostEqual(got["deliverability_rate:avg"], 400 / 6)
        self.assertAlmostEqual(got["click_rate:avg"], 50.0)
        self.assertAlmostEqual(got["conversion_rate:avg"], 40.0)
        self.assertEqual(self.metrics_funnel.report_conversion_count, 2)
        self.assertEqual(empty.report_recipient_count, 0)
        self.assertEqual(empty.report_deliverability, 0.0)

    def test_cohorts(self):
        self._build_dataset()
        # engagement is measured over the last 90 days (real time)
        self.trace(self.cleo, self.spring).clicked_at = fields.Datetime.now()
        self.env.invalidate_all()
        Cohort = self.env["sms.microfunnel.cohort.report"]
        rows = Cohort.search([("company_id", "=", self.company.id)])
        by_month = {}
        for row in rows:
            counts = by_month.setdefault(row.cohort_month, {})
            counts[row.status] = counts.get(row.status, 0) + row.contact_count
        # January: Anna, Bruno (STOP), David (opted out in February)
        # February: Cleo (engaged), Dan, Eve
        self.assertEqual(
            by_month[datetime(2026, 1, 1).date()], {"dormant": 1, "opted_out": 2}
        )
        self.assertEqual(
            by_month[datetime(2026, 2, 1).date()], {"engaged": 1, "dormant": 2}
        )

    @property
    def warning_type(self):
        return self.env.ref("mail.mail_activity_data_warning")

    def _warnings(self, funnel):
        return self.env["mail.activity"].search(
            [
                ("res_model", "=", funnel._name),
                ("res_id", "=", funnel.id),
                ("activity_type_id", "=", self.warning_type.id),
            ]
        )

    def test_alert_fires_over_the_minimum_volume(self):
        self._build_dataset()
        funnel = self.metrics_funnel
        funnel.user_id = self.manager
        self.assertEqual(funnel.report_final_count, 5)
        self.assertAlmostEqual(funnel.report_deliverability, 60.0)
        self.assertAlmostEqual(funnel.report_unsubscribe_rate, 20.0)
        # under the minimum volume (default 50): no alert
        with freeze_time("2026-03-11 09:00:00"):
            self.env["sms.microfunnel.campaign"]._cron_check_alerts()
        self.assertFalse(funnel.alert_active)
        self.assertFalse(self._warnings(funnel))
        funnel.alert_min_volume = 5
        with freeze_time("2026-03-11 10:00:00"):
            raised = self.env["sms.microfunnel.campaign"]._cron_check_alerts()
        self.assertIn(funnel, raised)
        self.assertTrue(funnel.alert_active)
        self.assertIn("deliverability 60.0 %", funnel.alert_message)
        self.assertIn("unsubscribe rate 20.0 %", funnel.alert_message)
        warning = self._warnings(funnel)
        self.assertEqual(len(warning), 1)
        self.assertEqual(warning.user_id, self.manager)
        self.assertEqual(funnel.state, "running", "auto-pause is off by default")
        # the next run does not pile up activities
        with freeze_time("2026-03-11 11:00:00"):
            self.env["sms.microfunnel.campaign"]._cron_check_alerts()
        self.assertEqual(len(self._warnings(funnel)), 1)
        # thresholds loosened: the banner goes away
        funnel.write({"alert_deliverability_min": 50, "alert_unsubscribe_max": 25})
        with freeze_time("2026-03-11 12:00:00"):
            self.env["sms.microfunnel.campaign"]._cron_check_alerts()
        self.assertFalse(funnel.alert_active)

    def test_alert_auto_pause(self):
        self._build_dataset()
        funnel = self.metrics_funnel
        funnel.write(
            {
                "alert_min_volume": 5,
                "alert_auto_pause": True,
                "alert_unsubscribe_max": 50,
            }
        )
        with freeze_time("2026-03-11 09:00:00"):
            self.env["sms.microfunnel.campaign"]._cron_check_alerts()
        self.assertTrue(funnel.alert_active)
        self.assertNotIn("unsubscribe", funnel.alert_message)
        self.assertEqual(funnel.state, "paused")

    def test_invalid_threshold_is_refused(self):
        Funnel = self.env["sms.microfunnel.campaign"]
        with (
            self.assertRaisesRegex(ValidationError, "between 0 and 100"),
            self.env.cr.savepoint(),
        ):
            Funnel.create({"name": "Bad", "alert_unsubscribe_max": 150})
        with (
            self.assertRaisesRegex(ValidationError, "cannot be negative"),
            self.env.cr.savepoint(),
        ):
            Funnel.create({"name": "Bad", "alert_min_volume": -1})
        self.assertFalse(Funnel.search([("name", "=", "Bad")]))
        self.assertEqual(self.metrics_funnel.alert_unsubscribe_max, 2.0)

    def test_printed_report(self):
        self._build_dataset()
        html, _kind = self.env["ir.actions.report"]._render_qweb_html(
            "sms_microfunnel.action_report_sms_funnel", self.metrics_funnel.ids
        )
        text = html.decode()
        self.assertIn("Spring offer", text)
        self.assertIn("60.0", text)
        self.assertIn("33.3", text)
        self.assertIn("20.0", text)
        self.assertIn("Spring", text)


@tagged("post_install", "-at_install")
class TestFunnelReportUi(HttpCase):
    """The dashboard, the pivot and the real PDF, through the web client."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        partner = cls.env["res.partner"].create(
            {"name": "Tour reader", "phone": "+33698765432"}
        )
        cls.funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Tour metrics funnel", "model_name": "res.partner"}
        )
        cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "Info",
                "message_class": "transactional",
                "body": "Votre rendez-vous est confirmé.",
            }
        )
        cls.funnel.action_start()
        trace = cls.funnel._enroll(partner).trace_ids
        trace._dispatch(trace, trace.due_at)
        cls.env["sms.tracker"].sudo().search(
            [("mailing_trace_id", "=", trace.mailing_trace_id.id)]
        )._action_update_from_sms_state("sent")

    def test_dashboard_and_pivot_tour(self):
        self.start_tour("/odoo", "sms_microfunnel_reporting_tour", login="admin")

    def test_pdf_report_text(self):
        if not shutil.which("wkhtmltopdf"):
            self.skipTest("wkhtmltopdf is not installed")
        pdf, kind = (
            self.env["ir.actions.report"]
            .with_context(force_report_rendering=True)
            ._render_qweb_pdf(
                "sms_microfunnel.action_report_sms_funnel", self.funnel.ids
            )
        )
        self.assertEqual(kind, "pdf")
        self.assertTrue(pdf.startswith(b"%PDF"))
        reader = PdfFileReader(io.BytesIO(pdf))
        self.assertEqual(len(reader.pages), 1)
        # wkhtmltopdf draws the text as glyphs without a text layer here, so
        # the words are checked on the HTML the PDF is printed from
        html, _kind = self.env["ir.actions.report"]._render_qweb_html(
            "sms_microfunnel.action_report_sms_funnel", self.funnel.ids
        )
        self.assertIn("Tour metrics funnel", html.decode())
        self.assertIn("100.0", html.decode(), "one message, delivered: 100 %")
