# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

from ..tools.sms_api import API_BASE_URL_PARAM
from .res_company import PUBLIC_BASE_URL_PARAM


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sms_twilio_messaging_service_sid = fields.Char(
        related="company_id.sms_twilio_messaging_service_sid", readonly=False
    )
    sms_twilio_answers_keywords = fields.Boolean(
        related="company_id.sms_twilio_answers_keywords", readonly=False
    )
    sms_twilio_sender_mode = fields.Selection(
        related="company_id.sms_twilio_sender_mode", readonly=False
    )
    sms_twilio_max_mps = fields.Integer(
        related="company_id.sms_twilio_max_mps", readonly=False
    )
    sms_twilio_api_base_url = fields.Char(
        string="Twilio API Base URL",
        config_parameter=API_BASE_URL_PARAM,
        help="Where SMS are sent. Empty: https://api.twilio.com. Set it to a "
        "Twilio simulator's address for tests and demos.",
    )
    sms_twilio_public_base_url = fields.Char(
        string="Public Base URL for Twilio Webhooks",
        config_parameter=PUBLIC_BASE_URL_PARAM,
        help="The https address Twilio reaches this Odoo at (behind a proxy or TLS "
        "terminator). Signatures are checked against it. Empty: web.base.url.",
    )
