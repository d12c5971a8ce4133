# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import re
from datetime import date

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools import send_window
from ..tools.policy_format import split_codes

_REGION = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,9}$")


def _holiday_rule_selection(_model=None):
    return [(key, key) for key in sorted(send_window.HOLIDAY_RULES)]


class SmsMicrofunnelPolicyHoliday(models.Model):
    _name = "sms.microfunnel.policy.holiday"
    _description = "SMS Send-Window Closed Day"
    _order = "kind, rule_key, date, id"

    policy_id = fields.Many2one(
        "sms.microfunnel.policy", required=True, ondelete="cascade", index=True
    )
    active = fields.Boolean(default=True)
    name = fields.Char()
    kind = fields.Selection(
        [
            ("rule", "Holiday calendar"),
            ("date", "Single date"),
            ("annual", "Same day every year"),
        ],
        required=True,
        default="rule",
    )
    rule_key = fields.Selection(
        _holiday_rule_selection,
        "Calendar",
        help="Public holidays computed per year by the send-window engine "
        "(fixed dates and Easter-based ones).",
    )
    date = fields.Date(help="For “same day every year”, the year is ignored.")
    regions = fields.Char(
        help="Empty: everywhere in the country. Otherwise the regions it applies "
        "to, comma-separated: French regions FR-AM (Alsace-Moselle), GP, MQ, GF, "
        "RE, YT, BL, MF, PM, or the state code of the address (e.g. BY).",
    )

    @api.constrains("kind", "rule_key", "date", "regions")
    def _check_holiday(self):
        for holiday in self:
            if holiday.kind == "rule" and not holiday.rule_key:
                raise ValidationError(
                    self.env._("A holiday calendar line needs a calendar.")
                )
            if holiday.kind in ("date", "annual") and not holiday.date:
                raise ValidationError(self.env._("A closed day needs a date."))
            wrong = [
                r for r in split_codes(holiday.regions) if not _REGION.match(r.upper())
            ]
            if wrong:
                raise ValidationError(
                    self.env._("Not a region code: %(codes)s.", codes=", ".join(wrong))
                )

    def _region_set(self):
        return {r.upper() for r in split_codes(self.regions)}

    def _applies_to(self, regions):
        own = self._region_set()
        return not own or bool(own & {r.upper() for r in regions})

    def _annual_date(self, year):
        try:
            return date(year, self.date.month, self.date.day)
        except ValueError:  # 29 February
            return None

    def _closed_dates(self, year):
        """{date: name} of this row in ``year`` (whatever its regions)."""
        self.ensure_one()
        if self.kind == "rule" and self.rule_key:
            return send_window.holidays(year, self.rule_key)
        if self.kind == "date" and self.date and self.date.year == year:
            return {self.date: self.name or ""}
        if self.kind == "annual" and self.date:
            day = self._annual_date(year)
            return {day: self.name or ""} if day else {}
        return {}
