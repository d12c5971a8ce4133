# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Delivery reports of funnel SMS reach their funnel trace through the SMS
mailing trace, as for Odoo's own SMS mailings: the tracker moves the
``mailing.trace`` forward (``mass_mailing_sms``), the funnel trace follows."""

from odoo import models


class SmsTracker(models.Model):
    _inherit = "sms.tracker"

    def _update_sms_traces(
        self, trace_status, failure_type=False, failure_reason=False
    ):
        traces = super()._update_sms_traces(
            trace_status, failure_type=failure_type, failure_reason=failure_reason
        )
        traces._sms_funnel_notify_status(trace_status, failure_type)
        return traces
