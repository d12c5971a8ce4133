# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models

from odoo.addons.sms_microfunnel.tools import sms_keywords

PUBLIC_BASE_URL_PARAM = "sms_microfunnel_twilio.public_base_url"


class ResCompany(models.Model):
    _inherit = "res.company"

    sms_twilio_messaging_service_sid = fields.Char(
        string="Twilio Messaging Service SID",
        groups="base.group_system",
        help="When set, inbound messages addressed to this Messaging Service are "
        "routed to this company.",
    )
    sms_twilio_answers_keywords = fields.Boolean(
        string="Twilio Answers Standard Keywords",
        default=True,
        help="Twilio's default opt-out handling replies itself to single-word "
        "keywords (STOP, START, HELP…). Keep this on unless it is disabled in "
        "your Twilio account, so each contact gets exactly one confirmation.",
    )

    @api.model
    def _sms_twilio_inbound_company(self, to_number, messaging_service_sid=None):
        """The company an inbound message belongs to (receiving number or service)."""
        companies = self.sudo().search([("sms_provider", "=", "twilio")])
        if messaging_service_sid:
            company = companies.filtered(
                lambda c: c.sms_twilio_messaging_service_sid == messaging_service_sid
            )
            if company:
                return company[:1]
        number = self.env["res.partner"]._phone_format(number=to_number) or to_number
        numbers = (
            self.env["sms.twilio.number"]
            .sudo()
            .search([("company_id", "in", companies.ids)])
        )
        for twilio_number in numbers:
            if twilio_number.number in (to_number, number) or (
                self.env["res.partner"]._phone_format(number=twilio_number.number)
                == number
            ):
                return twilio_number.company_id
        return self.browse()

    def _sms_twilio_replied(self, body, opt_out_type=None):
        """True when Twilio already answered this inbound message itself."""
        self.ensure_one()
        if opt_out_type:
            return True
        if not self.sms_twilio_answers_keywords:
            return False
        word = sms_keywords.normalize(body).replace(" ", "")
        return word in sms_keywords.TWILIO_DEFAULT_KEYWORDS

    def _sms_twilio_public_base_url(self):
        self.ensure_one()
        configured = (
            self.env["ir.config_parameter"].sudo().get_param(PUBLIC_BASE_URL_PARAM)
        )
        return (configured or self.get_base_url()).rstrip("/")
