# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

from .res_company import PUBLIC_BASE_URL_PARAM


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sms_twilio_messaging_service_sid = fields.Char(
        related="company_id.sms_twilio_messaging_service_sid", readonly=False
    )
    sms_twilio_answers_keywords = fields.Boolean(
        related="company_id.sms_twilio_answers_keywords", readonly=False
    )
    sms_twilio_public_base_url = fields.Char(
        string="Public Base URL for Twilio Webhooks",
        config_parameter=PUBLIC_BASE_URL_PARAM,
        help="The https address Twilio reaches this Odoo at (behind a proxy or TLS "
        "terminator). Signatures are checked against it. Empty: web.base.url.",
    )
