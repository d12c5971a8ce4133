# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import UserError


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
