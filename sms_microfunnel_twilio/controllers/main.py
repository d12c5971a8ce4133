# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import logging

from odoo.http import Controller, Response, request, route

from ..tools import twilio_signature

_logger = logging.getLogger(__name__)

INBOUND_PATH = "/sms_microfunnel_twilio/inbound"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class SmsMicrofunnelTwilioController(Controller):
    @route(INBOUND_PATH, type="http", auth="public", methods=["POST"], csrf=False)
    def inbound(self, **_kwargs):
        """Twilio's incoming-message webhook: signed, idempotent, one effect."""
        httprequest = request.httprequest
        params = list(httprequest.form.items(multi=True))
        form = httprequest.form
        Company = request.env["res.company"].sudo()
        company = Company._sms_twilio_inbound_company(
            form.get("To", ""), form.get("MessagingServiceSid")
        )
        token = company.sms_twilio_auth_token if company else None
        url = self._public_url(company) if company else ""
        signature = httprequest.headers.get("X-Twilio-Signature")
        if not twilio_signature.is_valid_signature(token, url, params, signature):
            # no body in the log: it is personal data
            _logger.warning(
                "Twilio inbound webhook refused (bad or missing signature, "
                "MessageSid=%s)",
                form.get("MessageSid"),
            )
            return Response("Forbidden", status=403)
        if not form.get("MessageSid") or not form.get("From"):
            return Response("Missing MessageSid or From", status=400)
        request.env["sms.microfunnel.inbound"].sudo()._process_inbound(
            form.get("From"),
            form.get("To"),
            form.get("Body", ""),
            form.get("MessageSid"),
            provider="twilio",
            company=company,
            provider_replied=company._sms_twilio_replied(
                form.get("Body", ""), form.get("OptOutType")
            ),
        )
        return Response(EMPTY_TWIML, status=200, content_type="text/xml")

    def _public_url(self, company):
        """The exact URL Twilio signed: public base URL + path (+ query)."""
        query = request.httprequest.query_string.decode()
        url = company._sms_twilio_public_base_url() + INBOUND_PATH
        return f"{url}?{query}" if query else url
