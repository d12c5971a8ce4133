# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""A Twilio Messages API look-alike for tests: real HTTP, loopback only.

The simulator serves the part of Twilio's REST API that SMS sending uses and
plays Twilio's webhooks back at Odoo:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` creates a message
  (form parameters, HTTP basic auth with the account SID and Auth Token) and
  answers like Twilio: ``201`` and the message resource, or a 4xx/5xx JSON
  error with ``code``, ``message``, ``more_info`` and ``status``;
* ``GET …/Messages/{Sid}.json`` fetches one message and ``GET …/Messages.json``
  lists them (filters ``To``, ``From``, ``DateSent``, ``DateSent>``,
  ``DateSent<``; paging with ``PageSize``/``Page``), for the reconciliation of
  ambiguous sends (compliance book docs/compliance.md, "Ambiguous sends");
* every request received is recorded (``requests``, ``posts_to``);
* faults are injected on demand: latency, a "hang after accept" (the message
  exists but the answer comes after the client's timeout), HTTP 429 with
  ``Retry-After``, 5xx answers, dropped connections;
* status callbacks are POSTed, signed like Twilio's (``X-Twilio-Signature``,
  book: Provider webhooks), to the ``StatusCallback`` of each message,
  automatically or on
  demand, in any order; inbound messages (``STOP``, ``YES``, free text) are
  injected, signed, into a webhook; with ``default_opt_out`` (the script's
  default) the simulator also answers ``STOP``/``START``/``HELP`` and refuses
  to send to an opted-out number (21610), as Twilio's default opt-out
  handling does.

The simulator never talks to anything but the loopback interface: it binds to
a loopback address and refuses to POST a webhook elsewhere. A public callback
URL (Odoo's ``web.base.url``) is reached through ``callback_base``: the request
goes to ``callback_base`` + the URL's path while the signature still covers
the public URL, as it does behind a TLS-terminating proxy.

Use it from Python::

    with TwilioSimulator("AC…", "token") as sim:
        requests.post(sim.messages_url, data={...}, auth=("AC…", "token"))
        assert len(sim.posts_to("+33612345678")) == 1

or as a script (``--help``); the script prints the base URL on its first line
and offers the control endpoints under ``/_simulator/`` (same basic auth):
``GET requests|webhooks|messages``; ``POST numbers`` (``number``,
``error_code``, ``http_status``, ``outcomes`` comma-separated,
``delivery_error_code``, ``clear``), ``POST faults`` (``latency``,
``hang_after_accept``, ``rate_limit_next``, ``per_second``, ``retry_after``,
``fail_next``, ``fail_status``, ``fail_code``, ``fail_created``,
``drop_next``, ``drop_created``, ``clear``), ``POST callbacks`` (``sid``, ``order``),
``POST inbound`` (``From``, ``To``, ``Body``, ``MessageSid``, ``url``,
``signature_url``, ``forge``, ``MessagingServiceSid``, ``OptOutType``) and
``POST reset``. Control requests are not recorded in ``requests``.

A development tool of the repository, not part of any addon. Standard library
only, no Odoo import: the signer and the segment counter are the product's own
pure tools (``sms_microfunnel_twilio/tools/twilio_signature.py``,
``sms_microfunnel/tools/sms_encoding.py``), imported through
:mod:`devtools.twilio_simulator.product`. Run it with the repository root on
``sys.path``: ``python3 -m devtools.twilio_simulator --help``.

Tests that mock the provider in-process call :meth:`TwilioSimulator.handle_request`
(no socket) with what the client would have sent over HTTP.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import copy
import hmac
import io
import ipaddress
import json
import logging
import queue
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from decimal import Decimal
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from http.client import responses as _REASONS
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from urllib.request import ProxyHandler, Request, build_opener

from .product import twilio_signature

try:
    from .product import sms_encoding as _sms_encoding
except ImportError:  # the main addon is not beside this folder
    _sms_encoding = None

__all__ = [
    "API_ERRORS",
    "API_VERSION",
    "DELIVERY_ERRORS",
    "TwilioSimulator",
    "count_segments",
    "main",
]

_logger = logging.getLogger(__name__)

#: Twilio's default opt-out handling (long codes and toll-free numbers): a
#: message made of one of these words only (any case) is answered by Twilio
#: itself, and after an opt-out keyword Twilio refuses to send from that
#: number to the sender (error 21610) until it texts an opt-in keyword.
DEFAULT_OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
DEFAULT_OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
DEFAULT_HELP_KEYWORDS = frozenset({"HELP", "INFO"})
DEFAULT_AUTO_REPLIES = {
    "STOP": "You have successfully been unsubscribed. You will not receive any "
    "more messages from this number. Reply START to resubscribe.",
    "START": "You have successfully been re-subscribed to messages from this "
    "number. Reply HELP for help. Reply STOP to unsubscribe. Msg&Data Rates "
    "May Apply.",
    "HELP": "Reply STOP to unsubscribe. Msg&Data Rates May Apply.",
}


def default_keyword(body):
    """``STOP``, ``START`` or ``HELP`` when Twilio's default opt-out handling
    answers ``body``, else None."""
    word = (body or "").strip().upper()
    for kind, words in (
        ("STOP", DEFAULT_OPT_OUT_KEYWORDS),
        ("START", DEFAULT_OPT_IN_KEYWORDS),
        ("HELP", DEFAULT_HELP_KEYWORDS),
    ):
        if word in words:
            return kind
    return None


API_VERSION = "2010-04-01"
MAX_BODY = 1600
MAX_REQUEST_BYTES = 1 << 20
# threads for requests that wait (latency, hang): as many concurrent waiting
# creates as a fleet of parallel senders makes
HTTP_WAITING_THREADS = 512

#: API errors: code -> (HTTP status, message template). Messages are short
#: paraphrases; ``{to}``, ``{from_}`` and ``{path}`` are filled in.
API_ERRORS = {
    20001: (400, "Invalid parameter: {detail}"),
    20003: (401, "Authenticate"),
    20004: (405, "Method not allowed"),
    20404: (404, "The requested resource {path} was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service unavailable"),
    21211: (400, "Invalid 'To' phone number: {to}"),
    21266: (400, "'To' and 'From' number cannot be the same: {to}"),
    21408: (400, "SMS to the region of the 'To' number {to} is not enabled"),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (400, "The 'From' number {from_} cannot send to this destination"),
    21608: (400, "The number {to} is unverified (trial account)"),
    21609: (400, "Invalid StatusCallback URL"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21611: (400, "The 'From' number has too many queued messages"),
    21612: (400, "The 'To' number {to} cannot be reached from {from_} via SMS"),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The message body exceeds the 1600 character limit."),
    21635: (400, "'To' number cannot be a landline"),
}

#: Delivery errors reported by status callbacks (``ErrorCode``).
DELIVERY_ERRORS = {
    30001: "Queue overflow",
    30002: "Account suspended",
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
    30034: "Message from an unregistered number",
    30036: "Validity period expired",
}

_DEFAULT_DELIVERY_ERROR = {"undelivered": 30003, "failed": 30008}
_CODE_FOR_STATUS = {401: 20003, 404: 20404, 405: 20004, 429: 20429, 503: 20503}

#: Ranks of message statuses: the resource keeps the highest rank it reached.
_RANK = {
    "accepted": 1,
    "scheduled": 1,
    "queued": 1,
    "sending": 2,
    "receiving": 2,
    "sent": 3,
    "received": 4,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "partially_delivered": 4,
    "read": 5,
}
_SENT_STATUSES = {"sent", "delivered", "undelivered", "read", "partially_delivered"}

_ACCOUNT = r"/2010-04-01/Accounts/(?P<account>[^/]+)"
_LIST_RE = re.compile(_ACCOUNT + r"/Messages\.json$")
_INSTANCE_RE = re.compile(_ACCOUNT + r"/Messages/(?P<sid>[^/]+)\.json$")
_CONTROL_PREFIX = "/_simulator/"

# --------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------

_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[]~|€\f")


def _fallback_segments(text):
    """Count segments like ``sms_encoding.analyze`` (used when it is absent)."""
    if not text:
        return 0
    if all(char in _GSM7_BASIC or char in _GSM7_EXTENSION for char in text):
        widths = [2 if char in _GSM7_EXTENSION else 1 for char in text]
        single, capacity = 160, 153
    else:
        widths = [2 if ord(char) > 0xFFFF else 1 for char in text]
        single, capacity = 70, 67
    if sum(widths) <= single:
        return 1
    segments, used = 1, 0
    for width in widths:
        if used + width > capacity:  # a pair is never split
            segments, used = segments + 1, 0
        used += width
    return segments


def count_segments(text):
    """Return the number of SMS segments of ``text`` (0 for the empty text)."""
    if _sms_encoding is not None:
        return _sms_encoding.analyze(text or "")["segments"]
    return _fallback_segments(text or "")


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _now():
    return datetime.now(timezone.utc)


def _rfc2822(moment):
    return format_datetime(moment.replace(microsecond=0)) if moment else None


def _new_sid(prefix="SM"):
    return prefix + uuid.uuid4().hex


def _is_loopback_host(host):
    """Tell whether ``host`` names the loopback interface (no DNS lookup)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _first(form, name):
    values = form.get(name) or [""]
    return values[0]


def _parse_basic_auth(header):
    """Return ``(user, password)`` from an ``Authorization`` header, or None."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _parse_filter_date(value):
    """Parse a ``DateSent`` filter: ``(date, None)`` or ``(None, datetime)``."""
    value = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return date.fromisoformat(value), None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            raise ValueError(value) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return None, moment.astimezone(timezone.utc)


def _int_or_none(value):
    if value in (None, ""):
        return None
    return int(value)


def _truthy(value):
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


class _ParsedRequest:
    """What :meth:`TwilioSimulator._handle` uses of an HTTP request handler,
    for a request parsed by :class:`_Connection` (answer buffered)."""

    def __init__(self, command, path, headers, body, arrived):
        self.command = command
        self.path = path
        self.headers = headers
        self.rfile = io.BytesIO(body)
        self.wfile = io.BytesIO()
        self.arrived = arrived
        self.close_connection = False
        self.status = None
        self.response_headers = []

    def send_response(self, status):
        self.status = status

    def send_header(self, name, value):
        self.response_headers.append((name, value))

    def end_headers(self):
        pass


_SERVER_HEADER = b"Server: TwilioSimulator/1.0\r\n"
_dates = [0, b""]


def _date_header():
    """The ``Date`` header, formatted once per second."""
    now = int(time.time())
    if _dates[0] != now:
        _dates[:] = [now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode()]
    return _dates[1]


class _BadRequest(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One client connection of the simulator's HTTP/1.1 server.

    An event loop serves every connection (as a real server's does, without a
    thread per connection): requests are parsed as they arrive, answered in
    order on keep-alive connections, each answer (status line, headers, body)
    in one write on a TCP_NODELAY socket. A request that may wait (latency,
    hang, webhooks sent by a control endpoint) is handled in a worker thread;
    the others in the loop, at once.
    """

    MAX_HEAD = 65536

    def __init__(self, simulator, loop, executor):
        self.simulator = simulator
        self.loop = loop
        self.executor = executor
        self.transport = None
        self.socket = None
        self.buffer = bytearray()
        self.arrived = None
        self.busy = False
        self.closing = False

    def connection_made(self, transport):
        self.transport = transport
        self.socket = transport.get_extra_info("socket")
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.simulator._track_connection(self.socket, True, self)

    def connection_lost(self, exc):
        self.closing = True
        self.simulator._track_connection(self.socket, False, self)

    def data_received(self, data):
        if self.arrived is None:
            # a request is recorded at the time its first bytes arrived,
            # before its headers and body are read and parsed
            self.arrived = (time.monotonic(), time.time())
        self.buffer += data
        self._serve()

    def _serve(self):
        while not self.busy and not self.closing and self.buffer:
            try:
                request = self._parse()
            except _BadRequest as error:
                self._write(400, [], str(error).encode(), close=True)
                return
            if request is None:
                return  # incomplete: wait for more
            if self.simulator._may_wait(request):
                self.busy = True
                future = self.loop.run_in_executor(
                    self.executor, self.simulator._handle, request
                )
                future.add_done_callback(lambda f, r=request: self._handled(r, f))
                return
            self.simulator._handle(request)
            self._answer(request)

    def _handled(self, request, future):
        self.busy = False
        if future.cancelled() or future.exception() is not None:
            request.status = None  # stopped, or a bug: no answer
        self._answer(request)
        self._serve()

    def _parse(self):
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > self.MAX_HEAD:
                raise _BadRequest("request head too large")
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        try:
            command, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(f"bad request line {lines[0][:100]!r}") from None
        if not version.startswith("HTTP/1."):
            raise _BadRequest(f"unsupported version {version[:20]!r}")
        pairs = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(f"bad header line {line[:100]!r}")
            pairs[name] = value.strip()
        headers = _Headers(pairs)
        if headers.get("Transfer-Encoding"):
            raise _BadRequest("chunked requests are not supported")
        try:
            length = int(headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        start = end + 4
        if not 0 <= length <= MAX_REQUEST_BYTES:
            body = b""  # answered 413 by _read_body; the connection closes
            self.buffer = bytearray()
        elif len(buffer) - start < length:
            return None
        else:
            body = bytes(buffer[start : start + length])
            del buffer[: start + length]
        connection = (headers.get("Connection") or "").lower()
        request = _ParsedRequest(command, target, headers, body, self.arrived)
        request.close_connection = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive"
        )
        self.arrived = (time.monotonic(), time.time()) if self.buffer else None
        return request

    def _answer(self, request):
        if request.status is None:  # dropped: no answer at all
            self.closing = True
            self.transport.close()
            return
        self._write(
            request.status,
            request.response_headers,
            request.wfile.getvalue(),
            close=request.close_connection,
        )

    def _write(self, status, headers, body, close=False):
        if self.transport.is_closing():
            return
        reason = _REASONS.get(status, "")
        head = [f"HTTP/1.1 {status} {reason}\r\n".encode(), _SERVER_HEADER]
        head.append(_date_header())
        head.extend(f"{name}: {value}\r\n".encode() for name, value in headers)
        if close:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        head.append(body)
        self.transport.write(b"".join(head))  # one write: one segment
        if close:
            self.closing = True
            self.transport.close()


def _request_kind(method, instance, listing):
    """``create``, ``list``, ``fetch`` or ``other`` for an API request."""
    if listing and method == "POST":
        return "create"
    if listing and method == "GET":
        return "list"
    if instance and method == "GET":
        return "fetch"
    return "other"


class _InProcessHandler:
    """What :meth:`TwilioSimulator._handle` uses of an HTTP request handler,
    for a request handed over in-process (:meth:`TwilioSimulator.handle_request`)."""

    def __init__(self, method, url, headers, body):
        parts = urlsplit(url)
        self.command = method.upper()
        self.path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.headers = _Headers(headers)
        if body and self.headers.get("Content-Length") is None:
            self.headers["Content-Length"] = str(len(body))
        self.rfile = io.BytesIO(body)
        self.wfile = io.BytesIO()
        self.arrived = (time.monotonic(), time.time())
        self.close_connection = False
        self.status = None
        self.response_headers = {}

    def send_response(self, status):
        self.status = status

    def send_header(self, name, value):
        self.response_headers[name] = value

    def end_headers(self):
        pass

    def answer(self):
        if self.status is None:  # dropped: no answer at all
            return None
        return self.status, dict(self.response_headers), self.wfile.getvalue()


class _Headers(dict):
    """Case-insensitive ``get`` over request headers (as http.client's)."""

    def __init__(self, headers):
        super().__init__((str(k), str(v)) for k, v in dict(headers).items())
        self._lower = {k.lower(): k for k in self}

    def get(self, name, default=None):
        key = self._lower.get(name.lower())
        return self[key] if key is not None else default

    def __setitem__(self, name, value):
        super().__setitem__(name, value)
        self._lower = {k.lower(): k for k in self}


class TwilioSimulator:
    """A Twilio Messages API and webhook sender on loopback (see module doc).

    :param str account_sid: the account SID expected in paths and basic auth
    :param str auth_token: the Auth Token (basic auth password, webhook key)
    :param str host: a loopback address to bind to
    :param int port: the port, 0 for any free one
    :param str callback_base: when set, webhooks go to this base URL + the
        path and query of their URL (signatures still cover their URL)
    :param str inbound_url: default webhook URL of ``inject_inbound``
    :param bool auto_callbacks: send each message's status callbacks in a
        background thread, ``callback_delay`` seconds after its creation and
        ``callback_interval`` seconds apart
    :param float webhook_timeout: timeout of each webhook POST
    :param str service_number: the sender of Messaging Service messages
    :param default_outcomes: statuses reported after creation when the
        destination has no configuration
    """

    PRICE_PER_SEGMENT = Decimal("0.0790")
    PRICE_UNIT = "USD"

    def __init__(
        self,
        account_sid,
        auth_token,
        host="127.0.0.1",
        port=0,
        *,
        callback_base=None,
        inbound_url=None,
        auto_callbacks=False,
        callback_delay=0.0,
        callback_interval=0.05,
        webhook_timeout=5.0,
        service_number="+15005550006",
        default_outcomes=("sent", "delivered"),
        default_opt_out=False,
    ):
        if not account_sid or not auth_token:
            raise ValueError("account_sid and auth_token are required")
        if not _is_loopback_host(host):
            raise ValueError(f"the simulator only binds to loopback, not {host!r}")
        if callback_base is not None:
            self._check_loopback(callback_base)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.host = host
        self.port = port
        self.callback_base = callback_base
        self.inbound_url = inbound_url
        # answer STOP/START/HELP and block opted-out senders, as Twilio does
        self.default_opt_out = default_opt_out
        self._opted_out = set()  # (recipient, our number) pairs
        self.auto_callbacks = auto_callbacks
        self.callback_delay = callback_delay
        self.callback_interval = callback_interval
        self.webhook_timeout = webhook_timeout
        self.service_number = service_number
        self.default_outcomes = tuple(default_outcomes)
        #: None (configured order), "reversed", or a sequence of statuses
        self.callback_order = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._stop.set()
        self._server = None
        self._threads = []
        self._connections = set()  # client sockets
        self._protocols = set()
        self._loop = self._executor = None
        self._queue = queue.Queue()
        # proxies from the environment are ignored: loopback only
        self._opener = build_opener(ProxyHandler({}))
        self._reset_state()

    # ------------------------------------------------------------------
    # Life cycle
    # ------------------------------------------------------------------

    def start(self):
        """Bind and serve in a background thread; return ``self``."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the simulator is already running")
            loop = asyncio.new_event_loop()
            # requests that may wait (latency, hangs, webhooks of a control
            # endpoint) each take a thread while they wait
            executor = ThreadPoolExecutor(
                max_workers=HTTP_WAITING_THREADS,
                thread_name_prefix="twilio-simulator-request",
            )
            try:
                server = loop.run_until_complete(
                    loop.create_server(
                        lambda: _Connection(self, loop, executor),
                        self.host,
                        self.port,
                        # a listen backlog like a real server's: a burst of
                        # new keep-alive connections is not reset
                        backlog=128,
                        reuse_address=True,
                    )
                )
            except BaseException:
                executor.shutdown(wait=False)
                loop.close()
                raise
            self._server = server
            self._loop = loop
            self._executor = executor
            self.port = server.sockets[0].getsockname()[1]
            self._stop = stop = threading.Event()
            self._queue = queue.Queue()
            self._threads = [
                threading.Thread(
                    target=loop.run_forever,
                    name="twilio-simulator-http",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._callback_worker,
                    args=(stop, self._queue),
                    name="twilio-simulator-callbacks",
                    daemon=True,
                ),
            ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout=2.0):
        """Stop serving and sending; waits at most about ``timeout`` seconds.

        Requests being delayed (latency, hang) are woken up, idle keep-alive
        connections are closed. Calling it twice is harmless.
        """
        with self._lock:
            server, self._server = self._server, None
            threads, self._threads = self._threads, []
            loop, executor = self._loop, self._executor
            protocols = list(self._protocols)
        if server is None:
            return
        self._stop.set()

        def close():
            server.close()
            for protocol in protocols:
                protocol.closing = True
                protocol.transport.abort()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(close)
        executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if not loop.is_running():
            loop.run_until_complete(server.wait_closed())
            loop.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def running(self):
        return self._server is not None

    @property
    def base_url(self):
        """``http://host:port``, to use instead of ``https://api.twilio.com``."""
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def messages_url(self):
        """The full URL of this account's Messages list/create endpoint."""
        return (
            f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        )

    def message_url(self, sid):
        """The full URL of one message resource."""
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"
        return self.base_url + path

    def _track_connection(self, connection, add, protocol=None):
        with self._lock:
            if add:
                self._connections.add(connection)
                self._protocols.add(protocol)
            else:
                self._connections.discard(connection)
                self._protocols.discard(protocol)

    def _may_wait(self, handler):
        """True when answering ``handler`` may block (see :class:`_Connection`):
        a message creation while a latency is set, a control request."""
        path = handler.path
        if path.startswith(_CONTROL_PREFIX):
            return True
        return handler.command == "POST" and self._latency is not None

    # ------------------------------------------------------------------
    # Configuration
    # ------------------------------------------------------------------

    def _reset_state(self):
        with self._lock:
            self._requests = []
            self._webhooks = []
            self._messages = {}
            self._numbers = {}
            self._opted_out = set()
            self._clear_faults()

    def reset(self):
        """Forget requests, webhooks, messages, number settings and faults."""
        self._reset_state()

    def clear_requests(self):
        """Forget the recorded requests and webhooks only."""
        with self._lock:
            self._requests = []
            self._webhooks = []

    def _clear_faults(self):
        with self._lock:
            self._latency = None  # (seconds, hang_after_accept, remaining)
            self._rate_next = 0
            self._rate_per_second = None
            self._rate_window = deque()
            self._retry_after = 1
            self._fail = None  # (remaining, http_status, error_code, created)
            self._drop = None  # (remaining, created)

    def clear_faults(self):
        """Remove every latency, rate limit, failure and drop setting."""
        self._clear_faults()

    def configure_number(
        self,
        number,
        error_code=None,
        http_status=None,
        outcomes=None,
        *,
        delivery_error_code=None,
        error_message=None,
    ):
        """Set how messages to ``number`` (``To``, as sent) are handled.

        :param int error_code: a Twilio API error (21211 invalid number,
            21610 unsubscribed, 21614 not mobile…) makes creation fail with
            ``http_status`` (400 by default); a delivery error (30000 and
            up) is treated as ``delivery_error_code``
        :param int http_status: the HTTP status of the failure; alone, a
            status with an obvious code (401, 404, 429, 5xx)
        :param outcomes: statuses the status callbacks report, in order, e.g.
            ``("sent", "undelivered")`` or ``("delivered", "sent")``;
            default ``("sent", "undelivered")`` with a delivery error, else
            ``default_outcomes``
        :param int delivery_error_code: ``ErrorCode`` of ``undelivered`` and
            ``failed`` callbacks (default 30003 and 30008)
        :param str error_message: replaces the API error's message
        """
        if error_code is not None and error_code >= 30000:
            delivery_error_code = delivery_error_code or error_code
            error_code = None
        api_error = None
        if error_code is not None or http_status is not None:
            code = error_code
            if code is None:
                code = _CODE_FOR_STATUS.get(http_status)
                if code is None and http_status >= 500:
                    code = 20500
                if code is None:
                    raise ValueError(f"give the error_code of HTTP {http_status}")
            status = http_status or API_ERRORS.get(code, (400, ""))[0]
            api_error = (status, code, error_message)
        if outcomes is None:
            outcomes = (
                ("sent", "undelivered")
                if delivery_error_code
                else self.default_outcomes
            )
        if isinstance(outcomes, str):
            outcomes = (outcomes,)
        with self._lock:
            self._numbers[number] = {
                "api_error": api_error,
                "outcomes": tuple(outcomes),
                "delivery_error_code": delivery_error_code,
            }

    def clear_number(self, number):
        """Remove the configuration of ``number``."""
        with self._lock:
            self._numbers.pop(number, None)

    def set_latency(self, seconds, hang_after_accept=False, next_n=None):
        """Delay the answers to message creations.

        :param float seconds: the delay (0 removes it)
        :param bool hang_after_accept: create the message first, then wait
            before answering (a client timing out meanwhile does not know the
            message exists); otherwise wait, then handle the request
        :param int next_n: only the next N creations (default: all)
        """
        with self._lock:
            self._latency = (seconds, hang_after_accept, next_n) if seconds else None

    def rate_limit(self, next_n=0, per_second=None, retry_after=1):
        """Answer creations with HTTP 429 (code 20429) and ``Retry-After``.

        :param int next_n: refuse the next N creations
        :param int per_second: also refuse creations beyond this many in any
            second (None: no sustained limit)
        :param int retry_after: the ``Retry-After`` header, in seconds
        """
        with self._lock:
            self._rate_next = next_n
            self._rate_per_second = per_second
            self._rate_window = deque()
            self._retry_after = retry_after

    def fail_next(self, n=1, http_status=500, error_code=None, created=False):
        """Answer the next ``n`` creations with an error.

        :param int http_status: the HTTP status (default 500)
        :param int error_code: the Twilio code (default from the status)
        :param bool created: create the message anyway (an ambiguous outcome)
        """
        if error_code is None:
            error_code = _CODE_FOR_STATUS.get(http_status, 20500)
        with self._lock:
            self._fail = (n, http_status, error_code, created) if n else None

    def drop_next(self, n=1, created=False):
        """Close the connection of the next ``n`` creations without answering.

        :param bool created: create the message before closing
        """
        with self._lock:
            self._drop = (n, created) if n else None

    # ------------------------------------------------------------------
    # Inspection
    # ------------------------------------------------------------------

    @property
    def requests(self):
        """Copies of the requests received, oldest first.

        Each is a dict: ``id``, ``time`` (``time.monotonic()``), ``wall_time``
        (``time.time()``), ``method``, ``path``, ``query`` and ``form``
        (name -> list of values), ``headers``, ``body``, ``auth_ok``,
        ``kind`` (``create``, ``fetch``, ``list`` or ``other``), and once
        answered ``status`` (None for a dropped connection) and ``sid``.
        """
        with self._lock:
            return copy.deepcopy(self._requests)

    def creates(self):
        """The recorded message creation requests (any outcome)."""
        return [entry for entry in self.requests if entry["kind"] == "create"]

    def posts_to(self, number):
        """The recorded creation requests whose ``To`` is ``number``."""
        return [e for e in self.creates() if number in e["form"].get("To", [])]

    @property
    def webhooks(self):
        """Copies of the webhooks sent (status callbacks and inbound).

        Each is a dict: ``kind`` (``status`` or ``inbound``), ``sid``,
        ``status`` (the reported status), ``url`` (as given), ``target``
        (where it was sent), ``signature_url``, ``params``, ``signature``,
        ``headers``, ``response_status``, ``response_text``, ``error``,
        ``time`` and ``wall_time``.
        """
        with self._lock:
            return copy.deepcopy(self._webhooks)

    @property
    def messages(self):
        """Copies of the message resources, oldest first."""
        with self._lock:
            return [copy.deepcopy(m["resource"]) for m in self._messages.values()]

    def messages_to(self, number):
        """The message resources whose ``to`` is ``number``."""
        return [m for m in self.messages if m["to"] == number]

    def get_message(self, sid):
        """A copy of the resource of message ``sid``, or None."""
        with self._lock:
            record = self._messages.get(sid)
            return copy.deepcopy(record["resource"]) if record else None

    def wait_until(self, predicate, timeout=5.0, interval=0.02):
        """Poll ``predicate()`` until it is truthy; return its value.

        :raises TimeoutError: after ``timeout`` seconds
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError("condition not met in time")
            time.sleep(interval)

    # ------------------------------------------------------------------
    # HTTP handling
    # ------------------------------------------------------------------

    def handle_request(self, method, url, headers=None, body=b""):
        """Answer one API request in-process, without a socket.

        ``url`` is the request's URL or path, ``headers`` a mapping, ``body``
        bytes or text. Returns ``(status, headers, body)``, or None when the
        simulator drops the connection without an answer (``drop_next``): the
        caller raises its connection error. The request is recorded and its
        faults, errors and messages are the same as over HTTP; latencies are
        slept in the calling thread (a client's timeout does not cut them
        short: test timeouts over the real server).
        """
        handler = _InProcessHandler(method, url, headers or {}, body or b"")
        self._handle(handler, stop=threading.Event())
        return handler.answer()

    def _handle(self, handler, stop=None):
        stop = stop or self._stop
        arrived = getattr(handler, "arrived", None) or (time.monotonic(), time.time())
        parts = urlsplit(handler.path)
        text = self._read_body(handler)
        if text is None:
            return
        form, query = self._parse_params(handler, parts, text)
        auth_ok = self._authenticated(handler)
        if parts.path.startswith(_CONTROL_PREFIX):
            self._handle_control(handler, parts.path, auth_ok, form)
            return
        instance = _INSTANCE_RE.match(parts.path)
        listing = _LIST_RE.match(parts.path)
        kind = _request_kind(handler.command, instance, listing)
        entry = self._record_request(
            handler, arrived, parts, query, form, text, auth_ok, kind
        )
        context = {"path": parts.path}
        if not auth_ok:
            self._error(
                handler,
                entry,
                20003,
                context,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
            return
        match = instance or listing
        if match is None or match["account"] != self.account_sid:
            self._error(handler, entry, 20404, context)
            return
        self._route(handler, entry, kind, match, form, query, stop, context)

    def _read_body(self, handler):
        """The request body as text, or None after answering 413."""
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            handler.close_connection = True
            self._respond(handler, None, 413, {"message": "Bad Content-Length"})
            return None
        raw = handler.rfile.read(length) if length else b""
        return raw.decode("utf-8", "replace")

    @staticmethod
    def _parse_params(handler, parts, text):
        """``(form, query)``: the form body and the query string, as lists."""
        form = {}
        content_type = handler.headers.get("Content-Type", "")
        if handler.command != "GET" and (
            not content_type or "x-www-form-urlencoded" in content_type
        ):
            for name, value in parse_qsl(text, keep_blank_values=True):
                form.setdefault(name, []).append(value)
        query = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        return form, query

    def _authenticated(self, handler):
        """True when the basic auth is this account's SID and Auth Token."""
        credentials = _parse_basic_auth(handler.headers.get("Authorization"))
        return credentials is not None and (
            hmac.compare_digest(credentials[0].encode(), self.account_sid.encode())
            and hmac.compare_digest(credentials[1].encode(), self.auth_token.encode())
        )

    def _record_request(
        self, handler, arrived, parts, query, form, text, auth_ok, kind
    ):
        """Append the request to ``requests`` and return its entry."""
        entry = {
            "time": arrived[0],
            "wall_time": arrived[1],
            "method": handler.command,
            "path": parts.path,
            "query": query,
            "form": form,
            "headers": dict(handler.headers.items()),
            "body": text,
            "auth_ok": auth_ok,
            "kind": kind,
            "status": None,
            "sid": None,
        }
        with self._lock:
            entry["id"] = len(self._requests) + 1
            self._requests.append(entry)
        return entry

    def _route(self, handler, entry, kind, match, form, query, stop, context):
        """Create, list or fetch messages; any other method is refused."""
        if kind == "create":
            self._create(handler, entry, form, stop)
        elif kind == "list":
            self._list(handler, entry, query)
        elif kind == "fetch":
            record = self.get_message(match["sid"])
            if record is None:
                self._error(handler, entry, 20404, context)
            else:
                self._respond(handler, entry, 200, record)
        else:
            self._error(handler, entry, 20004, context)

    def _respond(self, handler, entry, status, payload, headers=None):
        body = json.dumps(payload).encode("utf-8")
        if entry is not None:
            with self._lock:
                entry["status"] = status
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Twilio-Request-Id", _new_sid("RQ"))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()  # headers go to wfile's buffer, not out yet
            handler.wfile.write(body)
            handler.wfile.flush()  # one write: status line, headers and body
        except OSError:  # the client is gone (e.g. it timed out)
            handler.close_connection = True

    def _error(
        self, handler, entry, code, context, status=None, message=None, headers=None
    ):
        default_status, template = API_ERRORS.get(code, (400, "Error {code}"))
        values = {"to": "", "from_": "", "path": "", "detail": "", "code": code}
        values.update(context)
        payload = {
            "code": code,
            "message": message or template.format(**values),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status or default_status,
        }
        self._respond(handler, entry, payload["status"], payload, headers)

    def _take_fault(self):
        """Consume the faults applying to one creation (under the lock)."""
        with self._lock:
            latency = self._latency
            if latency:
                seconds, hang, remaining = latency
                if remaining is not None:
                    remaining -= 1
                    self._latency = (seconds, hang, remaining) if remaining else None
                latency = (seconds, hang)
            fault = None
            now = time.monotonic()
            window = self._rate_window
            while window and now - window[0] >= 1.0:
                window.popleft()
            if self._rate_next > 0:
                self._rate_next -= 1
                fault = ("rate",)
            elif self._rate_per_second and len(window) >= self._rate_per_second:
                fault = ("rate",)
            elif self._fail:
                remaining, http_status, error_code, created = self._fail
                self._fail = (remaining - 1, *self._fail[1:]) if remaining > 1 else None
                fault = ("fail", http_status, error_code, created)
            elif self._drop:
                remaining, created = self._drop
                self._drop = (remaining - 1, created) if remaining > 1 else None
                fault = ("drop", created)
            if fault is None or fault[0] != "rate":
                window.append(now)
            return latency, fault, self._retry_after

    def _create(self, handler, entry, form, stop):
        latency, fault, retry_after = self._take_fault()
        if latency and not latency[1] and stop.wait(latency[0]):
            handler.close_connection = True  # stopped meanwhile: no answer
            return
        to = _first(form, "To").strip()
        from_ = _first(form, "From").strip()
        context = {"to": to, "from_": from_, "path": entry["path"]}
        if fault and fault[0] == "rate":
            self._error(
                handler,
                entry,
                20429,
                context,
                headers={"Retry-After": str(retry_after)},
            )
            return
        created = fault is not None and fault[-1] is True
        resource = None
        if fault is None or created:
            error = self._validate(form, to, from_)
            if error is not None:
                status, code, message = error
                headers = {"Retry-After": str(retry_after)} if status == 429 else None
                self._error(handler, entry, code, context, status, message, headers)
                return
            resource = self._store_message(form, to, from_)
            with self._lock:
                entry["sid"] = resource["sid"]
        if fault and fault[0] == "drop":
            handler.close_connection = True
            return
        if latency and latency[1] and stop.wait(latency[0]):
            handler.close_connection = True  # stopped meanwhile: no answer
            return
        if fault and fault[0] == "fail":
            self._error(handler, entry, fault[2], context, fault[1])
            return
        self._respond(handler, entry, 201, resource)

    def _validate(self, form, to, from_):
        """Return ``(http_status, code, message)`` for a refused creation."""
        service = _first(form, "MessagingServiceSid").strip()
        body = _first(form, "Body")
        callback = _first(form, "StatusCallback")
        if not to:
            return 400, 21604, None
        if not from_ and not service:
            return 400, 21603, None
        if not body and not form.get("MediaUrl"):
            return 400, 21602, None
        if len(body) > MAX_BODY:
            return 400, 21617, None
        if callback and not re.match(r"https?://[^/\s?#]+", callback, re.IGNORECASE):
            return 400, 21609, None
        if from_ and from_ == to:
            return 400, 21266, None
        with self._lock:
            if (to, from_) in self._opted_out:
                return 400, 21610, None
            config = self._numbers.get(to)
        if config and config["api_error"]:
            return config["api_error"]
        return None

    def _store_message(self, form, to, from_):
        service = _first(form, "MessagingServiceSid").strip() or None
        body = _first(form, "Body")
        now = _now()
        stamp = _rfc2822(now)
        sid = _new_sid()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": stamp,
            "date_sent": None,
            "date_updated": stamp,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_ or None,
            "messaging_service_sid": service,
            "num_media": str(len(form.get("MediaUrl", []))),
            "num_segments": str(max(1, count_segments(body))),
            "price": None,
            "price_unit": self.PRICE_UNIT,
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {
                "media": f"{uri}/Media.json",
                "feedback": f"{uri}/Feedback.json",
            },
            "to": to,
            "uri": f"{uri}.json",
        }
        with self._lock:
            config = self._numbers.get(to) or {}
            outcomes = config.get("outcomes", self.default_outcomes)
            delivery_code = config.get("delivery_error_code")
            events = [self._new_event(status, delivery_code) for status in outcomes]
            self._messages[sid] = {
                "resource": resource,
                "created": now,
                "sent": None,
                "status_callback": _first(form, "StatusCallback") or None,
                "events": events,
            }
            auto = self.auto_callbacks and events
            if auto:
                self._queue.put((time.monotonic() + self.callback_delay, sid))
        # a copy (the stored one is the simulator's): one nested dict only
        return {**resource, "subresource_uris": dict(resource["subresource_uris"])}

    @staticmethod
    def _new_event(status, delivery_code=None):
        error_code = None
        if status in _DEFAULT_DELIVERY_ERROR:
            error_code = delivery_code or _DEFAULT_DELIVERY_ERROR[status]
        return {
            "status": status,
            "error_code": error_code,
            "token": str(uuid.uuid4()),
            "done": False,
        }

    def _list(self, handler, entry, query):
        filters = [
            (name, query[name][0])
            for name in ("To", "From", "DateSent", "DateSent>", "DateSent<")
            if name in query
        ]
        try:
            page_size = min(1000, max(1, int(query.get("PageSize", ["50"])[0])))
            page = max(0, int(query.get("Page", ["0"])[0]))
            bounds = [
                (name, _parse_filter_date(value))
                for name, value in filters
                if name.startswith("DateSent")
            ]
        except ValueError as error:
            self._error(handler, entry, 20001, {"detail": str(error)})
            return
        with self._lock:
            records = list(self._messages.values())
        matches = []
        for record in reversed(records):  # newest first, like Twilio
            resource = record["resource"]
            if "To" in query and resource["to"] != query["To"][0]:
                continue
            if "From" in query and resource["from"] != query["From"][0]:
                continue
            # a message not sent yet is matched on its creation time
            moment = (record["sent"] or record["created"]).replace(microsecond=0)
            if all(self._date_matches(moment, *bound) for bound in bounds):
                matches.append(copy.deepcopy(resource))
        start = page * page_size
        items = matches[start : start + page_size]
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

        def page_uri(number):
            params = [*filters, ("PageSize", page_size), ("Page", number)]
            return f"{base}?{urlencode(params)}"

        payload = {
            "messages": items,
            "start": start,
            "end": start + len(items) - 1 if items else start,
            "page": page,
            "page_size": page_size,
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": (
                page_uri(page + 1) if start + page_size < len(matches) else None
            ),
            "previous_page_uri": page_uri(page - 1) if page else None,
        }
        self._respond(handler, entry, 200, payload)

    @staticmethod
    def _date_matches(moment, name, bound):
        day, instant = bound
        if day is not None:
            value, limit = moment.date(), day
        else:
            value, limit = moment, instant
            if name == "DateSent":
                value, limit = moment.date(), instant.date()
        if name == "DateSent>":
            return value >= limit
        if name == "DateSent<":
            return value <= limit
        return value == limit

    # ------------------------------------------------------------------
    # Status callbacks
    # ------------------------------------------------------------------

    def _callback_worker(self, stop, jobs):
        while not stop.is_set():
            try:
                due, sid = jobs.get(timeout=0.1)
            except queue.Empty:
                continue
            if stop.wait(max(0.0, due - time.monotonic())):
                break
            try:
                self._deliver(sid, None, self.callback_interval, stop)
            except Exception:
                _logger.exception("Twilio simulator: callbacks of %s failed", sid)

    def send_callbacks(self, sid=None, order=None, interval=0.0):
        """Send status callbacks now; return one result dict per callback.

        :param str sid: one message (default: every message with callbacks
            still to send, oldest first)
        :param order: None (the configured outcomes in ``callback_order``),
            ``"reversed"``, or a sequence of statuses: each is sent even if it
            was sent before (a replay, same idempotency token) or was not
            configured (a new event)
        :param float interval: pause between two callbacks of one message
        :raises KeyError: for an unknown ``sid``
        """
        with self._lock:
            if sid is not None:
                if sid not in self._messages:
                    raise KeyError(sid)
                sids = [sid]
            else:
                sids = [
                    key
                    for key, record in self._messages.items()
                    if any(not event["done"] for event in record["events"])
                ]
        results = []
        for key in sids:
            results.extend(self._deliver(key, order, interval, None))
        return results

    def send_status(self, sid, status, error_code=None, extra=None):
        """Send one status callback for ``sid`` with any status; return it.

        :param int error_code: the ``ErrorCode`` (default for ``undelivered``
            and ``failed``: 30003 and 30008)
        :param dict extra: more parameters (signed too); a None value removes
            a parameter
        """
        with self._lock:
            if sid not in self._messages:
                raise KeyError(sid)
            event = self._new_event(status, error_code)
            if error_code is not None:
                event["error_code"] = error_code
            event["done"] = True
            self._messages[sid]["events"].append(event)
        return self._emit(sid, event, extra)

    def _select_events(self, record, order):
        events = record["events"]
        order = self.callback_order if order is None else order
        if order is None or order == "reversed":
            selected = [event for event in events if not event["done"]]
            if order == "reversed":
                selected.reverse()
        else:
            selected = []
            for status in [order] if isinstance(order, str) else order:
                candidates = [e for e in events if e["status"] == status]
                pending = [e for e in candidates if not e["done"]]
                event = (pending or candidates or [None])[0]
                if event is None:
                    event = self._new_event(status)
                    events.append(event)
                selected.append(event)
        for event in selected:
            event["done"] = True
        return selected

    def _deliver(self, sid, order, interval, stop):
        with self._lock:
            record = self._messages.get(sid)
            if record is None:
                return []
            events = self._select_events(record, order)
        results = []
        for index, event in enumerate(events):
            if index and interval:
                if stop is None:
                    time.sleep(interval)
                elif stop.wait(interval):
                    break
            results.append(self._emit(sid, event))
        return results

    def _emit(self, sid, event, extra=None):
        """Apply ``event`` to the resource and POST its callback, if any."""
        status = event["status"]
        with self._lock:
            record = self._messages[sid]
            resource = record["resource"]
            now = _now()
            if _RANK.get(status, 0) > _RANK.get(resource["status"], 0):
                resource["status"] = status
                resource["date_updated"] = _rfc2822(now)
                if resource["from"] is None and _RANK.get(status, 0) >= 2:
                    resource["from"] = self.service_number
                if status in _SENT_STATUSES and record["sent"] is None:
                    record["sent"] = now
                    resource["date_sent"] = _rfc2822(now)
                    price = self.PRICE_PER_SEGMENT * int(resource["num_segments"])
                    resource["price"] = f"-{price:.5f}"
                if event["error_code"]:
                    resource["error_code"] = event["error_code"]
                    resource["error_message"] = DELIVERY_ERRORS.get(
                        event["error_code"], "Delivery error"
                    )
            url = record["status_callback"]
            params = {
                "SmsSid": sid,
                "SmsStatus": status,
                "MessageStatus": status,
                "To": resource["to"],
                "From": resource["from"] or self.service_number,
                "MessageSid": sid,
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
            }
            if resource["messaging_service_sid"]:
                params["MessagingServiceSid"] = resource["messaging_service_sid"]
            if event["error_code"]:
                params["ErrorCode"] = str(event["error_code"])
            if status == "delivered":
                params["RawDlrDoneDate"] = now.strftime("%y%m%d%H%M")
        for name, value in (extra or {}).items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = str(value)
        result = {"sid": sid, "status": status, "url": url, "response_status": None}
        if not url:
            return result
        webhook = self._post_webhook(
            "status",
            url,
            params,
            headers={"I-Twilio-Idempotency-Token": event["token"]},
            sid=sid,
            status=status,
        )
        result.update(
            response_status=webhook["response_status"], error=webhook["error"]
        )
        return result

    # ------------------------------------------------------------------
    # Webhooks
    # ------------------------------------------------------------------

    @staticmethod
    def _check_loopback(url):
        host = urlsplit(url).hostname
        if not _is_loopback_host(host):
            raise ValueError(f"refusing to send to a non-loopback host: {host!r}")

    def _target(self, url):
        """Where a webhook for ``url`` goes (``callback_base`` applied)."""
        parts = urlsplit(url)
        if self.callback_base:
            base = urlsplit(self.callback_base)
            path = base.path.rstrip("/") + (parts.path or "/")
            target = urlunsplit((base.scheme, base.netloc, path, parts.query, ""))
        else:
            target = url.split("#", 1)[0]
        self._check_loopback(target)
        return target

    def _post_webhook(
        self,
        kind,
        url,
        params,
        *,
        signature_url=None,
        forge=False,
        headers=None,
        sid=None,
        status=None,
        raise_errors=False,
    ):
        """POST a signed form; record and return the webhook entry."""
        signed_url = signature_url or url.split("#", 1)[0]
        key = ("forged-" + self.auth_token) if forge else self.auth_token
        signature = twilio_signature.compute_signature(key, signed_url, params)
        all_headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
            "User-Agent": "TwilioProxy/1.1",
            "Accept": "*/*",
            **(headers or {}),
        }
        entry = {
            "kind": kind,
            "sid": sid,
            "status": status,
            "url": url,
            "target": None,
            "signature_url": signed_url,
            "params": dict(params),
            "signature": signature,
            "headers": all_headers,
            "response_status": None,
            "response_text": None,
            "error": None,
            "time": time.monotonic(),
            "wall_time": time.time(),
        }
        failure = None
        try:
            entry["target"] = target = self._target(url)
            request = Request(
                target,
                data=urlencode(list(params.items())).encode("utf-8"),
                headers=all_headers,
                method="POST",
            )
            try:
                with self._opener.open(request, timeout=self.webhook_timeout) as reply:
                    entry["response_status"] = reply.status
                    entry["response_text"] = reply.read().decode("utf-8", "replace")
            except HTTPError as error:
                with error:
                    entry["response_status"] = error.code
                    entry["response_text"] = error.read().decode("utf-8", "replace")
        except (ValueError, URLError, OSError) as error:
            entry["error"] = f"{type(error).__name__}: {error}"
            failure = error
        with self._lock:
            self._webhooks.append(entry)
        if failure is not None and raise_errors:
            raise failure
        if failure is not None:
            _logger.warning("Twilio simulator: webhook %s failed: %s", kind, failure)
        return copy.deepcopy(entry)

    def inject_inbound(
        self,
        webhook_url=None,
        from_number=None,
        to_number=None,
        body="",
        message_sid=None,
        extra=None,
        *,
        messaging_service_sid=None,
        opt_out_type=None,
        signature_url=None,
        forge=False,
    ):
        """POST a signed incoming message to a webhook, like Twilio does.

        :param str webhook_url: default ``inbound_url``
        :param str message_sid: default a new ``SM…`` SID (give the same one
            twice to test de-duplication)
        :param dict extra: more parameters (signed too); a None value removes
            a parameter
        :param str messaging_service_sid: adds ``MessagingServiceSid``
        :param str opt_out_type: adds ``OptOutType`` (``STOP``, ``START``,
            ``HELP``), as with Advanced Opt-Out
        :param str signature_url: sign this URL instead of ``webhook_url``
        :param bool forge: sign with a wrong token
        :return: ``(status_code, response_text)``
        :raises ValueError: for a non-loopback target
        :raises OSError: when the webhook cannot be reached
        """
        webhook_url = webhook_url or self.inbound_url
        if not webhook_url or not from_number or not to_number:
            raise ValueError("webhook_url, from_number and to_number are required")
        self._target(webhook_url)  # refuses a non-loopback target early
        sid = message_sid or _new_sid()
        params = {
            "MessageSid": sid,
            "SmsMessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "From": from_number,
            "To": to_number,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": str(max(1, count_segments(body))),
            "SmsStatus": "received",
            "ApiVersion": API_VERSION,
        }
        if messaging_service_sid:
            params["MessagingServiceSid"] = messaging_service_sid
        if opt_out_type:
            params["OptOutType"] = opt_out_type
        for name, value in (extra or {}).items():
            if value is None:
                params.pop(name, None)
            else:
                params[name] = str(value)
        now = _now()
        with self._lock:
            if sid not in self._messages:
                uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
                self._messages[sid] = {
                    "resource": {
                        "account_sid": self.account_sid,
                        "api_version": API_VERSION,
                        "body": body,
                        "date_created": _rfc2822(now),
                        "date_sent": _rfc2822(now),
                        "date_updated": _rfc2822(now),
                        "direction": "inbound",
                        "error_code": None,
                        "error_message": None,
                        "from": from_number,
                        "messaging_service_sid": messaging_service_sid,
                        "num_media": "0",
                        "num_segments": params["NumSegments"],
                        "price": None,
                        "price_unit": self.PRICE_UNIT,
                        "sid": sid,
                        "status": "received",
                        "subresource_uris": {"media": f"{uri}/Media.json"},
                        "to": to_number,
                        "uri": f"{uri}.json",
                    },
                    "created": now,
                    "sent": now,
                    "status_callback": None,
                    "events": [],
                }
        if self.default_opt_out:
            self._default_opt_out(from_number, to_number, body)
        entry = self._post_webhook(
            "inbound",
            webhook_url,
            params,
            signature_url=signature_url,
            forge=forge,
            sid=sid,
            status="received",
            raise_errors=True,
        )
        return entry["response_status"], entry["response_text"]

    def _default_opt_out(self, sender, our_number, body):
        """Twilio's default opt-out handling of an inbound message: remember
        an opt-out (or its end) and answer the keyword from our number."""
        kind = default_keyword(body)
        if not kind:
            return None
        now = _now()
        sid = _new_sid()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        reply = DEFAULT_AUTO_REPLIES[kind]
        with self._lock:
            if kind == "STOP":
                self._opted_out.add((sender, our_number))
            elif kind == "START":
                self._opted_out.discard((sender, our_number))
            self._messages[sid] = {
                "resource": {
                    "account_sid": self.account_sid,
                    "api_version": API_VERSION,
                    "body": reply,
                    "date_created": _rfc2822(now),
                    "date_sent": _rfc2822(now),
                    "date_updated": _rfc2822(now),
                    "direction": "outbound-reply",
                    "error_code": None,
                    "error_message": None,
                    "from": our_number,
                    "messaging_service_sid": None,
                    "num_media": "0",
                    "num_segments": str(max(1, count_segments(reply))),
                    "price": None,
                    "price_unit": self.PRICE_UNIT,
                    "sid": sid,
                    "status": "delivered",
                    "subresource_uris": {"media": f"{uri}/Media.json"},
                    "to": sender,
                    "uri": f"{uri}.json",
                },
                "created": now,
                "sent": now,
                "status_callback": None,
                "events": [],
            }
        return sid

    # ------------------------------------------------------------------
    # Control endpoints (for the script)
    # ------------------------------------------------------------------

    def _handle_control(self, handler, path, auth_ok, form):
        if not auth_ok:
            self._respond(
                handler,
                None,
                401,
                {"error": "basic auth required"},
                {"WWW-Authenticate": 'Basic realm="Twilio simulator"'},
            )
            return
        name = path[len(_CONTROL_PREFIX) :].strip("/")
        values = {key: items[-1] for key, items in form.items()}
        getters = {
            "requests": lambda: self.requests,
            "webhooks": lambda: self.webhooks,
            "messages": lambda: self.messages,
        }
        try:
            if handler.command == "GET" and name in getters:
                payload = {name: getters[name]()}
            elif handler.command == "POST" and name in _CONTROL_ACTIONS:
                payload = _CONTROL_ACTIONS[name](self, values)
            else:
                self._respond(handler, None, 404, {"error": f"no control {name!r}"})
                return
        except (KeyError, ValueError, TypeError, OSError) as error:
            self._respond(handler, None, 400, {"error": str(error)})
            return
        self._respond(handler, None, 200, payload)

    def _control_numbers(self, values):
        number = values["number"]
        if _truthy(values.get("clear", "")):
            self.clear_number(number)
        else:
            outcomes = values.get("outcomes")
            self.configure_number(
                number,
                error_code=_int_or_none(values.get("error_code")),
                http_status=_int_or_none(values.get("http_status")),
                outcomes=outcomes.split(",") if outcomes else None,
                delivery_error_code=_int_or_none(values.get("delivery_error_code")),
            )
        return {"ok": True}

    def _control_faults(self, values):
        if _truthy(values.get("clear", "")):
            self.clear_faults()
        if "latency" in values:
            self.set_latency(
                float(values["latency"]),
                hang_after_accept=_truthy(values.get("hang_after_accept", "")),
            )
        if "rate_limit_next" in values or "per_second" in values:
            self.rate_limit(
                next_n=int(values.get("rate_limit_next") or 0),
                per_second=_int_or_none(values.get("per_second")),
                retry_after=int(values.get("retry_after") or 1),
            )
        if "fail_next" in values:
            self.fail_next(
                int(values["fail_next"]),
                http_status=int(values.get("fail_status") or 500),
                error_code=_int_or_none(values.get("fail_code")),
                created=_truthy(values.get("fail_created", "")),
            )
        if "drop_next" in values:
            self.drop_next(
                int(values["drop_next"]),
                created=_truthy(values.get("drop_created", "")),
            )
        return {"ok": True}

    def _control_callbacks(self, values):
        order = values.get("order")
        if order and order != "reversed":
            order = order.split(",")
        results = self.send_callbacks(values.get("sid") or None, order or None)
        return {"results": results}

    def _control_inbound(self, values):
        status, text = self.inject_inbound(
            values.get("url") or None,
            values["From"],
            values["To"],
            values.get("Body", ""),
            message_sid=values.get("MessageSid") or None,
            messaging_service_sid=values.get("MessagingServiceSid") or None,
            opt_out_type=values.get("OptOutType") or None,
            signature_url=values.get("signature_url") or None,
            forge=_truthy(values.get("forge", "")),
        )
        return {"status": status, "body": text}

    def _control_reset(self, values):
        self.reset()
        return {"ok": True}


_CONTROL_ACTIONS = {
    "numbers": TwilioSimulator._control_numbers,
    "faults": TwilioSimulator._control_faults,
    "callbacks": TwilioSimulator._control_callbacks,
    "inbound": TwilioSimulator._control_inbound,
    "reset": TwilioSimulator._control_reset,
}


# --------------------------------------------------------------------------
# Script
# --------------------------------------------------------------------------


def _build_parser():
    parser = argparse.ArgumentParser(
        prog="python3 -m devtools.twilio_simulator",
        description="Serve a Twilio Messages API simulator on loopback and "
        "send signed status callbacks and inbound messages to Odoo. Prints "
        "the base URL (to use instead of https://api.twilio.com) on the "
        "first line of standard output; stops on SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, default=8079, help="0: any free port")
    parser.add_argument("--account-sid", required=True, help="expected AccountSid")
    parser.add_argument("--auth-token", required=True, help="expected Auth Token")
    parser.add_argument(
        "--callback-base",
        help="send webhooks to this base URL (e.g. http://127.0.0.1:8069) "
        "while signing their public URL",
    )
    parser.add_argument(
        "--inbound-url", help="default webhook of POST /_simulator/inbound"
    )
    parser.add_argument(
        "--auto-callbacks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send status callbacks after each creation (default: on)",
    )
    parser.add_argument(
        "--callback-delay",
        type=float,
        default=0.5,
        help="seconds between a creation and its first callback",
    )
    parser.add_argument(
        "--default-opt-out",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="answer STOP/START/HELP and refuse to send to opted-out numbers, "
        "as Twilio's default opt-out handling does (default: on)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds before each answer"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def main(argv=None):
    """Run the simulator until SIGINT/SIGTERM; return the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    simulator = TwilioSimulator(
        args.account_sid,
        args.auth_token,
        host=args.host,
        port=args.port,
        callback_base=args.callback_base,
        inbound_url=args.inbound_url,
        auto_callbacks=args.auto_callbacks,
        callback_delay=args.callback_delay,
        default_opt_out=args.default_opt_out,
    )
    if args.latency:
        simulator.set_latency(args.latency)
    stop = threading.Event()

    def request_stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    simulator.start()
    try:
        sys.stdout.write(simulator.base_url + "\n")
        sys.stdout.flush()
        sys.stderr.write(
            f"Twilio simulator for {args.account_sid} on {simulator.base_url}; "
            f"control endpoints under {simulator.base_url}{_CONTROL_PREFIX}\n"
        )
        sys.stderr.flush()
        while not stop.wait(0.2):
            continue
    finally:
        simulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
