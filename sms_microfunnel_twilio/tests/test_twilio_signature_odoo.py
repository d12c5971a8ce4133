# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo.tests import TransactionCase, tagged

from odoo.addons.sms_microfunnel_twilio.tools import twilio_signature
from odoo.addons.sms_twilio.tools.sms_twilio import (
    generate_twilio_sms_callback_signature,
    get_twilio_status_callback_url,
)


@tagged("post_install", "-at_install")
class TestTwilioSignatureInOdoo(TransactionCase):
    """Our validator accepts exactly what core ``sms_twilio`` signs."""

    def setUp(self):
        super().setUp()
        self.company = self.env.company
        self.company.sudo().write(
            {
                "sms_provider": "twilio",
                "sms_twilio_account_sid": "AC" + "0" * 32,
                "sms_twilio_auth_token": "0123456789abcdef0123456789abcdef",
            }
        )
        self.params = {
            "MessageSid": "SM" + "1" * 32,
            "MessageStatus": "delivered",
            "AccountSid": "AC" + "0" * 32,
            "To": "+33612345678",
        }
        self.uuid = "a" * 32

    def test_core_callback_signature_validates(self):
        url = get_twilio_status_callback_url(self.company, self.uuid)
        signature = generate_twilio_sms_callback_signature(
            self.company, self.uuid, self.params
        )
        token = self.company.sms_twilio_auth_token
        self.assertEqual(
            twilio_signature.compute_signature(token, url, self.params), signature
        )
        self.assertTrue(
            twilio_signature.is_valid_signature(token, url, self.params, signature)
        )
        tampered = dict(self.params, MessageStatus="failed")
        self.assertFalse(
            twilio_signature.is_valid_signature(token, url, tampered, signature)
        )
        self.assertFalse(
            twilio_signature.is_valid_signature(
                "wrong-token", url, self.params, signature
            )
        )
