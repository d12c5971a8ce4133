# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Dry-run: the planned timeline of a funnel for one record, nothing sent."""

from odoo import fields, models
from odoo.exceptions import UserError


class SmsFunnelSimulate(models.TransientModel):
    _name = "sms.microfunnel.simulate"
    _description = "SMS Funnel Dry-run"

    campaign_id = fields.Many2one("sms.microfunnel.campaign", required=True)
    model_name = fields.Selection(related="campaign_id.model_name")
    res_id = fields.Many2oneReference("Record", model_field="model_name")
    partner_id = fields.Many2one("res.partner", "Contact")
    lead_id = fields.Many2one("crm.lead")
    record_ref = fields.Reference(
        selection="_selection_record_models",
        string="Other Record",
        help="For funnels on other targets (event registrations…).",
    )
    start_at = fields.Datetime("Enrolled at (UTC)", default=fields.Datetime.now)
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
    due_at = fields.Datetime("Due (UTC)")
    send_at = fields.Datetime("Sends at (UTC)")
    local_time = fields.Char("Recipient's local time")
    outcome = fields.Char()
    reason = fields.Char()
    text = fields.Text()
    encoding = fields.Char()
    segments = fields.Integer()
    cost = fields.Float()


class SmsFunnelSendTest(models.TransientModel):
    _name = "sms.microfunnel.send.test"
    _description = "SMS Funnel: Send a Test"

    campaign_id = fields.Many2one("sms.microfunnel.campaign", required=True)
    step_id = fields.Many2one(
        "sms.microfunnel.step",
        required=True,
        domain="[('campaign_id', '=', campaign_id)]",
    )
    number = fields.Char(
        "Test Number",
        required=True,
        default=lambda self: self.env.user.partner_id.phone,
    )

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
        self.campaign_id.message_post(
            body=self.env._(
                "Test of step “%(step)s” sent to %(number)s.",
                step=step.name,
                number=number,
            )
        )
        return {"type": "ir.actions.act_window_close"}
