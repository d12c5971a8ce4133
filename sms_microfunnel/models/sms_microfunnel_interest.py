# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models


class SmsMicrofunnelInterest(models.Model):
    _name = "sms.microfunnel.interest"
    _description = "SMS Interest"
    _order = "sequence, id"

    name = fields.Char(required=True, translate=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        default=lambda self: self.env.company,
        index=True,
    )
    partner_count = fields.Integer("Contacts", compute="_compute_partner_count")

    def _compute_partner_count(self):
        counts = dict(
            self.env["res.partner"]._read_group(
                [("sms_microfunnel_interest_ids", "in", self.ids)],
                ["sms_microfunnel_interest_ids"],
                ["__count"],
            )
        )
        for interest in self:
            interest.partner_count = counts.get(interest, 0)

    @api.model
    def _for_company(self, company):
        """The interests the public pages offer for ``company``, in order."""
        return self.sudo().search([("company_id", "=", company.id)])
