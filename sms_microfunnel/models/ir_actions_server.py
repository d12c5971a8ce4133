# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError


class IrActionsServer(models.Model):
    """'Enroll in SMS funnel' server actions, usable in automation rules."""

    _inherit = "ir.actions.server"

    state = fields.Selection(
        selection_add=[("sms_funnel", "Enroll in SMS funnel")],
        ondelete={"sms_funnel": "cascade"},
    )
    sms_funnel_id = fields.Many2one(
        "sms.microfunnel.campaign",
        "SMS Funnel",
        ondelete="cascade",
        domain="[('model_name', '=', model_name)]",
    )

    @api.constrains("state", "sms_funnel_id", "model_id")
    def _check_sms_funnel(self):
        for action in self.filtered(lambda a: a.state == "sms_funnel"):
            if not action.sms_funnel_id:
                raise ValidationError(self.env._("Choose the SMS funnel."))
            if action.sms_funnel_id.model_name != action.model_id.model:
                raise ValidationError(
                    self.env._(
                        "The funnel targets %(target)s; this action runs on %(model)s.",
                        target=action.sms_funnel_id.model_name,
                        model=action.model_id.model,
                    )
                )

    def _run_action_sms_funnel_multi(self, eval_context=None):
        records = eval_context.get("records") or eval_context.get("record")
        if records and self.sms_funnel_id.state == "running":
            self.sms_funnel_id.sudo()._enroll(records.sudo())
        return False
