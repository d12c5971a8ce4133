# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .res_company import REGULATED_SECTORS


class SmsTemplate(models.Model):
    _inherit = "sms.template"

    sms_funnel_message_class = fields.Selection(
        [("marketing", "Marketing"), ("transactional", "Transactional")],
        string="Message Class",
        default="transactional",
        required=True,
        help="Marketing messages always identify the sender and tell how to opt "
        "out (the company's settings add both); transactional messages (order, "
        "appointment, code...) get no opt-out mention.",
    )

    sms_funnel_regulated_sector = fields.Selection(
        REGULATED_SECTORS,
        string="Regulated Sector",
        help="An example for companies of this sector: transactional or "
        "informational only (appointment reminders, file updates, deadlines).",
    )

    @api.constrains("sms_funnel_regulated_sector", "sms_funnel_message_class")
    def _check_sms_funnel_regulated_sector(self):
        for template in self.filtered("sms_funnel_regulated_sector"):
            if template.sms_funnel_message_class == "marketing":
                raise ValidationError(
                    self.env._(
                        "Template “%(name)s” is meant for a regulated sector: it "
                        "must be transactional or informational, not marketing.",
                        name=template.name,
                    )
                )

    @api.constrains("body", "sms_funnel_message_class")
    def _check_sms_funnel_marketing_content(self):
        rules = self.env["sms.microfunnel.message.rules"]
        for template in self.filtered(
            lambda t: t.sms_funnel_message_class == "marketing"
        ):
            rules._check_marketing_content(template.body, company=self.env.company)

    def _sms_funnel_compose(self, record, **kwargs):
        """``sms.microfunnel.message.rules._compose`` for this template's body
        in the recipient's language and with the template's message class."""
        self.ensure_one()
        rules = self.env["sms.microfunnel.message.rules"]
        company = kwargs.pop("company", None) or self.env.company
        lang = kwargs.pop("lang", None)
        if not lang:
            rendered = self._render_lang(record.ids) if record else {}
            lang = rendered.get(record.id) if record else None
            lang = lang or rules._recipient_lang(record, company)
        kwargs.setdefault("message_class", self.sms_funnel_message_class)
        return rules._compose(
            self.with_context(lang=lang).body,
            record=record,
            company=company,
            lang=lang,
            **kwargs,
        )
