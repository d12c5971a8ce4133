# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from psycopg2 import IntegrityError

from odoo.tests import Form, TransactionCase, tagged
from odoo.tools import mute_logger


@tagged("post_install", "-at_install")
class TestSmsFunnelSettings(TransactionCase):
    def test_settings_write_company_message_rules(self):
        company = self.env.company
        with Form(self.env["res.config.settings"]) as settings:
            settings.sms_funnel_sender_label = "ACME: "
            settings.sms_funnel_optout_mention = "STOP au 36111"
            settings.sms_funnel_max_segments = 2
        settings.save().execute()
        self.assertEqual(company.sms_funnel_sender_label, "ACME: ")
        self.assertEqual(company.sms_funnel_optout_mention, "STOP au 36111")
        self.assertEqual(company.sms_funnel_max_segments, 2)

    def test_settings_are_per_company(self):
        other = self.env["res.company"].create({"name": "Other SMS Co"})
        self.env.company.sms_funnel_max_segments = 5
        self.assertEqual(
            other.sms_funnel_max_segments, 3, "new companies get the default"
        )

    def test_max_segments_must_be_positive(self):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            self.env.company.sms_funnel_max_segments = 0
            self.env.flush_all()

    def test_consent_settings_version_the_wording(self):
        company = self.env.company
        version = company.sms_consent_wording_version
        with Form(self.env["res.config.settings"]) as settings:
            settings.sms_consent_wording = (
                "J'accepte de recevoir 2 SMS par mois. STOP au 36111."
            )
            settings.sms_doi_expiry_hours = 24
            settings.sms_text_help = "{company} : aide au {contact}. STOP au 36111."
        settings.save().execute()
        self.assertEqual(company.sms_doi_expiry_hours, 24)
        self.assertEqual(company.sms_consent_wording_version, version + 1)
        company.phone = "+33 1 23 45 67 89"
        text = company._sms_service_text("help")
        self.assertIn("+33 1 23 45 67 89", text)
        self.assertNotIn("{", text)
