# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Start / Enroll audience confirmation: what the compliance gate would decide
for the funnel's audience (pre-flight figures), then start and enroll only the
records a message can reach, unless the user also wants the blocked ones."""

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools.misc import format_datetime

from ..models.sms_microfunnel_campaign import ENROL_NOW_MAX


class SmsFunnelLaunch(models.TransientModel):
    _name = "sms.microfunnel.launch"
    _description = "SMS Funnel: Start or Enroll Confirmation"

    campaign_id = fields.Many2one(
        "sms.microfunnel.campaign", "Funnel", required=True, ondelete="cascade"
    )
    mode = fields.Selection(
        [("start", "Start"), ("enroll", "Enroll audience")],
        required=True,
        default="start",
    )
    enroll_now = fields.Boolean(
        "Enroll the Audience Now",
        default=True,
        help="Without it, the funnel runs but nobody is enrolled until you click "
        "“Enroll audience”, the scheduled enrollment time comes, or an automation "
        "rule or the event API enrolls someone.",
    )
    keep_blocked = fields.Boolean(
        "Also Enroll the Blocked Records",
        help="Their messages are cancelled at dispatch with the reason (no "
        "consent, invalid number…); counted in the funnel's figures.",
    )
    preflight_id = fields.Many2one(
        "sms.microfunnel.preflight", readonly=True, ondelete="cascade"
    )
    total_count = fields.Integer(related="preflight_id.total_count")
    allow_count = fields.Integer(related="preflight_id.allow_count")
    defer_count = fields.Integer(related="preflight_id.defer_count")
    block_count = fields.Integer(related="preflight_id.block_count")
    line_ids = fields.One2many(related="preflight_id.line_ids")
    summary = fields.Char(compute="_compute_summary")
    next_steps = fields.Text(compute="_compute_summary")

    @api.model_create_multi
    def create(self, vals_list):
        wizards = super().create(vals_list)
        for wizard in wizards:
            wizard._run_preflight()
        return wizards

    def _run_preflight(self):
        self.ensure_one()
        funnel = self.campaign_id
        preflight = self.env["sms.microfunnel.preflight"].create(
            {
                "res_model": funnel.model_name,
                "domain": funnel.domain or "[]",
                "segment_id": funnel.segment_id.id,
                "company_id": funnel.company_id.id,
                "scope": funnel._consent_scope(),
                "message_class": funnel._audience_message_class(),
            }
        )
        preflight.action_check()
        self.preflight_id = preflight

    def _check_audience(self):
        if self.mode == "enroll" and not self.total_count:
            raise UserError(
                self.env._(
                    "The audience of this funnel is empty: change its filter or "
                    "segment."
                )
            )

    def _when(self, value):
        """A local time the user reads in their own zone (“Mon 08:00”)."""
        tz = self.env.user.tz or self.campaign_id.company_id.partner_id.tz or "UTC"
        return format_datetime(self.env, value, tz=tz, dt_format="EEE HH:mm")

    @api.depends("preflight_id", "mode", "enroll_now", "keep_blocked")
    def _compute_summary(self):
        for wizard in self:
            preflight = wizard.preflight_id
            parts = [
                self.env._("%(count)s now", count=preflight.allow_count),
            ]
            deferred = {}
            for line in preflight.line_ids.filtered(lambda x: x.action == "defer"):
                key = line.until_min
                deferred[key] = deferred.get(key, 0) + line.count
            for until, count in sorted(deferred.items(), key=lambda i: i[0] or 0):
                parts.append(
                    self.env._(
                        "%(count)s on %(when)s", count=count, when=wizard._when(until)
                    )
                )
            parts.append(self.env._("%(count)s blocked", count=preflight.block_count))
            summary = self.env._(
                "%(total)s selected: %(parts)s",
                total=preflight.total_count,
                parts=", ".join(parts),
            )
            reasons = [
                f"{line.count} {preflight._selection_label('reason', line).lower()}"
                for line in preflight.line_ids.filtered(lambda x: x.action == "block")
            ]
            if reasons:
                summary = f"{summary} — {', '.join(reasons)}"
            wizard.summary = summary
            wizard.next_steps = wizard._next_steps_text()

    def _next_steps_text(self):
        reachable = self.allow_count + self.defer_count
        enrolled = reachable + (self.block_count if self.keep_blocked else 0)
        if self.mode == "start" and not self.enroll_now:
            return self.env._(
                "The funnel starts running but enrolls nobody yet. Next: click "
                "“Enroll audience” when you are ready, or let an automation rule, "
                "the scheduled enrollment time or the event API enroll contacts."
            )
        text = self.env._(
            "%(count)s records will be enrolled. The first messages go out "
            "within a minute for those sendable now; the deferred ones wait for "
            "their send window. Each next step follows its wait and condition.",
            count=enrolled,
        )
        if self.block_count and not self.keep_blocked:
            text += " " + self.env._(
                "The %(count)s blocked records are not enrolled.",
                count=self.block_count,
            )
        return text

    def _records_to_enroll(self):
        self.ensure_one()
        lines = self.preflight_id.line_ids
        if not self.keep_blocked:
            lines = lines.filtered(lambda x: x.action != "block")
        ids = [res_id for line in lines for res_id in line._res_ids()]
        return self.env[self.campaign_id.model_name].browse(sorted(ids)).exists()

    def action_confirm(self):
        self.ensure_one()
        funnel = self.campaign_id
        if self.mode == "start":
            funnel.action_start()
        elif funnel.state != "running":
            raise UserError(
                self.env._("Start the funnel before enrolling its audience.")
            )
        enroll = self.mode == "enroll" or self.enroll_now
        blocked = 0 if self.keep_blocked else self.block_count
        to_enroll = self.total_count - blocked
        if enroll and to_enroll > ENROL_NOW_MAX:
            # minutes of work: the dispatch job enrolls them, chunk by chunk
            funnel._enroll_in_background(skip_blocked=not self.keep_blocked)
            message = self.env._(
                "%(count)s records are being enrolled in the background "
                "(%(blocked)s blocked left out); each receives the first step as "
                "soon as it is enrolled.",
                count=to_enroll,
                blocked=blocked,
            )
        elif enroll:
            records = self._records_to_enroll()
            enrollments = funnel._enroll(records)
            funnel.audience_enrolled_at = fields.Datetime.now()
            message = self.env._(
                "%(count)s records enrolled (%(skipped)s already in this funnel, "
                "%(blocked)s blocked left out).",
                count=len(enrollments),
                skipped=len(records) - len(enrollments),
                blocked=blocked,
            )
        else:
            message = self.env._(
                "The funnel is running. Nobody is enrolled yet: click “Enroll "
                "audience” when you are ready."
            )
        funnel.message_post(body=message)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": message,
                # closing the dialog reloads the funnel: its counters are current
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
