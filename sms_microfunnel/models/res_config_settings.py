# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sms_funnel_sender_label = fields.Char(
        related="company_id.sms_funnel_sender_label", readonly=False
    )
    sms_funnel_optout_mention = fields.Char(
        related="company_id.sms_funnel_optout_mention", readonly=False
    )
    sms_funnel_max_segments = fields.Integer(
        related="company_id.sms_funnel_max_segments", readonly=False
    )
