# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.policy_format import hhmm
from .sms_microfunnel_policy import WEEKDAYS


class SmsMicrofunnelPolicyLine(models.Model):
    _name = "sms.microfunnel.policy.line"
    _description = "SMS Send-Window Interval"
    _order = "weekday, hour_from, id"

    policy_id = fields.Many2one(
        "sms.microfunnel.policy", required=True, ondelete="cascade", index=True
    )
    active = fields.Boolean(default=True)
    weekday = fields.Selection(WEEKDAYS, required=True, default="0")
    hour_from = fields.Float("From", required=True, default=8.0)
    hour_to = fields.Float("To", required=True, default=20.0)
    name = fields.Char("Label", help="e.g. the option this line stands for.")

    @api.constrains("hour_from", "hour_to")
    def _check_hours(self):
        for line in self:
            if not 0 <= line.hour_from < line.hour_to <= 24:
                raise ValidationError(
                    self.env._(
                        "An interval runs from 00:00 to 24:00 at most and ends "
                        "after it starts (%(start)s–%(end)s).",
                        start=hhmm(line.hour_from),
                        end=hhmm(line.hour_to),
                    )
                )

    @api.depends("weekday", "hour_from", "hour_to")
    @api.depends_context("lang")
    def _compute_display_name(self):
        labels = dict(self._fields["weekday"]._description_selection(self.env))
        for line in self:
            line.display_name = (
                f"{labels.get(line.weekday, '')} "
                f"{hhmm(line.hour_from)}–{hhmm(line.hour_to)}"
            )

    # Every change of the window is a policy choice: log it on the policy.

    def _log(self, verb):
        if self.env.context.get("install_mode"):
            return  # shipped data, not a choice
        for line in self:
            text = line.display_name
            if line.name:
                text = f"{text} ({line.name})"
            line.policy_id.message_post(
                body=self.env._("Interval %(line)s %(verb)s.", line=text, verb=verb)
            )

    @api.model_create_multi
    def create(self, vals_list):
        lines = super().create(vals_list)
        lines._log(self.env._("added"))
        return lines

    def write(self, vals):
        result = super().write(vals)
        if "active" in vals:
            self._log(
                self.env._("switched on")
                if vals["active"]
                else self.env._("switched off")
            )
        elif {"weekday", "hour_from", "hour_to"} & set(vals):
            self._log(self.env._("changed"))
        return result

    def unlink(self):
        self._log(self.env._("removed"))
        return super().unlink()
