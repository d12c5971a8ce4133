# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Simultaneous signed webhooks over real HTTP, each request in its own
transaction (no test cursor): every one is answered 200 and stored once, the
consent and the tracker end right, and no query error is logged.

The data is committed, so the test cleans up after itself.
"""

import contextlib
import logging
import threading
import uuid as uuid_lib
from concurrent.futures import ThreadPoolExecutor
from unittest.mock import patch

import requests

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.orm.registry import DummyRLock
from odoo.tests import BaseCase, tagged
from odoo.tests.common import HOST, get_db_name
from odoo.tools import config

from odoo.addons.sms_microfunnel_twilio.controllers.main import INBOUND_PATH
from odoo.addons.sms_microfunnel_twilio.controllers.status import STATUS_PATH
from odoo.addons.sms_microfunnel_twilio.tools import twilio_signature

TOKEN = "concurrency-token-0123456789abcdef"
OUR_NUMBER = "+33700000777"
NEW_CONTACT = "+33677000777"
THREADS = 8
ROUNDS = 6
COMPANY_FIELDS = (
    "sms_provider",
    "sms_twilio_account_sid",
    "sms_twilio_auth_token",
    "sms_twilio_answers_keywords",
)


class _Errors(logging.Handler):
    """ERROR records of any thread (a failed query is logged by odoo.sql_db)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@tagged("post_install", "-at_install")
class TestWebhookConcurrency(BaseCase):
    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.url = f"http://{HOST}:{config['http_port']}"
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            company = env.company
            self.company_id = company.id
            self.saved = {name: company[name] for name in COMPANY_FIELDS}
            company.write(
                {
                    "sms_provider": "twilio",
                    "sms_twilio_account_sid": "AC" + "7" * 32,
                    "sms_twilio_auth_token": TOKEN,
                    "sms_twilio_answers_keywords": False,
                }
            )
            self.base = company.get_base_url().rstrip("/")
            self.twilio_number_id = (
                env["sms.twilio.number"]
                .create(
                    {
                        "company_id": company.id,
                        "number": OUR_NUMBER,
                        "country_id": env.ref("base.fr").id,
                    }
                )
                .id
            )
        self.errors = _Errors()
        logging.getLogger().addHandler(self.errors)
        self.addCleanup(logging.getLogger().removeHandler, self.errors)
        self.addCleanup(self.clean)

    def clean(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            numbers = [NEW_CONTACT]
            env["sms.microfunnel.inbound"].search(
                [("from_number_raw", "in", numbers)]
            ).unlink()
            env["sms.microfunnel.consent.event"].search(
                [("number", "in", numbers)]
            ).with_context(sms_consent_erasure=True).unlink()
            env["sms.microfunnel.consent"].search([("number", "in", numbers)]).unlink()
            env["phone.blacklist"].with_context(active_test=False).search(
                [("number", "in", numbers)]
            ).unlink()
            sms = env["sms.sms"].search([("number", "in", numbers)])
            env["sms.tracker"].search([("sms_uuid", "in", sms.mapped("uuid"))]).unlink()
            sms.unlink()
            env["res.partner"].search([("phone", "in", numbers)]).unlink()
            env["sms.twilio.number"].browse(self.twilio_number_id).unlink()
            env["res.company"].browse(self.company_id).write(self.saved)

    def post_all(self, requests_):
        """POST (path, params) all at once from THREADS keep-alive sessions."""
        local = threading.local()
        barrier = threading.Barrier(min(THREADS, len(requests_)))

        def post(item):
            path, params = item
            session = getattr(local, "session", None)
            if session is None:
                session = local.session = requests.Session()
            signature = twilio_signature.compute_signature(
                TOKEN, self.base + path, params
            )
            # start together when possible; a broken barrier only loses the race
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=10)
            response = session.post(
                self.url + path,
                data=params,
                headers={"X-Twilio-Signature": signature},
                timeout=60,
            )
            return response.status_code, response.text[:300]

        # as HttpCase does: the test runner holds the registry lock, which
        # the server's request threads would wait for
        with (
            patch.object(Registry, "_lock", DummyRLock()),
            ThreadPoolExecutor(THREADS) as pool,
        ):
            return list(pool.map(post, requests_))

    def inbound(self, body, sid):
        return (
            INBOUND_PATH,
            {
                "From": NEW_CONTACT,
                "To": OUR_NUMBER,
                "Body": body,
                "MessageSid": sid,
                "AccountSid": "AC" + "7" * 32,
            },
        )

    def test_simultaneous_stops_from_a_new_number(self):
        """8 × 6 simultaneous STOP/ARRET of one new number, each message sent
        twice at once: all 200, each stored once, one opt-out, one reply."""
        sids = [f"SM{uuid_lib.uuid4().hex}" for _i in range(THREADS * ROUNDS // 2)]
        batch = []
        for index, sid in enumerate(sids):
            body = "STOP" if index % 2 else "ARRET"
            batch += [self.inbound(body, sid), self.inbound(body, sid)]
        results = self.post_all(batch)
        self.assertEqual([code for code, _text in results], [200] * len(batch), results)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            Inbound = env["sms.microfunnel.inbound"]
            stored = Inbound.search([("from_number_raw", "=", NEW_CONTACT)])
            self.assertEqual(sorted(stored.mapped("provider_message_id")), sorted(sids))
            IrCron = type(env["ir.cron"])
            with patch.object(IrCron, "_commit_progress", lambda *a, **kw: 1.0):
                Inbound._cron_process_received()
            self.assertEqual(set(stored.mapped("processed")), {True})
            self.assertEqual(set(stored.mapped("classification")), {"opt_out"})
            states = env["sms.microfunnel.consent"]._get_states(
                [NEW_CONTACT], company=env.company
            )
            self.assertEqual(states[NEW_CONTACT], "withdrawn")
            self.assertTrue(
                env["phone.blacklist"].search([("number", "=", NEW_CONTACT)])
            )
            replies = env["sms.sms"].search([("number", "=", NEW_CONTACT)])
            self.assertEqual(len(replies), 1, "one STOP confirmation, not one per STOP")
        self.assertFalse(
            self.errors.records, [r.getMessage()[:300] for r in self.errors.records]
        )

    def test_simultaneous_status_callbacks_of_one_sms(self):
        """Every status of one SMS at once, each twice, for 6 SMS: all 200,
        the tracker and the SMS end delivered, no query error logged."""
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            sms = env["sms.sms"].create(
                [
                    {
                        "number": NEW_CONTACT,
                        "body": "Offre",
                        "state": "pending",
                        "record_company_id": self.company_id,
                    }
                    for _i in range(ROUNDS)
                ]
            )
            env["sms.tracker"].create(
                [
                    {"sms_uuid": s.uuid, "sms_twilio_company_id": self.company_id}
                    for s in sms
                ]
            )
            uuids = sms.mapped("uuid")
        batch = []
        for sms_uuid in uuids:
            sid = f"SM{sms_uuid}"
            for status in ("queued", "sending", "sent", "delivered") * 2:
                batch.append(
                    (
                        STATUS_PATH + sms_uuid,
                        {
                            "SmsStatus": status,
                            "MessageStatus": status,
                            "MessageSid": sid,
                        },
                    )
                )
        results = self.post_all(batch)
        self.assertEqual([code for code, _text in results], [200] * len(batch), results)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            trackers = env["sms.tracker"].search([("sms_uuid", "in", uuids)])
            self.assertEqual(set(trackers.mapped("sms_twilio_status")), {"delivered"})
            sms = env["sms.sms"].search([("uuid", "in", uuids)])
            self.assertEqual(set(sms.mapped("state")), {"sent"})
            self.assertEqual(
                sorted(trackers.mapped("sms_twilio_sid")),
                sorted(f"SM{u}" for u in uuids),
            )
        self.assertFalse(
            self.errors.records, [r.getMessage()[:300] for r in self.errors.records]
        )
