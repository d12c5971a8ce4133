# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Dry-run: the planned timeline of a funnel for one record, nothing sent."""

from datetime import timedelta

import pytz

from odoo import api, fields, models
from odoo.exceptions import UserError


class SmsFunnelSimulate(models.TransientModel):
    _name = "sms.microfunnel.simulate"
    _description = "SMS Funnel Dry-run"

    campaign_id = fields.Many2one("sms.microfunnel.campaign", required=True)
    model_name = fields.Selection(related="campaign_id.model_name")
    res_id = fields.Many2oneReference("Record", model_field="model_name")
    partner_id = fields.Many2one("res.partner", "Contact")
    lead_id = fields.Many2one("crm.lead")
    start_at = fields.Datetime("Enrolled at (UTC)", default=fields.Datetime.now)
    line_ids = fields.One2many(
        "sms.microfunnel.simulate.line", "wizard_id", readonly=True
    )

    def _target(self):
        self.ensure_one()
        record = self.partner_id if self.model_name == "res.partner" else self.lead_id
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


class SmsMicrofunnelCampaign(models.Model):
    _inherit = "sms.microfunnel.campaign"

    @api.model
    def _local_label(self, when, tz_name):
        if not when or not tz_name:
            return ""
        local = pytz.utc.localize(when).astimezone(pytz.timezone(tz_name))
        return local.strftime("%a %Y-%m-%d %H:%M ") + tz_name

    def _simulate(self, record, start_at=None):
        """Planned messages for ``record`` as the dispatcher would decide them,
        assuming every branch condition holds (each line says which one)."""
        self.ensure_one()
        start_at = start_at or fields.Datetime.now()
        gate = self.env["sms.microfunnel.gate"]
        rules = self.env["sms.microfunnel.message.rules"]
        lines, frontier = (
            [],
            [
                (step, start_at)
                for step in self.step_ids.filtered(lambda s: not s.parent_id)
            ],
        )
        seen = set()
        while frontier:
            step, anchor = frontier.pop(0)
            if step.id in seen:
                continue
            seen.add(step.id)
            wait = timedelta(hours=step.wait_hours or 0)
            if step.wait_mode in ("after_enrollment", "after_parent"):
                due = anchor + wait
            else:
                value = record[step.date_field_id.name]
                due = (
                    None
                    if not value
                    else (
                        value - wait
                        if step.wait_mode == "before_date"
                        else value + wait
                    )
                )
            line = {
                "step_name": step.name,
                "condition": dict(step._fields["condition"].selection).get(
                    step.condition
                ),
                "due_at": due,
            }
            if due is None:
                line.update(outcome="canceled", reason="no_date")
                lines.append(line)
                continue
            decision = gate._evaluate_one(
                record, step.message_class, self.company_id, due
            )
            send_at = due
            if decision["action"] == "defer":
                send_at = decision["until"]
            line.update(
                send_at=send_at if decision["action"] != "block" else False,
                local_time=self._local_label(send_at, decision.get("tz")),
                outcome=decision["action"],
                reason=decision.get("reason") or "",
            )
            body = (step.variant_ids[:1].body if step.variant_ids else step.body) or ""
            composed = rules._compose(
                body,
                record=record,
                company=self.company_id,
                message_class=step.message_class,
                number=decision.get("number"),
            )
            line.update(
                text=composed.get("text"),
                encoding=composed.get("encoding"),
                segments=composed.get("segments", 0),
                cost=composed.get("cost", 0.0),
            )
            if composed.get("blocked"):
                line.update(
                    outcome="block", reason=composed.get("blocked_reason") or "too_long"
                )
            lines.append(line)
            frontier += [(child, send_at) for child in step.child_ids]
        return lines


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
