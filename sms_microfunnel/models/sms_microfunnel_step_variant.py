# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models


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

    @api.model_create_multi
    def create(self, vals_list):
        variants = super().create(vals_list)
        variants.step_id._prepare_link_trackers()
        return variants

    def write(self, vals):
        result = super().write(vals)
        if "body" in vals:
            self.step_id._prepare_link_trackers()
        return result
