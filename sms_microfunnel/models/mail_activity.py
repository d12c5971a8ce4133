# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class MailActivity(models.Model):
    _inherit = "mail.activity"

    def _action_done(self, feedback=False, attachment_ids=None):
        """Funnels learn that their activities are done ("activity done"
        branches), and done activities of an entry type (e.g. a call not
        answered) enroll their record in the matching funnels."""
        now = fields.Datetime.now()
        funnel_traces = (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .search([("activity_id", "in", self.ids)])
        )
        result = super()._action_done(feedback=feedback, attachment_ids=attachment_ids)
        funnel_traces._set_activity_done(now)
        self.env["sms.microfunnel.campaign"].sudo()._enroll_from_activities(self)
        return result
