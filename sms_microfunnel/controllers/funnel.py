# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.tools import consteq

from odoo.addons.mass_mailing_sms.controllers.main import MailingSMSController


class SmsFunnelClickController(MailingSMSController):
    @http.route()
    def sms_short_link_redirect(self, code, sms_id_int, **post):
        response = super().sms_short_link_redirect(code, sms_id_int, **post)
        if sms_id_int and not request.env["ir.http"].is_a_bot():
            request.env["link.tracker.click"].sudo()._sms_funnel_register_click(
                int(sms_id_int), code=code
            )
        return response


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
    )
    def funnel_event(self, funnel_id, **_kwargs):
        funnel = (
            request.env["sms.microfunnel.campaign"].sudo().browse(funnel_id).exists()
        )
        header = request.httprequest.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if (
            not funnel
            or not funnel.event_token
            or not consteq(token, funnel.event_token)
        ):
            return self._json({"error": "unauthorized"}, 401)
        try:
            payload = json.loads(request.httprequest.get_data() or b"{}")
        except ValueError as error:
            return self._json({"error": "invalid_json", "detail": str(error)}, 400)
        if not isinstance(payload, dict):
            return self._json(
                {"error": "invalid_json", "detail": "the body must be a JSON object"},
                400,
            )
        if funnel.state != "running":
            return self._json({"error": "funnel_not_running"}, 409)
        try:
            result = funnel._enroll_from_event(payload)
        except UserError as error:
            return self._json({"error": "invalid_event", "detail": str(error)}, 422)
        return self._json(result, 200 if result.get("duplicate") else 201)

    def _json(self, data, status):
        return request.make_json_response(data, status=status)
