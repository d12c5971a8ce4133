# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Dry-run: the planned timeline of a funnel for one record, nothing sent."""

from odoo import api, fields, models
from odoo.exceptions import UserError


class SmsFunnelSimulate(models.TransientModel):
    _name = "sms.microfunnel.simulate"
    _description = "SMS Funnel Dry-run"

    campaign_id = fields.Many2one("sms.microfunnel.campaign", "Funnel", required=True)
    model_name = fields.Selection(related="campaign_id.model_name")
    res_id = fields.Many2oneReference("Record", model_field="model_name")
    partner_id = fields.Many2one("res.partner", "Contact")
    lead_id = fields.Many2one("crm.lead")
    record_ref = fields.Reference(
        selection="_selection_record_models",
        string="Other Record",
        help="For funnels on other targets (event registrations…).",
    )
    start_at = fields.Datetime(
        "Enrolled At",
        default=fields.Datetime.now,
        help="Shown in your time zone, stored in UTC.",
    )
    line_ids = fields.One2many(
        "sms.microfunnel.simulate.line", "wizard_id", readonly=True
    )

    def _selection_record_models(self):
        return self.env["sms.microfunnel.campaign"]._selection_target_models()

    def _target(self):
        self.ensure_one()
        if self.model_name == "res.partner":
            record = self.partner_id
        elif self.model_name == "crm.lead":
            record = self.lead_id
        else:
            record = self.record_ref
            if record and record._name != self.model_name:
                raise UserError(
                    self.env._(
                        "This funnel targets %(target)s: choose a record of that kind.",
                        target=self.env["ir.model"]._get(self.model_name).name,
                    )
                )
        if not record:
            raise UserError(self.env._("Choose the record to simulate."))
        return record

    def action_simulate(self):
        self.ensure_one()
        lines = self.campaign_id._simulate(self._target(), self.start_at)
        self.line_ids = [(5, 0, 0)] + [(0, 0, line) for line in lines]
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Dry-run"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }


class SmsFunnelSimulateLine(models.TransientModel):
    _name = "sms.microfunnel.simulate.line"
    _description = "SMS Funnel Dry-run Line"
    _order = "send_at, id"

    wizard_id = fields.Many2one("sms.microfunnel.simulate", ondelete="cascade")
    step_name = fields.Char("Step")
    condition = fields.Char()
    due_at = fields.Datetime("Due")
    send_at = fields.Datetime("Sends At")
    local_time = fields.Char("Recipient's local time")
    outcome_code = fields.Char()
    reason_code = fields.Char()
    outcome = fields.Char(compute="_compute_labels")
    reason = fields.Char(compute="_compute_labels")
    text = fields.Text()
    encoding = fields.Char()
    segments = fields.Integer()
    cost = fields.Float()

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            for name in ("outcome", "reason"):
                if name in vals:
                    vals[f"{name}_code"] = vals.pop(name)
        return super().create(vals_list)

    @api.depends("outcome_code", "reason_code")
    def _compute_labels(self):
        """Outcomes and reasons in the user's language, not as codes."""
        env = self.env

        def labels(model, field):
            return dict(env[model]._fields[field]._description_selection(env))

        # the gate's outcomes and reasons are those of the pre-flight
        outcomes = labels("sms.microfunnel.preflight.line", "action")
        outcomes["canceled"] = labels("sms.microfunnel.trace", "state")["canceled"]
        reasons = labels("sms.microfunnel.trace", "cancel_reason")
        reasons.update(labels("sms.microfunnel.preflight.line", "reason"))
        # text issues found when composing (models/sms_microfunnel_message_rules.py)
        reasons.update(
            empty=env._("Empty message"),
            no_sender=env._("Sender not identified"),
            no_optout=env._("No opt-out mention"),
        )
        for line in self:
            line.outcome = outcomes.get(line.outcome_code, line.outcome_code or "")
            line.reason = reasons.get(line.reason_code, line.reason_code or "")


class SmsFunnelSendTest(models.TransientModel):
    _name = "sms.microfunnel.send.test"
    _description = "SMS Funnel: Send a Test"

    campaign_id = fields.Many2one("sms.microfunnel.campaign", "Funnel", required=True)
    step_id = fields.Many2one(
        "sms.microfunnel.step",
        required=True,
        domain="[('campaign_id', '=', campaign_id), ('step_type', '=', 'sms')]",
        compute="_compute_step_id",
        store=True,
        readonly=False,
        precompute=True,
    )
    number = fields.Char(
        "Test Number",
        required=True,
        default=lambda self: self.env.user.partner_id.phone,
    )

    @api.depends("campaign_id")
    def _compute_step_id(self):
        """The funnel's first SMS step (the offer), to send a test in one click."""
        for wizard in self:
            if wizard.step_id.campaign_id != wizard.campaign_id:
                steps = wizard.campaign_id.step_ids.filtered(
                    lambda s: s.step_type == "sms"
                )
                roots = steps.filtered(lambda s: not s.parent_id)
                wizard.step_id = (roots or steps)[:1]

    def action_send(self):
        """Send the step's text, rendered on the sender's own contact, to one
        number: outside the funnel, without trace, consent or window checks."""
        self.ensure_one()
        Consent = self.env["sms.microfunnel.consent"]
        company = self.campaign_id.company_id
        number = Consent._sanitize_number(self.number, company=company)
        step = self.step_id
        body = (step.variant_ids[:1].body if step.variant_ids else step.body) or ""
        record = self.env.user.partner_id
        if self.campaign_id.model_name != "res.partner":
            record = self.env[self.campaign_id.model_name].search([], limit=1)
        composed = self.env["sms.microfunnel.message.rules"]._compose(
            body,
            record=record or None,
            company=company,
            message_class=step.message_class,
            number=number,
        )
        if composed.get("blocked"):
            raise UserError(
                composed.get("blocked_message") or composed["blocked_reason"]
            )
        self.env["sms.sms"].sudo().with_company(company).create(
            {"number": number, "body": composed["text"], "state": "outgoing"}
        )
        message = self.env._(
            "Test of step “%(step)s” sent to %(number)s.",
            step=step.name,
            number=number,
        )
        self.campaign_id.message_post(body=message)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": message,
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
