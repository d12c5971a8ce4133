# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from unittest.mock import patch

from odoo.tests import tagged

from odoo.addons.sms_microfunnel_twilio.controllers.main import INBOUND_PATH

from .common import TwilioWebhookCase

TOKEN = "0123456789abcdef0123456789abcdef"
OUR_NUMBER = "+33700000001"
CONTACT = "+33612345678"
LOGGER = "odoo.addons.sms_microfunnel_twilio.controllers.main"


@tagged("post_install", "-at_install")
class TestTwilioInboundWebhook(TwilioWebhookCase):
    twilio_account = "AC" + "0" * 32
    twilio_token = TOKEN
    twilio_number = OUR_NUMBER

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner = cls.env["res.partner"].create(
            {"name": "Léa Dubois", "phone": CONTACT, "lang": "en_US"}
        )

    def process(self):
        """The inbound job, its commits neutralised (test transaction)."""
        IrCron = type(self.env["ir.cron"])
        with patch.object(IrCron, "_commit_progress", lambda *a, **kw: 1.0):
            self.Inbound.sudo()._cron_process_received()
        self.env.invalidate_all()

    def post(self, body, sid, token=TOKEN, signature=None, process=True, **extra):
        params = {
            "From": CONTACT,
            "To": OUR_NUMBER,
            "Body": body,
            "MessageSid": sid,
            "AccountSid": "AC" + "0" * 32,
            "NumSegments": "1",
            **extra,
        }
        url = self.base_url() + INBOUND_PATH
        if signature is None:
            signature = self.signature(url, params, token)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        response = self.url_open(INBOUND_PATH, data=params, headers=headers)
        if process:
            self.process()
        return response

    def blacklisted(self):
        return bool(
            self.env["phone.blacklist"].sudo().search([("number", "=", CONTACT)])
        )

    def test_signed_stop_opts_out_once(self):
        response = self.post("STOP", "SM" + "1" * 32)
        self.assertEqual(response.status_code, 200)
        self.assertIn("<Response>", response.text)
        self.assertTrue(self.blacklisted())
        inbound = self.Inbound.search([("provider_message_id", "=", "SM" + "1" * 32)])
        self.assertEqual(len(inbound), 1)
        self.assertEqual(inbound.provider, "twilio")
        self.assertEqual(inbound.company_id, self.company)
        self.assertTrue(inbound.provider_replied, "Twilio answers a plain STOP itself")
        # the same MessageSid again: one effect only
        self.assertEqual(self.post("STOP", "SM" + "1" * 32).status_code, 200)
        self.assertEqual(
            self.Inbound.search_count([("provider_message_id", "=", "SM" + "1" * 32)]),
            1,
        )
        events = self.env["sms.microfunnel.consent.event"].search(
            [("number", "=", CONTACT), ("event_type", "=", "opt_out")]
        )
        self.assertEqual(len(events), 1)
        self.assertFalse(
            self.env["sms.sms"].sudo().search([("number", "=", CONTACT)]),
            "no second confirmation after Twilio's own",
        )

    def test_free_text_opt_out_gets_our_confirmation(self):
        self.post("Please stop texting me", "SM" + "2" * 32)
        self.assertTrue(self.blacklisted())
        sms = self.env["sms.sms"].sudo().search([("number", "=", CONTACT)])
        self.assertEqual(len(sms), 1, "Twilio does not answer free text: we do")

    def test_forged_or_missing_signature_is_refused_without_writes(self):
        before = self.Inbound.search_count([])
        with self.assertLogs(LOGGER, "WARNING"):
            forged = self.post("STOP", "SM" + "3" * 32, token="not-the-token")
        self.assertEqual(forged.status_code, 403)
        with self.assertLogs(LOGGER, "WARNING"):
            missing = self.post("STOP", "SM" + "4" * 32, signature="")
        self.assertEqual(missing.status_code, 403)
        self.assertEqual(self.Inbound.search_count([]), before)
        self.assertFalse(self.blacklisted())

    def test_unknown_receiving_number_is_refused(self):
        with self.assertLogs(LOGGER, "WARNING"):
            response = self.post("STOP", "SM" + "5" * 32, To="+33799999999")
        self.assertEqual(response.status_code, 403)
        self.assertFalse(self.blacklisted())

    def test_public_base_url_behind_a_proxy(self):
        self.env["ir.config_parameter"].sudo().set_param(
            "sms_microfunnel_twilio.public_base_url", "https://crm.example.com/"
        )
        params = {
            "From": CONTACT,
            "To": OUR_NUMBER,
            "Body": "HELP",
            "MessageSid": "SM" + "6" * 32,
        }
        # signed for the public URL Twilio knows, not for the local one
        signature = self.signature("https://crm.example.com" + INBOUND_PATH, params)
        response = self.url_open(
            INBOUND_PATH, data=params, headers={"X-Twilio-Signature": signature}
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(self.Inbound.search_count([("body", "=", "HELP")]), 1)

    def test_webhook_stores_and_the_job_acts(self):
        """The webhook only stores the message (2 queries in this test, one
        of them ours: the company comes from the routes every worker keeps,
        whatever the message says);
        the inbound job, triggered by it, acts on it once."""
        self.post("Bonjour", "SM" + "a" * 32)  # warm the caches
        cron = self.env.ref("sms_microfunnel.ir_cron_sms_inbound_process")
        self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]).unlink()
        with self.assertQueryCount(2):
            response = self.post("STOP", "SM" + "b" * 32, process=False)
        self.assertEqual(response.status_code, 200)
        inbound = self.Inbound.search([("provider_message_id", "=", "SM" + "b" * 32)])
        self.assertFalse(inbound.processed)
        self.assertFalse(self.blacklisted())
        self.assertEqual(
            self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), 1
        )
        self.post("Merci", "SM" + "d" * 32, process=False)  # job already due
        self.assertEqual(
            self.env["ir.cron.trigger"].search_count([("cron_id", "=", cron.id)]), 1
        )
        with self.assertQueryCount(2):  # a duplicate changes nothing
            self.post("STOP", "SM" + "b" * 32, process=False)
        self.process()
        self.assertTrue(inbound.processed)
        self.assertEqual(inbound.classification, "opt_out")
        self.assertEqual(inbound.partner_id, self.partner)
        self.assertTrue(self.blacklisted())
        self.process()  # nothing left: nothing happens twice
        events = self.env["sms.microfunnel.consent.event"].search(
            [("number", "=", CONTACT), ("event_type", "=", "opt_out")]
        )
        self.assertEqual(len(events), 1)

    def test_unsigned_junk_is_refused_before_any_lookup(self):
        """An unsigned POST with only a body (no To, no SID): 403, no writes."""
        before = self.Inbound.search_count([])
        for data in ({"Body": "x"}, {"x": ""}, {"To": "\x00" * 3, "Body": "x"}):
            with self.assertLogs(LOGGER, "WARNING"):
                response = self.url_open(INBOUND_PATH, data=data)
            self.assertEqual(response.status_code, 403)
        with self.assertLogs(LOGGER, "WARNING"):
            response = self.url_open(
                INBOUND_PATH,
                data={"Body": "x", "To": OUR_NUMBER},
                headers={"X-Twilio-Signature": "A" * 27 + "="},
            )
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.Inbound.search_count([]), before)

    def test_signed_message_with_nul_bytes_is_stored(self):
        response = self.post("STOP\x00 now", "SM" + "c" * 32)
        self.assertEqual(response.status_code, 200)
        inbound = self.Inbound.search([("provider_message_id", "=", "SM" + "c" * 32)])
        self.assertEqual(inbound.body, "STOP\ufffd now")

    def test_routing_by_receiving_number_between_companies(self):
        other = self.env["res.company"].create(
            {
                "name": "Second brand",
                "sms_provider": "twilio",
                "sms_twilio_account_sid": "AC" + "2" * 32,
                "sms_twilio_auth_token": "second-company-token",
                "country_id": self.env.ref("base.fr").id,
            }
        )
        self.env["sms.twilio.number"].sudo().create(
            {
                "company_id": other.id,
                "number": "+33700000002",
                "country_id": self.env.ref("base.fr").id,
            }
        )
        # signed with the second company's token, to its number
        response = self.post(
            "Oui",
            "SM" + "8" * 32,
            token="second-company-token",
            To="+33700000002",
        )
        self.assertEqual(response.status_code, 200)
        inbound = self.Inbound.search([("provider_message_id", "=", "SM" + "8" * 32)])
        self.assertEqual(inbound.company_id, other)
        # the first company's token cannot speak for the second company
        with self.assertLogs(LOGGER, "WARNING"):
            forged = self.post("STOP", "SM" + "9" * 32, To="+33700000002")
        self.assertEqual(forged.status_code, 403)
        self.assertFalse(self.blacklisted())

    def test_routing_follows_configuration_changes(self):
        """The routes every worker keeps follow the company's token, numbers
        and Messaging Service at once."""
        self.assertEqual(self.post("Bonjour", "SM" + "e1" * 16).status_code, 200)
        self.company.sudo().sms_twilio_auth_token = "rotated-token-0123456789"
        with self.assertLogs(LOGGER, "WARNING"):
            old = self.post("Bonjour", "SM" + "e2" * 16)
        self.assertEqual(old.status_code, 403)
        new = self.post("Bonjour", "SM" + "e3" * 16, token="rotated-token-0123456789")
        self.assertEqual(new.status_code, 200)
        # the number leaves the company: its messages have nowhere to go
        self.company.sudo().sms_twilio_number_ids.unlink()
        with self.assertLogs(LOGGER, "WARNING"):
            gone = self.post(
                "Bonjour", "SM" + "e4" * 16, token="rotated-token-0123456789"
            )
        self.assertEqual(gone.status_code, 403)
        # ... unless sent through the company's Messaging Service
        self.company.sudo().sms_twilio_messaging_service_sid = "MG" + "6" * 32
        service = self.post(
            "Bonjour",
            "SM" + "e5" * 16,
            token="rotated-token-0123456789",
            MessagingServiceSid="MG" + "6" * 32,
        )
        self.assertEqual(service.status_code, 200)
        stored = self.Inbound.sudo().search(
            [("provider_message_id", "like", "SMe")], order="provider_message_id"
        )
        self.assertEqual(
            stored.mapped("provider_message_id"),
            ["SM" + "e1" * 16, "SM" + "e3" * 16, "SM" + "e5" * 16],
        )

    def test_webhook_runs_as_public_user_without_session(self):
        """A webhook is no browser request: no session cookie in the answer,
        and a logged-in user's cookie does not make that user the author."""
        public = self.env.ref("base.public_user")
        response = self.post("Bonjour", "SM" + "a1" * 16, process=False)
        self.assertEqual(response.status_code, 200)
        self.assertNotIn("Set-Cookie", response.headers)
        self.authenticate("admin", "admin")
        response = self.post("Merci", "SM" + "b2" * 16, process=False)
        self.assertEqual(response.status_code, 200)
        self.assertNotIn("Set-Cookie", response.headers)
        stored = self.Inbound.sudo().search(
            [("provider_message_id", "in", ["SM" + "a1" * 16, "SM" + "b2" * 16])]
        )
        self.assertEqual(len(stored), 2)
        self.assertEqual(stored.create_uid, public)
