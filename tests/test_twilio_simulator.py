# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Tests for the Twilio simulator of ``devtools/twilio_simulator/``.

Everything runs over real HTTP on 127.0.0.1: the simulator on one side, and on
the other ``requests`` (playing Odoo's ``sms_twilio`` client) or a small local
receiver (playing Odoo's webhooks) that checks signatures with our validator
and with a copy of core ``sms_twilio``'s own check.
"""

import base64
import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from conftest import REPO, load_tool
from hypothesis import given, settings
from hypothesis import strategies as st

from devtools.twilio_simulator import simulator as sim_mod

sig = load_tool("sms_microfunnel_twilio", "twilio_signature")
enc = load_tool("sms_microfunnel", "sms_encoding")

SIMULATOR = [sys.executable, "-m", "devtools.twilio_simulator"]
ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "simulator-test-token"
AUTH = (ACCOUNT, TOKEN)
SENDER = "+33700000001"
ALICE = "+33612345678"
BOB = "+33698765432"
SID_RE = re.compile(r"^SM[0-9a-f]{32}$")
UUID = "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------


class Receiver:
    """A local webhook endpoint recording the form POSTs it receives."""

    def __init__(self, respond=None):
        self.posts = []
        self.respond = respond or (lambda post: (200, "OK"))
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                post = {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "pairs": parse_qsl(raw, keep_blank_values=True),
                }
                post["form"] = dict(post["pairs"])
                with receiver._lock:
                    receiver.posts.append(post)
                status, text = receiver.respond(post)
                body = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(2)


def core_signature(token, url, form):
    """Core ``sms_twilio``'s ``generate_twilio_sms_callback_signature``."""
    data = url + "".join(f"{k}{v}" for k, v in sorted(form.items()))
    mac = hmac.new(token.encode(), data.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@pytest.fixture
def sim():
    with sim_mod.TwilioSimulator(ACCOUNT, TOKEN) as simulator:
        yield simulator


@pytest.fixture
def http():
    session = requests.Session()
    session.trust_env = False  # never through a proxy: loopback only
    yield session
    session.close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def create(http, sim, auth=AUTH, timeout=5, **data):
    data.setdefault("To", ALICE)
    data.setdefault("From", SENDER)
    data.setdefault("Body", "Bonjour")
    data = {key: value for key, value in data.items() if value is not None}
    return http.post(sim.messages_url, data=data, auth=auth, timeout=timeout)


def assert_twilio_error(response, status, code):
    assert response.status_code == status
    payload = response.json()
    assert payload["code"] == code
    assert payload["status"] == status
    assert payload["message"]
    assert payload["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


# --------------------------------------------------------------------------
# Messages create
# --------------------------------------------------------------------------


def test_create_answers_like_twilio(sim, http):
    response = create(http, sim, StatusCallback=f"http://127.0.0.1:1/s/{UUID}")
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Twilio-Request-Id"].startswith("RQ")
    message = response.json()
    assert SID_RE.match(message["sid"])
    assert message["status"] == "queued"
    assert message["num_segments"] == "1"
    assert message["num_media"] == "0"
    assert message["price"] is None
    assert message["error_code"] is None
    assert message["error_message"] is None
    assert message["date_sent"] is None
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    assert message["account_sid"] == ACCOUNT
    assert (message["to"], message["from"], message["body"]) == (
        ALICE,
        SENDER,
        "Bonjour",
    )
    created = parsedate_to_datetime(message["date_created"])
    assert abs(created - datetime.now(timezone.utc)) < timedelta(minutes=1)
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{message['sid']}.json"
    assert message["uri"] == path
    assert sim.get_message(message["sid"]) == message
    assert sim.messages_to(ALICE) == [message]


def test_create_with_messaging_service_is_accepted(sim, http):
    response = create(http, sim, From=None, MessagingServiceSid="MG" + "1" * 32)
    assert response.status_code == 201
    message = response.json()
    assert message["status"] == "accepted"
    assert message["from"] is None
    assert message["messaging_service_sid"] == "MG" + "1" * 32
    sim.send_callbacks()
    assert sim.get_message(message["sid"])["from"] == sim.service_number


@pytest.mark.parametrize(
    "auth",
    [None, (ACCOUNT, "wrong-token"), ("AC" + "f" * 32, TOKEN), (ACCOUNT, "")],
    ids=["missing", "bad-token", "bad-sid", "empty-token"],
)
def test_create_requires_basic_auth(sim, http, auth):
    response = create(http, sim, auth=auth)
    assert_twilio_error(response, 401, 20003)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert sim.messages == []
    (entry,) = sim.requests
    assert entry["auth_ok"] is False
    assert entry["status"] == 401


def test_other_account_and_unknown_paths_are_not_found(sim, http):
    other = sim.messages_url.replace(ACCOUNT, "AC" + "e" * 32)
    response = http.post(other, data={"To": ALICE, "Body": "x"}, auth=AUTH)
    assert_twilio_error(response, 404, 20404)
    response = http.get(sim.base_url + "/2010-04-01/Accounts.json", auth=AUTH)
    assert_twilio_error(response, 404, 20404)
    response = http.delete(sim.message_url("SM" + "0" * 32), auth=AUTH)
    assert_twilio_error(response, 405, 20004)
    assert sim.messages == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"To": None}, 21604),
        ({"To": ""}, 21604),
        ({"From": None}, 21603),
        ({"From": ""}, 21603),  # what core sends when no Twilio number is set
        ({"Body": None}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"StatusCallback": "not-a-url"}, 21609),
        ({"From": ALICE}, 21266),
    ],
    ids=[
        "no-to",
        "empty-to",
        "no-from",
        "empty-from",
        "no-body",
        "long-body",
        "bad-callback",
        "from-is-to",
    ],
)
def test_create_refuses_missing_or_bad_parameters(sim, http, data, code):
    response = create(http, sim, **data)
    assert_twilio_error(response, 400, code)
    assert sim.messages == []


def test_media_only_message_is_accepted(sim, http):
    response = create(http, sim, Body=None, MediaUrl=["https://example.com/a.png"] * 2)
    assert response.status_code == 201
    assert response.json()["num_media"] == "2"


@pytest.mark.parametrize("code", [21211, 21610, 21614, 21635, 21408, 21612])
def test_configured_numbers_fail_with_their_code(sim, http, code):
    sim.configure_number(BOB, error_code=code)
    response = create(http, sim, To=BOB)
    assert_twilio_error(response, 400, code)
    assert create(http, sim, To=ALICE).status_code == 201
    assert [m["to"] for m in sim.messages] == [ALICE]
    assert len(sim.posts_to(BOB)) == 1


def test_configured_number_http_status_and_message(sim, http):
    sim.configure_number(BOB, http_status=503)
    assert_twilio_error(create(http, sim, To=BOB), 503, 20503)
    sim.configure_number(BOB, error_code=21610, error_message="Unsubscribed")
    assert create(http, sim, To=BOB).json()["message"] == "Unsubscribed"
    sim.clear_number(BOB)
    assert create(http, sim, To=BOB).status_code == 201
    with pytest.raises(ValueError):
        sim.configure_number(BOB, http_status=400)


GSM_EXT = "€"
EMOJI = "\U0001f600"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        (GSM_EXT * 80, 1),
        (GSM_EXT * 81, 2),
        ("ç" * 70, 1),
        ("ç" * 71, 2),
        ("Réduction de 20 % ce week-end !", 1),
        ("C’est parti", 1),
        (EMOJI * 35, 1),
        (EMOJI * 36, 2),
        ("a" * 1600, 11),
    ],
)
def test_num_segments_follow_gsm7_and_ucs2(sim, http, body, segments):
    response = create(http, sim, Body=body)
    assert response.status_code == 201
    assert response.json()["num_segments"] == str(segments)
    assert sim_mod.count_segments(body) == segments


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_fallback_segment_counter_matches_sms_encoding(text):
    assert sim_mod._fallback_segments(text) == enc.analyze(text)["segments"]


def test_count_segments_without_sms_encoding(monkeypatch):
    monkeypatch.setattr(sim_mod, "_sms_encoding", None)
    assert sim_mod.count_segments("ç" * 71) == 2
    assert sim_mod.count_segments(GSM_EXT * 81) == 2
    assert sim_mod.count_segments("") == 0


# --------------------------------------------------------------------------
# Recorded requests
# --------------------------------------------------------------------------


def test_requests_are_recorded(sim, http):
    before = time.time()
    create(http, sim, To=ALICE, MediaUrl=["https://a.test/1", "https://a.test/2"])
    create(http, sim, To=BOB, StatusCallback="http://127.0.0.1:1/cb")
    http.get(sim.messages_url, params={"To": BOB}, auth=AUTH)
    entries = sim.requests
    assert [e["kind"] for e in entries] == ["create", "create", "list"]
    assert [e["id"] for e in entries] == [1, 2, 3]
    assert entries[0]["time"] <= entries[1]["time"] <= entries[2]["time"]
    assert before <= entries[0]["wall_time"] <= time.time()
    first = entries[0]
    assert first["method"] == "POST"
    assert first["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert first["form"]["MediaUrl"] == ["https://a.test/1", "https://a.test/2"]
    assert first["form"]["To"] == [ALICE]
    assert first["headers"]["Authorization"].startswith("Basic ")
    assert first["status"] == 201
    assert SID_RE.match(first["sid"])
    assert entries[2]["query"] == {"To": [BOB]}
    assert len(sim.posts_to(ALICE)) == 1
    assert len(sim.posts_to(BOB)) == 1
    assert sim.posts_to("+33000000000") == []
    # copies: editing them changes nothing
    entries[0]["form"]["To"].append("x")
    assert sim.requests[0]["form"]["To"] == [ALICE]
    sim.clear_requests()
    assert sim.requests == []
    assert len(sim.messages) == 2


def test_concurrent_creates_are_all_recorded(sim):
    numbers = [f"+336100000{index:02d}" for index in range(24)]
    results = {}

    def send(number):
        with requests.Session() as session:
            session.trust_env = False
            results[number] = create(session, sim, To=number).status_code

    threads = [threading.Thread(target=send, args=(n,)) for n in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert set(results.values()) == {201}
    assert len(sim.creates()) == len(numbers)
    assert all(len(sim.posts_to(number)) == 1 for number in numbers)
    assert len({m["sid"] for m in sim.messages}) == len(numbers)
    assert sorted(e["id"] for e in sim.requests) == list(range(1, 25))


# --------------------------------------------------------------------------
# Fetch and list (reconciliation)
# --------------------------------------------------------------------------


def test_fetch_message(sim, http):
    sid = create(http, sim).json()["sid"]
    response = http.get(sim.message_url(sid), auth=AUTH)
    assert response.status_code == 200
    assert response.json()["sid"] == sid
    assert_twilio_error(
        http.get(sim.message_url("SM" + "0" * 32), auth=AUTH), 404, 20404
    )
    assert_twilio_error(http.get(sim.message_url(sid)), 401, 20003)


def test_list_filters_and_pages(sim, http):
    sids = [create(http, sim, To=ALICE, Body=f"n{i}").json()["sid"] for i in range(5)]
    create(http, sim, To=BOB)
    today = datetime.now(timezone.utc)
    params = {"To": ALICE, "DateSent>": today.strftime("%Y-%m-%d"), "PageSize": 2}
    response = http.get(sim.messages_url, params=params, auth=AUTH)
    assert response.status_code == 200
    page = response.json()
    assert [m["sid"] for m in page["messages"]] == sids[::-1][:2]  # newest first
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (
        0,
        2,
        0,
        1,
    )
    assert page["previous_page_uri"] is None
    seen = [m["sid"] for m in page["messages"]]
    while page["next_page_uri"]:
        page = http.get(sim.base_url + page["next_page_uri"], auth=AUTH).json()
        seen.extend(m["sid"] for m in page["messages"])
    assert seen == sids[::-1]
    # the time filters (datetimes like twilio-python sends, and dates)
    later = (today + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = (today - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    yesterday = (today - timedelta(days=1)).strftime("%Y-%m-%d")

    def count(**query):
        reply = http.get(sim.messages_url, params=query, auth=AUTH)
        return len(reply.json()["messages"])

    assert count(**{"DateSent>": later}) == 0
    assert count(**{"DateSent>": earlier}) == 6
    assert count(**{"DateSent<": earlier}) == 0
    assert count(DateSent=yesterday) == 0
    assert count(DateSent=today.strftime("%Y-%m-%d")) == 6
    assert count(From=SENDER, To=BOB) == 1
    reply = http.get(sim.messages_url, params={"DateSent>": "soon"}, auth=AUTH)
    assert_twilio_error(reply, 400, 20001)


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


def test_latency_slows_creations_only(sim, http):
    sim.set_latency(0.4)
    started = time.monotonic()
    assert create(http, sim).status_code == 201
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    http.get(sim.messages_url, auth=AUTH)
    assert time.monotonic() - started < 0.3
    sim.set_latency(0)
    started = time.monotonic()
    create(http, sim)
    assert time.monotonic() - started < 0.3


def test_latency_for_next_n_only(sim, http):
    sim.set_latency(0.3, next_n=1)
    started = time.monotonic()
    create(http, sim)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    create(http, sim)
    assert time.monotonic() - started < 0.25


def test_hang_after_accept_is_found_by_reconciliation(http):
    simulator = sim_mod.TwilioSimulator(ACCOUNT, TOKEN).start()
    try:
        simulator.set_latency(30, hang_after_accept=True)
        since = datetime.now(timezone.utc) - timedelta(seconds=1)
        with pytest.raises(requests.exceptions.ReadTimeout):
            create(http, simulator, To=BOB, Body="Code 1234", timeout=0.5)
        # the outcome is ambiguous for the client, but the message exists
        params = {
            "To": BOB,
            "DateSent>": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        page = http.get(simulator.messages_url, params=params, auth=AUTH).json()
        assert [m["body"] for m in page["messages"]] == ["Code 1234"]
        assert len(simulator.posts_to(BOB)) == 1
        assert simulator.posts_to(BOB)[0]["sid"] == page["messages"][0]["sid"]
    finally:
        started = time.monotonic()
        simulator.stop()  # wakes the hanging handler up
        assert time.monotonic() - started < 3


def test_rate_limit_then_success(sim, http):
    sim.rate_limit(next_n=2, retry_after=3)
    for _attempt in range(2):
        response = create(http, sim)
        assert_twilio_error(response, 429, 20429)
        assert response.headers["Retry-After"] == "3"
    response = create(http, sim)
    assert response.status_code == 201
    assert len(sim.posts_to(ALICE)) == 3
    assert [m["sid"] for m in sim.messages] == [response.json()["sid"]]


def test_rate_limit_per_second(sim, http):
    sim.rate_limit(per_second=2)
    statuses = [create(http, sim).status_code for _index in range(3)]
    assert statuses == [201, 201, 429]
    time.sleep(1.05)
    assert create(http, sim).status_code == 201


def test_fail_next_without_and_with_creation(sim, http):
    sim.fail_next(1)
    assert_twilio_error(create(http, sim), 500, 20500)
    assert sim.messages == []
    sim.fail_next(2, http_status=503, created=True)
    assert_twilio_error(create(http, sim, To=ALICE), 503, 20503)
    assert_twilio_error(create(http, sim, To=BOB), 503, 20503)
    assert [m["to"] for m in sim.messages] == [ALICE, BOB]  # ambiguous
    assert create(http, sim).status_code == 201


def test_drop_next_closes_the_connection(sim, http):
    sim.drop_next(1, created=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        create(http, sim, To=BOB)
    assert len(sim.messages_to(BOB)) == 1
    assert sim.posts_to(BOB)[0]["status"] is None
    sim.drop_next(1)
    with pytest.raises(requests.exceptions.ConnectionError):
        create(http, sim, To=ALICE)
    assert sim.messages_to(ALICE) == []
    assert create(http, sim).status_code == 201


def test_clear_faults(sim, http):
    sim.rate_limit(next_n=5)
    sim.fail_next(5)
    sim.clear_faults()
    assert create(http, sim).status_code == 201


# --------------------------------------------------------------------------
# Status callbacks
# --------------------------------------------------------------------------


def callback_url(receiver):
    return f"{receiver.url}/sms_twilio/status/{UUID}"


def assert_signed(post, url):
    signature = post["headers"]["X-Twilio-Signature"]
    assert sig.is_valid_signature(TOKEN, url, post["pairs"], signature)
    assert signature == core_signature(TOKEN, url, post["form"])


def test_callbacks_are_signed_and_acceptable_to_core(sim, http, receiver):
    url = callback_url(receiver)
    sid = create(http, sim, StatusCallback=url).json()["sid"]
    assert receiver.posts == []  # the initial status makes no callback
    results = sim.send_callbacks()
    assert [(r["sid"], r["status"], r["response_status"]) for r in results] == [
        (sid, "sent", 200),
        (sid, "delivered", 200),
    ]
    assert [p["form"]["MessageStatus"] for p in receiver.posts] == [
        "sent",
        "delivered",
    ]
    for post in receiver.posts:
        assert post["path"] == f"/sms_twilio/status/{UUID}"
        assert_signed(post, url)
        form = post["form"]
        assert form["SmsStatus"] == form["MessageStatus"]
        assert form["MessageSid"] == form["SmsSid"] == sid
        assert (form["To"], form["From"]) == (ALICE, SENDER)
        assert form["AccountSid"] == ACCOUNT
        assert form["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in form
        assert post["headers"]["I-Twilio-Idempotency-Token"]
        assert post["headers"]["Content-Type"].startswith(
            "application/x-www-form-urlencoded"
        )
    message = sim.get_message(sid)
    assert message["status"] == "delivered"
    assert message["date_sent"] is not None
    assert message["price"] == "-0.07900"
    assert sim.send_callbacks() == []  # nothing left to send
    assert [w["kind"] for w in sim.webhooks] == ["status", "status"]


def test_undelivered_callback_carries_the_error_code(sim, http, receiver):
    sim.configure_number(BOB, outcomes=("sent", "undelivered"), error_code=30003)
    sid = create(http, sim, To=BOB, StatusCallback=callback_url(receiver)).json()["sid"]
    sim.send_callbacks(sid)
    last = receiver.posts[-1]["form"]
    assert (last["MessageStatus"], last["ErrorCode"]) == ("undelivered", "30003")
    message = sim.get_message(sid)
    assert (message["status"], message["error_code"]) == ("undelivered", 30003)
    assert message["error_message"] == "Unreachable destination handset"
    sim.configure_number(ALICE, delivery_error_code=30007)
    sid = create(http, sim, StatusCallback=callback_url(receiver)).json()["sid"]
    sim.send_callbacks(sid)
    assert receiver.posts[-1]["form"]["ErrorCode"] == "30007"


def test_callbacks_out_of_order(sim, http, receiver):
    url = callback_url(receiver)
    sim.configure_number(BOB, outcomes=("delivered", "sent"))
    first = create(http, sim, To=BOB, StatusCallback=url).json()["sid"]
    second = create(http, sim, To=ALICE, StatusCallback=url).json()["sid"]
    sim.send_callbacks(first)
    sim.send_callbacks(second, order=("delivered", "sent"))
    statuses = [
        (post["form"]["MessageSid"], post["form"]["MessageStatus"])
        for post in receiver.posts
    ]
    assert statuses == [
        (first, "delivered"),
        (first, "sent"),
        (second, "delivered"),
        (second, "sent"),
    ]
    # the resource keeps the most advanced status, like Twilio's
    assert sim.get_message(first)["status"] == "delivered"
    assert sim.get_message(second)["status"] == "delivered"
    for post in receiver.posts:
        assert_signed(post, url)


def test_reversed_callback_order_and_replays(sim, http, receiver):
    url = callback_url(receiver)
    sim.callback_order = "reversed"
    sid = create(http, sim, StatusCallback=url).json()["sid"]
    sim.send_callbacks()
    assert [p["form"]["MessageStatus"] for p in receiver.posts] == [
        "delivered",
        "sent",
    ]
    tokens = [p["headers"]["I-Twilio-Idempotency-Token"] for p in receiver.posts]
    assert len(set(tokens)) == 2
    # a replay: same event, same idempotency token
    sim.send_callbacks(sid, order=["delivered"])
    assert receiver.posts[-1]["headers"]["I-Twilio-Idempotency-Token"] == tokens[0]
    # an arbitrary status, e.g. one core does not know
    result = sim.send_status(sid, "bogus", extra={"ApiVersion": None, "X": 1})
    assert result["response_status"] == 200
    form = receiver.posts[-1]["form"]
    assert form["MessageStatus"] == "bogus"
    assert "ApiVersion" not in form
    assert form["X"] == "1"
    assert_signed(receiver.posts[-1], url)
    assert sim.get_message(sid)["status"] == "delivered"
    with pytest.raises(KeyError):
        sim.send_callbacks("SM" + "0" * 32)


def test_auto_callbacks_in_background(http, receiver):
    with sim_mod.TwilioSimulator(
        ACCOUNT, TOKEN, auto_callbacks=True, callback_delay=0.1
    ) as simulator:
        started = time.monotonic()
        sid = create(http, simulator, StatusCallback=callback_url(receiver)).json()[
            "sid"
        ]
        simulator.wait_until(lambda: len(receiver.posts) == 2)
        assert time.monotonic() - started >= 0.1
        assert [p["form"]["MessageStatus"] for p in receiver.posts] == [
            "sent",
            "delivered",
        ]
        assert simulator.get_message(sid)["status"] == "delivered"
        # without a StatusCallback the status still advances
        other = create(http, simulator, To=BOB).json()["sid"]
        simulator.wait_until(
            lambda: simulator.get_message(other)["status"] == "delivered"
        )
        assert len(receiver.posts) == 2


def test_callback_base_reaches_a_public_url_through_loopback(http, receiver):
    public = f"https://odoo.example.com/sms_twilio/status/{UUID}"
    with sim_mod.TwilioSimulator(ACCOUNT, TOKEN, callback_base=receiver.url) as sm:
        create(http, sm, StatusCallback=public)
        sm.send_callbacks()
    assert len(receiver.posts) == 2
    for post in receiver.posts:
        assert post["path"] == f"/sms_twilio/status/{UUID}"
        assert_signed(post, public)
    assert {w["target"] for w in sm.webhooks} == {
        f"{receiver.url}/sms_twilio/status/{UUID}"
    }


def test_non_loopback_webhooks_are_refused(sim, http):
    create(http, sim, StatusCallback="https://odoo.example.com/cb")
    results = sim.send_callbacks()
    assert [r["response_status"] for r in results] == [None, None]
    assert all("non-loopback" in w["error"] for w in sim.webhooks)
    assert all(w["target"] is None for w in sim.webhooks)
    with pytest.raises(ValueError):
        sim.inject_inbound("https://odoo.example.com/in", ALICE, SENDER, "STOP")
    with pytest.raises(ValueError):
        sim_mod.TwilioSimulator(ACCOUNT, TOKEN, host="0.0.0.0")
    with pytest.raises(ValueError):
        sim_mod.TwilioSimulator(ACCOUNT, TOKEN, callback_base="http://10.0.0.1")


def test_unreachable_callback_is_recorded(sim, http):
    with socket_port() as port:
        pass  # the port is free again: nothing listens there
    create(http, sim, StatusCallback=f"http://127.0.0.1:{port}/cb")
    results = sim.send_callbacks()
    assert all(r["error"] and r["response_status"] is None for r in results)


class socket_port:
    """Reserve a free loopback port for the duration of a ``with`` block."""

    def __enter__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc_info):
        self.sock.close()


# --------------------------------------------------------------------------
# Inbound injection
# --------------------------------------------------------------------------


@pytest.fixture
def validating_receiver():
    """A webhook checking signatures like our inbound controller."""

    def respond(post):
        url = server.url + post["path"]
        signature = post["headers"].get("X-Twilio-Signature")
        if not sig.is_valid_signature(TOKEN, url, post["pairs"], signature):
            return 403, "Forbidden"
        return 200, "<Response></Response>"

    server = Receiver(respond)
    yield server
    server.close()


@pytest.mark.parametrize("body", ["STOP", "YES", "Bonjour, c’est pour quand ?"])
def test_inject_inbound_is_signed(sim, validating_receiver, body):
    url = validating_receiver.url + "/in"
    status, text = sim.inject_inbound(url, ALICE, SENDER, body)
    assert (status, text) == (200, "<Response></Response>")
    (post,) = validating_receiver.posts
    form = post["form"]
    assert (form["From"], form["To"], form["Body"]) == (ALICE, SENDER, body)
    assert SID_RE.match(form["MessageSid"])
    assert form["AccountSid"] == ACCOUNT
    assert form["NumSegments"] == "1"
    assert form["SmsStatus"] == "received"
    assert "MessagingServiceSid" not in form
    assert_signed(post, url)
    (message,) = sim.messages
    assert (message["direction"], message["sid"]) == ("inbound", form["MessageSid"])


def test_inject_inbound_options(sim, validating_receiver):
    url = validating_receiver.url + "/in"
    service = "MG" + "2" * 32
    status, _text = sim.inject_inbound(
        url,
        ALICE,
        SENDER,
        "STOP",
        message_sid="SM" + "a" * 32,
        extra={"FromCountry": "FR", "NumMedia": None},
        messaging_service_sid=service,
        opt_out_type="STOP",
    )
    assert status == 200
    form = validating_receiver.posts[-1]["form"]
    assert form["MessageSid"] == "SM" + "a" * 32
    assert form["MessagingServiceSid"] == service
    assert form["OptOutType"] == "STOP"
    assert form["FromCountry"] == "FR"
    assert "NumMedia" not in form
    # the same MessageSid again (a Twilio retry) is one message
    sim.inject_inbound(url, ALICE, SENDER, "STOP", message_sid="SM" + "a" * 32)
    assert len(sim.messages) == 1
    assert len(validating_receiver.posts) == 2


def test_forged_inbound_is_refused(sim, validating_receiver):
    url = validating_receiver.url + "/in"
    status, text = sim.inject_inbound(url, ALICE, SENDER, "STOP", forge=True)
    assert (status, text) == (403, "Forbidden")
    post = validating_receiver.posts[-1]
    signature = post["headers"]["X-Twilio-Signature"]
    assert not sig.is_valid_signature(TOKEN, url, post["pairs"], signature)


def test_inbound_signature_url_override(sim, receiver):
    public = "https://odoo.example.com/sms_microfunnel_twilio/inbound?company=1"
    url = receiver.url + "/sms_microfunnel_twilio/inbound?company=1"
    status, _text = sim.inject_inbound(url, ALICE, SENDER, "YES", signature_url=public)
    assert status == 200
    post = receiver.posts[-1]
    signature = post["headers"]["X-Twilio-Signature"]
    assert sig.is_valid_signature(TOKEN, public, post["pairs"], signature)
    assert not sig.is_valid_signature(TOKEN, url, post["pairs"], signature)
    assert post["path"] == "/sms_microfunnel_twilio/inbound?company=1"


def test_inbound_default_url_and_errors(receiver):
    url = receiver.url + "/in"
    with sim_mod.TwilioSimulator(ACCOUNT, TOKEN, inbound_url=url) as simulator:
        assert simulator.inject_inbound(from_number=ALICE, to_number=SENDER)[0] == 200
        with pytest.raises(ValueError):
            simulator.inject_inbound(from_number=ALICE)
        with socket_port() as port:
            pass
        with pytest.raises(OSError):
            simulator.inject_inbound(f"http://127.0.0.1:{port}/in", ALICE, SENDER)
    assert receiver.posts[-1]["form"]["Body"] == ""


# --------------------------------------------------------------------------
# Official client, control endpoints, life cycle, script
# --------------------------------------------------------------------------


def test_official_twilio_client_talks_to_the_simulator(sim, monkeypatch):
    twilio_rest = pytest.importorskip("twilio.rest")
    exceptions = pytest.importorskip("twilio.base.exceptions")
    for name in ("TWILIO_EDGE", "TWILIO_REGION", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = twilio_rest.Client(ACCOUNT, TOKEN)
    client.api.base_url = sim.base_url
    message = client.messages.create(to=ALICE, from_=SENDER, body="a" * 200)
    assert SID_RE.match(message.sid)
    assert (message.status, message.num_segments) == ("queued", "2")
    assert client.messages(message.sid).fetch().body == "a" * 200
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    listed = client.messages.list(to=ALICE, date_sent_after=since, page_size=1)
    assert [m.sid for m in listed] == [message.sid]
    sim.configure_number(BOB, error_code=21211)
    with pytest.raises(exceptions.TwilioRestException) as caught:
        client.messages.create(to=BOB, from_=SENDER, body="x")
    assert (caught.value.status, caught.value.code) == (400, 21211)


def test_control_endpoints(sim, http, receiver):
    control = sim.base_url + "/_simulator/"
    assert http.get(control + "requests").status_code == 401
    reply = http.post(
        control + "numbers",
        data={"number": BOB, "outcomes": "delivered,sent"},
        auth=AUTH,
    )
    assert reply.json() == {"ok": True}
    data = {"number": ALICE, "error_code": 21610}
    http.post(control + "numbers", data=data, auth=AUTH)
    assert create(http, sim, To=ALICE).json()["code"] == 21610
    sid = create(http, sim, To=BOB, StatusCallback=callback_url(receiver)).json()["sid"]
    results = http.post(control + "callbacks", data={"sid": sid}, auth=AUTH).json()
    assert [r["status"] for r in results["results"]] == ["delivered", "sent"]
    data = {"rate_limit_next": 1, "retry_after": 2}
    http.post(control + "faults", data=data, auth=AUTH)
    assert create(http, sim, To=BOB).headers["Retry-After"] == "2"
    reply = http.post(
        control + "inbound",
        data={"url": receiver.url + "/in", "From": ALICE, "To": SENDER, "Body": "OUI"},
        auth=AUTH,
    )
    assert reply.json() == {"status": 200, "body": "OK"}
    listed = http.get(control + "requests", auth=AUTH).json()["requests"]
    assert [e["kind"] for e in listed] == ["create", "create", "create"]
    assert len(http.get(control + "webhooks", auth=AUTH).json()["webhooks"]) == 3
    assert http.post(control + "numbers", data={}, auth=AUTH).status_code == 400
    assert http.post(control + "nothing", auth=AUTH).status_code == 404
    assert http.post(control + "reset", auth=AUTH).json() == {"ok": True}
    assert sim.requests == [] and sim.messages == []


def test_stop_is_bounded_and_restartable(http):
    simulator = sim_mod.TwilioSimulator(ACCOUNT, TOKEN)
    with pytest.raises(RuntimeError):
        simulator.base_url  # noqa: B018
    simulator.start()
    with pytest.raises(RuntimeError):
        simulator.start()
    assert create(http, simulator).status_code == 201  # leaves a keep-alive
    simulator.set_latency(30)
    outcome = []

    def send_slowly():
        with requests.Session() as session:
            session.trust_env = False
            try:
                outcome.append(create(session, simulator, timeout=10).status_code)
            except requests.exceptions.RequestException as error:
                outcome.append(error)

    worker = threading.Thread(target=send_slowly)
    worker.start()
    simulator.wait_until(lambda: len(simulator.requests) == 2)
    started = time.monotonic()
    simulator.stop()
    assert time.monotonic() - started < 3
    worker.join(5)
    assert not worker.is_alive()
    # stopped while delaying: the connection closes, nothing is created
    assert isinstance(outcome[0], requests.exceptions.ConnectionError)
    assert len(simulator.messages) == 1
    assert not simulator.running
    simulator.stop()  # harmless
    simulator.clear_faults()
    with simulator:
        assert simulator.base_url.startswith("http://127.0.0.1:")
        assert create(http, simulator).status_code == 201


def test_module_imports_without_odoo():
    code = (
        "import sys\n"
        "import devtools.twilio_simulator as module\n"
        "from devtools.twilio_simulator import simulator\n"
        "assert 'odoo' not in sys.modules\n"
        "assert simulator._sms_encoding is not None, 'the product counter'\n"
        "assert module.count_segments('hello') == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, cwd=REPO)


def test_cli_help():
    result = subprocess.run(
        [*SIMULATOR, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    options = ["--port", "--account-sid", "--auth-token", "--callback-base"]
    for option in [*options, "--inbound-url"]:
        assert option in result.stdout


def test_cli_serves_until_sigterm(http):
    process = subprocess.Popen(
        [
            *SIMULATOR,
            "--port",
            "0",
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            TOKEN,
            "--no-auto-callbacks",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    timer = threading.Timer(20, process.kill)
    timer.start()
    try:
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url), base_url
        url = f"{base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        data = {"To": ALICE, "From": SENDER, "Body": "hi"}
        assert http.post(url, data=data, auth=AUTH, timeout=5).status_code == 201
        control = f"{base_url}/_simulator/requests"
        assert len(http.get(control, auth=AUTH, timeout=5).json()["requests"]) == 1
        process.terminate()
        assert process.wait(timeout=5) == 0
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)
    assert urlsplit(base_url).hostname == "127.0.0.1"


def test_default_opt_out_handling_answers_keywords(validating_receiver, http):
    """Like Twilio's default opt-out handling: STOP, START and HELP get
    Twilio's own answer, an opted-out number cannot be texted (21610) until it
    opts in again, and every message still reaches the webhook."""
    url = validating_receiver.url + "/in"
    with sim_mod.TwilioSimulator(ACCOUNT, TOKEN, default_opt_out=True) as sim:

        def replies():
            return [m for m in sim.messages if m["direction"] == "outbound-reply"]

        assert sim.inject_inbound(url, ALICE, SENDER, " stop ")[0] == 200
        (reply,) = replies()
        assert (reply["from"], reply["to"]) == (SENDER, ALICE)
        assert reply["body"].startswith("You have successfully been unsubscribed")
        assert_twilio_error(create(http, sim), 400, 21610)
        other = create(http, sim, To="+33612345699")
        assert other.status_code == 201, "only the opted-out number is refused"
        sim.inject_inbound(url, ALICE, SENDER, "Start")
        assert "re-subscribed" in replies()[-1]["body"]
        assert create(http, sim).status_code == 201
        sim.inject_inbound(url, ALICE, SENDER, "HELP")
        assert replies()[-1]["body"].startswith("Reply STOP to unsubscribe")
        sim.inject_inbound(url, ALICE, SENDER, "stop please")
        assert len(replies()) == 3, "only a keyword alone is answered"
        assert create(http, sim).status_code == 201
    bodies = [post["form"]["Body"] for post in validating_receiver.posts]
    assert bodies == [" stop ", "Start", "HELP", "stop please"]


def test_default_opt_out_is_off_unless_asked(sim, validating_receiver, http):
    sim.inject_inbound(validating_receiver.url + "/in", ALICE, SENDER, "STOP")
    assert [m["direction"] for m in sim.messages] == ["inbound"]
    assert create(http, sim).status_code == 201
    assert (
        sim_mod._build_parser()
        .parse_args(["--account-sid", ACCOUNT, "--auth-token", TOKEN])
        .default_opt_out
    ), "the script (setup/run's demo) answers like Twilio"


def test_answers_in_one_write_without_nagle_stall(sim):
    """A keep-alive client sending one request after the other waits for no
    delayed ACK: the answer (headers and body) leaves in one write on a
    TCP_NODELAY socket, as from a real HTTP server. Before, the body waited
    ~40 ms behind the headers on every request."""
    with requests.Session() as session:
        session.trust_env = False
        assert create(session, sim).status_code == 201  # opens the connection
        with sim._lock:
            (connection,) = sim._connections
        nodelay = connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert nodelay, "the simulator's sockets must not delay small writes"
        durations = []
        for index in range(30):
            started = time.perf_counter()
            response = create(session, sim, To=f"+3361234{index:04d}")
            durations.append(time.perf_counter() - started)
            assert response.status_code == 201
    assert len(sim.messages) == 31
    durations.sort()
    # a Nagle/delayed-ACK stall costs about 40 ms on every request
    assert durations[len(durations) // 2] < 0.02, durations


def test_simulator_is_shipped_in_no_addon():
    """The simulator is a development tool: no addon holds or imports it,
    except the Twilio addon's tests (from the repository root)."""
    addons = [p.parent for p in REPO.glob("*/__manifest__.py")]
    assert addons, "the addons are found"
    for addon in addons:
        assert not list(addon.rglob("twilio_simulator*")), addon
        for path in addon.rglob("*.py"):
            if path.parent.name == "tests":
                continue
            text = path.read_text(encoding="utf-8")
            assert "devtools" not in text, path
            assert "TwilioSimulator" not in text, path


def test_one_event_loop_serves_many_keep_alive_connections(sim):
    """Like a real HTTP server, the simulator holds many keep-alive
    connections without a thread each (a thread per connection made it the
    bottleneck of a concurrent sender); requests arriving together on one
    connection (pipelined) are answered in order."""
    before = threading.active_count()
    body = "To=%2B33612345678&From=%2B33700000007&Body=Bonjour"
    token = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    path = urlsplit(sim.messages_url).path
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Basic {token}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    connections = []
    try:
        for _index in range(40):
            connection = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
            connection.sendall(request)
            connections.append(connection)
        for connection in connections:
            answer = connection.makefile("rb").readline()
            assert answer.startswith(b"HTTP/1.1 201"), answer
        assert len(sim.messages) == 40
        assert threading.active_count() - before < 5, "no thread per connection"
        # two requests in one write on one connection: two answers, in order
        pipelined = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
        connections.append(pipelined)
        pipelined.sendall(request + request.replace(b"Bonjour", b"Bonsoir"))
        reader = pipelined.makefile("rb")
        sids = []
        for _index in range(2):
            assert reader.readline().startswith(b"HTTP/1.1 201")
            length = 0
            while (line := reader.readline()) != b"\r\n":
                name, _sep, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            sids.append(json.loads(reader.read(length))["sid"])
        assert [sim.get_message(sid)["body"] for sid in sids] == ["Bonjour", "Bonsoir"]
    finally:
        for connection in connections:
            connection.close()
