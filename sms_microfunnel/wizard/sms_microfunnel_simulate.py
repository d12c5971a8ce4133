# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Dry-run: the planned timeline of a funnel for one record, nothing sent."""

from odoo import fields, models
from odoo.exceptions import UserError


class SmsFunnelSimulate(models.TransientModel):
    _name = "sms.microfunnel.simulate"
    _description = "SMS Funnel Dry-run"

    campaign_id = fields.Many2one("sms.microfunnel.campaign", "Funnel", required=True)
    model_name = fields.Selection(related="campaign_id.model_name")
    res_id = fields.Many2oneReference("Record", model_field="model_name")
    partner_id = fields.Many2one("res.partner", "Contact")
    lead_id = fields.Many2one("crm.lead")
    record_ref = fields.Reference(
        selection="_selection_record_models",
        string="Other Record",
        help="For funnels on other targets (event registrations…).",
    )
    start_at = fields.Datetime(
        "Enrolled At",
        default=fields.Datetime.now,
        help="Shown in your time zone, stored in UTC.",
    )
    line_ids = fields.One2many(
        "sms.microfunnel.simulate.line", "wizard_id", readonly=True
    )

    def _selection_record_models(self):
        return self.env["sms.microfunnel.campaign"]._selection_target_models()

    def _target(self):
        self.ensure_one()
        if self.model_name == "res.partner":
            record = self.partner_id
        elif self.model_name == "crm.lead":
            record = self.lead_id
        else:
            record = self.record_ref
            if record and record._name != self.model_name:
                raise UserError(
                    self.env._(
                        "This funnel targets %(target)s: choose a record of that kind.",
                        target=self.env["ir.model"]._get(self.model_name).name,
                    )
                )
        if not record:
            raise UserError(self.env._("Choose the record to simulate."))
        return record

    def action_simulate(self):
        self.ensure_one()
        lines = self.campaign_id._simulate(self._target(), self.start_at)
        self.line_ids = [(5, 0, 0)] + [(0, 0, line) for line in lines]
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Dry-run"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }
