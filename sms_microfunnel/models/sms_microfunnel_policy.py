# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send-window policies: windows, closed days and caps as data.

Each policy is a rule of the compliance book (``docs/compliance.md``, section
named by its ``code``), with its source and the dates it applies.

A policy applies to one country (and, for the US, optionally one state with
its area codes), one message class and, optionally, one company.  Its lines
are the allowed intervals per weekday (several per day, each can be switched
off), its holidays the closed days (a holiday calendar of the pure engine
``send_window.HOLIDAY_RULES``, a single date, or the same date every year),
each optionally limited to regions (French region codes such as ``FR-AM`` or
``GP``, or the address state code, e.g. ``BY`` for a German Land).

The models only hold the data: every computation is done by the pure engine
(``tools/send_window/``) on the ``send_window.Policy`` built by
``_to_window_policy``.  The compliance gate (``sms.microfunnel.gate``) picks
the policies of each recipient.
"""

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools import run_cache, send_window
from ..tools.policy_format import hhmm, split_codes

MESSAGE_CLASSES = [
    ("marketing", "Marketing"),
    ("transactional", "Transactional"),
]
WEEKDAYS = [
    ("0", "Monday"),
    ("1", "Tuesday"),
    ("2", "Wednesday"),
    ("3", "Thursday"),
    ("4", "Friday"),
    ("5", "Saturday"),
    ("6", "Sunday"),
]
BASES = [
    ("law", "Law"),
    ("industry", "Industry rule"),
    ("policy", "Our policy"),
]
CAP_SCOPES = [
    ("global", "All marketing messages"),
    ("subject", "Same subject only"),
]
_AREA_CODE = re.compile(r"^[2-9]\d{2}$")


class SmsMicrofunnelPolicy(models.Model):
    _name = "sms.microfunnel.policy"
    _description = "SMS Send-Window Policy"
    _inherit = ["sms.microfunnel.rule.source", "mail.thread"]
    _order = "country_id, state_id desc, message_class, sequence, id"

    name = fields.Char(required=True, tracking=True, translate=True)
    code = fields.Char(
        "Rule ID",
        tracking=True,
        help="Identifier of the rule, e.g. FR or US-FL: the heading of its "
        "section in the compliance book (docs/compliance.md).",
    )
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True, tracking=True)
    company_id = fields.Many2one(
        "res.company",
        tracking=True,
        help="Empty: applies to every company. A company's own policy for a "
        "country, state and message class replaces the shared ones.",
    )
    message_class = fields.Selection(
        MESSAGE_CLASSES,
        required=True,
        default="marketing",
        tracking=True,
        help="Transactional messages are not windowed unless a transactional "
        "policy exists for the recipient's country.",
    )
    country_id = fields.Many2one("res.country", required=True, tracking=True)
    state_id = fields.Many2one(
        "res.country.state",
        domain="[('country_id', '=', country_id)]",
        tracking=True,
        help="Empty: the whole country. A state policy adds to the country's: "
        "the strictest of both applies.",
    )
    area_codes = fields.Char(
        tracking=True,
        help="North-American area codes of this state, comma-separated "
        "(e.g. 305, 786). A number with one of them is presumed to live in the "
        "state; the strictest of this state and the address state applies.",
    )
    tz_names = fields.Char(
        "Time Zones",
        tracking=True,
        help="IANA zones used when neither the contact's time zone nor the number "
        "tells where the recipient is (comma-separated; several zones: the "
        "window must be open in all of them).",
    )
    line_ids = fields.One2many(
        "sms.microfunnel.policy.line",
        "policy_id",
        "Allowed Intervals",
        copy=True,
        context={"active_test": False},
    )
    holiday_ids = fields.One2many(
        "sms.microfunnel.policy.holiday",
        "policy_id",
        "Closed Days",
        copy=True,
        context={"active_test": False},
    )
    cap_count = fields.Integer(
        "Cap: Messages",
        tracking=True,
        help="At most this many marketing SMS per number in the rolling period "
        "(empty: no cap).",
    )
    cap_hours = fields.Integer("Cap: Period (hours)", tracking=True)
    cap_scope = fields.Selection(
        CAP_SCOPES,
        "Cap: Counts",
        required=True,
        default="global",
        tracking=True,
        help="All marketing messages: every marketing SMS sent to the number "
        "counts (the stricter reading). Same subject only: only the messages of "
        "the same funnel or mailing count, as laws that cap messages “on the "
        "same subject matter” allow.",
    )
    consent_lifts_window = fields.Boolean(
        "Consent Lifts the Window",
        tracking=True,
        help="The law's hours do not apply to a recipient who gave prior "
        "consent. Marketing SMS only reach numbers with a confirmed consent, so "
        "this window is then not applied to them (other policies still are).",
    )
    basis = fields.Selection(BASES, required=True, default="policy", tracking=True)
    source = fields.Text(
        required=True,
        tracking=True,
        help="Where the rule comes from: statute, regulator, industry charter "
        "or our own choice, with references.",
    )
    valid_from = fields.Date(
        required=True, default=fields.Date.context_today, tracking=True
    )
    valid_to = fields.Date(tracking=True, help="Last day the policy applies.")
    note = fields.Text(help="Options and caveats of this policy.")
    window_summary = fields.Char("Window", compute="_compute_window_summary")
    closed_days_preview = fields.Text(
        "Closed Days This Year", compute="_compute_closed_days_preview"
    )

    # -- constraints ----------------------------------------------------------

    @api.constrains("cap_count", "cap_hours", "message_class")
    def _check_cap(self):
        for policy in self:
            if bool(policy.cap_count) != bool(policy.cap_hours):
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: a cap needs both a number of messages "
                        "and a period in hours.",
                        name=policy.name,
                    )
                )
            if policy.cap_count < 0 or policy.cap_hours < 0:
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: cap values must be positive.",
                        name=policy.name,
                    )
                )
            if policy.cap_count and policy.message_class != "marketing":
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: frequency caps count marketing messages "
                        "and only apply to marketing policies.",
                        name=policy.name,
                    )
                )

    @api.constrains("valid_from", "valid_to")
    def _check_validity(self):
        for policy in self:
            if policy.valid_to and policy.valid_to < policy.valid_from:
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: it cannot end before it starts.",
                        name=policy.name,
                    )
                )

    @api.constrains("country_id", "state_id", "area_codes")
    def _check_state(self):
        for policy in self:
            if policy.state_id and policy.state_id.country_id != policy.country_id:
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: the state %(state)s is not in %(country)s.",
                        name=policy.name,
                        state=policy.state_id.name,
                        country=policy.country_id.name,
                    )
                )
            codes = split_codes(policy.area_codes)
            if codes and not policy.state_id:
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: area codes belong to a state policy.",
                        name=policy.name,
                    )
                )
            wrong = [c for c in codes if not _AREA_CODE.match(c)]
            if wrong:
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: not an area code: %(codes)s (three "
                        "digits, e.g. 305).",
                        name=policy.name,
                        codes=", ".join(wrong),
                    )
                )

    @api.constrains("tz_names")
    def _check_tz_names(self):
        for policy in self:
            wrong = []
            for name in split_codes(policy.tz_names):
                try:
                    ZoneInfo(name)
                except (ZoneInfoNotFoundError, ValueError):
                    wrong.append(name)
            if wrong:
                raise ValidationError(
                    self.env._(
                        "Policy “%(name)s”: unknown time zone(s): %(zones)s "
                        "(IANA names such as Europe/Paris).",
                        name=policy.name,
                        zones=", ".join(wrong),
                    )
                )

    # -- display --------------------------------------------------------------

    @api.depends(
        "line_ids.active",
        "line_ids.weekday",
        "line_ids.hour_from",
        "line_ids.hour_to",
        "cap_count",
        "cap_hours",
    )
    @api.depends_context("lang")
    def _compute_window_summary(self):
        labels = dict(
            self.env["sms.microfunnel.policy.line"]
            ._fields["weekday"]
            ._description_selection(self.env)
        )
        for policy in self:
            per_day = {}
            for line in policy.line_ids.filtered("active").sorted(
                lambda x: (x.weekday, x.hour_from)
            ):
                per_day.setdefault(line.weekday, []).append(
                    f"{hhmm(line.hour_from)}–{hhmm(line.hour_to)}"
                )
            parts = [
                f"{labels[day][:3]} {', '.join(spans)}"
                for day, spans in sorted(per_day.items())
            ]
            summary = "; ".join(parts) or self.env._("closed")
            if policy.cap_count:
                summary += self.env._(
                    "; at most %(count)s per %(hours)s h",
                    count=policy.cap_count,
                    hours=policy.cap_hours,
                )
                if policy.cap_scope == "subject":
                    summary += self.env._(" on the same subject")
            policy.window_summary = summary

    @api.depends(
        "holiday_ids.active",
        "holiday_ids.kind",
        "holiday_ids.rule_key",
        "holiday_ids.date",
        "holiday_ids.regions",
    )
    def _compute_closed_days_preview(self):
        year = fields.Date.context_today(self).year
        for policy in self:
            lines = []
            for holiday in policy.holiday_ids.filtered("active"):
                where = holiday.regions or self.env._("whole country")
                for day, name in sorted(holiday._closed_dates(year).items()):
                    lines.append(f"{day.isoformat()}  {name} ({where})")
            policy.closed_days_preview = "\n".join(sorted(lines))

    # -- choosing between alternatives ----------------------------------------

    def action_select(self):
        """Apply this policy instead of the other active ones of the same
        country, state, message class and company (e.g. the af2m 2026 charter
        instead of the conservative French default). Logged on both."""
        self.ensure_one()
        others = self.search(
            [
                ("id", "!=", self.id),
                ("country_id", "=", self.country_id.id),
                ("state_id", "=", self.state_id.id),
                ("message_class", "=", self.message_class),
                ("company_id", "=", self.company_id.id),
            ]
        )
        others.write({"active": False})
        self.active = True
        for other in others:
            other.message_post(
                body=self.env._(
                    "Replaced by the policy “%(name)s”.", name=self.display_name
                )
            )
        self.message_post(
            body=self.env._(
                "Selected; it replaces: %(names)s.",
                names=", ".join(others.mapped("display_name")) or "-",
            )
        )
        return True

    # -- engine ---------------------------------------------------------------

    def _area_code_list(self):
        self.ensure_one()
        return split_codes(self.area_codes)

    def _tz_name_list(self):
        self.ensure_one()
        return split_codes(self.tz_names)

    def _to_window_policy(self, regions=(), years=None):
        """This policy as a ``send_window.Policy`` for a recipient in ``regions``.

        ``regions`` are the recipient's region codes (``FR-AM``, ``GP``, an
        address state code...): holiday rows limited to other regions are left
        out.  ``years`` bounds the expansion of "same day every year" rows
        (default: last year to three years ahead, more than the engine's
        400-day horizon).
        """
        self.ensure_one()
        if years is None:
            this_year = fields.Date.context_today(self).year
            years = range(this_year - 1, this_year + 4)
        regions = set(regions or ())
        intervals = {}
        for line in self.line_ids:
            if not line.active:
                continue
            intervals.setdefault(int(line.weekday), []).append(
                (round(line.hour_from * 60), round(line.hour_to * 60))
            )
        rules, closed = [], set()
        for holiday in self.holiday_ids:
            if not holiday.active or not holiday._applies_to(regions):
                continue
            if holiday.kind == "rule":
                rules.append(holiday.rule_key)
            elif holiday.kind == "date":
                closed.add(holiday.date)
            else:
                for year in years:
                    day = holiday._annual_date(year)
                    if day:
                        closed.add(day)
        return send_window.Policy(
            intervals=intervals,
            closed_dates=frozenset(closed),
            holiday_rules=tuple(rules),
            cap_count=self.cap_count or None,
            cap_hours=self.cap_hours or None,
            name=self.code or self.name,
        )

    @api.model
    def _applicable(self, message_class, company, day):
        """Active policies of ``message_class`` valid on ``day`` for ``company``.

        Returns ``{(country_code, state_code or False): policies}``; for each
        key, the company's own policies replace the shared ones.
        """
        domain = [
            ("message_class", "=", message_class),
            ("company_id", "in", [company.id, False]),
            ("valid_from", "<=", day),
            "|",
            ("valid_to", "=", False),
            ("valid_to", ">=", day),
        ]
        policies = self.sudo().browse(
            run_cache.memo(
                self.env,
                ("policies", message_class, company.id, day),
                lambda: tuple(self.sudo().search(domain).ids),
            )
        )
        # one prefetch set: lines and closed days of every policy in 2 queries
        policies.line_ids.fetch(["active", "weekday", "hour_from", "hour_to"])
        policies.holiday_ids.fetch(["active", "kind", "rule_key", "date", "regions"])
        index = {}
        for key, found in policies.grouped(
            lambda p: (p.country_id.code, p.state_id.code or False)
        ).items():
            own = found.filtered("company_id")
            index[key] = (own or found).with_prefetch(policies._prefetch_ids)
        return index
