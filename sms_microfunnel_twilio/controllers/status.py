# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import hmac

from odoo.http import request, route
from odoo.tools import SQL

from odoo.addons.sms_twilio.controllers.controllers import SmsTwilioController
from odoo.addons.sms_twilio.tools.sms_twilio import (
    generate_twilio_sms_callback_signature,
)

from ..models.sms_tracker import CALLBACK_CONTEXT_KEY


class SmsMicrofunnelTwilioStatus(SmsTwilioController):
    """Core's status route, checks included, with the callback in the context
    so that trackers apply it monotonically (see ``models/sms_tracker.py``)."""

    @route()
    def update_sms_status(
        self, uuid, SmsStatus=None, ErrorCode=None, ErrorMessage=None, **kwargs
    ):
        request.update_context(
            **{
                CALLBACK_CONTEXT_KEY: {
                    "status": SmsStatus,
                    "error_code": ErrorCode or False,
                    "sid": kwargs.get("MessageSid") or kwargs.get("SmsSid") or False,
                }
            }
        )
        return super().update_sms_status(
            uuid,
            SmsStatus=SmsStatus,
            ErrorCode=ErrorCode,
            ErrorMessage=ErrorMessage,
            **kwargs,
        )

    def _validate_twilio_signature(self, request, uuid):
        if request.env["sms.sms"].sudo().search_count([("uuid", "=", uuid)]):
            valid = super()._validate_twilio_signature(request, uuid)
        else:
            # the SMS is gone (garbage-collected): its tracker knows the company
            company = (
                request.env["sms.tracker"]
                .sudo()
                .search([("sms_uuid", "=", uuid)], limit=1)
                .sms_twilio_company_id
            )
            if not company:
                return super()._validate_twilio_signature(request, uuid)
            expected = generate_twilio_sms_callback_signature(
                company.sudo(), uuid, request.httprequest.form.to_dict()
            )
            received = request.httprequest.headers.get("X-Twilio-Signature", "")
            valid = hmac.compare_digest(expected, received)
        if valid:
            # Authenticated: wait for a sender still holding this SMS (its
            # tracker may not be committed yet) instead of missing the tracker.
            request.env.cr.execute(
                SQL("SELECT id FROM sms_sms WHERE uuid = %s FOR NO KEY UPDATE", uuid)
            )
        return valid
