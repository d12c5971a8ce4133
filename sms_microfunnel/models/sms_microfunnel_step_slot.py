# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models

from .sms_microfunnel_policy import WEEKDAYS

_MON_FRI = ("0", "1", "2", "3", "4")


class SmsMicrofunnelStepSlot(models.Model):
    _name = "sms.microfunnel.step.slot"
    _description = "SMS Funnel Step Send Hours"
    _order = "step_id, sequence, id"

    step_id = fields.Many2one(
        "sms.microfunnel.step", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer(default=10)
    weekday = fields.Selection(
        [("all", "Every day"), ("mon_fri", "Monday to Friday"), *WEEKDAYS],
        "Day",
        required=True,
        default="mon_fri",
    )
    hour_from = fields.Float("From", required=True, default=10.0)
    hour_to = fields.Float("To", required=True, default=11.0)

    _hours_in_day = models.Constraint(
        "CHECK(hour_from >= 0 AND hour_to <= 24 AND hour_from < hour_to)",
        "Send hours run from 00:00 to 24:00 and end after they start.",
    )

    def _spans(self):
        """``(weekday or None, start minute, end minute)`` triples."""
        spans = []
        for line in self:
            start, end = round(line.hour_from * 60), round(line.hour_to * 60)
            if line.weekday == "all":
                days = [None]
            elif line.weekday == "mon_fri":
                days = [int(d) for d in _MON_FRI]
            else:
                days = [int(line.weekday)]
            spans += [(day, start, end) for day in days]
        return spans
