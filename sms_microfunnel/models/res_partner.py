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
