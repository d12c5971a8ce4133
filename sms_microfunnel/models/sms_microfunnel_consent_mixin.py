# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.fields import Domain
from odoo.tools import SQL

from .sms_microfunnel_consent import CONSENT_STATES, FREQUENCIES


class SmsMicrofunnelConsentMixin(models.AbstractModel):
    """SMS marketing consent of a record's sanitized phone number.

    For any model with ``mail.thread.phone`` (contacts, leads…): the status in
    the current company, with ``phone.blacklist`` always winning.
    """

    _name = "sms.microfunnel.consent.mixin"
    _description = "SMS Consent Status on Records"

    sms_consent_state = fields.Selection(
        CONSENT_STATES,
        "SMS Consent",
        compute="_compute_sms_consent_state",
        search="_search_sms_consent_state",
    )
    sms_microfunnel_frequency = fields.Selection(
        FREQUENCIES,
        "SMS Frequency",
        compute="_compute_sms_microfunnel_frequency",
        search="_search_sms_microfunnel_frequency",
        help="How many marketing SMS the contact accepts (preferences page).",
    )
    sms_consent_event_count = fields.Integer(
        "Consent Events",
        compute="_compute_sms_consent_event_count",
        groups="sms_microfunnel.group_sms_funnel_manager",
    )

    @api.depends("phone_sanitized", "phone_sanitized_blacklisted")
    @api.depends_context("company")
    def _compute_sms_consent_state(self):
        states = self.env["sms.microfunnel.consent"]._get_states(
            self.mapped("phone_sanitized")
        )
        for record in self:
            record.sms_consent_state = states.get(record.phone_sanitized, "none")

    def _search_sms_consent_state(self, operator, value):
        """The records whose number has one of the states: the consent
        resolver (``_states_sql``: blacklist, erasure suppression, status of
        the marketing purpose in the current company) over the model's
        numbers; a record without a number has no consent."""
        if operator not in ("in", "not in"):
            return NotImplemented
        wanted = sorted(set(value) - {False, None})
        Consent = self.env["sms.microfunnel.consent"].sudo()
        self.flush_model(["phone_sanitized"])
        numbers = SQL(
            "SELECT DISTINCT phone_sanitized FROM %s WHERE phone_sanitized IS NOT NULL",
            SQL.identifier(self._table),
        )
        states = Consent._states_sql(numbers, self.env.company)

        def to_sql(model, alias, query):
            number = model._field_to_sql(alias, "phone_sanitized", query)
            return SQL(
                """COALESCE(%(number)s IN (
                        SELECT s.number FROM (%(states)s) AS s(number, state)
                         WHERE s.state = ANY(%(wanted)s::varchar[])
                    ) OR (%(number)s IS NULL AND %(none)s), FALSE)""",
                number=number,
                states=states,
                wanted=wanted,
                none="none" in wanted,
            )

        domain = Domain.custom(to_sql=to_sql)
        return ~domain if operator == "not in" else domain

    @api.depends("phone_sanitized")
    @api.depends_context("company")
    def _compute_sms_microfunnel_frequency(self):
        statuses = (
            self.env["sms.microfunnel.consent"]
            .sudo()
            .search_fetch(
                [
                    ("number", "in", [n for n in self.mapped("phone_sanitized") if n]),
                    ("company_id", "=", self.env.company.id),
                    ("purpose", "=", "marketing"),
                    ("scope", "=", False),
                ],
                ["number", "frequency"],
            )
        )
        frequencies = {status.number: status.frequency for status in statuses}
        for record in self:
            record.sms_microfunnel_frequency = frequencies.get(
                record.phone_sanitized, "all"
            )

    def _search_sms_microfunnel_frequency(self, operator, value):
        if operator not in ("in", "not in"):
            return NotImplemented
        wanted = set(value)
        Consent = self.env["sms.microfunnel.consent"].sudo()
        company_statuses = [
            ("company_id", "=", self.env.company.id),
            ("purpose", "=", "marketing"),
            ("scope", "=", False),
        ]
        chosen = Consent._search(
            [*company_statuses, ("frequency", "in", list(wanted - {"all"}))]
        )
        domain = Domain("phone_sanitized", "in", chosen.subselect("number"))
        if "all" in wanted:
            fewer = Consent._search([*company_statuses, ("frequency", "!=", "all")])
            domain |= Domain("phone_sanitized", "=", False) | Domain(
                "phone_sanitized", "not in", fewer.subselect("number")
            )
        return ~domain if operator == "not in" else domain

    def _count_by_number(self, model_name):
        """{sanitized number: rows of ``model_name`` for it}, one grouped query."""
        numbers = [n for n in self.mapped("phone_sanitized") if n]
        return dict(
            self.env[model_name]
            .sudo()
            ._read_group([("number", "in", numbers)], ["number"], ["__count"])
        )

    def _compute_sms_consent_event_count(self):
        counts = self._count_by_number("sms.microfunnel.consent.event")
        for record in self:
            record.sms_consent_event_count = counts.get(record.phone_sanitized, 0)

    sms_funnel_trace_count = fields.Integer(
        "Funnel SMS",
        compute="_compute_sms_funnel_trace_count",
        groups="sms_microfunnel.group_sms_funnel_user",
    )

    def _compute_sms_funnel_trace_count(self):
        counts = self._count_by_number("sms.microfunnel.trace")
        for record in self:
            record.sms_funnel_trace_count = counts.get(record.phone_sanitized, 0)

    def action_view_sms_funnel_timeline(self):
        """Every funnel message of this number, in time order."""
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_funnel_trace"
        )
        action["domain"] = [("number", "=", self.phone_sanitized)]
        action["context"] = {"search_default_group_by_campaign": 1}
        return action

    def action_view_sms_consent_events(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_consent_event"
        )
        action["domain"] = [("number", "=", self.phone_sanitized)]
        action["context"] = {"search_default_group_by_company": 0}
        return action
