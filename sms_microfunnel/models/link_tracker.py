# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, models


class LinkTrackerClick(models.Model):
    _inherit = "link.tracker.click"

    @api.model
    def _sms_funnel_register_click(self, sms_id_int, code=None):
        """A recipient opened a tracked link of a funnel SMS.  Opening the
        unsubscribe link is not a click (it must not fire "clicked" branches)."""
        if code:
            link = self.env["link.tracker.code"].sudo().search([("code", "=", code)])
            if "/sms/unsubscribe/" in (link.link_id.url or ""):
                return self.env["sms.microfunnel.trace"]
        traces = (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .search([("sms_id_int", "=", sms_id_int)])
        )
        traces._set_clicked()
        return traces
