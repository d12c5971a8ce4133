# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Compliance rules other than send windows, as dated and sourced data.

Send windows, closed days and caps are ``sms.microfunnel.policy`` rows.  The
other rules the product enforces live here, one row each, so that a
compliance officer sees their source and dates next to the windows: the
revocation keywords, the single confirmation, the revoke-all scope, a state's
opt-out retention, the regulated sectors, the sender identification of a
country.  The code that applies a rule asks ``_in_force(code, day)``: a row
whose start date is ahead is ignored until that day, then applies by itself.
Each ``code`` has its section in the compliance book (``docs/compliance.md``).
"""

from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError

from .res_company import REGULATED_SECTORS
from .sms_microfunnel_policy import BASES

RULE_KINDS = [
    ("revocation", "Revocation keywords"),
    ("confirmation", "Opt-out confirmation"),
    ("revoke_all", "Revocation scope"),
    ("retention", "Opt-out retention"),
    ("unsubscribe", "Unsubscribe delay"),
    ("identification", "Sender identification"),
    ("sector", "Regulated sector"),
    ("consent", "Consent"),
]


class SmsMicrofunnelRule(models.Model):
    _name = "sms.microfunnel.rule"
    _inherit = ["sms.microfunnel.rule.source", "mail.thread"]
    _description = "SMS Compliance Rule"
    _order = "country_id, kind, valid_from, id"

    name = fields.Char(required=True, tracking=True)
    code = fields.Char(
        "Rule ID",
        required=True,
        tracking=True,
        help="Identifier of the rule, the heading of its section in the "
        "compliance book (docs/compliance.md).",
    )
    active = fields.Boolean(default=True, tracking=True)
    kind = fields.Selection(RULE_KINDS, required=True, tracking=True)
    country_id = fields.Many2one("res.country", tracking=True)
    state_id = fields.Many2one(
        "res.country.state", domain="[('country_id', '=', country_id)]", tracking=True
    )
    sector = fields.Selection(
        REGULATED_SECTORS,
        tracking=True,
        help="For a sector rule: the regulated sector it applies to.",
    )
    retention_years = fields.Integer(
        "Keep Opt-outs (years)",
        tracking=True,
        help="For a retention rule: the least number of years an opt-out of this "
        "state's numbers is kept by the retention and erasure jobs.",
    )
    basis = fields.Selection(BASES, required=True, default="law", tracking=True)
    source = fields.Text(required=True, tracking=True, help="What the source says.")
    valid_from = fields.Date(
        required=True, default=fields.Date.context_today, tracking=True
    )
    valid_to = fields.Date(tracking=True, help="Last day the rule applies.")
    note = fields.Text(help="How the product applies the rule.")

    _code_unique = models.Constraint("UNIQUE(code)", "A rule ID is used only once.")

    @api.constrains("valid_from", "valid_to")
    def _check_validity(self):
        for rule in self:
            if rule.valid_to and rule.valid_to < rule.valid_from:
                raise ValidationError(
                    self.env._(
                        "Rule “%(name)s”: it cannot end before it starts.",
                        name=rule.name,
                    )
                )

    @api.model
    def _in_force(self, code, day=None):
        """The active rule ``code`` when it applies on ``day`` (default:
        today), else an empty recordset.  Cached: the message rules ask it
        for every message to a Canadian number."""
        day = day or fields.Date.context_today(self)
        if hasattr(day, "date") and callable(day.date):
            day = day.date()
        found = self._rule_dates(code)
        if found:
            rule_id, valid_from, valid_to = found
            if valid_from <= day and (not valid_to or valid_to >= day):
                return self.browse(rule_id)
        return self.browse()

    @api.model
    @tools.ormcache("code")
    def _rule_dates(self, code):
        rule = self.sudo().search([("code", "=", code)], limit=1)
        return (rule.id, rule.valid_from, rule.valid_to) if rule else None

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()
        return super().create(vals_list)

    def write(self, vals):
        self.env.registry.clear_cache()
        return super().write(vals)

    def unlink(self):
        self.env.registry.clear_cache()
        return super().unlink()

    @api.model
    def _sector_rule(self, sector, day=None):
        """The rule in force behind a regulated ``sector`` (may be empty)."""
        day = day or fields.Date.context_today(self)
        rules = self.sudo().search(
            [("kind", "=", "sector"), ("sector", "=", sector)], order="valid_from desc"
        )
        return rules.filtered(lambda r: r._rule_state_on(day) == "in_force")[:1]

    # -- retention of opt-outs (e.g. Virginia: 10 years) ---------------------

    @api.model
    def _opt_out_retention_years(self, partners, day=None):
        """{partner id: years} for contacts whose opt-out must be kept longer
        than the company's retention period: a retention rule in force for
        the state of their number (area code) or address, and an opt-out
        recorded for their number.  Three queries whatever the batch."""
        rules = self.sudo().search([("kind", "=", "retention")])
        day = day or fields.Date.context_today(self)
        rules = rules.filtered(
            lambda r: (
                r.state_id and r.retention_years and r._rule_state_on(day) == "in_force"
            )
        )
        if not rules or not partners:
            return {}
        Policy = self.env["sms.microfunnel.policy"].sudo()
        area_years = {}
        for rule in rules:
            policies = Policy.with_context(active_test=False).search(
                [("state_id", "=", rule.state_id.id)]
            )
            for policy in policies:
                for code in policy._area_code_list():
                    area_years[code] = max(
                        area_years.get(code, 0), rule.retention_years
                    )
        state_years = {r.state_id.id: r.retention_years for r in rules}
        numbers = {p.phone_sanitized for p in partners if p.phone_sanitized}
        opted_out = set()
        if numbers:
            events = (
                self.env["sms.microfunnel.consent.event"]
                .sudo()
                .search_fetch(
                    [("number", "in", list(numbers)), ("event_type", "=", "opt_out")],
                    ["number"],
                )
            )
            opted_out = set(events.mapped("number"))
        floors = {}
        for partner in partners:
            number = partner.phone_sanitized
            if not number or number not in opted_out:
                continue
            years = state_years.get(partner.state_id.id, 0)
            if number.startswith("+1") and len(number) >= 5:
                years = max(years, area_years.get(number[2:5], 0))
            if years:
                floors[partner.id] = years
        return floors
