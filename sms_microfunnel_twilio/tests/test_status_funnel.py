# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Status callbacks of funnel SMS: our route's set-based statement moves the
tracker, the SMS, the ``mailing.trace`` and the funnel trace exactly as core's
route (the ORM methods of ``sms``, ``mass_mailing_sms``, ``sms_twilio`` and
our modules) does, for every status and error Twilio reports."""

from datetime import datetime

from freezegun import freeze_time

from odoo import Command, fields
from odoo.tests import tagged

from odoo.addons.sms_microfunnel.tests.common import (
    TUESDAY_10H_PARIS,
    FunnelCase,
    confirm_consent,
)
from odoo.addons.sms_microfunnel_twilio.controllers.status import (
    CORE_STATUS_PATH,
    STATUS_PATH,
    status_callback_url,
)
from odoo.addons.sms_twilio.tools.sms_twilio import (
    generate_twilio_sms_callback_signature,
    get_twilio_status_callback_url,
)

from .common import TwilioWebhookCase

# (Twilio status, ErrorCode) in the order Twilio reports them
SCENARIOS = {
    "sent then delivered": [("sent", None), ("delivered", None)],
    "delivered then late sent": [("delivered", None), ("sent", None)],
    "unreachable handset: a bounce": [("sent", None), ("undelivered", "30003")],
    "carrier error": [("sent", None), ("failed", "30008")],
    "failure without a code": [("failed", None)],
    "failure then delivered": [("undelivered", "30003"), ("delivered", None)],
    "delivered then failure": [("delivered", None), ("failed", "30008")],
    "two failures": [("failed", "30008"), ("undelivered", "30003")],
    "canceled": [("canceled", None)],
    # "sending" takes the ORM path: core sets the mailing's state
    "sending then delivered": [("sending", None), ("delivered", None)],
}


@tagged("post_install", "-at_install")
class TestFunnelStatusCallbacks(FunnelCase, TwilioWebhookCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        fr = cls.env.ref("base.fr").id
        cls.contacts = Partner.create(
            [
                {
                    "name": f"Contact {index}",
                    "phone": f"+336550{index:05d}",
                    "country_id": fr,
                    "tz": "Europe/Paris",
                }
                for index in range(2 * len(SCENARIOS) + 2)
            ]
        )
        confirm_consent(cls.env, cls.contacts, event_date=datetime(2026, 1, 5, 9, 0))
        with freeze_time(TUESDAY_10H_PARIS):
            cls.funnel.action_start()
            traces = cls.funnel._enroll(cls.contacts).trace_ids
            traces._dispatch(traces, fields.Datetime.now())
        cls.env.flush_all()
        cls.env.invalidate_all()
        cls.traces = traces.sorted(lambda t: t.enrollment_id.res_id)
        # as the sender leaves them: handed to Twilio, waiting for reports
        for trace in cls.traces:
            tracker = cls.tracker(trace)
            tracker.write(
                {"sms_twilio_company_id": cls.company.id, "sms_twilio_status": "queued"}
            )
            tracker._action_update_from_sms_state("pending")
        cls.env["sms.sms"].sudo().search(
            [("uuid", "in", cls.traces.mapped("sms_uuid"))]
        ).state = "pending"
        cls.env.flush_all()

    @classmethod
    def tracker(cls, trace):
        return cls.env["sms.tracker"].sudo().search([("sms_uuid", "=", trace.sms_uuid)])

    def post(self, trace, status, error_code, core=False):
        uuid = trace.sms_uuid
        params = {
            "SmsStatus": status,
            "MessageStatus": status,
            "MessageSid": "SM" + uuid,
            "AccountSid": self.twilio_account,
        }
        if error_code:
            params["ErrorCode"] = error_code
            params["ErrorMessage"] = f"Twilio error {error_code}"
        if core:
            path = CORE_STATUS_PATH + uuid
            signature = generate_twilio_sms_callback_signature(
                self.company, uuid, params
            )
        else:
            path = STATUS_PATH + uuid
            url = status_callback_url(
                get_twilio_status_callback_url(self.company, uuid)
            )
            signature = self.signature(url, params)
        response = self.url_open(
            path, data=params, headers={"X-Twilio-Signature": signature}
        )
        self.assertEqual(response.status_code, 200, (path, status, response.text))
        return response

    def outcome(self, trace):
        """Everything a callback may change, but ids and times (their
        presence counts)."""
        self.env.invalidate_all()
        tracker = self.tracker(trace)
        sms = self.env["sms.sms"].sudo().search([("uuid", "=", trace.sms_uuid)])
        mailing_trace = trace.mailing_trace_id
        return {
            "tracker": (
                tracker.sms_twilio_status,
                tracker.sms_twilio_error_code,
                tracker.sms_twilio_sid == "SM" + trace.sms_uuid,
            ),
            "sms": (
                sms.state,
                sms.failure_type,
                sms.sms_twilio_error_code,
                sms.to_delete,
                sms.sms_twilio_hold,
                sms.write_uid.login,
            ),
            "mailing trace": (
                mailing_trace.trace_status,
                mailing_trace.failure_type,
                mailing_trace.failure_reason,
                bool(mailing_trace.sent_datetime),
                mailing_trace.write_uid.login,
            ),
            "funnel trace": (
                trace.state,
                trace.failure_type,
                bool(trace.sent_at),
                bool(trace.delivered_at),
                trace.write_uid.login,
            ),
            "mailing": (
                mailing_trace.mass_mailing_id.state,
                mailing_trace.mass_mailing_id.sent_date,
            ),
        }

    def test_same_outcome_as_core_route(self):
        self.assertEqual(len(self.traces), 2 * len(SCENARIOS) + 2)
        for index, (name, callbacks) in enumerate(SCENARIOS.items()):
            ours, core = self.traces[2 * index], self.traces[2 * index + 1]
            with self.subTest(name):
                before = self.outcome(ours)
                self.assertEqual(before, self.outcome(core))
                self.assertEqual(before["funnel trace"][0], "sent")
                self.assertEqual(before["mailing trace"][0], "pending")
                for status, error_code in callbacks:
                    self.post(ours, status, error_code)
                    self.post(core, status, error_code, core=True)
                    self.assertEqual(self.outcome(ours), self.outcome(core))

    def test_reports_reach_mailing_and_funnel_traces(self):
        delivered, bounced = self.traces[-2:]
        self.post(delivered, "delivered", None)
        self.post(bounced, "undelivered", "30003")
        self.env.invalidate_all()
        self.assertEqual(delivered.state, "delivered")
        self.assertTrue(delivered.delivered_at)
        self.assertEqual(delivered.mailing_trace_id.trace_status, "sent")
        self.assertEqual(bounced.state, "bounced")
        self.assertEqual(bounced.failure_type, "sms_invalid_destination")
        self.assertEqual(bounced.mailing_trace_id.trace_status, "bounce")
        self.assertEqual(bounced.mailing_trace_id.failure_reason, "Twilio error 30003")

    def test_funnel_callback_queries(self):
        """Funnel SMS take the set-based statement: one statement locks the
        tracker and moves it, its SMS, mailing trace and funnel trace."""
        first, second = self.traces[-2:]
        self.post(first, "delivered", None)  # warm the caches
        self.env.flush_all()
        self.assertTrue(second.sms_uuid)  # read before counting
        with self.assertQueryCount(1):
            self.post(second, "delivered", None)
        self.env.invalidate_all()
        self.assertEqual(second.state, "delivered")
        self.assertEqual(second.mailing_trace_id.trace_status, "sent")

    def test_callback_runs_as_public_user_without_session(self):
        trace = self.traces[-1]
        self.authenticate("admin", "admin")
        response = self.post(trace, "delivered", None)
        self.assertNotIn("Set-Cookie", response.headers)
        self.env.invalidate_all()
        public = self.env.ref("base.public_user")
        self.assertEqual(trace.state, "delivered")
        self.assertEqual(trace.write_uid, public)
        self.assertEqual(trace.mailing_trace_id.write_uid, public)
        self.assertEqual(self.tracker(trace).write_uid, public)

    def test_write_automation_rules_run(self):
        """A write automation rule on funnel traces (base_automation patches
        ``write``) runs for a callback: such callbacks take the ORM path."""
        model = self.env["ir.model"]._get("sms.microfunnel.trace")
        automation = self.env["base.automation"].create(
            {
                "name": "Delivered funnel SMS",
                "trigger": "on_create_or_write",
                "model_id": model.id,
                "filter_domain": "[('state', '=', 'delivered')]",
            }
        )
        action = self.env["ir.actions.server"].create(
            {
                "name": "Mark delivered",
                "base_automation_id": automation.id,
                "model_id": model.id,
                "state": "object_write",
                "update_path": "decision_rule",
                "value": "AUTOMATED",
            }
        )
        automation.write({"action_server_ids": [Command.link(action.id)]})
        self.env.flush_all()
        trace = self.traces[-1]
        self.post(trace, "delivered", None)
        self.env.invalidate_all()
        self.assertEqual(trace.state, "delivered")
        self.assertEqual(trace.decision_rule, "AUTOMATED")
