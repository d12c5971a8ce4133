# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Signed status callbacks from the Twilio simulator: order never regresses."""

from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.sms_microfunnel_twilio.models.sms_tracker import status_allowed
from odoo.addons.sms_microfunnel_twilio.tools import twilio_signature

from .common import ALICE, OUR_NUMBER, TOKEN, TwilioMockCase


@tagged("post_install", "-at_install")
class TestTwilioStatusCallbacks(TwilioMockCase):
    def sent(self, **vals):
        sms = self.send(self.queue(ALICE, partner_id=self.partner.id, **vals))
        return sms, sms.sms_tracker_id, self.message_for(sms)["sid"]

    def test_status_ranks(self):
        self.assertTrue(status_allowed(False, "queued"))
        self.assertTrue(status_allowed("queued", "sending"))
        self.assertTrue(status_allowed("sent", "failed"))
        self.assertTrue(status_allowed("failed", "delivered"))
        self.assertTrue(status_allowed("undelivered", "delivered"))
        self.assertFalse(status_allowed("delivered", "sent"))
        self.assertFalse(status_allowed("delivered", "failed"))
        self.assertFalse(status_allowed("delivered", "undelivered"))
        self.assertFalse(status_allowed("sent", "queued"))
        self.assertFalse(status_allowed("failed", "undelivered"))
        self.assertFalse(status_allowed("sent", "sent"))
        self.assertFalse(status_allowed("sent", "myfakestatus"))

    def test_in_order(self):
        sms, tracker, sid = self.sent()
        self.callbacks(sid, ["sent"])
        self.assertEqual(tracker.sms_twilio_status, "sent")
        self.assertEqual(sms.state, "pending")
        self.callbacks(sid, ["delivered"])
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")

    def test_delivered_before_sent_stays_delivered(self):
        sms, tracker, sid = self.sent()
        self.callbacks(sid, "reversed")  # delivered, then sent
        hooks = self.sim.webhooks
        self.assertEqual([h["status"] for h in hooks], ["delivered", "sent"])
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")
        # a late "queued"/"sending" changes nothing either
        self.callbacks(sid, ["sending", "queued"])
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")

    def test_delivered_beats_a_later_failure(self):
        sms, tracker, sid = self.sent()
        self.callbacks(sid, ["delivered"])
        self.env.flush_all()
        with self.allow_requests(all_requests=True):
            self.sim.send_status(sid, "failed", error_code=30008)
        self.env.invalidate_all()
        self.assertEqual(self.sim.webhooks[-1]["response_status"], 200)
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertFalse(tracker.sms_twilio_error_code)
        self.assertEqual(sms.state, "sent")
        self.assertFalse(sms.failure_type)

    def test_failure_then_delivered_upgrades(self):
        sms, tracker, sid = self.sent()
        self.callbacks(sid, ["undelivered"])  # ErrorCode 30003
        self.assertEqual(tracker.sms_twilio_status, "undelivered")
        self.assertEqual(tracker.sms_twilio_error_code, "30003")
        self.assertEqual(sms.state, "error")
        self.assertEqual(sms.failure_type, "sms_invalid_destination")
        self.callbacks(sid, ["delivered"])
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertFalse(tracker.sms_twilio_error_code)
        self.assertEqual(sms.state, "sent")
        self.assertFalse(sms.failure_type)

    def test_replayed_callbacks_change_nothing(self):
        sms, tracker, sid = self.sent()
        self.callbacks(sid, ["sent", "delivered"])
        self.callbacks(sid, ["delivered", "sent", "delivered"])
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")

    def test_chatter_notification_follows_monotonic_status(self):
        message = self.partner._message_sms("Bonjour", sms_numbers=[ALICE])
        self.env.flush_all()
        self.env.invalidate_all()
        notification = message.notification_ids
        self.assertEqual(notification.notification_status, "pending")
        (create,) = self.sim.creates()
        self.callbacks(create["sid"], ["delivered", "sent"])
        self.assertEqual(notification.notification_status, "sent")
        self.env.flush_all()
        with self.allow_requests(all_requests=True):
            # core alone would turn a delivered notification into an exception
            self.sim.send_status(create["sid"], "failed", error_code=30008)
        self.env.invalidate_all()
        self.assertEqual(notification.notification_status, "sent")
        self.assertFalse(notification.failure_type)

    def test_status_callback_queries(self):
        """Our route: one statement that locks the tracker, decides and
        moves tracker and SMS forward; a late callback costs the same
        statement, which then changes nothing."""
        sms, tracker, sid = self.sent()
        self.callbacks(sid, ["sending"])  # warm the caches
        self.env.flush_all()
        with self.assertQueryCount(1), self.allow_requests(all_requests=True):
            self.sim.send_status(sid, "delivered")
        with self.assertQueryCount(1), self.allow_requests(all_requests=True):
            self.sim.send_status(sid, "sent")  # late: changes nothing
        self.env.invalidate_all()
        self.assertEqual(
            [h["response_status"] for h in self.sim.webhooks[-2:]], [200, 200]
        )
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")
        self.assertTrue(sms.to_delete)

    def test_forged_or_malformed_callbacks_change_nothing(self):
        sms, tracker, sid = self.sent()
        self.env.flush_all()
        path = f"/sms_microfunnel_twilio/status/{sms.uuid}"
        cases = [
            (path, {"SmsStatus": "delivered"}, {}, 403),
            (path, {"SmsStatus": "delivered"}, {"X-Twilio-Signature": "x" * 40}, 403),
            (path, {"SmsStatus": "nope"}, {"X-Twilio-Signature": "A" * 27 + "="}, 404),
            ("/sms_microfunnel_twilio/status/%00", {}, {}, None),
        ]
        for url, data, headers, expected in cases:
            response = self.url_open(url, data=data, headers=headers)
            if expected:
                self.assertEqual(response.status_code, expected, url)
            else:
                self.assertTrue(400 <= response.status_code < 500, url)
        # forged: refused before anything is read, whether the SMS exists or
        # not (no answer tells which SMS exist)
        for uuid in (sms.uuid, "0" * 32):
            with self.assertLogs(
                "odoo.addons.sms_microfunnel_twilio.controllers.status", "WARNING"
            ):
                response = self.url_open(
                    f"/sms_microfunnel_twilio/status/{uuid}",
                    data={"SmsStatus": "delivered", "MessageSid": sid},
                    headers={"X-Twilio-Signature": "A" * 27 + "="},
                )
            self.assertEqual(response.status_code, 403)
        self.env.invalidate_all()
        self.assertEqual(tracker.sms_twilio_status, "queued")
        self.assertEqual(sms.state, "pending")

    def signed_status(self, uuid, data, token=TOKEN):
        """POST ``data`` to our status route of SMS ``uuid``, signed with
        ``token`` for the URL Twilio was given."""
        path = f"/sms_microfunnel_twilio/status/{uuid}"
        url = self.env.company.get_base_url().rstrip("/") + path
        signature = twilio_signature.compute_signature(token, url, list(data.items()))
        return self.url_open(path, data=data, headers={"X-Twilio-Signature": signature})

    def test_signed_callback_of_no_sms(self):
        response = self.signed_status("0" * 32, {"SmsStatus": "delivered"})
        self.assertEqual(response.status_code, 404)

    def test_callback_signed_by_another_company_is_refused(self):
        """A company's token signs the callbacks of its own SMS only."""
        sms, tracker, sid = self.sent()
        other = self.env["res.company"].sudo().create({"name": "Filiale"})
        other.sms_twilio_auth_token = "another-company-token"
        self.env.flush_all()
        data = {"SmsStatus": "delivered", "MessageSid": sid}
        with self.assertLogs(
            "odoo.addons.sms_microfunnel_twilio.controllers.status", "WARNING"
        ):
            response = self.signed_status(sms.uuid, data, "another-company-token")
        self.assertEqual(response.status_code, 403)
        self.env.invalidate_all()
        self.assertEqual(tracker.sms_twilio_status, "queued")
        self.assertEqual(sms.state, "pending")
        # the token's change reaches the route at once (cached per worker)
        other.sms_twilio_auth_token = TOKEN
        self.company.sudo().sms_twilio_auth_token = "main-company-token"
        self.env.flush_all()
        with self.assertLogs(
            "odoo.addons.sms_microfunnel_twilio.controllers.status", "WARNING"
        ):
            response = self.signed_status(sms.uuid, data)
        self.assertEqual(response.status_code, 403)
        self.company.sudo().sms_twilio_auth_token = TOKEN
        self.env.flush_all()
        self.assertEqual(self.signed_status(sms.uuid, data).status_code, 200)
        self.env.invalidate_all()
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")

    @mute_logger("odoo.addons.sms_twilio.controllers.controllers")
    def test_core_signature_check_kept(self):
        sms, tracker, sid = self.sent()
        response = self.url_open(
            f"/sms_twilio/status/{sms.uuid}",
            {"SmsStatus": "delivered", "MessageSid": sid},
            headers={"X-Twilio-Signature": "forged"},
        )
        self.assertEqual(response.status_code, 404)
        self.env.invalidate_all()
        self.assertEqual(tracker.sms_twilio_status, "queued")
        self.assertEqual(sms.state, "pending")


@tagged("post_install", "-at_install")
class TestTwilioLateCallbacks(TwilioMockCase):
    """A callback for another company's SMS once the SMS row is deleted."""

    def test_late_callback_of_another_company(self):
        # the simulator's account belongs to a second company; the main
        # company (the public user's) has another token
        other = self.env["res.company"].sudo().create({"name": "Filiale"})
        self._setup_twilio_company(
            other, self.sim.account_sid, self.sim.auth_token, OUR_NUMBER
        )
        self.company.sudo().sms_twilio_auth_token = "main-company-token"
        sms = self.send(self.queue(ALICE, company=other))
        tracker = sms.sms_tracker_id
        self.assertEqual(tracker.sms_twilio_company_id, other)
        sms.unlink()  # what the SMS garbage collector does
        self.callbacks()
        self.assertEqual([h["response_status"] for h in self.sim.webhooks], [200, 200])
        self.assertEqual(tracker.sms_twilio_status, "delivered")
