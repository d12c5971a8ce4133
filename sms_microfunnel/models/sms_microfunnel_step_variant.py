# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class SmsMicrofunnelStepVariant(models.Model):
    _name = "sms.microfunnel.step.variant"
    _description = "SMS Funnel Step Variant (A/B)"
    _order = "sequence, id"

    step_id = fields.Many2one(
        "sms.microfunnel.step", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer(default=10)
    name = fields.Char(required=True, default="A")
    body = fields.Text(required=True)
    split_percent = fields.Float("Split (%)", default=50)
