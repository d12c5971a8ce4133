# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Segments of contacts or leads, and the interests people choose at opt-in.

A segment is a dynamic filter (a domain built with Odoo's domain editor,
optionally narrowed to people who chose some interests) plus optional static
members.  Its counts are computed set-based: one ``_search`` and one grouped
SQL query per segment, whatever its size.
"""

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import SQL
from odoo.tools.safe_eval import safe_eval

from .sms_microfunnel_campaign import TARGET_MODELS

# where the interests of a target record are found
INTEREST_PATHS = {
    "res.partner": "sms_microfunnel_interest_ids",
    "crm.lead": "partner_id.sms_microfunnel_interest_ids",
}


class SmsMicrofunnelSegment(models.Model):
    _name = "sms.microfunnel.segment"
    _description = "SMS Segment"
    _order = "name, id"
    _check_company_auto = True

    name = fields.Char(required=True)
    description = fields.Text()
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        default=lambda self: self.env.company,
        index=True,
    )
    model_name = fields.Selection(
        TARGET_MODELS, "Target", required=True, default="res.partner"
    )
    is_dynamic = fields.Boolean(
        "Dynamic",
        default=True,
        help="Members are the records matching the filter, kept up to date, plus "
        "the static members. Untick to ignore the filter: the static members "
        "only (still narrowed by the interests, when some are set).",
    )
    domain = fields.Char("Filter", default="[]")
    interest_ids = fields.Many2many(
        "sms.microfunnel.interest",
        string="Interests",
        check_company=True,
        help="Keep only the records whose contact chose at least one of these "
        "interests (on the opt-in form or the preferences page).",
    )
    partner_ids = fields.Many2many(
        "res.partner",
        "sms_microfunnel_segment_res_partner_rel",
        "segment_id",
        "partner_id",
        string="Static Contacts",
    )
    lead_ids = fields.Many2many(
        "crm.lead",
        "sms_microfunnel_segment_crm_lead_rel",
        "segment_id",
        "lead_id",
        string="Static Leads",
    )
    total_count = fields.Integer("Members", compute="_compute_counts")
    valid_count = fields.Integer("With a Valid Number", compute="_compute_counts")
    marketable_count = fields.Integer("Marketable Now", compute="_compute_counts")
    pending_count = fields.Integer("Opt-in Pending", compute="_compute_counts")
    campaign_count = fields.Integer("Funnels", compute="_compute_campaign_count")

    @api.constrains("model_name", "partner_ids", "lead_ids")
    def _check_static_members(self):
        for segment in self:
            wrong = (
                segment.lead_ids
                if segment.model_name == "res.partner"
                else segment.partner_ids
            )
            if wrong:
                raise ValidationError(
                    self.env._(
                        "Segment “%(name)s” targets %(target)s: remove the static "
                        "members of the other kind.",
                        name=segment.name,
                        target=dict(
                            self._fields["model_name"]._description_selection(self.env)
                        )[segment.model_name],
                    )
                )

    # -- members -----------------------------------------------------------------

    def _filter_domain(self):
        """The dynamic filter as a ``Domain`` (an error for an invalid one)."""
        self.ensure_one()
        try:
            return Domain(safe_eval(self.domain or "[]", {"uid": self.env.uid}))
        except Exception as error:
            raise UserError(
                self.env._(
                    "The filter of segment “%(name)s” is invalid: %(error)s",
                    name=self.name or "",
                    error=error,
                )
            ) from error

    def _static_records(self):
        self.ensure_one()
        records = (
            self.partner_ids if self.model_name == "res.partner" else self.lead_ids
        )
        return records._origin

    def _members_domain(self):
        """Domain on the target model matching the members of this segment."""
        self.ensure_one()
        dynamic = self._filter_domain() if self.is_dynamic else None
        if self.interest_ids:
            interests = Domain(
                INTEREST_PATHS[self.model_name], "in", self.interest_ids._origin.ids
            )
            dynamic = interests if dynamic is None else dynamic & interests
        domain = Domain.FALSE if dynamic is None else dynamic
        static_ids = self._static_records().ids
        if static_ids:
            domain |= Domain("id", "in", static_ids)
        company = self.company_id._origin or self.env.company
        return domain & Domain("company_id", "in", [company.id, False])

    def _members(self):
        """The member records, searched with the user's access rights."""
        self.ensure_one()
        Model = self.env[self.model_name].with_company(self.company_id._origin)
        try:
            return Model.search(self._members_domain(), order="id")
        except ValueError as error:
            raise UserError(
                self.env._(
                    "The filter of segment “%(name)s” does not fit its target: "
                    "%(error)s",
                    name=self.name or "",
                    error=error,
                )
            ) from error

    def _filter_members(self, records):
        """The subset of ``records`` that belongs to this segment (one query)."""
        self.ensure_one()
        if not records or records._name != self.model_name:
            return records.browse()
        return records.with_company(self.company_id).search(
            self._members_domain() & Domain("id", "in", records.ids)
        )

    # -- counts --------------------------------------------------------------------

    @api.depends(
        "model_name",
        "is_dynamic",
        "domain",
        "interest_ids",
        "partner_ids",
        "lead_ids",
        "company_id",
    )
    def _compute_counts(self):
        for segment in self:
            counts = segment._count_members()
            segment.total_count = counts["total"]
            segment.valid_count = counts["valid"]
            segment.marketable_count = counts["marketable"]
            segment.pending_count = counts["pending"]

    def _count_members(self):
        """{total, valid, marketable, pending} in two queries for any size.

        ``marketable``: the number's marketing status in the segment's company
        is confirmed (with proof) and it is not in ``phone.blacklist``, as the
        compliance gate decides.  ``pending``: a double opt-in is pending.
        The states are the consent resolver's (``_states_sql``): an erased
        number counts as withdrawn.
        """
        self.ensure_one()
        empty = dict.fromkeys(("total", "valid", "marketable", "pending"), 0)
        if not self.model_name:
            return empty
        Model = self.env[self.model_name].with_company(self.company_id._origin)
        try:
            query = Model._search(self._members_domain())
        except (UserError, ValueError):
            return empty  # an invalid filter being edited: the form says why
        company = self.company_id._origin or self.env.company
        Model.flush_model(["phone_sanitized"])
        members = query.subselect()
        numbers = SQL(
            "SELECT DISTINCT phone_sanitized FROM %s WHERE id IN %s",
            SQL.identifier(Model._table),
            members,
        )
        states = self.env["sms.microfunnel.consent"]._states_sql(numbers, company)
        [row] = self.env.execute_query(
            SQL(
                """
                SELECT COUNT(*),
                       COUNT(r.phone_sanitized),
                       COUNT(*) FILTER (WHERE s.state = 'confirmed'),
                       COUNT(*) FILTER (WHERE s.state = 'pending')
                  FROM %(table)s r
             LEFT JOIN (%(states)s) AS s(number, state)
                    ON s.number = r.phone_sanitized
                 WHERE r.id IN %(members)s
                """,
                table=SQL.identifier(Model._table),
                states=states,
                members=members,
            )
        )
        return dict(zip(("total", "valid", "marketable", "pending"), row, strict=True))

    def _compute_campaign_count(self):
        counts = dict(
            self.env["sms.microfunnel.campaign"]._read_group(
                [("segment_id", "in", self.ids)], ["segment_id"], ["__count"]
            )
        )
        for segment in self:
            segment.campaign_count = counts.get(segment, 0)

    # -- actions ---------------------------------------------------------------------

    def action_view_members(self):
        """The members; context ``segment_view``: ``valid``, ``marketable``,
        ``pending`` narrow the list to the matching count."""
        self.ensure_one()
        domain = self._members_domain()
        view = self.env.context.get("segment_view")
        if view == "valid":
            domain &= Domain("phone_sanitized", "!=", False)
        elif view == "marketable":
            domain &= Domain("sms_consent_state", "in", ["confirmed"])
        elif view == "pending":
            domain &= Domain("sms_consent_state", "in", ["pending"])
        return {
            "type": "ir.actions.act_window",
            "name": self.name,
            "res_model": self.model_name,
            "view_mode": "list,form",
            "views": [(False, "list"), (False, "form")],
            "domain": list(domain),
            "context": {"create": False},
        }

    def action_view_campaigns(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_funnel"
        )
        action["domain"] = [("segment_id", "=", self.id)]
        action["context"] = {
            "default_segment_id": self.id,
            "default_model_name": self.model_name,
        }
        return action

    def action_preflight(self):
        """Open the pre-flight check on this segment."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Pre-flight: %(name)s", name=self.name),
            "res_model": "sms.microfunnel.preflight",
            "view_mode": "form",
            "target": "new",
            "context": {
                "default_res_model": self.model_name,
                "default_segment_id": self.id,
                "default_company_id": self.company_id.id,
            },
        }
