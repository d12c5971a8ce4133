# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Email and SMS steps of funnels report through Odoo's mailing traces."""

from odoo import fields, models

#: SMS mailing trace statuses written by the SMS trackers -> the funnel
#: trace's event (``outgoing`` and ``process`` change nothing)
SMS_STATUS_EVENTS = {
    "pending": "sent",
    "sent": "delivered",
    "error": "failed",
    "bounce": "bounced",
    "cancel": "canceled",
}


class MailingTrace(models.Model):
    _inherit = "mailing.trace"

    # the frequency caps count a number's recent SMS mailing traces, chunk by
    # chunk: without an index each lookup reads every SMS trace ever sent
    sms_number = fields.Char(index="btree_not_null")

    def _sms_funnel_notify(self, event, failure_type=False):
        if not self:
            return
        funnel_traces = (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .search([("mailing_trace_id", "in", self.ids)])
        )
        if not funnel_traces:
            return
        if failure_type is False and event in ("failed", "bounced", "canceled"):
            by_mailing_trace = {t.id: t.failure_type for t in self}
            groups = funnel_traces.grouped(
                lambda t: by_mailing_trace.get(t.mailing_trace_id.id)
            )
            for failure, traces in groups.items():
                traces._update_from_mailing_trace(event, failure)
            return
        funnel_traces._update_from_mailing_trace(event, failure_type)

    def _sms_funnel_notify_status(self, trace_status, failure_type=False):
        """The SMS trackers moved these traces to ``trace_status``."""
        event = SMS_STATUS_EVENTS.get(trace_status)
        if event:
            self._sms_funnel_notify(event, failure_type)

    def set_sent(self, domain=None):
        traces = super().set_sent(domain=domain)
        traces._sms_funnel_notify("sent")
        return traces

    def set_opened(self, domain=None):
        traces = super().set_opened(domain=domain)
        traces._sms_funnel_notify("opened")
        return traces

    def set_clicked(self, domain=None):
        traces = super().set_clicked(domain=domain)
        traces._sms_funnel_notify("clicked")
        return traces

    def set_bounced(self, domain=None, bounce_message=False):
        traces = super().set_bounced(domain=domain, bounce_message=bounce_message)
        traces._sms_funnel_notify("bounced", "mail_bounce")
        return traces

    def set_failed(self, domain=None, failure_type=False):
        traces = super().set_failed(domain=domain, failure_type=failure_type)
        traces._sms_funnel_notify("failed", failure_type)
        return traces

    def set_canceled(self, domain=None):
        traces = super().set_canceled(domain=domain)
        traces._sms_funnel_notify("canceled")
        return traces
