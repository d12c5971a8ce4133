# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio sending for SMS Micro-Funnels, on top of core ``sms_twilio``.

:class:`SmsApiTwilioMicrofunnel` keeps core's request building
(``SmsApiTwilio._sms_twilio_send_request``: account check, sender number of
the destination's country, StatusCallback URL) and hands it a
:class:`TwilioTransport` instead of a ``requests`` session. The transport:

* sends to the configured API base URL (system parameter
  ``sms_microfunnel_twilio.api_base_url``, default ``https://api.twilio.com``);
* posts ``MessagingServiceSid`` instead of ``From`` for a company that sends
  through its Messaging Service;
* runs the creates concurrently on keep-alive ``http.client`` connections
  (a process-wide pool: a create costs a fraction of a ``requests`` call); each
  create leaves at a departure time reserved in PostgreSQL
  (:func:`reserve_slots`): the company's messages-per-second cap is one
  budget shared by every worker, process and server on the database, spent
  when the request leaves, not when a worker takes a slot;
* retries a rate-limited create (HTTP 429 / Twilio 20429) after an exponential
  backoff with jitter, and a create that never reached Twilio;
* reports a failure after the request may have reached Twilio as *ambiguous*:
  such a message is looked up in Twilio's message list, never resent blindly.

Worker threads only do HTTP; everything that reads or writes the database runs
in the calling thread.
"""

import base64
import http.client
import json
import logging
import random
import select
import socket
import ssl
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urlsplit

import psycopg2.errors
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from werkzeug.urls import url_join

from odoo.exceptions import UserError
from odoo.modules import module as odoo_module
from odoo.tools import SQL

from odoo.addons.sms_twilio.tools.sms_api import SmsApiTwilio
from odoo.addons.sms_twilio.tools.sms_twilio import get_twilio_from_number

_logger = logging.getLogger(__name__)

# core's request builder as shipped: when something replaces it (core's own
# sms_twilio tests mock it to answer without a network), the replacement is
# called for every message, as core would
_CORE_SEND_REQUEST = SmsApiTwilio._sms_twilio_send_request

TWILIO_API = "https://api.twilio.com"
API_BASE_URL_PARAM = "sms_microfunnel_twilio.api_base_url"
WORKERS_PARAM = "sms_microfunnel_twilio.max_workers"
TIMEOUT_PARAM = "sms_microfunnel_twilio.timeout"
DEFAULT_WORKERS = 64
DEFAULT_TIMEOUT = 10.0
DEFAULT_MPS = 10

# A slot of the pacer lasts this long: a little more than one second, so that
# the jitter between taking a slot and the request reaching Twilio never puts
# more than the cap in one second at Twilio's side.
PACING_WINDOW = 1.02
# A create leaves at the first departure of its send's reservation that is not
# past by more than this many seconds when it is ready to leave (machine
# busy): a departure missed by more is dropped, unused, instead of bunching up
# with the departures of other senders (at most this much of a second's budget
# overlaps). Creates left without a departure get new ones (another
# reservation), until LATE_ROUNDS reservations in a row sent nothing.
LATE_TOLERANCE = 0.04
LATE_ROUNDS = 3
# While a send's requests are in flight, creates left without a departure ask
# the sending thread for new ones (one reservation for all those waiting, at
# most every FEED_INTERVAL seconds), up to FEEDS times each (a thread woken
# late on a busy machine misses the new one too), waiting at most FEED_WAIT.
FEED_INTERVAL = 0.01
FEED_WAIT = 2.0
FEEDS = 3
# Rate-limited creates are retried in the worker while the waits stay short;
# beyond that the message is held and retried by the queue cron.
INLINE_RETRIES = 3
INLINE_WAIT_CAP = 5.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 300.0
# Reconciliation: Twilio's ``date_created`` may be this far before our clock.
CLOCK_SKEW = 120

RATE_LIMIT_CODES = {20429}
# Send-time error codes added to core's mapping (core: 21211, 21614, 21265,
# 21604, 21266, 21603, 21608, 21609).
CORE_SEND_CODES = {21211, 21614, 21265, 21604, 21266, 21603, 21608, 21609}
EXTRA_SEND_STATES = {
    21610: "twilio_opt_out",  # the recipient replied STOP to this sender
    21635: "wrong_number_format",  # landline or unreachable, refused
    20003: "twilio_authentication",
}
INVALID_NUMBER_CODES = {21211, 21614, 21635}
OPT_OUT_CODES = {21610}
# results of ``_send_sms_batch`` that are no final answer (the message waits)
HELD_STATES = {"twilio_retry": "retry", "twilio_ambiguous": "ambiguous"}

_pacers = {}
_pacers_lock = threading.Lock()

# The shared sending schedule: per company, the next free departure time, in
# seconds of PostgreSQL's clock (one clock for every server of the database).
PACE_TABLE = "sms_microfunnel_twilio_pace"


def create_pace_table(cr):
    cr.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS %s ("
            " company_id integer PRIMARY KEY,"
            " next_slot double precision NOT NULL)",
            SQL.identifier(PACE_TABLE),
        )
    )


def reserve_slots(cr, company_id, count, rate):
    """Reserve ``count`` departures for ``company_id`` at ``rate`` per second.

    One statement in its own short transaction (``cr`` is committed): the
    company's schedule moves forward by ``count / rate`` seconds from the later
    of its end and now, so the departures of all workers of all servers follow
    each other ``PACING_WINDOW / rate`` seconds apart. Returns the departure
    times on this process's ``time.monotonic()`` clock (the servers' clocks are
    assumed synchronised with PostgreSQL's, as NTP keeps them).
    """
    if count <= 0:
        return []
    rate = max(1, int(rate))
    spacing = PACING_WINDOW / rate  # a hair over 1/rate: jitter stays under the cap
    span = count * spacing
    query = SQL(
        """
        INSERT INTO %(table)s AS pace (company_id, next_slot)
        VALUES (%(company)s, EXTRACT(EPOCH FROM clock_timestamp()) + %(span)s)
        ON CONFLICT (company_id) DO UPDATE SET next_slot = GREATEST(
            pace.next_slot, EXTRACT(EPOCH FROM clock_timestamp())
        ) + %(span)s
        RETURNING next_slot - %(span)s, EXTRACT(EPOCH FROM clock_timestamp())
        """,
        table=SQL.identifier(PACE_TABLE),
        company=company_id,
        span=span,
    )
    for attempt in range(20):
        try:
            cr.execute(query, log_exceptions=False)
            break
        except psycopg2.errors.SerializationFailure:
            # another sender moved the schedule after our snapshot: again
            cr.rollback()
            time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
    else:
        cr.execute(query)
    start, _db_now = cr.fetchone()
    # its own short transaction: the schedule row must not stay locked
    cr.commit()  # pylint: disable=invalid-commit
    # PostgreSQL's clock and the servers' are one (NTP), whatever the time
    # the answer took to come back: the schedule is absolute
    first = time.monotonic() + (start - time.time())
    return [first + index * spacing for index in range(count)]


def backoff_delay(attempt, retry_after=0.0, base=BACKOFF_BASE, cap=BACKOFF_CAP):
    """Seconds to wait before retry ``attempt`` (0-based): exponential backoff
    with "equal jitter" (half fixed, half random), never less than what the
    server asked for in ``Retry-After``."""
    delay = min(cap, base * 2**attempt)
    delay = delay / 2 + random.uniform(0, delay / 2)
    return max(delay, retry_after or 0.0)


def _retry_after(response):
    try:
        return max(0.0, float(response.headers.get("Retry-After") or 0))
    except (TypeError, ValueError):
        return 0.0


def _json(response):
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _error_code(payload):
    code = (payload or {}).get("code") or (payload or {}).get("error_code")
    try:
        return int(code)
    except (TypeError, ValueError):
        return None


class NotSent(Exception):
    """The request could not leave: no connection to the server."""


class Late(Exception):
    """The request missed its departure time: it needs a new one."""


class HttpResponse:
    """What the result mapping reads of an answer (``requests``-like)."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def ok(self):
        return self.status_code < 400

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


class _OneWrite:
    """A request whose body is bytes leaves with its headers in one write:
    one segment, one wake-up of the server (``http.client`` writes them
    separately)."""

    def _send_output(self, message_body=None, encode_chunked=False):
        if not isinstance(message_body, bytes) or encode_chunked:
            return super()._send_output(message_body, encode_chunked)
        self._buffer.extend((b"", b""))
        message = b"\r\n".join(self._buffer) + message_body
        del self._buffer[:]
        self.send(message)
        return None


class HTTPConnection(_OneWrite, http.client.HTTPConnection):
    pass


class HTTPSConnection(_OneWrite, http.client.HTTPSConnection):
    pass


class ConnectionPool:
    """Idle keep-alive connections per (scheme, host, port), process-wide."""

    def __init__(self, per_host=64):
        self.per_host = per_host
        self._lock = threading.Lock()
        self._idle = {}

    def get(self, scheme, host, port, timeout):
        key = (scheme, host, port)
        while True:
            with self._lock:
                idle = self._idle.get(key)
                connection = idle.pop() if idle else None
            if connection is None:
                break
            if not _dropped(connection):
                connection.timeout = timeout
                connection.sock.settimeout(timeout)
                return connection, True
            connection.close()
        if scheme == "https":
            connection = HTTPSConnection(
                host, port, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            connection = HTTPConnection(host, port, timeout=timeout)
        try:
            connection.connect()
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:  # refused, unreachable, DNS, TLS, connect timeout
            connection.close()
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        return connection, False

    def put(self, scheme, host, port, connection):
        with self._lock:
            idle = self._idle.setdefault((scheme, host, port), [])
            if len(idle) < self.per_host:
                idle.append(connection)
                return
        connection.close()


def _dropped(connection):
    """True when an idle connection was closed by the server (or has junk)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _w, _x = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


_connections = ConnectionPool()


def http_post_form(url, data, auth, timeout, pool=_connections, before_send=None):
    """POST ``data`` form-encoded on a pooled keep-alive connection.

    ``before_send()`` is called once everything is ready, just before the
    request is written: the pacing waits there, as close to departure as can be.

    :raises NotSent: when no connection could be made (nothing left)
    :raises OSError, http.client.HTTPException: after the request may have
        left (its outcome is unknown)
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    host = parts.hostname
    body = urlencode(data or {}, doseq=True).encode()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
        "User-Agent": "sms_microfunnel_twilio",
    }
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection, _reused = pool.get(scheme, host, port, timeout)
    if before_send is not None:
        try:
            before_send()
        except BaseException:
            pool.put(scheme, host, port, connection)
            raise
        if _dropped(connection):  # closed by the server while we waited
            connection.close()
            connection, _reused = pool.get(scheme, host, port, timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        answer = connection.getresponse()
        content = answer.read()
    except BaseException:
        connection.close()
        raise
    response = HttpResponse(answer.status, answer.headers, content)
    if answer.will_close:
        connection.close()
    else:
        pool.put(scheme, host, port, connection)
    return response


def requests_post_form(session, url, data, auth, timeout, before_send=None):
    """:func:`http_post_form` through ``requests``: used while Odoo runs its
    tests, whose guards and mocks of outgoing HTTP patch ``requests``."""
    if before_send is not None:
        before_send()
    try:
        return session.post(url, data=data, auth=auth, timeout=timeout)
    except (
        requests.exceptions.ConnectTimeout,
        requests.exceptions.SSLError,
    ) as exc:
        raise NotSent(f"{type(exc).__name__}: {exc}") from exc
    except requests.exceptions.ConnectionError as exc:
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError
        if isinstance(reason, NewConnectionError):
            raise NotSent(f"{type(exc).__name__}: {exc}") from exc
        raise OSError(str(exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise OSError(str(exc)) from exc


class Pacer:
    """At most ``rate`` acquisitions in any window of ``window`` seconds.

    A sliding log of the last ``rate`` slots: unlike a token bucket, it never
    lets a burst and the following refill fall into the same second.
    """

    def __init__(self, window=PACING_WINDOW):
        self.window = window
        self._lock = threading.Lock()
        self._slots = deque()

    def acquire(self, rate):
        rate = max(1, int(rate))
        with self._lock:
            while True:
                now = time.monotonic()
                while self._slots and now - self._slots[0] >= self.window:
                    self._slots.popleft()
                if len(self._slots) < rate:
                    self._slots.append(now)
                    return now
                time.sleep(self.window - (now - self._slots[-rate]))


_executor = None
_executor_lock = threading.Lock()
# senders of one process share the threads: room for a few at full width
EXECUTOR_SENDERS = 2


def shared_executor(max_workers):
    """The process-wide pool of HTTP threads (started once, not per send)."""
    global _executor
    size = max_workers * EXECUTOR_SENDERS
    with _executor_lock:
        if _executor is None or _executor._max_workers < size:
            old, _executor = (
                _executor,
                ThreadPoolExecutor(max_workers=size, thread_name_prefix="twilio-sms"),
            )
            if old is not None:
                old.shutdown(wait=False)
        return _executor


def get_pacer(key):
    """The process-wide pacer of one sending company (``key``)."""
    with _pacers_lock:
        return _pacers.setdefault(key, Pacer())


class _Deferred:
    """The future of a create not submitted yet (see ``TwilioTransport.launch``)."""

    future = None

    def result(self):
        return self.future.result()

    def done(self):
        return self.future is not None and self.future.done()


def _done(future):
    done = getattr(future, "done", None)
    return done() if done is not None else True


@dataclass
class Outcome:
    """What happened to one create request, decided in a worker thread."""

    kind: str  # response | not_sent | rate_limited | ambiguous | late
    data: dict = field(default_factory=dict)
    url: str = ""
    auth: object = None
    response: object = None
    error: str = ""
    started_at: float = 0.0  # wall clock (time.time()) of the first attempt
    posts: int = 0
    retry_after: float = 0.0


class TwilioTransport:
    """A stand-in for the ``requests`` session core's request builder posts
    with: ``post()`` queues the create on a thread pool and returns a
    ``Future`` of its :class:`Outcome`."""

    def __init__(
        self,
        api_base_url=TWILIO_API,
        rate=DEFAULT_MPS,
        pacer=None,
        max_workers=DEFAULT_WORKERS,
        timeout=DEFAULT_TIMEOUT,
        messaging_service_sid=None,
        slots=None,
    ):
        self.api_base_url = (api_base_url or TWILIO_API).rstrip("/")
        self.rate = max(1, int(rate or DEFAULT_MPS))
        self.pacer = pacer or Pacer()
        # reserved departure times (monotonic), taken in order by the creates
        # as they are ready to leave (see take_slot); a create posted while
        # there are none is paced by the process-wide pacer
        self.slots = deque(slots or ())
        self._slots_lock = threading.Lock()
        self._slots_added = threading.Condition(self._slots_lock)
        # creates waiting for departures from the sending thread (feed())
        self.hungry = 0
        self.feeding = False
        self.wake_feeder = threading.Event()
        self.timeout = timeout
        self.messaging_service_sid = messaging_service_sid
        # what every create of this send shares (see _sms_twilio_send_request)
        self.request_parts = None
        # creates waiting for their departure times (see launch())
        self.deferred = None
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max_workers)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.executor = shared_executor(max(1, max_workers))

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        # the executor is shared: its threads live on for the next send
        self.session.close()

    def url(self, url):
        """Core builds ``https://api.twilio.com/…``: use the configured base."""
        if url.startswith(TWILIO_API):
            return self.api_base_url + url[len(TWILIO_API) :]
        return url

    def message_data(self, data):
        data = dict(data or {})
        if data.get("StatusCallback"):
            # our status route (controllers/status.py) instead of core's
            data["StatusCallback"] = data["StatusCallback"].replace(
                "/sms_twilio/status/", "/sms_microfunnel_twilio/status/", 1
            )
        if self.messaging_service_sid:
            # Twilio picks the sender from the service's pool (sticky sender)
            data.pop("From", None)
            data["MessagingServiceSid"] = self.messaging_service_sid
        return data

    def post(self, url, data=None, auth=None, late_ok=False, **_kwargs):
        """Queue one message create; the timeout is the transport's own.

        Unless ``late_ok``, a create that misses its reserved departure by more
        than ``LATE_TOLERANCE`` ends as ``late`` without being sent. While
        ``deferred`` is a list, the create waits there for :meth:`launch`."""
        args = (self.url(url), self.message_data(data), auth)
        if self.deferred is not None:
            pending = _Deferred()
            self.deferred.append((pending, args, late_ok))
            return pending
        return self.executor.submit(self._create, *args, bool(self.slots), late_ok)

    def launch(self, slots):
        """Submit the deferred creates, which leave at the departure times of
        ``slots``: reserved once every request is built, so that building
        them (the ORM) never eats into their departure times."""
        self.slots.extend(slots)
        deferred, self.deferred = self.deferred or [], None
        scheduled = bool(slots)
        for pending, args, late_ok in deferred:
            pending.future = self.executor.submit(
                self._create, *args, scheduled, late_ok
            )

    def take_slot(self, late_ok=False):
        """The next departure time of the reservation for a create ready to
        leave now (``time.monotonic()``), or None when none is left. Taken
        when the request is ready, not when it is queued: a create that waited
        for a thread takes the next departure still ahead, and the departures
        missed meanwhile (by more than ``LATE_TOLERANCE``) are dropped, unused
        (less than the cap leaves, never more)."""
        fed = 0
        with self._slots_lock:
            while True:
                now = time.monotonic()
                while self.slots:
                    slot = self.slots.popleft()
                    if late_ok or now - slot <= LATE_TOLERANCE:
                        return slot
                if fed >= FEEDS or not self.feeding:
                    return None
                # ask the sending thread for a departure (see feed())
                self.hungry += 1
                self.wake_feeder.set()
                self._slots_added.wait(FEED_WAIT)
                self.hungry -= 1
                fed += 1

    def feed(self, reserve):
        """Give departures to the creates waiting for one: ``reserve(count)``
        returns ``count`` new departure times (the shared schedule)."""
        with self._slots_lock:
            count = self.hungry - len(self.slots)
        if count <= 0:
            return
        slots = reserve(count)
        with self._slots_lock:
            self.slots.extend(slots)
            self._slots_added.notify_all()

    def stop_feeding(self):
        with self._slots_lock:
            self.feeding = False
            self._slots_added.notify_all()

    def _create(self, url, data, auth, scheduled=False, late_ok=False):
        outcome = Outcome(
            "ambiguous", data=data, url=url, auth=auth, started_at=time.time()
        )
        attempt = 0
        while True:
            first = scheduled and attempt == 0

            def wait_for_departure(first=first):
                if not first:  # a retry: paced by this process
                    self.pacer.acquire(self.rate)
                    return
                # leave at a reserved departure time, not before, and not
                # much after either (it would bunch up with the next ones)
                slot = self.take_slot(late_ok)
                if slot is None:
                    raise Late()
                delay = slot - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # a departure left late (within LATE_TOLERANCE) shortens the
                # gap to the next ones: this process's window keeps them to
                # the cap in any second all the same (retries count too)
                self.pacer.acquire(self.rate)

            outcome.posts += 1
            try:
                if odoo_module.current_test:
                    response = requests_post_form(
                        self.session,
                        url,
                        data,
                        auth,
                        self.timeout,
                        before_send=wait_for_departure,
                    )
                else:
                    response = http_post_form(
                        url, data, auth, self.timeout, before_send=wait_for_departure
                    )
            except Late:
                outcome.kind = "late"  # nothing left: a new departure time
                outcome.posts -= 1
                return outcome
            except (NotSent, OSError, http.client.HTTPException) as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
                if not isinstance(exc, NotSent):
                    # it may have reached Twilio: reconcile, never resend blindly
                    outcome.kind = "ambiguous"
                    return outcome
                wait = backoff_delay(attempt)
                if attempt >= INLINE_RETRIES or wait > INLINE_WAIT_CAP:
                    outcome.kind = "not_sent"
                    outcome.retry_after = wait
                    return outcome
            else:
                if not self._rate_limited(response):
                    outcome.kind = "response"
                    outcome.response = response
                    return outcome
                wait = backoff_delay(attempt, _retry_after(response))
                outcome.error = f"HTTP {response.status_code}: rate limited"
                if attempt >= INLINE_RETRIES or wait > INLINE_WAIT_CAP:
                    outcome.kind = "rate_limited"
                    outcome.retry_after = wait
                    return outcome
            time.sleep(wait)
            attempt += 1

    @staticmethod
    def _rate_limited(response):
        if response.status_code == 429:
            return True
        return response.status_code >= 400 and (
            _error_code(_json(response)) in RATE_LIMIT_CODES
        )

    def get_json(self, url, params=None, auth=None):
        """A synchronous GET; the decoded JSON object, or None on any failure."""
        try:
            response = self.session.get(
                self.url(url), params=params, auth=auth, timeout=self.timeout
            )
        except requests.exceptions.RequestException as exc:
            _logger.info("Twilio lookup %s failed: %s", url, exc)
            return None
        if response.status_code != 200:
            _logger.info("Twilio lookup %s answered %s", url, response.status_code)
            return None
        return _json(response)


class SmsApiTwilioMicrofunnel(SmsApiTwilio):
    PROVIDER_TO_SMS_FAILURE_TYPE = SmsApiTwilio.PROVIDER_TO_SMS_FAILURE_TYPE | {
        "twilio_opt_out": "sms_optout",
    }

    # -- settings -------------------------------------------------------------

    def _sms_twilio_company(self):
        return (self.company or self.env.company).sudo()

    def _sms_twilio_param(self, key, default, cast=float):
        value = self.env["ir.config_parameter"].sudo().get_param(key)
        try:
            return cast(value) if value not in (None, False, "") else default
        except ValueError:
            return default

    def _sms_twilio_transport(self, count=0):
        """The transport of one send; ``count`` departures are reserved in
        the company's shared schedule (see :func:`reserve_slots`)."""
        company = self._sms_twilio_company()
        rate = company.sms_twilio_max_mps or DEFAULT_MPS
        slots = ()
        if count:
            with self.env.registry.cursor() as cr:
                slots = reserve_slots(cr, company.id, count, rate)
        base_url = self.env["ir.config_parameter"].sudo().get_param(API_BASE_URL_PARAM)
        return TwilioTransport(
            api_base_url=base_url or TWILIO_API,
            rate=rate,
            pacer=get_pacer((self.env.cr.dbname, company.id)),
            max_workers=max(
                1, self._sms_twilio_param(WORKERS_PARAM, DEFAULT_WORKERS, int)
            ),
            timeout=max(0.1, self._sms_twilio_param(TIMEOUT_PARAM, DEFAULT_TIMEOUT)),
            messaging_service_sid=company._sms_twilio_sending_service_sid(),
            slots=slots,
        )

    def _sms_twilio_auth(self):
        company = self._sms_twilio_company()
        return company.sms_twilio_account_sid, company.sms_twilio_auth_token

    # -- sending ----------------------------------------------------------------

    def _sms_twilio_send_request(self, session, to_number, body, uuid):
        """Core's request (same URL, auth and fields), its per-company parts
        computed once per send instead of once per message: the account check,
        the status callback's base URL and, with one sender number (or a
        Messaging Service), the sender without parsing the destination."""
        if (
            not isinstance(session, TwilioTransport)
            or SmsApiTwilio._sms_twilio_send_request is not _CORE_SEND_REQUEST
        ):
            return super()._sms_twilio_send_request(session, to_number, body, uuid)
        parts = session.request_parts
        if parts is None:
            company = self._sms_twilio_company()
            company._assert_twilio_sid()
            account_sid = company.sms_twilio_account_sid
            parts = session.request_parts = {
                "company": company,
                "numbers": company.sms_twilio_number_ids,
                "from": {},
                "url": f"{TWILIO_API}/2010-04-01/Accounts/{account_sid}/Messages.json",
                "auth": (account_sid, company.sms_twilio_auth_token),
                "callback": url_join(company.get_base_url(), "/sms_twilio/status/"),
            }
        numbers = parts["numbers"]
        if session.messaging_service_sid or len(numbers) <= 1:
            sender = numbers[:1].number or ""  # replaced by the service's SID
        else:
            sender = parts["from"].get(to_number)
            if sender is None:
                sender = parts["from"][to_number] = (
                    get_twilio_from_number(parts["company"], to_number).number or ""
                )
        data = {
            "From": sender,
            "To": to_number,
            "Body": body,
            "StatusCallback": parts["callback"] + uuid,
        }
        return session.post(parts["url"], data=data, auth=parts["auth"], timeout=5)

    def _send_sms_batch(self, messages, delivery_reports_url=False):
        """Send concurrently; see ``SmsApiBase._send_sms_batch`` for the contract.

        Results carry, besides ``uuid``/``state``/``failure_reason``:
        ``sms_twilio_sid``, ``twilio_status`` and ``twilio_error_code``.
        A message that got no final answer (rate limit exhausted, Twilio not
        reached, ambiguous outcome not found yet) is put in the list
        ``self.sms_twilio_held`` when the caller provided one (``sms.sms``
        does), otherwise it is reported as ``server_error``.
        """
        self._sms_twilio_company()._assert_twilio_sid()
        results, sent = [], []
        company = self._sms_twilio_company()
        with self._sms_twilio_transport() as transport:
            transport.deferred = []
            for message in messages:
                body = message.get("content") or ""
                for number_info in message.get("numbers") or []:
                    uuid = number_info["uuid"]
                    try:
                        future = self._sms_twilio_send_request(
                            transport, number_info["number"], body, uuid
                        )
                    except (UserError, ValueError) as exc:
                        results.append(
                            {
                                "uuid": uuid,
                                "state": "server_error",
                                "failure_reason": str(exc),
                            }
                        )
                        continue
                    sent.append((uuid, future))
            slots = []
            if transport.deferred:
                with self.env.registry.cursor() as cr:
                    slots = reserve_slots(
                        cr, company.id, len(transport.deferred), transport.rate
                    )
            transport.feeding = bool(slots)
            transport.launch(slots)
            try:
                self._sms_twilio_feed(transport, [future for _uuid, future in sent])
            finally:
                transport.stop_feeding()
            outcomes = {uuid: self._sms_twilio_outcome(future) for uuid, future in sent}
            self._sms_twilio_resend_late(transport, outcomes)
            sent_results = [
                self._sms_twilio_result(uuid, outcome)
                for uuid, outcome in outcomes.items()
            ]
            ambiguous = {
                r["uuid"]: outcomes[r["uuid"]]
                for r in sent_results
                if r["state"] == "twilio_ambiguous"
            }
            if ambiguous:
                found = self._sms_twilio_find_messages(
                    transport,
                    {
                        uuid: (outcome.data, outcome.started_at)
                        for uuid, outcome in ambiguous.items()
                    },
                )
                for result in sent_results:
                    message = found.get(result["uuid"])
                    if message:
                        result.update(self._sms_twilio_adopted(message))
            results += sent_results
        held = self.__dict__.get("sms_twilio_held")
        final = []
        for result in results:
            if result["state"] in HELD_STATES:
                if held is not None:
                    held.append(result)
                    continue
                result = {**result, "state": "server_error"}
            final.append(result)
        return final

    def _sms_twilio_feed(self, transport, futures):
        """Until every create of the send is done, reserve departures for the
        ones that missed theirs (the machine was slower than the cap): in the
        calling thread, which alone uses the database."""
        if not transport.feeding:
            return
        company = self._sms_twilio_company()

        def reserve(count):
            with self.env.registry.cursor() as cr:
                return reserve_slots(cr, company.id, count, transport.rate)

        waiting = [f for f in futures if hasattr(f, "result")]
        while waiting:
            if transport.wake_feeder.wait(FEED_INTERVAL * 5):
                transport.wake_feeder.clear()
                time.sleep(FEED_INTERVAL)  # the others missing theirs too
                try:
                    transport.feed(reserve)
                except Exception:  # the late ones get their rounds after
                    _logger.exception("Twilio SMS: no new departures reserved")
                    return
            waiting = [f for f in waiting if not _done(f)]

    def _sms_twilio_resend_late(self, transport, outcomes):
        """Creates left without a departure (nothing was sent) get new
        departure times from the shared schedule, in the calling thread, as
        long as the reservations are used. A create never leaves outside that
        schedule: when ``LATE_ROUNDS`` reservations in a row sent nothing (the
        machine is stalled), the ones left are not sent and wait for a retry
        (they would crowd the other servers' departures of that second)."""
        company = self._sms_twilio_company()
        idle_rounds = 0
        while idle_rounds < LATE_ROUNDS:
            late = [
                uuid for uuid, outcome in outcomes.items() if outcome.kind == "late"
            ]
            if not late:
                return
            with self.env.registry.cursor() as cr:
                transport.slots.extend(
                    reserve_slots(cr, company.id, len(late), transport.rate)
                )
            futures = {
                uuid: transport.executor.submit(
                    transport._create,
                    outcomes[uuid].url,
                    outcomes[uuid].data,
                    outcomes[uuid].auth,
                    True,
                )
                for uuid in late
            }
            for uuid, future in futures.items():
                outcomes[uuid] = self._sms_twilio_outcome(future)
            still_late = sum(1 for uuid in late if outcomes[uuid].kind == "late")
            idle_rounds = idle_rounds + 1 if still_late == len(late) else 0
        for outcome in outcomes.values():
            if outcome.kind == "late":
                outcome.kind = "not_sent"
                outcome.error = f"missed its departure time {LATE_ROUNDS + 1} times"
                outcome.retry_after = backoff_delay(0)

    @staticmethod
    def _sms_twilio_outcome(future):
        if future is None:  # a request builder that sent nothing
            return Outcome("not_sent", error="not sent")
        if not hasattr(future, "result"):  # a plain response
            return Outcome("response", response=future, started_at=time.time())
        try:
            return future.result()
        except Exception as exc:  # a bug in the worker: assume it may have sent
            _logger.exception("Twilio SMS worker failed")
            return Outcome("ambiguous", error=str(exc), started_at=time.time())

    def _sms_twilio_result(self, uuid, outcome):
        """The result dict of one create, from its :class:`Outcome`."""
        base = {
            "uuid": uuid,
            "provider": "twilio",
            "sent_at": outcome.started_at,
        }
        if outcome.kind in ("not_sent", "rate_limited"):
            return {
                **base,
                "state": "twilio_retry",
                "failure_reason": outcome.error,
                "retry_after": outcome.retry_after,
            }
        if outcome.kind == "ambiguous":
            return {
                **base,
                "state": "twilio_ambiguous",
                "failure_reason": outcome.error,
            }
        response = outcome.response
        payload = _json(response)
        status = response.status_code
        if status >= 500 or (status < 400 and not (payload or {}).get("sid")):
            # Twilio may have created the message: reconcile
            return {
                **base,
                "state": "twilio_ambiguous",
                "failure_reason": f"HTTP {status}",
            }
        if status < 400 and not payload.get("error"):
            return {
                **base,
                "state": "sent",
                "failure_reason": False,
                "failure_type": False,
                "sms_twilio_sid": payload["sid"],
                "twilio_status": payload.get("status") or "queued",
                "twilio_error_code": False,
            }
        if payload is None:
            text = (getattr(response, "text", "") or "")[:200]
            return {
                **base,
                "state": "unknown",
                "failure_reason": f"HTTP {status}: {text}".strip(),
                "twilio_error_code": False,
            }
        state = self._twilio_error_code_to_odoo_state(payload)
        code = _error_code(payload)
        reason = payload.get("message") or payload.get("error_message")
        if not reason and state == "unknown":
            reason = f"Twilio error {code}" if code else f"HTTP {status}"
        if not reason:
            reason = self._get_sms_api_error_messages().get(state)
        return {
            **base,
            "state": state,
            "failure_reason": reason,
            "failure_type": state,
            "twilio_error_code": str(code) if code else False,
        }

    def _twilio_error_code_to_odoo_state(self, response_json):
        code = _error_code(response_json)
        if code in EXTRA_SEND_STATES:
            return EXTRA_SEND_STATES[code]
        if code in CORE_SEND_CODES:
            return super()._twilio_error_code_to_odoo_state(response_json)
        # kept verbatim in the failure reason and the error code fields
        _logger.info("Twilio SMS: unmapped error code %s", code)
        return "unknown"

    def _get_sms_api_error_messages(self):
        messages = super()._get_sms_api_error_messages()
        messages["twilio_opt_out"] = self.env._(
            "The recipient replied STOP to this sender (Twilio error 21610)."
        )
        return messages

    # -- reconciliation ----------------------------------------------------------

    def _sms_twilio_find_messages(self, transport, items):
        """Look ambiguous creates up in Twilio's message list.

        :param items: ``{uuid: (posted data, wall-clock time of the attempt)}``
        :return: ``{uuid: message dict}`` for the ones found, ``{uuid: False}``
            for the ones Twilio does not have, nothing for failed lookups
        """
        account_sid, token = self._sms_twilio_auth()
        url = f"{TWILIO_API}/2010-04-01/Accounts/{account_sid}/Messages.json"
        candidates = {}
        for uuid, (data, since) in items.items():
            if not data.get("To"):
                continue
            payload = transport.get_json(
                url,
                params={"To": data.get("To"), "PageSize": 100},
                auth=(account_sid, token),
            )
            if payload is None:
                continue
            candidates[uuid] = [
                message
                for message in payload.get("messages") or []
                if self._sms_twilio_matches(message, data, since)
            ]
        sids = {m["sid"] for found in candidates.values() for m in found}
        taken = set(
            self.env["sms.tracker"]
            .sudo()
            .search([("sms_twilio_sid", "in", list(sids))])
            .mapped("sms_twilio_sid")
        )
        result = {}
        for uuid, found in candidates.items():
            found = [m for m in found if m["sid"] not in taken]
            found.sort(key=lambda m: self._sms_twilio_created(m) or 0)
            result[uuid] = found[0] if found else False
            if found:
                taken.add(found[0]["sid"])
        return result

    @classmethod
    def _sms_twilio_created(cls, message):
        try:
            return parsedate_to_datetime(message.get("date_created")).timestamp()
        except (TypeError, ValueError):
            return None

    @classmethod
    def _sms_twilio_matches(cls, message, data, since):
        if not message.get("sid") or message.get("body") != data.get("Body"):
            return False
        if (message.get("direction") or "outbound-api").startswith("inbound"):
            return False
        service = data.get("MessagingServiceSid")
        if service and message.get("messaging_service_sid") not in (None, service):
            return False
        if data.get("From") and message.get("from") not in (None, data["From"]):
            return False
        created = cls._sms_twilio_created(message)
        return created is None or not since or created >= since - CLOCK_SKEW

    @staticmethod
    def _sms_twilio_adopted(message):
        """The success result for a message found at Twilio."""
        status = message.get("status") or "queued"
        return {
            "state": "sent",
            "failure_reason": False,
            "failure_type": False,
            "sms_twilio_sid": message["sid"],
            "twilio_status": status,
            "twilio_error_code": False,
            "reconciled": True,
        }

    def _sms_twilio_reconcile(self, items):
        """Look up held ambiguous messages (outside a send): see
        ``_sms_twilio_find_messages``; returns the success result of each
        message found, ``False`` for the ones not found."""
        with self._sms_twilio_transport() as transport:
            found = self._sms_twilio_find_messages(transport, items)
        return {
            uuid: self._sms_twilio_adopted(message) if message else False
            for uuid, message in found.items()
        }
