# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Sending through Twilio: Twilio's API mocked in-process at the HTTP boundary,
and end to end against the loopback simulator where a network between the two
matters (pacing, concurrency, client timeouts, one send and callback round trip)."""

import itertools
import time
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import urlsplit

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tests.common import _super_send

from odoo.addons.sms_microfunnel_twilio.models import sms_sms as sms_sms_model
from odoo.addons.sms_microfunnel_twilio.models.sms_sms import (
    CLAIM_LOCK_CLASS,
    SENDER_CRONS,
)
from odoo.addons.sms_microfunnel_twilio.tools import sms_api
from odoo.addons.sms_microfunnel_twilio.tools.sms_api import (
    API_BASE_URL_PARAM,
    PACING_WINDOW,
    TIMEOUT_PARAM,
    WORKERS_PARAM,
    SmsApiTwilioMicrofunnel,
    reserve_slots,
)

from .common import (
    ACCOUNT,
    ALICE,
    BOB,
    OUR_NUMBER,
    SERVICE_SID,
    TOKEN,
    TwilioMockCase,
    TwilioSimulatorCase,
)


@tagged("post_install", "-at_install")
class TestTwilioSending(TwilioMockCase):
    def test_send_and_delivery_callbacks(self):
        sms = self.send(self.queue(partner_id=self.partner.id))
        self.assertIsInstance(
            self.company._get_sms_api_class()(self.env), SmsApiTwilioMicrofunnel
        )
        (create,) = self.sim.creates()
        form = {name: values[0] for name, values in create["form"].items()}
        self.assertTrue(create["auth_ok"])
        self.assertEqual(
            create["path"], f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )
        self.assertEqual(form["From"], OUR_NUMBER)
        self.assertEqual(form["To"], ALICE)
        self.assertEqual(form["Body"], "Votre offre vous attend")
        self.assertNotIn("MessagingServiceSid", form)
        self.assertEqual(
            urlsplit(form["StatusCallback"]).path,
            f"/sms_microfunnel_twilio/status/{sms.uuid}",
        )
        tracker = sms.sms_tracker_id
        self.assertTrue(tracker, "a tracker keeps the SID of every Twilio SMS")
        self.assertEqual(tracker.sms_twilio_sid, create["sid"])
        self.assertEqual(tracker.sms_twilio_status, "queued")
        self.assertEqual(sms.state, "pending")

        self.callbacks()
        self.assertEqual(tracker.sms_twilio_status, "delivered")
        self.assertEqual(sms.state, "sent")
        self.assertEqual(len(self.sim.creates()), 1)

    def test_sender_number_by_destination_country(self):
        """Core's choice of sender, per message, in one send to two countries
        (the request's company parts are computed once per send)."""
        us_number = "+12025550100"
        self.company.sudo().sms_twilio_number_ids = [
            (0, 0, {"number": us_number, "country_id": self.env.ref("base.us").id})
        ]
        us_contact = "+12025550142"
        records = self.queue(ALICE) | self.queue(us_contact) | self.queue(BOB)
        self.send(records)
        froms = {
            create["form"]["To"][0]: create["form"]["From"][0]
            for create in self.sim.creates()
        }
        self.assertEqual(
            froms, {ALICE: OUR_NUMBER, BOB: OUR_NUMBER, us_contact: us_number}
        )
        callbacks = [c["form"]["StatusCallback"][0] for c in self.sim.creates()]
        self.assertEqual(
            sorted(urlsplit(url).path for url in callbacks),
            sorted(
                f"/sms_microfunnel_twilio/status/{u}" for u in records.mapped("uuid")
            ),
        )

    def test_request_leaves_in_one_write(self):
        """Headers and form body leave together: a server reading the request
        is woken once, not once for the headers and again for the body."""
        writes = []

        class Socket:
            def sendall(self, data):
                writes.append(bytes(data))

        connection = sms_api.HTTPConnection("127.0.0.1", 9)
        connection.sock = Socket()
        connection.request("POST", "/Messages.json", body=b"To=%2B33612345678")
        self.assertEqual(len(writes), 1)
        self.assertTrue(writes[0].startswith(b"POST /Messages.json HTTP/1.1\r\n"))
        self.assertTrue(writes[0].endswith(b"\r\n\r\nTo=%2B33612345678"))
        self.assertIn(b"Content-Length: 17\r\n", writes[0])

    def test_messaging_service_mode(self):
        self.company.sudo().write(
            {
                "sms_twilio_messaging_service_sid": SERVICE_SID,
                "sms_twilio_sender_mode": "messaging_service",
            }
        )
        sms = self.send(self.queue())
        (create,) = self.sim.creates()
        self.assertEqual(create["form"]["MessagingServiceSid"], [SERVICE_SID])
        self.assertNotIn("From", create["form"])
        self.assertEqual(sms.state, "pending")
        self.assertEqual(sms.sms_tracker_id.sms_twilio_status, "accepted")
        self.callbacks()
        self.assertEqual(sms.state, "sent")

    def test_settings(self):
        self.env["res.config.settings"].create(
            {
                "sms_twilio_sender_mode": "messaging_service",
                "sms_twilio_messaging_service_sid": SERVICE_SID,
                "sms_twilio_max_mps": 30,
                "sms_twilio_api_base_url": "http://127.0.0.1:9",
            }
        ).execute()
        company = self.company.sudo()
        self.assertEqual(company.sms_twilio_sender_mode, "messaging_service")
        self.assertEqual(company._sms_twilio_sending_service_sid(), SERVICE_SID)
        self.assertEqual(company.sms_twilio_max_mps, 30)
        self.assertEqual(
            self.env["ir.config_parameter"].sudo().get_param(API_BASE_URL_PARAM),
            "http://127.0.0.1:9",
        )

    def test_batch_size_raised(self):
        SmsSms = self.env["sms.sms"]
        self.company.sudo().sms_twilio_max_mps = 50
        self.assertEqual(SmsSms._get_send_batch_size(), 250, "5 seconds at the cap")
        self.env["ir.config_parameter"].sudo().set_param(
            "sms_microfunnel_twilio.batch_size", "40"
        )
        self.assertEqual(SmsSms._get_send_batch_size(), 40)

    def test_messaging_service_needs_its_sid(self):
        with self.assertRaises(ValidationError):
            self.company.sudo().sms_twilio_messaging_service_sid = "MG-not-a-sid"
        self.company.sudo().write(
            {
                "sms_twilio_messaging_service_sid": False,
                "sms_twilio_sender_mode": "messaging_service",
            }
        )
        sms = self.send(self.queue())
        self.assertEqual(sms.state, "error")
        self.assertEqual(sms.failure_type, "sms_server")
        self.assertFalse(self.sim.requests, "nothing sent without the service")

    def test_rate_limited_create_is_retried_with_same_uuid(self):
        self.sim.rate_limit(next_n=1, retry_after=1)
        sms = self.send(self.queue())
        creates = self.creates_for(sms)
        self.assertEqual([c["status"] for c in creates], [429, 201])
        self.assertGreaterEqual(creates[1]["time"] - creates[0]["time"], 0.9)
        self.assertEqual(len(self.sim.messages), 1, "one successful create")
        self.assertEqual(sms.state, "pending")
        self.assertEqual(sms.sms_tracker_id.sms_twilio_sid, creates[1]["sid"])

    def test_rate_limit_beyond_inline_wait_holds_then_retries(self):
        self.sim.rate_limit(next_n=1, retry_after=60)
        sms = self.send(self.queue())
        self.assertEqual(len(self.sim.creates()), 1)
        self.assertEqual(sms.state, "process")
        self.assertEqual(sms.sms_twilio_hold, "retry")
        self.assertGreaterEqual(
            sms.sms_twilio_hold_until, fields.Datetime.now() + timedelta(seconds=55)
        )
        self.run_queue()  # not due yet: nothing sent
        self.assertEqual(len(self.sim.creates()), 1)
        later = sms.sms_twilio_hold_until + timedelta(seconds=1)
        with patch.object(fields.Datetime, "now", lambda: later):
            self.run_queue()
        creates = self.creates_for(sms)
        self.assertEqual([c["status"] for c in creates], [429, 201])
        self.assertEqual(sms.state, "pending")
        self.assertFalse(sms.sms_twilio_hold)

    def test_multi_company_queue_run(self):
        other_account = "AC" + "6" * 32
        other = self.env["res.company"].sudo().create({"name": "Filiale"})
        self._setup_twilio_company(other, other_account, "other-token", "+33700000002")
        mine = self.queue(ALICE, company=self.company)
        theirs = self.queue(BOB, company=other)
        self.run_queue()
        by_to = {c["form"]["To"][0]: c for c in self.sim.creates()}
        self.assertEqual(
            by_to[ALICE]["path"], f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        )
        self.assertEqual(
            by_to[BOB]["path"], f"/2010-04-01/Accounts/{other_account}/Messages.json"
        )
        self.assertEqual(by_to[ALICE]["form"]["From"], [OUR_NUMBER])
        self.assertEqual(by_to[BOB]["form"]["From"], ["+33700000002"])
        self.assertTrue(by_to[ALICE]["auth_ok"])
        # the simulator is the first company's account only: the second
        # company's credentials were used, so it refused them
        self.assertFalse(by_to[BOB]["auth_ok"])
        self.assertEqual(mine.state, "pending")
        self.assertEqual(theirs.state, "error")
        self.assertEqual(theirs.sms_twilio_error_code, "20003")


@tagged("post_install", "-at_install")
class TestTwilioSendingEndToEnd(TwilioSimulatorCase):
    """Over real HTTP: pacing and concurrency are measured at the simulator,
    and one send with its status callbacks makes the whole round trip."""

    test_send_and_delivery_callbacks = (
        TestTwilioSending.test_send_and_delivery_callbacks
    )

    def test_concurrent_and_paced(self):
        """N messages per second at most, measured at the simulator."""
        self.company.sudo().sms_twilio_max_mps = 5
        self.sim.set_latency(0.2)
        records = self.env["sms.sms"]
        for index in range(16):
            records |= self.queue(f"+336000000{index:02d}", body=f"Message {index}")
        started = time.monotonic()
        self.send(records)
        elapsed = time.monotonic() - started
        stamps = sorted(c["time"] for c in self.sim.creates())
        self.assertEqual(len(stamps), 16)
        self.assertEqual(set(records.mapped("state")), {"pending"})
        for stamp in stamps:
            in_window = [s for s in stamps if stamp <= s < stamp + 1.0]
            self.assertLessEqual(len(in_window), 5, "at most 5 creates in a second")
        # paced, not bursted: 16 at 5/s span about 3 seconds (unpaced: 0.2 s)
        self.assertGreater(stamps[-1] - stamps[0], 2.5)
        self.assertLess(elapsed, 5.0)

    def test_late_departures_never_bunch_above_the_cap(self):
        """Departures closer together than the cap allows (one left late,
        within the tolerance, the next ones on time) still leave at most N in
        any second, measured at the simulator."""
        now = time.monotonic()
        # six departures of a 5-per-second schedule squeezed into half a second
        slots = [now + 0.05 + 0.1 * index for index in range(6)]
        with sms_api.TwilioTransport(
            api_base_url=self.api_base_url, rate=5, max_workers=8, slots=slots
        ) as transport:
            futures = [
                transport.post(
                    self.messages_url,
                    data={"To": f"+3360000001{i}", "From": OUR_NUMBER, "Body": "Hi"},
                    auth=(ACCOUNT, TOKEN),
                )
                for i in range(6)
            ]
            kinds = {future.result().kind for future in futures}
        self.assertEqual(kinds, {"response"})
        stamps = sorted(c["time"] for c in self.sim.creates())
        self.assertEqual(len(stamps), 6)
        self.assertGreaterEqual(stamps[5] - stamps[0], 1.0, "6 in one second")

    def test_concurrency_beats_latency(self):
        self.company.sudo().sms_twilio_max_mps = 200
        self.sim.set_latency(0.3)
        records = self.env["sms.sms"]
        for index in range(20):
            records |= self.queue(f"+336100000{index:02d}", body=f"Message {index}")
        started = time.monotonic()
        self.send(records)
        elapsed = time.monotonic() - started
        self.assertEqual(set(records.mapped("state")), {"pending"})
        # one after the other this takes 20 × 0.3 s = 6 s
        self.assertLess(elapsed, 3.0)
        self.assertEqual(len(self.sim.messages), 20)


@tagged("post_install", "-at_install")
class TestTwilioAmbiguous(TwilioSimulatorCase):
    """Outcomes Odoo cannot know: reconciled through the Messages list."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param(TIMEOUT_PARAM, "0.5")

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        # Odoo's test runner raises timeouts below 10 s to 10 s; this test
        # needs a short one against the (loopback) simulator
        if urlsplit(r.url).hostname == "127.0.0.1":
            return _super_send(s, r, **kw)
        return super()._request_handler(s, r, **kw)

    def test_timeout_after_accept_is_reconciled(self):
        self.sim.set_latency(2.0, hang_after_accept=True, next_n=1)
        sms = self.send(self.queue())
        creates = self.creates_for(sms)
        self.assertEqual(len(creates), 1, "never resent blindly")
        self.assertEqual(creates[0]["status"], None, "the client gave up first")
        lookups = [r for r in self.sim.requests if r["kind"] == "list"]
        self.assertEqual(len(lookups), 1)
        self.assertEqual(lookups[0]["query"]["To"], [ALICE])
        (message,) = self.sim.messages
        self.assertEqual(sms.state, "pending")
        self.assertEqual(sms.sms_tracker_id.sms_twilio_sid, message["sid"])
        self.callbacks()
        self.assertEqual(sms.state, "sent")

    def test_server_error_created_is_reconciled(self):
        self.sim.fail_next(1, http_status=500, created=True)
        sms = self.send(self.queue())
        self.assertEqual(len(self.creates_for(sms)), 1)
        (message,) = self.sim.messages
        self.assertEqual(sms.state, "pending")
        self.assertEqual(sms.sms_tracker_id.sms_twilio_sid, message["sid"])

    def test_not_found_after_grace_is_resent_with_same_uuid(self):
        self.sim.fail_next(1, http_status=500)  # refused, nothing created
        sms = self.send(self.queue())
        self.assertEqual(len(self.sim.messages), 0)
        self.assertEqual(sms.state, "process")
        self.assertEqual(sms.sms_twilio_hold, "ambiguous")
        self.run_queue()  # within the grace period: nothing happens
        self.assertEqual(len(self.creates_for(sms)), 1)
        self.assertEqual(sms.sms_twilio_hold, "ambiguous")
        later = sms.sms_twilio_hold_until + timedelta(seconds=1)
        with patch.object(fields.Datetime, "now", lambda: later):
            self.run_queue()
        creates = self.creates_for(sms)
        self.assertEqual([c["status"] for c in creates], [500, 201])
        self.assertEqual(len(self.sim.messages), 1)
        self.assertEqual(sms.state, "pending")
        self.assertEqual(sms.sms_twilio_attempts, 1)

    def test_callback_resolves_ambiguous(self):
        self.sim.set_latency(2.0, hang_after_accept=True, next_n=1)
        # the lookup fails too: only the callback can tell
        sms = self.queue()
        with patch.object(
            SmsApiTwilioMicrofunnel, "_sms_twilio_find_messages", lambda *a: {}
        ):
            self.send(sms)
        self.assertEqual(sms.sms_twilio_hold, "ambiguous")
        self.callbacks()
        self.assertEqual(sms.state, "sent")
        self.assertFalse(sms.sms_twilio_hold)
        self.assertEqual(sms.sms_tracker_id.sms_twilio_sid, self.sim.messages[0]["sid"])
        self.assertEqual(len(self.sim.creates()), 1)


@tagged("post_install", "-at_install")
class TestTwilioClaimedQueue(TwilioMockCase):
    """The queue's exactly-once machinery: claim and commit before sending,
    orphans of a dead worker looked up, one shared departure schedule."""

    def _commit_log(self, records):
        """Patch ``_commit_progress`` to note, at each commit, the rows' state
        as the database has it and the creates the simulator got so far."""
        log = []
        IrCron = type(self.env["ir.cron"])

        def commit(cron, *args, **kwargs):
            cron.env.flush_all()
            cron.env.cr.execute(
                "SELECT state, sms_twilio_hold, sms_twilio_claim FROM sms_sms"
                " WHERE id IN %s ORDER BY id",
                [tuple(records.ids)],
            )
            log.append((cron.env.cr.fetchall(), len(self.sim.creates())))
            return 60.0

        return log, patch.object(IrCron, "_commit_progress", commit)

    def test_mark_is_committed_before_twilio_is_called(self):
        records = self.queue(ALICE) | self.queue(BOB)
        log, patched = self._commit_log(records)
        with patched:
            self.env["sms.sms"].sudo()._sms_twilio_send_queue()
        self.env.invalidate_all()
        # holds released (nothing), then the claim, then the results
        marks = [entry for entry in log if entry[0][0][1] == "sending"]
        self.assertTrue(marks, "the claim is committed")
        rows, creates = marks[0]
        self.assertEqual(creates, 0, "committed before any request left")
        self.assertEqual(
            {(state, hold) for state, hold, _claim in rows}, {("process", "sending")}
        )
        self.assertTrue(all(claim for _state, _hold, claim in rows))
        rows, creates = log[-1]
        self.assertEqual(creates, 2)
        self.assertEqual({row[:2] for row in rows}, {("pending", None)})
        self.assertEqual(set(records.mapped("state")), {"pending"})
        self.assertTrue(all(records.sms_tracker_id.mapped("sms_twilio_sid")))
        # the claim's advisory lock is released once the chunk is done
        self.env.cr.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %s::oid AND pid = pg_backend_pid()",
            [CLAIM_LOCK_CLASS],
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)

    def test_chunks_are_claimed_committed_and_sent_one_after_the_other(self):
        """A worker claims a chunk, sends it and commits it before the next
        one: one crash leaves at most one chunk to look up."""
        self.env["ir.config_parameter"].sudo().set_param(WORKERS_PARAM, "3")
        with patch.object(sms_sms_model, "MAX_CHUNK", 4):
            self.assertEqual(self.env["sms.sms"]._sms_twilio_chunk_size(), 4)
            records = self.env["sms.sms"]
            for index in range(7):
                records |= self.queue(f"+336200000{index:02d}", body=f"Message {index}")
            log, patched = self._commit_log(records)
            with patched:
                self.env["sms.sms"].sudo()._sms_twilio_send_queue()
        claimed = [
            sum(1 for row in rows if row[1] == "sending") for rows, _creates in log
        ]
        self.assertEqual([c for c in claimed if c], [4, 3], log)
        self.assertEqual(len(self.sim.creates()), 7)

    def _orphans(self, *numbers):
        """SMS claimed by a worker that died (its claim lock is released)."""
        records = self.env["sms.sms"]
        for number in numbers:
            records |= self.queue(number, body=f"Offre pour {number}")
        Sms = self.env["sms.sms"].sudo()
        key, claimed, groups = Sms._sms_twilio_claim(10)
        self.assertEqual(groups, [(self.company, records)])
        self.assertEqual(claimed, records)
        self.env.invalidate_all()
        return key, records

    def test_orphans_of_a_dead_worker_are_looked_up_never_resent(self):
        key, records = self._orphans(ALICE, BOB)
        alice, bob = records
        # the dead worker had sent Alice's message before dying
        with self.allow_requests(all_requests=True):
            self.sim_post(alice)
        Sms = self.env["sms.sms"].sudo()
        # worker still alive (lock held): never touched, even after the grace
        later = alice.sms_twilio_hold_until + timedelta(seconds=1)
        with patch.object(fields.Datetime, "now", lambda: later):
            self.run_queue()
        self.assertEqual(set(records.mapped("sms_twilio_hold")), {"sending"})
        self.assertFalse([r for r in self.sim.requests if r["kind"] == "list"])
        # the worker dies: its lock goes with its connection
        Sms._sms_twilio_unlock_claim(key)
        self.run_queue()  # before the grace: still waiting
        self.assertEqual(set(records.mapped("sms_twilio_hold")), {"sending"})
        with patch.object(fields.Datetime, "now", lambda: later):
            self.run_queue()
        self.env.invalidate_all()
        lookups = [r for r in self.sim.requests if r["kind"] == "list"]
        self.assertEqual(
            sorted(r["query"]["To"][0] for r in lookups), sorted([ALICE, BOB])
        )
        self.assertEqual(len(self.sim.posts_to(ALICE)), 1, "found: not resent")
        self.assertEqual(alice.state, "pending")
        self.assertEqual(
            alice.sms_tracker_id.sms_twilio_sid, self.sim.messages_to(ALICE)[0]["sid"]
        )
        # Bob's never reached Twilio: sent once, after the lookup
        self.assertEqual(len(self.sim.posts_to(BOB)), 1)
        self.assertEqual(bob.state, "pending")
        self.assertEqual(bob.sms_twilio_attempts, 1)

    def test_orphan_that_keeps_failing_gets_a_reason(self):
        key, records = self._orphans(ALICE)
        Sms = self.env["sms.sms"].sudo()
        Sms._sms_twilio_unlock_claim(key)
        records.sms_twilio_attempts = 5
        later = records.sms_twilio_hold_until + timedelta(seconds=1)
        with patch.object(fields.Datetime, "now", lambda: later):
            self.run_queue()
        self.assertEqual(records.state, "error")
        self.assertFalse(self.sim.posts_to(ALICE), "never resent blindly")
        self.assertEqual(records.failure_type, "sms_server")

    def sim_post(self, sms):
        import requests  # noqa: PLC0415

        response = requests.post(
            self.messages_url,
            data={"To": sms.number, "From": OUR_NUMBER, "Body": sms.body},
            auth=(ACCOUNT, TOKEN),
            timeout=5,
        )
        self.assertEqual(response.status_code, 201)

    def test_one_schedule_shared_by_all_senders(self):
        """Two senders (two servers) reserving departures for one company get
        consecutive, evenly spaced slots from PostgreSQL."""
        company = self.company.id
        with self.env.registry.cursor() as cr:
            first = reserve_slots(cr, company, 10, 50)
        with self.env.registry.cursor() as cr:
            second = reserve_slots(cr, company, 10, 50)
        spacing = PACING_WINDOW / 50
        for slots in (first, second):
            gaps = [b - a for a, b in itertools.pairwise(slots)]
            self.assertTrue(all(abs(gap - spacing) < 1e-6 for gap in gaps))
        # the second sender starts where the first one's departures end
        self.assertAlmostEqual(second[0] - first[-1], spacing, delta=0.01)
        with self.env.registry.cursor() as cr:
            other = reserve_slots(cr, company + 1000, 1, 50)
        self.assertLess(other[0], second[0], "one schedule per company")

    def test_sender_crons(self):
        crons = [self.env.ref(xmlid) for xmlid in SENDER_CRONS]
        self.assertEqual(len(crons), 4)
        for cron in crons:
            self.assertTrue(cron.active)
            self.assertEqual((cron.interval_number, cron.interval_type), (1, "minutes"))
        records = self.queue(ALICE) | self.queue(BOB)
        IrCron = type(self.env["ir.cron"])
        with patch.object(IrCron, "_commit_progress", lambda *a, **kw: 60.0):
            crons[2].method_direct_trigger()
        self.env.invalidate_all()
        self.assertEqual(set(records.mapped("state")), {"pending"})
        self.assertEqual(len(self.sim.creates()), 2)

    def test_late_departure_gets_a_new_slot_never_sent_twice(self):
        """A create that missed its departure time by more than the tolerance
        is not sent late (it would bunch up with other senders' departures):
        it gets a new departure time, and leaves once."""
        real = sms_api.reserve_slots
        calls = []

        def reserve(cr, company_id, count, rate):
            slots = real(cr, company_id, count, rate)
            calls.append(count)
            if len(calls) == 1:  # the machine stalled: already 1 s late
                return [slot - 1.0 for slot in slots]
            return slots

        records = self.queue(ALICE) | self.queue(BOB)
        with patch.object(sms_api, "reserve_slots", reserve):
            self.send(records)
        self.assertEqual(calls[0], 2)
        self.assertEqual(sum(calls[1:]), 2, "the late ones reserved new slots")
        self.assertEqual(set(records.mapped("state")), {"pending"})
        self.assertEqual(len(self.sim.posts_to(ALICE)), 1)
        self.assertEqual(len(self.sim.posts_to(BOB)), 1)

    def test_departures_reserved_once_requests_are_built(self):
        """Building the requests (the ORM, a busy machine) takes time: the
        departures are reserved after it, so none is already past when its
        create is handed to the HTTP threads."""
        real_reserve = sms_api.reserve_slots
        real_build = SmsApiTwilioMicrofunnel._sms_twilio_send_request
        calls = []

        def reserve(cr, company_id, count, rate):
            calls.append(count)
            return real_reserve(cr, company_id, count, rate)

        def slow_build(api, *args, **kwargs):
            time.sleep(0.1)
            return real_build(api, *args, **kwargs)

        records = self.queue(ALICE) | self.queue(BOB) | self.queue("+33611111111")
        with (
            patch.object(sms_api, "reserve_slots", reserve),
            patch.object(
                SmsApiTwilioMicrofunnel, "_sms_twilio_send_request", slow_build
            ),
        ):
            self.send(records)
        self.assertEqual(calls, [3], "one reservation, none missed")
        self.assertEqual(set(records.mapped("state")), {"pending"})
        self.assertEqual(len(self.sim.creates()), 3)

    def test_send_falling_behind_its_departures_still_sends_everything(self):
        """A sender slower than its reservation (a busy machine) drops the
        departures it missed, unused, and reserves new ones for the creates
        left, as long as each reservation gets some of them out: nothing is
        held for a retry because the cap was faster than the machine."""
        real = sms_api.reserve_slots
        calls = []

        def behind(cr, company_id, count, rate):
            # only the first departure of each reservation is still ahead
            slots = real(cr, company_id, count, rate)
            calls.append(count)
            return slots[:1] + [slot - 1.0 for slot in slots[1:]]

        numbers = [f"+3361111{index:04d}" for index in range(6)]
        records = self.env["sms.sms"]
        for number in numbers:
            records |= self.queue(number)
        with patch.object(sms_api, "reserve_slots", behind):
            self.send(records)
        # one create out per reservation: more of them than LATE_ROUNDS
        self.assertEqual(calls[0], 6)
        self.assertGreater(len(calls), 1 + sms_api.LATE_ROUNDS)
        self.assertEqual(set(records.mapped("state")), {"pending"})
        self.assertEqual(set(records.mapped("sms_twilio_hold")), {False})
        for number in numbers:
            self.assertEqual(len(self.sim.posts_to(number)), 1)

    def test_large_batch_sent_at_once_results_stored_by_slices(self):
        """A batch larger than core's result handling should be given is sent
        in one go (one reservation, all its requests in flight together); its
        results are stored slice by slice, each message's own, and an error
        of the send reaches every slice as core handles it."""
        real_send = SmsApiTwilioMicrofunnel._send_sms_batch
        sizes = []

        def send_batch(api, messages, delivery_reports_url=False):
            sizes.append(sum(len(m["numbers"]) for m in messages))
            return real_send(api, messages, delivery_reports_url)

        numbers = [f"+3361234{index:04d}" for index in range(5)]
        records = self.env["sms.sms"]
        for index, number in enumerate(numbers):
            records |= self.queue(number, body=f"Offre {index % 2}")
        with (
            patch.object(sms_sms_model, "RESULT_SLICE", 2),
            patch.object(SmsApiTwilioMicrofunnel, "_send_sms_batch", send_batch),
        ):
            self.send(records)
        self.assertEqual(sizes, [5], "one send for the whole batch")
        self.assertEqual(set(records.mapped("state")), {"pending"})
        for sms in records:
            (create,) = self.creates_for(sms)
            self.assertEqual(sms.sms_tracker_id.sms_twilio_sid, create["sid"])

        failing = self.env["sms.sms"]
        for number in numbers[:3]:
            failing |= self.queue(number)

        def broken(api, messages, delivery_reports_url=False):
            raise ValueError("no network")

        with (
            patch.object(sms_sms_model, "RESULT_SLICE", 2),
            patch.object(SmsApiTwilioMicrofunnel, "_send_sms_batch", broken),
        ):
            self.send(failing)
        self.assertEqual(set(failing.mapped("state")), {"error"})
        self.assertEqual(set(failing.mapped("failure_type")), {"sms_server"})

    def test_chunk_is_seconds_of_sending_at_the_cap(self):
        """A worker claims about one second of sending at the company's cap,
        never fewer rows than it keeps in flight, at most 500: per chunk
        costs (claim, trackers, commit) are shared by many messages."""
        Sms = self.env["sms.sms"].sudo()
        self.env["ir.config_parameter"].sudo().set_param(WORKERS_PARAM, "16")
        self.company.sudo().sms_twilio_max_mps = 50
        self.assertEqual(Sms._sms_twilio_chunk_size(), 50)
        self.company.sudo().sms_twilio_max_mps = 5
        self.assertEqual(Sms._sms_twilio_chunk_size(), 16)
        self.company.sudo().sms_twilio_max_mps = 5000
        self.assertEqual(Sms._sms_twilio_chunk_size(), 500)

    def test_no_departure_outside_the_shared_schedule(self):
        """On a stalled machine every departure it reserves is already past:
        the creates are not sent outside the company's schedule (they would
        crowd the second of the other servers' departures); they wait, nothing
        sent, and leave once, paced, when the queue retries them."""
        real = sms_api.reserve_slots
        calls = []

        def stalled(cr, company_id, count, rate):
            calls.append(count)
            return [slot - 1.0 for slot in real(cr, company_id, count, rate)]

        records = self.queue(ALICE) | self.queue(BOB)
        with patch.object(sms_api, "reserve_slots", stalled):
            self.send(records)
        # new departures for the two while the send runs (FEEDS each), then
        # LATE_ROUNDS reservations that sent nothing: they stop there
        self.assertEqual(calls[0], 2)
        self.assertEqual(
            sum(calls[1:]), 2 * (sms_api.FEEDS + sms_api.LATE_ROUNDS), calls
        )
        self.assertEqual(self.sim.creates(), [], "nothing left outside the schedule")
        self.assertEqual(set(records.mapped("state")), {"process"})
        self.assertEqual(set(records.mapped("sms_twilio_hold")), {"retry"})
        self.assertTrue(all(records.mapped("sms_twilio_hold_until")))
        # the queue retries them once due, on a machine keeping time again
        records.write({"sms_twilio_hold_until": fields.Datetime.now()})
        self.run_queue()
        self.assertEqual(set(records.mapped("state")), {"pending"})
        self.assertEqual(len(self.sim.posts_to(ALICE)), 1)
        self.assertEqual(len(self.sim.posts_to(BOB)), 1)
