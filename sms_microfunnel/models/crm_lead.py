# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import models


class CrmLead(models.Model):
    _name = "crm.lead"
    _inherit = ["crm.lead", "sms.microfunnel.consent.mixin"]

    def write(self, vals):
        result = super().write(vals)
        if "stage_id" in vals or "won_status" in vals or "active" in vals:
            self._sms_funnel_check_goals()
        return result

    def _sms_funnel_check_goals(self):
        """Funnel goals reached by these leads: a stage, or the lead won."""
        enrollments = (
            self.env["sms.microfunnel.enrollment"]
            .sudo()
            .search(
                [
                    ("res_model", "=", "crm.lead"),
                    ("res_id", "in", self.ids),
                    ("state", "in", ("active", "completed")),
                    ("campaign_id.goal", "in", ("stage_reached", "lead_won")),
                ]
            )
        )
        leads = {lead.id: lead for lead in self}
        reached = enrollments.filtered(
            lambda e: (
                (
                    e.campaign_id.goal == "stage_reached"
                    and leads[e.res_id].stage_id == e.campaign_id.goal_stage_id
                )
                or (
                    e.campaign_id.goal == "lead_won"
                    and leads[e.res_id].won_status == "won"
                )
            )
        )
        reached._mark_converted()
