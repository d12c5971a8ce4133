# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import timezone

from odoo import api, models


class SmsMicrofunnelGate(models.AbstractModel):
    _inherit = "sms.microfunnel.gate"

    @api.model
    def _recent_funnel_marketing_traces(self, numbers, since, field_names):
        """Funnel marketing SMS queued for ``numbers`` after ``since`` (the
        traces both frequency caps count), with ``field_names`` fetched."""
        if since.tzinfo:
            since = since.astimezone(timezone.utc).replace(tzinfo=None)
        numbers = [n for n in set(numbers) if n]
        if not numbers:
            return self.env["sms.microfunnel.trace"]
        return (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .search_fetch(
                [
                    ("number", "in", numbers),
                    ("queued_at", ">", since),
                    ("state", "in", ("queued", "sent", "delivered")),
                    ("step_id.message_class", "=", "marketing"),
                    ("step_type", "=", "sms"),
                ],
                field_names,
            )
        )

    @api.model
    def _recent_marketing_sends(self, numbers, since):
        """Funnel marketing messages count towards the frequency caps too."""
        sends = super()._recent_marketing_sends(numbers, since)
        traces = self._recent_funnel_marketing_traces(
            numbers, since, ["number", "queued_at"]
        )
        for trace in traces:
            sends.setdefault(trace.number, []).append(trace.queued_at)
        for sent in sends.values():
            sent.sort()
        return sends

    @api.model
    def _recent_marketing_subjects(self, numbers, since):
        """Funnel marketing SMS count towards "same subject" caps: their
        subject is the funnel (``sms.microfunnel.campaign,<id>``), the consent
        scope the gate evaluates funnel traces with."""
        sends = super()._recent_marketing_subjects(numbers, since)
        traces = self._recent_funnel_marketing_traces(
            numbers, since, ["number", "queued_at", "campaign_id"]
        )
        for trace in traces:
            sends.setdefault(trace.number, []).append(
                (trace.queued_at, f"sms.microfunnel.campaign,{trace.campaign_id.id}")
            )
        return sends
