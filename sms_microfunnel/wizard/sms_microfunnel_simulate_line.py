# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models


class SmsFunnelSimulateLine(models.TransientModel):
    _name = "sms.microfunnel.simulate.line"
    _description = "SMS Funnel Dry-run Line"
    _order = "send_at, id"

    wizard_id = fields.Many2one("sms.microfunnel.simulate", ondelete="cascade")
    step_name = fields.Char("Step")
    condition = fields.Char()
    due_at = fields.Datetime("Due")
    send_at = fields.Datetime("Sends At")
    local_time = fields.Char("Recipient's local time")
    outcome_code = fields.Char()
    reason_code = fields.Char()
    outcome = fields.Char(compute="_compute_labels")
    reason = fields.Char(compute="_compute_labels")
    text = fields.Text()
    encoding = fields.Char()
    segments = fields.Integer()
    cost = fields.Float()

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            for name in ("outcome", "reason"):
                if name in vals:
                    vals[f"{name}_code"] = vals.pop(name)
        return super().create(vals_list)

    @api.depends("outcome_code", "reason_code")
    def _compute_labels(self):
        """Outcomes and reasons in the user's language, not as codes."""
        env = self.env

        def labels(model, field):
            return dict(env[model]._fields[field]._description_selection(env))

        # the gate's outcomes and reasons are those of the pre-flight
        outcomes = labels("sms.microfunnel.preflight.line", "action")
        outcomes["canceled"] = labels("sms.microfunnel.trace", "state")["canceled"]
        reasons = labels("sms.microfunnel.trace", "cancel_reason")
        reasons.update(labels("sms.microfunnel.preflight.line", "reason"))
        # text issues found when composing (models/sms_microfunnel_message_rules.py)
        reasons.update(
            empty=env._("Empty message"),
            no_sender=env._("Sender not identified"),
            no_optout=env._("No opt-out mention"),
        )
        for line in self:
            line.outcome = outcomes.get(line.outcome_code, line.outcome_code or "")
            line.reason = reasons.get(line.reason_code, line.reason_code or "")
