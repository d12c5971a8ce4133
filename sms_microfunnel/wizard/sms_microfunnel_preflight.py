# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Pre-flight check: what the compliance gate would decide for an audience.

For an audience (a domain on contacts or leads) and a message class, one run
of the gate (``sms.microfunnel.gate._evaluate``, set-based) gives how many
recipients are sendable now, deferred (until when) or blocked (and why), with
drill-down to the records of each outcome.  Nothing is sent or recorded.
"""

import json
import time
from statistics import median_low

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools.safe_eval import safe_eval

from ..models.sms_microfunnel_gate import ACTIONS, BLOCK_REASONS, DEFER_REASONS
from ..models.sms_microfunnel_policy import MESSAGE_CLASSES

AUDIENCE_MODELS = [("res.partner", "Contacts"), ("crm.lead", "Leads / Opportunities")]
REASONS = DEFER_REASONS + BLOCK_REASONS


class SmsMicrofunnelPreflight(models.TransientModel):
    _name = "sms.microfunnel.preflight"
    _description = "SMS Pre-flight Check"

    # the models funnels can target (contacts, leads, event registrations…)
    res_model = fields.Selection(
        selection="_selection_res_model",
        string="Audience",
        required=True,
        default="res.partner",
    )
    domain = fields.Char("Filter", default="[]")
    segment_id = fields.Many2one(
        "sms.microfunnel.segment",
        domain="[('model_name', '=', res_model), ('company_id', '=', company_id)]",
        help="Optional: check only the members of this segment (that also match "
        "the filter).",
    )
    message_class = fields.Selection(
        MESSAGE_CLASSES, required=True, default="marketing"
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    scope = fields.Char(
        "Consent Scope",
        help="Optional: a narrower consent scope (e.g. a funnel) that must not be "
        "withdrawn, on top of the company's marketing consent.",
    )
    scope_display = fields.Char("Consent Scope Name", compute="_compute_scope_display")
    check_at = fields.Datetime(
        "Check For",
        help="Empty: now. The decisions (windows, caps) are computed for this time.",
    )
    checked_at = fields.Datetime("Decisions As Of", readonly=True)
    state = fields.Selection([("draft", "Draft"), ("done", "Checked")], default="draft")
    total_count = fields.Integer("Recipients", readonly=True)
    allow_count = fields.Integer("Sendable Now", readonly=True)
    defer_count = fields.Integer("Deferred", readonly=True)
    block_count = fields.Integer("Blocked", readonly=True)
    next_opening = fields.Datetime(
        readonly=True, help="Earliest time a deferred recipient becomes sendable."
    )
    duration = fields.Float("Computed In (s)", readonly=True, digits=(16, 2))
    line_ids = fields.One2many(
        "sms.microfunnel.preflight.line", "preflight_id", "Outcomes", readonly=True
    )

    @api.depends("scope")
    def _compute_scope_display(self):
        """The scope as its users know it (“SMS Funnel: Spring offer”), not as
        its reference (``sms.microfunnel.campaign,5``)."""
        for wizard in self:
            label = wizard.scope or ""
            model, _sep, res_id = label.partition(",")
            if model in self.env and res_id.isdigit():
                record = self.env[model].browse(int(res_id)).exists()
                if record:
                    kind = self.env["ir.model"]._get(model).name
                    label = f"{kind}: {record.display_name}"
            wizard.scope_display = label

    @api.model
    def _selection_res_model(self):
        return self.env["sms.microfunnel.campaign"]._selection_target_models()

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        context = self.env.context
        model = context.get("active_model")
        if model in dict(self._selection_res_model()) and "res_model" in fields_list:
            values["res_model"] = model
            if context.get("active_domain"):
                values["domain"] = repr(context["active_domain"])
            elif context.get("active_ids"):
                values["domain"] = repr([("id", "in", context["active_ids"])])
        return values

    def _audience_domain(self):
        self.ensure_one()
        try:
            domain = Domain(safe_eval(self.domain or "[]"))
        except Exception as exc:
            raise UserError(
                self.env._(
                    "The filter is not a valid domain: %(error)s", error=str(exc)
                )
            ) from exc
        if self.segment_id:
            if self.segment_id.model_name != self.res_model:
                raise UserError(
                    self.env._(
                        "Segment “%(segment)s” does not target this audience.",
                        segment=self.segment_id.name,
                    )
                )
            domain &= self.segment_id._members_domain()
        return domain

    def _audience(self):
        """The audience records, searched with the user's access rights."""
        self.ensure_one()
        Model = self.env[self.res_model].with_company(self.company_id)
        try:
            return Model.search(self._audience_domain(), order="id")
        except ValueError as exc:
            raise UserError(
                self.env._(
                    "The filter does not fit the audience %(audience)s: %(error)s",
                    audience=self._selection_label("res_model"),
                    error=str(exc),
                )
            ) from exc

    def action_check(self):
        """Run the gate over the audience and store the counts per outcome."""
        self.ensure_one()
        started = fields.Datetime.now()
        clock = time.monotonic()
        audience = self._audience()
        decisions = self.env["sms.microfunnel.gate"]._evaluate(
            audience,
            self.message_class,
            self.company_id,
            self.check_at or started,
            scope=self.scope or False,
        )
        buckets = {}
        for decision in decisions:
            # one line per outcome and deciding rule (compliance book rule ID)
            key = (
                decision["action"],
                decision["reason"] or False,
                decision.get("rule") or False,
            )
            bucket = buckets.setdefault(
                key, {"ids": [], "until": [], "source": decision.get("rule_source")}
            )
            bucket["ids"].append(decision["res_id"])
            if decision["until"]:
                bucket["until"].append(decision["until"])
        order = {action: i for i, (action, _label) in enumerate(ACTIONS)}
        reasons = {reason: i for i, (reason, _label) in enumerate(REASONS)}
        lines = []
        for (action, reason, rule), bucket in sorted(
            buckets.items(),
            key=lambda item: (
                order[item[0][0]],
                reasons.get(item[0][1], -1),
                item[0][2] or "",
            ),
        ):
            until = sorted(bucket["until"])
            lines.append(
                {
                    "action": action,
                    "reason": reason,
                    "count": len(bucket["ids"]),
                    "until_min": until[0] if until else False,
                    "until_typical": median_low(until) if until else False,
                    "res_ids": json.dumps(bucket["ids"]),
                    "rule": rule,
                    "rule_source": bucket["source"] or False,
                }
            )
        counts = {action: 0 for action, _label in ACTIONS}
        for line in lines:
            counts[line["action"]] += line["count"]
        deferred = [line["until_min"] for line in lines if line["until_min"]]
        self.line_ids.unlink()
        self.write(
            {
                "state": "done",
                "checked_at": self.check_at or started,
                "total_count": len(decisions),
                "allow_count": counts["allow"],
                "defer_count": counts["defer"],
                "block_count": counts["block"],
                "next_opening": min(deferred) if deferred else False,
                "duration": time.monotonic() - clock,
                "line_ids": [fields.Command.create(vals) for vals in lines],
            }
        )
        return self._reopen()

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Pre-flight Check"),
        }

    def action_open_outcome(self):
        """Drill-down to every record of one outcome (context ``outcome``)."""
        self.ensure_one()
        action = self.env.context.get("outcome")
        ids = [
            res_id
            for line in self.line_ids.filtered(lambda x: x.action == action)
            for res_id in line._res_ids()
        ]
        label = dict(
            self.line_ids._fields["action"]._description_selection(self.env)
        ).get(action, action)
        return self._records_action(ids, label)

    def _selection_label(self, fname, record=None):
        """The translated label of a selection value of ``record`` (default:
        this wizard)."""
        record = record if record is not None else self
        field = record._fields[fname]
        return dict(field._description_selection(self.env)).get(record[fname], "")

    def _records_action(self, ids, label):
        self.ensure_one()
        model_label = self._selection_label("res_model")
        return {
            "type": "ir.actions.act_window",
            "name": f"{model_label}: {label}",
            "res_model": self.res_model,
            "view_mode": "list,form",
            "views": [(False, "list"), (False, "form")],
            "domain": [("id", "in", ids)],
            "context": {"create": False},
            "target": "current",
        }
