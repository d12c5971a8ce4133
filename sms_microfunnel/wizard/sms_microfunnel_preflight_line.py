# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json

from odoo import fields, models

from ..models.sms_microfunnel_gate import ACTIONS
from .sms_microfunnel_preflight import REASONS


class SmsMicrofunnelPreflightLine(models.TransientModel):
    _name = "sms.microfunnel.preflight.line"
    _description = "SMS Pre-flight Outcome"
    _order = "id"

    preflight_id = fields.Many2one(
        "sms.microfunnel.preflight", required=True, ondelete="cascade", index=True
    )
    action = fields.Selection(ACTIONS, "Outcome", required=True)
    reason = fields.Selection(REASONS)
    count = fields.Integer("Recipients")
    until_min = fields.Datetime("Earliest")
    until_typical = fields.Datetime(
        "Typical", help="Median time at which these recipients become sendable."
    )
    res_ids = fields.Text("Record IDs")
    rule = fields.Char(
        "Deciding Rule",
        help="Rule ID (compliance book) that allowed, deferred or blocked these "
        "recipients.",
    )
    rule_source = fields.Text()

    def _res_ids(self):
        self.ensure_one()
        return json.loads(self.res_ids or "[]")

    def action_open_records(self):
        """Drill-down: the records of this outcome."""
        self.ensure_one()
        label = self.preflight_id._selection_label("action", self)
        if self.reason:
            reason = self.preflight_id._selection_label("reason", self)
            label = f"{label} ({reason})"
        return self.preflight_id._records_action(self._res_ids(), label)
