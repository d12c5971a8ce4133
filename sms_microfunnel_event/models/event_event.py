# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from collections import defaultdict

from odoo import fields, models


class EventEvent(models.Model):
    _inherit = "event.event"

    sms_microfunnel_ids = fields.Many2many(
        "sms.microfunnel.campaign",
        "event_event_sms_microfunnel_campaign_rel",
        "event_id",
        "campaign_id",
        "SMS Funnels",
        domain="[('model_name', '=', 'event.registration')]",
        help="Confirmed registrations of this event are enrolled in these funnels "
        "(when they run); steps timed on the event's dates follow its changes.",
    )

    def write(self, vals):
        result = super().write(vals)
        if {"date_begin", "date_end", "date_tz"} & set(vals):
            self._sms_funnel_reschedule()
        return result

    def _sms_funnel_reschedule(self):
        """Move the pending funnel steps timed on the dates of these events."""
        Trace = self.env["sms.microfunnel.trace"].sudo()
        registrations = (
            self.env["event.registration"]
            .sudo()
            .with_context(active_test=False)
            .search([("event_id", "in", self.ids)])
        )
        traces = Trace.search(
            [
                ("enrollment_id.res_model", "=", "event.registration"),
                ("enrollment_id.res_id", "in", registrations.ids),
                ("state", "in", ("scheduled", "deferred")),
                ("step_id.wait_mode", "in", ("before_date", "after_date")),
            ]
        )
        # the registration's event dates depend on the event only through
        # event_id: read them again
        registrations.invalidate_recordset(["event_begin_date", "event_end_date"])
        by_id = {r.id: r for r in registrations}
        # the registrations of one event share its dates: one write per due date
        by_due = defaultdict(list)
        for trace in traces:
            registration = by_id.get(trace.enrollment_id.res_id)
            if registration:
                due = trace.enrollment_id._date_due(
                    trace.step_id, registration, trace.company_id
                )
                by_due[due].append(trace.id)
        undated = Trace.browse(by_due.pop(None, []))
        undated.write({"state": "canceled", "cancel_reason": "no_date"})
        moved = Trace.browse()
        for due, ids in by_due.items():
            group = Trace.browse(ids)
            group.write({"state": "scheduled", "due_at": due, "defer_reason": False})
            moved |= group
        Trace._wake_dispatch(moved)
        return moved
