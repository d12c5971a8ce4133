# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Fuzzing of the Twilio webhooks (inbound messages and status callbacks).

Unsigned or wrongly signed requests get a 403 (or a 404 for what is no SMS of
ours) and write nothing; signed ones are stored once or refused with a 4xx;
never a 500, never an ERROR in the log.
"""

from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from odoo.tests import tagged

from odoo.addons.sms_microfunnel.tests.fuzz_common import (
    FUZZ_SETTINGS,
    hostile_text,
    watch_errors,
)
from odoo.addons.sms_microfunnel_twilio.controllers.main import INBOUND_PATH
from odoo.addons.sms_microfunnel_twilio.controllers.status import STATUS_PATH

from .common import TwilioWebhookCase

TOKEN = "fuzz-token-0123456789abcdef012345"
OUR_NUMBER = "+33700000123"
REFUSALS = (
    "odoo.addons.sms_microfunnel_twilio.controllers.main",
    "odoo.addons.sms_microfunnel_twilio.controllers.status",
    "odoo.http",
)
STATUSES = ["queued", "sending", "sent", "delivered", "undelivered", "failed", "read"]


@tagged("post_install", "-at_install")
class TestTwilioWebhookFuzz(TwilioWebhookCase):
    twilio_account = "AC" + "1" * 32
    twilio_token = TOKEN
    twilio_number = OUR_NUMBER

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sms = (
            cls.env["sms.sms"]
            .sudo()
            .create(
                {
                    "number": "+33611111111",
                    "body": "Offre",
                    "state": "pending",
                    "record_company_id": cls.company.id,
                }
            )
        )
        cls.tracker = (
            cls.env["sms.tracker"]
            .sudo()
            .create({"sms_uuid": cls.sms.uuid, "sms_twilio_company_id": cls.company.id})
        )
        cls.Inbound = cls.Inbound.sudo()

    def signed_headers(self, how, url, params, junk):
        if how == "none":
            return {}
        if how == "valid":
            signature = self.signature(url, params)
        elif how == "other_token":
            signature = self.signature(url, params, "other")
        else:
            signature = "".join(
                c for c in junk if c.isprintable() and c.isascii()
            ).strip()
        return {"X-Twilio-Signature": signature}

    # -- inbound messages ----------------------------------------------------------

    @FUZZ_SETTINGS
    @given(
        fields=st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "From",
                        "To",
                        "Body",
                        "MessageSid",
                        "MessagingServiceSid",
                        "OptOutType",
                        "NumMedia",
                    ]
                ),
                hostile_text,
            ),
            hostile_text,
            max_size=7,
        ),
        to=st.sampled_from([OUR_NUMBER, "+33799999999", None]),
        sign=st.sampled_from(["valid", "none", "other_token", "junk"]),
        query=st.one_of(st.just(""), hostile_text),
        junk=hostile_text,
    )
    def test_fuzz_inbound(self, fields, to, sign, query, junk):
        params = dict(fields)
        if to is not None:
            params["To"] = to
        path = INBOUND_PATH + ("?" + quote(query, safe="=&") if query else "")
        url = self.base_url() + path
        headers = self.signed_headers(sign, url, params, junk)
        before = self.Inbound.search_count([])
        with watch_errors(REFUSALS) as watch:
            response = self.url_open(path, data=params, headers=headers, method="POST")
        self.assertLess(response.status_code, 500, (params, response.text[:300]))
        self.assertFalse(watch.records, watch.messages())
        stored = self.Inbound.search_count([]) - before
        if sign != "valid" or to != OUR_NUMBER:
            self.assertEqual(response.status_code, 403)
            self.assertEqual(stored, 0, "a refused webhook writes nothing")
        elif response.status_code == 200:
            self.assertIn(stored, (0, 1), "stored once (0: a repeated MessageSid)")

    # -- status callbacks ------------------------------------------------------------

    @FUZZ_SETTINGS
    @given(
        fields=st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["SmsStatus", "MessageStatus", "MessageSid", "ErrorCode", "SmsSid"]
                ),
                hostile_text,
            ),
            st.one_of(st.sampled_from(STATUSES), hostile_text),
            max_size=6,
        ),
        target=st.sampled_from(["ours", "unknown", "junk"]),
        sign=st.sampled_from(["valid", "none", "other_token", "junk"]),
        junk=hostile_text,
    )
    def test_fuzz_status(self, fields, target, sign, junk):
        uuid = {"ours": self.sms.uuid, "unknown": "0" * 32, "junk": junk or "x"}[target]
        path = STATUS_PATH + quote(uuid, safe="")
        url = self.base_url() + STATUS_PATH + uuid
        headers = self.signed_headers(sign, url, fields, junk)
        self.env.invalidate_all()
        before = self.tracker.sms_twilio_status, self.sms.state
        with watch_errors(REFUSALS) as watch:
            response = self.url_open(path, data=fields, headers=headers, method="POST")
        self.assertLess(response.status_code, 500, (fields, response.text[:300]))
        self.assertFalse(watch.records, watch.messages())
        self.env.invalidate_all()
        if sign != "valid" or target != "ours":
            self.assertIn(response.status_code, (403, 404, 405), response.text[:200])
            self.assertEqual((self.tracker.sms_twilio_status, self.sms.state), before)
