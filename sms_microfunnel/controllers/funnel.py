# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json
import math

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.tools import consteq

from .main import MAX_ID, is_clean_text

# an event is a few fields: far below these limits
EVENT_MAX_BYTES = 64 * 1024
EVENT_MAX_DEPTH = 8
EVENT_MAX_STRING = 4096
EVENT_MAX_ITEMS = 1000
PHONE_MAX_LENGTH = 32
NAME_MAX_LENGTH = 128


class InvalidEvent(ValueError):
    """The JSON body is not an acceptable event (400, with the reason)."""


def _reject_constant(name):
    raise InvalidEvent(f"{name} is not a JSON number")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise InvalidEvent(f"{text[:20]} is out of range")
    return value


def parse_event(data):
    """The event object of a request body, or ``InvalidEvent``: a JSON object
    of bounded size and depth, finite numbers, strings without NUL nor other
    control characters, ids that fit the database."""
    try:
        payload = json.loads(
            data.decode("utf-8"),
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except RecursionError as error:
        raise InvalidEvent("the JSON is nested too deep") from error
    except UnicodeDecodeError as error:
        raise InvalidEvent("the body is not UTF-8") from error
    except InvalidEvent:
        raise
    except ValueError as error:
        raise InvalidEvent(str(error)) from error
    if not isinstance(payload, dict):
        raise InvalidEvent("the body must be a JSON object")
    _check_value(payload, 0)
    for key, limit in (("phone", PHONE_MAX_LENGTH), ("name", NAME_MAX_LENGTH)):
        value = payload.get(key)
        if value is not None and not isinstance(value, str | int):
            raise InvalidEvent(f"“{key}” must be a string")
        if isinstance(value, str) and len(value) > limit:
            raise InvalidEvent(f"“{key}” is longer than {limit} characters")
    partner_id = payload.get("partner_id")
    if partner_id is not None and not (
        isinstance(partner_id, int | str)
        and str(partner_id).isdigit()
        and 0 < int(str(partner_id)) <= MAX_ID
    ):
        raise InvalidEvent("“partner_id” must be a positive integer")
    ref = payload.get("ref")
    if ref is not None and not isinstance(ref, str | int):
        raise InvalidEvent("“ref” must be a string")
    return payload


def _check_value(value, depth):
    if depth > EVENT_MAX_DEPTH:
        raise InvalidEvent(f"the JSON is nested deeper than {EVENT_MAX_DEPTH} levels")
    if isinstance(value, str):
        if len(value) > EVENT_MAX_STRING or not is_clean_text(value):
            raise InvalidEvent("strings must be short and without control characters")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 2**63 - 1:
            raise InvalidEvent("integers must fit 64 bits")
    elif isinstance(value, dict):
        if len(value) > EVENT_MAX_ITEMS:
            raise InvalidEvent("too many keys")
        for key, item in value.items():
            _check_value(key, depth + 1)
            _check_value(item, depth + 1)
    elif isinstance(value, list):
        if len(value) > EVENT_MAX_ITEMS:
            raise InvalidEvent("too many items")
        for item in value:
            _check_value(item, depth + 1)


class SmsFunnelEventController(http.Controller):
    """External events (abandoned cart, missed call…) enroll a contact.

    ``POST /sms_microfunnel/event/<funnel id>`` with ``Authorization: Bearer
    <funnel token>`` and a JSON body ``{"phone" | "partner_id" | "ref",
    "name"?, "values"?: {...}, "idempotency_key"?}``.  Answers JSON.
    """

    @http.route(
        "/sms_microfunnel/event/<int:funnel_id>",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=False,
        max_content_length=EVENT_MAX_BYTES,
    )
    def funnel_event(self, funnel_id, **_kwargs):
        httprequest = request.httprequest
        header = httprequest.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        funnel = request.env["sms.microfunnel.campaign"].sudo()
        if 0 < funnel_id <= MAX_ID and token.isascii() and token.isprintable():
            funnel = funnel.browse(funnel_id).exists()
        if (
            not funnel
            or not funnel.event_token
            or not consteq(token, funnel.event_token)
        ):
            return self._json({"error": "unauthorized"}, 401)
        length = httprequest.content_length
        if length is not None and length > EVENT_MAX_BYTES:
            return self._json(
                {"error": "too_large", "detail": f"at most {EVENT_MAX_BYTES} bytes"},
                413,
            )
        # the route's max_content_length stops a longer body while it is read
        data = httprequest.get_data()
        if len(data) > EVENT_MAX_BYTES:
            return self._json(
                {"error": "too_large", "detail": f"at most {EVENT_MAX_BYTES} bytes"},
                413,
            )
        try:
            payload = parse_event(data or b"{}")
        except InvalidEvent as error:
            return self._json({"error": "invalid_json", "detail": str(error)}, 400)
        if funnel.state != "running":
            return self._json({"error": "funnel_not_running"}, 409)
        try:
            result = funnel._enroll_from_event(payload)
        except UserError as error:
            return self._json({"error": "invalid_event", "detail": str(error)}, 422)
        return self._json(result, 200 if result.get("duplicate") else 201)

    def _json(self, data, status):
        return request.make_json_response(data, status=status)
