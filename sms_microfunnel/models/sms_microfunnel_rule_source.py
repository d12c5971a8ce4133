# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Where a compliance rule comes from and when it applies.

Shared by the send-window policies (``sms.microfunnel.policy``) and the other
rules (``sms.microfunnel.rule``: keywords, revocation, retention, sectors...).
Each rule carries a rule id (``code``, the heading of its section in the
compliance book ``docs/compliance.md``), its source (title, article, address)
and the dates it applies from and until.  A rule whose start date is ahead is
*upcoming*: nothing has to be switched on, the evaluation picks it up on that
date (``valid_from <= day``), and stops using it after ``valid_to``.
"""

from odoo import api, fields, models

RULE_STATES = [
    ("upcoming", "Upcoming"),
    ("in_force", "In force"),
    ("ended", "Ended"),
]


class SmsMicrofunnelRuleSource(models.AbstractModel):
    _name = "sms.microfunnel.rule.source"
    _description = "SMS Compliance Rule Source"

    source_title = fields.Char(
        help="Title of the law, regulation, charter or decision, e.g. "
        "“Loi n° 2025-594 du 30 juin 2025”.",
    )
    source_article = fields.Char(
        "Article", help="Article, section or paragraph, e.g. “47 CFR 64.1200(a)(10)”."
    )
    source_url = fields.Char("Source Address", help="Public address of the text.")
    rule_state = fields.Selection(
        RULE_STATES,
        "Status",
        compute="_compute_rule_state",
        search="_search_rule_state",
        help="Upcoming: the rule starts on its “valid from” date and applies by "
        "itself from then on. Ended: its “valid to” date is past.",
    )
    source_label = fields.Char("Reference", compute="_compute_source_label")

    @api.depends("valid_from", "valid_to")
    @api.depends_context("date")
    def _compute_rule_state(self):
        today = self._rule_today()
        for rule in self:
            rule.rule_state = rule._rule_state_on(today)

    def _rule_today(self):
        return self.env.context.get("date") or fields.Date.context_today(self)

    def _rule_state_on(self, day):
        self.ensure_one()
        if self.valid_from and self.valid_from > day:
            return "upcoming"
        if self.valid_to and self.valid_to < day:
            return "ended"
        return "in_force"

    def _search_rule_state(self, operator, value):
        today = self._rule_today()
        domains = {
            "upcoming": [("valid_from", ">", today)],
            "ended": [("valid_to", "<", today)],
            "in_force": [
                ("valid_from", "<=", today),
                "|",
                ("valid_to", "=", False),
                ("valid_to", ">=", today),
            ],
        }
        if operator in ("=", "!=") and isinstance(value, str):
            values = [value]
        elif operator in ("in", "not in"):
            values = list(value)
        else:
            return NotImplemented
        ids = set()
        for state in values:
            ids |= set(self.search(domains.get(state, [("id", "=", 0)])).ids)
        if operator in ("!=", "not in"):
            return [("id", "not in", list(ids))]
        return [("id", "in", list(ids))]

    @api.depends("code", "source_title", "source_article", "source_url")
    def _compute_source_label(self):
        for rule in self:
            rule.source_label = rule._rule_reference()

    def _rule_reference(self):
        """One line naming the rule and its source: ``US-TX: Texas SB 140,
        Tex. Bus. & Com. Code §301.051 (https://...)``."""
        self.ensure_one()
        text = ", ".join(p for p in (self.source_title, self.source_article) if p)
        if self.source_url:
            text = f"{text} ({self.source_url})" if text else self.source_url
        code = self.code or self.display_name
        return f"{code}: {text}" if text else code
