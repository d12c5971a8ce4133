# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio error codes and their effects, against the Twilio simulator."""

from odoo.tests import tagged

from .common import ALICE, BOB, TwilioMockCase


@tagged("post_install", "-at_install")
class TestTwilioErrorMapping(TwilioMockCase):
    def test_21610_records_provider_opt_out_without_retry(self):
        self.sim.configure_number(ALICE, error_code=21610)
        sms = self.queue(ALICE, partner_id=self.partner.id)
        # already queued for the same number: must not go out after the opt-out
        queued = self.queue(ALICE, body="Dernier rappel")
        self.send(sms)
        self.assertEqual(sms.state, "error")
        self.assertEqual(sms.failure_type, "sms_optout")
        self.assertEqual(sms.sms_twilio_error_code, "21610")
        self.assertEqual(sms.sms_tracker_id.sms_twilio_error_code, "21610")
        event = self.env["sms.microfunnel.consent.event"].search(
            [("number", "=", ALICE), ("event_type", "=", "opt_out")]
        )
        self.assertEqual(len(event), 1)
        self.assertEqual(event.source, "provider")
        self.assertEqual(event.company_id, self.company)
        self.assertEqual(event.partner_id, self.partner)
        self.assertTrue(
            self.env["phone.blacklist"].sudo().search([("number", "=", ALICE)])
        )
        self.run_queue()
        self.assertEqual(len(self.sim.posts_to(ALICE)), 1, "never retried")
        self.assertEqual(queued.state, "canceled")
        self.assertEqual(queued.failure_type, "sms_optout")
        # Twilio says it again for another SMS: no second opt-out event
        self.send(self.queue(ALICE, body="Transactionnel"))
        self.assertEqual(
            self.env["sms.microfunnel.consent.event"].search_count(
                [("number", "=", ALICE), ("event_type", "=", "opt_out")]
            ),
            1,
        )

    def test_21610_fails_the_chatter_notification_as_opted_out(self):
        self.sim.configure_number(ALICE, error_code=21610)
        message = self.partner._message_sms("Bonjour", sms_numbers=[ALICE])
        self.env.flush_all()
        self.env.invalidate_all()
        notification = message.notification_ids
        self.assertEqual(notification.notification_status, "exception")
        self.assertEqual(notification.failure_type, "sms_optout")
        self.assertEqual(len(self.sim.posts_to(ALICE)), 1)

    def test_invalid_numbers_are_flagged_not_retried(self):
        for code in (21211, 21614, 21635):
            with self.subTest(code=code):
                self.sim.reset()
                self.sim.configure_number(BOB, error_code=code)
                partner = self.env["res.partner"].create(
                    {"name": f"Contact {code}", "phone": BOB}
                )
                sms = self.send(self.queue(BOB, partner_id=partner.id))
                self.assertEqual(sms.state, "error")
                self.assertEqual(sms.failure_type, "sms_number_format")
                self.assertEqual(sms.sms_twilio_error_code, str(code))
                note = partner.message_ids.filtered(
                    lambda m, code=code: str(code) in (m.body or "")
                )
                self.assertEqual(len(note), 1)
                self.assertIn("flagged invalid", note.body)
                self.assertTrue(note.subtype_id.internal)
                self.run_queue()
                self.assertEqual(len(self.sim.posts_to(BOB)), 1)
                self.assertFalse(
                    self.env["sms.microfunnel.consent.event"].search(
                        [("number", "=", BOB)]
                    ),
                    "an invalid number is no opt-out",
                )

    def test_unknown_code_kept_verbatim(self):
        self.sim.configure_number(
            BOB, error_code=21408, error_message="Region not enabled (custom)"
        )
        sms = self.send(self.queue(BOB))  # no WARNING logged (the run would fail)
        self.assertEqual(sms.state, "error")
        self.assertEqual(sms.failure_type, "unknown")
        self.assertEqual(sms.sms_twilio_error_code, "21408")
        self.assertEqual(sms.sms_tracker_id.sms_twilio_error_code, "21408")
        self.run_queue()
        self.assertEqual(len(self.sim.posts_to(BOB)), 1)

    def test_unknown_code_reason_on_notification(self):
        self.sim.configure_number(
            BOB, error_code=21408, error_message="Region not enabled (custom)"
        )
        message = self.partner._message_sms("Bonjour", sms_numbers=[BOB])
        self.env.flush_all()
        self.env.invalidate_all()
        notification = message.notification_ids
        self.assertEqual(notification.failure_type, "unknown")
        self.assertEqual(notification.failure_reason, "Region not enabled (custom)")

    def test_carrier_delivery_errors(self):
        expected = {
            30003: "sms_invalid_destination",
            30004: "sms_rejected",
            30005: "sms_invalid_destination",
            30006: "sms_not_allowed",
            30007: "sms_rejected",
            30008: "sms_not_delivered",
        }
        for code, failure_type in expected.items():
            with self.subTest(code=code):
                self.sim.reset()
                self.sim.configure_number(BOB, delivery_error_code=code)
                sms = self.send(self.queue(BOB))
                self.assertEqual(sms.state, "pending")
                self.callbacks()
                tracker = sms.sms_tracker_id
                self.assertEqual(tracker.sms_twilio_status, "undelivered")
                self.assertEqual(tracker.sms_twilio_error_code, str(code))
                self.assertEqual(sms.state, "error")
                self.assertEqual(sms.failure_type, failure_type)
                self.assertEqual(sms.sms_twilio_error_code, str(code))
