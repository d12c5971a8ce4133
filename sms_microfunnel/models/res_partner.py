# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "sms.microfunnel.consent.mixin"]

    sms_consent_event_ids = fields.One2many(
        "sms.microfunnel.consent.event",
        "partner_id",
        "SMS Consent History",
        groups="sms_microfunnel.group_sms_funnel_manager",
    )
    sms_microfunnel_interest_ids = fields.Many2many(
        "sms.microfunnel.interest",
        "sms_microfunnel_interest_res_partner_rel",
        "partner_id",
        "interest_id",
        string="SMS Interests",
        help="Chosen by the contact on the SMS opt-in form or preferences page.",
    )
