# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Regulated sectors: transactional and informational funnels only."""

from odoo.exceptions import ValidationError
from odoo.tests import tagged

from odoo.addons.sms_microfunnel.tests.common import FunnelCase

SECTORS = ("health", "legal", "finance")


@tagged("post_install", "-at_install")
class TestRegulatedSector(FunnelCase):
    def test_marketing_step_is_refused_with_an_explanation(self):
        self.company.sms_funnel_regulated_sector = "health"
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Clinic", "model_name": "res.partner"}
        )
        with self.assertRaises(ValidationError) as caught:
            self.env["sms.microfunnel.step"].create(
                {"campaign_id": funnel.id, "name": "Spring promo", "body": "-20 %"}
            )
        message = str(caught.exception)
        self.assertIn("regulated sector (Health)", message)
        self.assertIn("Spring promo", message)
        self.assertIn("appointment reminders", message)
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Appointment reminder",
                "message_class": "transactional",
                "body": "Reminder: your appointment is tomorrow.",
            }
        )
        with self.assertRaises(ValidationError):
            step.message_class = "marketing"
        funnel.action_start()
        self.assertEqual(funnel.state, "running")

    def test_sector_cannot_be_set_while_funnels_send_marketing(self):
        self.funnel.action_start()
        with self.assertRaises(ValidationError) as caught:
            self.company.sms_funnel_regulated_sector = "finance"
        self.assertIn("Diagnostic offer", str(caught.exception))
        self.funnel.action_stop()
        self.company.sms_funnel_regulated_sector = "finance"
        self.assertEqual(self.company.sms_funnel_regulated_sector, "finance")

    def test_draft_funnel_with_marketing_steps_cannot_start(self):
        self.company.sms_funnel_regulated_sector = "legal"
        with self.assertRaises(ValidationError) as caught:
            self.funnel.action_start()
        self.assertIn("regulated sector (Legal)", str(caught.exception))
        self.assertEqual(self.funnel.state, "draft")
        (self.offer | self.reminder).message_class = "transactional"
        self.funnel.action_start()
        self.assertEqual(self.funnel.state, "running")

    def test_moving_a_funnel_to_a_regulated_company_is_refused(self):
        other = self.env["res.company"].create(
            {"name": "Law Firm", "sms_funnel_regulated_sector": "legal"}
        )
        with self.assertRaises(ValidationError):
            self.funnel.company_id = other

    def test_settings_set_the_company_sector(self):
        settings = self.env["res.config.settings"].create(
            {"sms_funnel_regulated_sector": "health"}
        )
        settings.execute()
        self.assertEqual(self.company.sms_funnel_regulated_sector, "health")

    def test_shipped_templates_respect_the_sectors(self):
        Template = self.env["sms.template"]
        templates = Template.search([("sms_funnel_regulated_sector", "!=", False)])
        for sector in SECTORS:
            self.assertGreaterEqual(
                len(
                    templates.filtered(
                        lambda t, s=sector: t.sms_funnel_regulated_sector == s
                    )
                ),
                2,
                sector,
            )
        self.assertEqual(
            set(templates.mapped("sms_funnel_message_class")), {"transactional"}
        )
        self.company.sms_funnel_regulated_sector = "health"
        for template in templates:
            composed = template._sms_funnel_compose(
                self.anna, company=self.company, number=self.anna.phone
            )
            self.assertFalse(composed.get("blocked"), template.name)
            self.assertTrue(composed["text"].startswith("ACME: Anna, "), template.name)
            self.assertNotIn("STOP", composed["text"], "no marketing opt-out mention")
        with self.assertRaises(ValidationError):
            templates[0].sms_funnel_message_class = "marketing"

    def test_regulated_funnel_sends_its_transactional_steps(self):
        self.company.sms_funnel_regulated_sector = "health"
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Clinic", "model_name": "res.partner"}
        )
        template = self.env.ref("sms_microfunnel.sms_template_health_appointment")
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Appointment reminder",
                "message_class": "transactional",
                "body": template.body,
            }
        )
        funnel.action_start()
        funnel._enroll(self.no_consent)
        self.dispatch()
        trace = self.trace(self.no_consent, step)
        self.assertEqual(trace.state, "queued", "transactional: no consent needed")
        self.assertIn("Chloé, reminder", trace.body)


@tagged("post_install", "-at_install")
class TestEnergyRenovationSector(FunnelCase):
    """Rule FR-ENERGY-RENOVATION (Loi n° 2025-594): no canvassing."""

    def test_energy_renovation_company_refuses_a_marketing_step(self):
        self.company.sms_funnel_regulated_sector = "energy_renovation"
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Heat pumps", "model_name": "res.partner"}
        )
        with self.assertRaises(ValidationError) as caught:
            self.env["sms.microfunnel.step"].create(
                {"campaign_id": funnel.id, "name": "Insulation offer", "body": "-30 %"}
            )
        message = str(caught.exception)
        self.assertIn("Energy renovation", message)
        self.assertIn("contract is in progress", message)
        self.assertIn("Insulation offer", message)
        self.assertIn("FR-ENERGY-RENOVATION", message)
        self.assertIn("Loi n° 2025-594", message)
        # messages of a contract in progress still go
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Work schedule",
                "message_class": "transactional",
                "body": "Our team comes on Monday at 9:00.",
            }
        )
        funnel.action_start()
        self.assertEqual(funnel.state, "running")

    def test_the_sector_rule_is_dated_and_sourced(self):
        rule = self.env["sms.microfunnel.rule"]._sector_rule("energy_renovation")
        self.assertEqual(rule.code, "FR-ENERGY-RENOVATION")
        self.assertEqual(str(rule.valid_from), "2025-07-01")
        self.assertIn("L223-1", rule.source_article)
        # before its date the sector is refused without the legal reference
        self.assertFalse(
            self.env["sms.microfunnel.rule"]._sector_rule(
                "energy_renovation", day=rule.valid_from.replace(day=1, month=6)
            )
        )
