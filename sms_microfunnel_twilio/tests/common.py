# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Shared bases of the Twilio provider's tests.

* :class:`TwilioWebhookCase`: a Twilio company with one receiving number, and
  webhooks signed as Twilio signs them (inbound messages, status callbacks).
* :class:`TwilioMockCase`: Odoo sends through Twilio's API mocked at the HTTP
  boundary, in-process, as core ``sms_twilio/tests/common.py`` does (its
  ``_request_handler`` answers the requests Odoo's client sends): the answers
  come from the repository's Twilio simulator (``devtools/twilio_simulator``)
  called without a socket, so error codes, faults, recorded requests and
  signed status callbacks are the ones the end-to-end tests see. Status
  callbacks reach Odoo's controllers over real HTTP.
* :class:`TwilioSimulatorCase`: the same tests' helpers against the simulator
  served over real HTTP on loopback, for what needs a network between the two
  (pacing, concurrency, client timeouts).

The simulator is a development tool of the repository, shipped in no addon:
these bases import it from the repository root and skip, saying so, where the
addon runs without its repository.
"""

import sys
import unittest
from http.client import RemoteDisconnected
from pathlib import Path
from unittest.mock import patch
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from odoo.tests import HttpCase

from odoo.addons.sms_microfunnel_twilio.tools import twilio_signature
from odoo.addons.sms_microfunnel_twilio.tools.sms_api import (
    API_BASE_URL_PARAM,
    TWILIO_API,
)

ACCOUNT = "AC" + "5" * 32
TOKEN = "simulated-auth-token"
OUR_NUMBER = "+33700000001"
SERVICE_SID = "MG" + "7" * 32
ALICE = "+33612345678"
BOB = "+33698765432"

REPO = Path(__file__).resolve().parents[2]


def simulator_class():
    """``devtools.twilio_simulator.TwilioSimulator`` of this repository."""
    if not (REPO / "devtools" / "twilio_simulator").is_dir():
        raise unittest.SkipTest(
            f"no devtools/twilio_simulator beside the addon in {REPO}: the "
            "Twilio tests run from the project's repository"
        )
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    from devtools.twilio_simulator import TwilioSimulator  # noqa: PLC0415

    return TwilioSimulator


class TwilioWebhookCase(HttpCase):
    """A Twilio company receiving on ``twilio_number``; signed webhooks."""

    twilio_account = "AC" + "0" * 32
    twilio_token = "0123456789abcdef0123456789abcdef"
    twilio_number = "+33700000001"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.sudo().write(
            {
                "sms_provider": "twilio",
                "sms_twilio_account_sid": cls.twilio_account,
                "sms_twilio_auth_token": cls.twilio_token,
                "country_id": cls.env.ref("base.fr").id,
            }
        )
        cls.env["sms.twilio.number"].sudo().create(
            {
                "company_id": cls.company.id,
                "number": cls.twilio_number,
                "country_id": cls.env.ref("base.fr").id,
            }
        )
        cls.Inbound = cls.env["sms.microfunnel.inbound"]

    def signature(self, url, params, token=None):
        """``X-Twilio-Signature`` of a POST of ``params`` to ``url``."""
        return twilio_signature.compute_signature(
            token or self.twilio_token, url, params
        )


class _TwilioSendingCase(HttpCase):
    """A Twilio company sending to a simulator; callbacks reach Odoo over HTTP.

    The simulator sends status callbacks only when asked (``callbacks()``),
    while this thread waits: the test transaction is never used by two
    threads at once.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sim = cls._start_simulator(simulator_class()(ACCOUNT, TOKEN))
        cls.env["ir.config_parameter"].sudo().set_param(
            API_BASE_URL_PARAM, cls.api_base_url
        )
        cls.company = cls.env.company
        cls._setup_twilio_company(cls.company, ACCOUNT, TOKEN, OUR_NUMBER)
        cls.partner = cls.env["res.partner"].create(
            {"name": "Léa Dubois", "phone": ALICE}
        )

    @classmethod
    def _start_simulator(cls, simulator):
        raise NotImplementedError

    @classmethod
    def _setup_twilio_company(cls, company, account, token, number):
        company.sudo().write(
            {
                "sms_provider": "twilio",
                "sms_twilio_account_sid": account,
                "sms_twilio_auth_token": token,
                "country_id": cls.env.ref("base.fr").id,
                "sms_twilio_max_mps": 50,
                "sms_twilio_number_ids": [
                    (5, 0),
                    (0, 0, {"number": number, "country_id": cls.env.ref("base.fr").id}),
                ],
            }
        )

    def setUp(self):
        super().setUp()
        self.sim.reset()

    # -- helpers ---------------------------------------------------------------

    @property
    def messages_url(self):
        """The account's Messages endpoint, as Odoo's client reaches it."""
        return f"{self.api_base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"

    def queue(self, number=ALICE, body="Votre offre vous attend", company=None, **vals):
        company = company or self.company
        return (
            self.env["sms.sms"]
            .sudo()
            .create(
                {
                    "number": number,
                    "body": body,
                    "record_company_id": company.id,
                    **vals,
                }
            )
        )

    def send(self, sms):
        sms.send(unlink_sent=False)
        self.env.flush_all()
        self.env.invalidate_all()
        return sms

    def run_queue(self):
        """The queue cron's job, its commits neutralised (test transaction)."""
        IrCron = type(self.env["ir.cron"])
        with patch.object(IrCron, "_commit_progress", lambda *a, **kw: 0.0):
            self.env["sms.sms"].sudo()._process_queue()
        self.env.flush_all()
        self.env.invalidate_all()

    def callbacks(self, sid=None, order=None):
        """Let the simulator POST status callbacks to Odoo, then re-read."""
        self.env.flush_all()
        with self.allow_requests(all_requests=True):
            results = self.sim.send_callbacks(sid, order)
        self.env.invalidate_all()
        for result, hook in zip(
            results, self.sim.webhooks[-len(results) :], strict=True
        ):
            self.assertEqual(result["response_status"], 200, hook)
        return results

    def message_for(self, sms):
        """The simulator's message resource created for ``sms`` (by uuid)."""
        creates = [
            c
            for c in self.sim.creates()
            if c["sid"] and sms.uuid in c["form"].get("StatusCallback", [""])[0]
        ]
        self.assertEqual(len(creates), 1, "one message created per SMS")
        return self.sim.get_message(creates[0]["sid"])

    def creates_for(self, sms):
        return [
            c
            for c in self.sim.creates()
            if sms.uuid in c["form"].get("StatusCallback", [""])[0]
        ]


class TwilioMockCase(_TwilioSendingCase):
    """Twilio's API mocked in-process at the HTTP boundary (see module doc)."""

    api_base_url = TWILIO_API

    @classmethod
    def _start_simulator(cls, simulator):
        return simulator  # not served: it answers in _request_handler

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        if urlsplit(r.url).hostname != urlsplit(cls.api_base_url).hostname:
            return super()._request_handler(s, r, **kw)
        answer = cls.sim.handle_request(r.method, r.url, r.headers, r.body or b"")
        if answer is None:  # the simulator dropped the connection
            raise requests.exceptions.ConnectionError(
                RemoteDisconnected("Remote end closed connection without response"),
                request=r,
            )
        status, headers, content = answer
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response._content = content
        response.encoding = "utf-8"
        response.url = r.url
        response.request = r
        return response


class TwilioSimulatorCase(_TwilioSendingCase):
    """End to end: the simulator served over real HTTP on loopback."""

    @classmethod
    def _start_simulator(cls, simulator):
        simulator.start()
        cls.addClassCleanup(simulator.stop)
        cls.api_base_url = simulator.base_url
        return simulator
