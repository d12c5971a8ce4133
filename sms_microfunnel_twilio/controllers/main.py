# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import logging
import re

from odoo.http import Controller, Response, request, route

from odoo.addons.sms_microfunnel.tools import sms_keywords

from ..tools import twilio_signature

_logger = logging.getLogger(__name__)

INBOUND_PATH = "/sms_microfunnel_twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# a Twilio signature is the base64 of an HMAC-SHA1 digest (28 characters)
SIGNATURE_PATTERN = re.compile(r"[A-Za-z0-9+/]{27}=")
# longest value we look up or store for the routing fields (a Twilio SID is
# 34 characters, an E.164 number at most 16, a short code or sender id less)
ROUTING_MAX_LENGTH = 64
# a Twilio webhook is a few kB (a long SMS and its media URLs included)
MAX_BODY_BYTES = 256 * 1024
# Routing of the webhooks: no session (Twilio sends no cookie; a browser's
# cookie must not make its user the author of what a webhook writes), no
# session cookie in the answer, always a read/write cursor.  The request runs
# as the public user (``webhook_env``), as with ``auth="public"``, without the
# per-request check that this user exists.
WEBHOOK_ROUTING = {
    "type": "http",
    "auth": "none",
    "save_session": False,
    "readonly": False,
    "methods": ["POST"],
    "csrf": False,
    "max_content_length": MAX_BODY_BYTES,
}


def webhook_env():
    """Make the request run as the public user; False when the request
    reached no database (several databases and no filter to choose one)."""
    if not request.db or request.env is None:
        return False
    public_uid = request.env["ir.model.data"]._xmlid_to_res_id("base.public_user")
    request.update_env(user=public_uid)
    return True


def _clean(value):
    """A routing field as text, without NUL, or '' when absurdly long."""
    value = (value or "").replace("\x00", "").strip()
    return "" if len(value) > ROUTING_MAX_LENGTH else value


class SmsMicrofunnelTwilioController(Controller):
    @route(INBOUND_PATH, **WEBHOOK_ROUTING)
    def inbound(self, **_kwargs):
        """Twilio's incoming-message webhook: signed, stored once, then handled
        by the inbound job (``sms.microfunnel.inbound._cron_process_received``)
        in the order the messages arrived.

        One query: the insert with the job's trigger (a duplicate is a no-op);
        the company and its token come from the routes every worker keeps.
        Nothing that could race with another message of the same number
        happens here.
        """
        if not webhook_env():
            return Response("Not Found", status=404)
        httprequest = request.httprequest
        form = httprequest.form
        signature = httprequest.headers.get("X-Twilio-Signature") or ""
        route_ = None
        if SIGNATURE_PATTERN.fullmatch(signature):
            route_ = self._inbound_route(
                _clean(form.get("To")), _clean(form.get("MessagingServiceSid"))
            )
        params = list(form.items(multi=True))
        if not route_ or not twilio_signature.is_valid_signature(
            route_["token"], self._public_url(route_), params, signature
        ):
            # no body in the log: it is personal data
            _logger.warning(
                "Twilio inbound webhook refused (bad or missing signature, "
                "MessageSid=%r)",
                _clean(form.get("MessageSid"))[:40],
            )
            return Response("Forbidden", status=403)
        message_sid = _clean(form.get("MessageSid"))
        from_number = _clean(form.get("From"))
        if not message_sid or not from_number:
            return Response("Missing MessageSid or From", status=400)
        body = form.get("Body", "")
        Inbound = request.env["sms.microfunnel.inbound"].sudo()
        vals = Inbound._received_vals(
            from_number,
            _clean(form.get("To")),
            body,
            message_sid,
            provider="twilio",
            company=request.env["res.company"].browse(route_["company_id"]),
            provider_replied=self._provider_replied(
                route_, body, form.get("OptOutType")
            ),
        )
        if not Inbound._store_received(vals):
            # already stored (a retry, or the same delivery in parallel)
            request.env.cr.rollback()
        return Response(EMPTY_TWIML, status=200, content_type="text/xml")

    def _inbound_route(self, to_number, service_sid):
        """{company_id, token, answers_keywords} of the Twilio company that
        receives through Messaging Service ``service_sid`` (first), else at
        ``to_number`` (as given or in E.164), None for none.  Read from the
        routes every worker keeps (no query); never raises."""
        services, numbers = (
            request.env["res.company"].sudo()._sms_twilio_inbound_routes()
        )
        route_ = services.get(service_sid) if service_sid else None
        if route_ is None:
            candidates = [
                numbers[number]
                for number in {to_number, self._e164(to_number)}
                if number and number in numbers
            ]
            route_ = min(
                candidates,
                key=lambda r: (r["sequence"], r["company_id"]),
                default=None,
            )
        if not route_ or not route_["token"]:
            return None
        return route_

    @staticmethod
    def _e164(number):
        """``number`` in E.164 when it parses alone (Twilio sends E.164)."""
        digits = re.sub(r"[\s().-]", "", number or "")
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        return digits if re.fullmatch(r"\+[1-9]\d{6,14}", digits) else ""

    @staticmethod
    def _provider_replied(route_, body, opt_out_type=None):
        """True when Twilio already answered this message itself (its
        default handling of the standard keywords)."""
        if opt_out_type:
            return True
        if not route_["answers_keywords"]:
            return False
        word = sms_keywords.normalize(body or "").replace(" ", "")
        return word in sms_keywords.TWILIO_DEFAULT_KEYWORDS

    def _public_url(self, route_):
        """The exact URL Twilio signed: public base URL + path (+ query)."""
        query = request.httprequest.query_string.decode(errors="replace")
        company = request.env["res.company"].sudo().browse(route_["company_id"])
        url = company._sms_twilio_public_base_url() + INBOUND_PATH
        return f"{url}?{query}" if query else url
