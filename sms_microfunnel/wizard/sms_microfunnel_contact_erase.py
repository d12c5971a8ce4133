# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Confirmation wizard to erase contacts at their request (RGPD art. 17).

The erasure itself is ``res.partner._sms_erase_contacts`` (models/res_partner.py),
shared with the retention job.
"""

from odoo import api, fields, models
from odoo.exceptions import UserError

from .sms_microfunnel_consent_record import check_manager


class SmsMicrofunnelContactErase(models.TransientModel):
    _name = "sms.microfunnel.contact.erase"
    _description = "Erase Contacts (RGPD)"

    partner_ids = fields.Many2many("res.partner", string="Contacts")
    partner_count = fields.Integer(compute="_compute_partner_count")

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        context = self.env.context
        if (
            "partner_ids" in fields_list
            and not values.get("partner_ids")
            and context.get("active_model") == "res.partner"
        ):
            ids = context.get("active_ids") or (
                [context["active_id"]] if context.get("active_id") else []
            )
            values["partner_ids"] = [fields.Command.set(ids)]
        return values

    @api.depends("partner_ids")
    def _compute_partner_count(self):
        for wizard in self:
            wizard.partner_count = len(wizard.partner_ids)

    def action_erase(self):
        self.ensure_one()
        check_manager(self.env)
        if not self.partner_ids:
            raise UserError(self.env._("Select the contacts to erase."))
        self.partner_ids._sms_erase_contacts(reason="erasure")
        return {"type": "ir.actions.act_window_close"}
