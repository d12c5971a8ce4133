# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, models


class SmsMicrofunnelTrace(models.Model):
    _inherit = "sms.microfunnel.trace"

    @api.model
    def _sms_funnel_salesperson(self, record):
        """Activities about a registration go to the event's responsible."""
        if record._name == "event.registration" and record.event_id.user_id:
            return record.event_id.user_id
        return super()._sms_funnel_salesperson(record)
