# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Record an SMS consent given offline (shop, phone call, paper form, API).

Managers only.  The event goes through the ledger's single entry point,
``sms.microfunnel.consent.event._record``, with the recording user as
``user_id`` and, optionally, a scan or file as evidence.
"""

from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from odoo.addons.phone_validation.tools import phone_validation

from ..models.sms_microfunnel_consent_event import LEGAL_BASES, METHODS, SOURCES

MANAGER_GROUP = "sms_microfunnel.group_sms_funnel_manager"
# compliance book (docs/compliance.md), "Consent": countries where soft
# opt-in cannot be used for SMS
SOFT_OPT_IN_REFUSED_COUNTRIES = {"DE", "IT", "US"}
OPT_IN_EVENTS = ("confirmed", "soft_opt_in", "re_opt_in")
MANUAL_EVENT_TYPES = [
    ("confirmed", "Opt-in confirmed"),
    ("soft_opt_in", "Soft opt-in (existing customer)"),
    ("opt_out", "Opt-out"),
    ("re_opt_in", "Re-opt-in"),
]
MANUAL_SOURCES = [
    s for s in SOURCES if s[0] in ("manual", "point_of_sale", "web_form", "api")
]
MANUAL_METHODS = [
    m for m in METHODS if m[0] in ("verbal", "written", "checkbox", "keyword")
]
# a clock a little ahead of the server's is not "the future"
FUTURE_TOLERANCE = timedelta(minutes=5)


def number_country_code(number):
    """ISO code of the country of an E.164 number ('' when unknown)."""
    return phone_validation.phone_get_country_code_for_number(number) or ""


def check_manager(env):
    if not env.user.has_group(MANAGER_GROUP):
        raise AccessError(
            env._("Only SMS Funnels managers can record, import or erase data.")
        )


class SmsMicrofunnelConsentRecord(models.TransientModel):
    _name = "sms.microfunnel.consent.record"
    _description = "Record an SMS Consent"

    partner_id = fields.Many2one("res.partner", "Contact")
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company
    )
    number = fields.Char(
        compute="_compute_number",
        store=True,
        readonly=False,
        help="The mobile number the consent is about; national numbers use the "
        "contact's country, else the company's.",
    )
    event_type = fields.Selection(
        MANUAL_EVENT_TYPES, "Event", required=True, default="confirmed"
    )
    legal_basis = fields.Selection(
        LEGAL_BASES, compute="_compute_legal_basis", store=True, readonly=False
    )
    source = fields.Selection(
        MANUAL_SOURCES, help="Where the consent was collected. Mandatory."
    )
    method = fields.Selection(MANUAL_METHODS, default="verbal")
    wording = fields.Text(
        compute="_compute_wording",
        store=True,
        readonly=False,
        help="The exact text the person agreed to. Mandatory for an opt-in; "
        "prefilled with the company's current consent wording.",
    )
    wording_version = fields.Char(
        compute="_compute_wording", store=True, readonly=False
    )
    source_ref = fields.Char(
        "Source Reference",
        help="Sale or order reference (mandatory for a soft opt-in), form id, "
        "call reference…",
    )
    evidence_file = fields.Binary("Evidence", attachment=False)
    evidence_filename = fields.Char()
    event_date = fields.Datetime(
        "Date", required=True, default=fields.Datetime.now, help="When it happened."
    )
    note = fields.Text()

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        context = self.env.context
        if (
            "partner_id" in fields_list
            and not values.get("partner_id")
            and context.get("active_model") == "res.partner"
            and context.get("active_id")
        ):
            values["partner_id"] = context["active_id"]
        return values

    @api.depends("partner_id")
    def _compute_number(self):
        for wizard in self:
            if wizard.partner_id.phone:
                wizard.number = wizard.partner_id.phone

    @api.depends("event_type")
    def _compute_legal_basis(self):
        for wizard in self:
            if wizard.event_type == "soft_opt_in":
                wizard.legal_basis = "soft_opt_in"
            elif not wizard.legal_basis or wizard.legal_basis == "soft_opt_in":
                wizard.legal_basis = "consent"

    @api.depends("event_type", "company_id", "partner_id")
    def _compute_wording(self):
        for wizard in self:
            if wizard.event_type not in OPT_IN_EVENTS:
                wizard.wording = False
                wizard.wording_version = False
            elif not wizard.wording:
                company = wizard.company_id
                if wizard.partner_id.lang:
                    company = company.with_context(lang=wizard.partner_id.lang)
                wizard.wording = company._sms_consent_wording_text()
                wizard.wording_version = str(company.sms_consent_wording_version)

    # -- checks and recording ------------------------------------------------

    def _check_input(self, number):
        """Clear errors for what the ledger needs; ``number`` is in E.164."""
        self.ensure_one()
        if not self.source:
            raise UserError(self.env._("Say where the consent was collected (Source)."))
        if self.event_type in OPT_IN_EVENTS and not (self.wording or "").strip():
            raise UserError(
                self.env._(
                    "An opt-in needs the exact wording the person agreed to: "
                    "without it the consent cannot be proven."
                )
            )
        if self.event_date > fields.Datetime.now() + FUTURE_TOLERANCE:
            raise UserError(
                self.env._("The date of the consent cannot be in the future.")
            )
        if self.legal_basis == "soft_opt_in" and self.event_type != "soft_opt_in":
            raise UserError(
                self.env._(
                    "The soft opt-in legal basis is only for a soft opt-in event."
                )
            )
        if self.event_type == "soft_opt_in":
            if not (self.source_ref or "").strip():
                raise UserError(
                    self.env._(
                        "A soft opt-in relies on a sale to this customer: enter "
                        "the sale or order reference in Source Reference."
                    )
                )
            country = number_country_code(number)
            if country in SOFT_OPT_IN_REFUSED_COUNTRIES:
                raise UserError(
                    self.env._(
                        "Soft opt-in is not allowed for SMS to %(country)s numbers: "
                        "record an express consent (ideally double opt-in).",
                        country=country,
                    )
                )

    def _evidence_attachment(self):
        self.ensure_one()
        if not self.evidence_file:
            return self.env["ir.attachment"]
        return (
            self.env["ir.attachment"]
            .sudo()
            .create(
                {
                    "name": self.evidence_filename or "consent-evidence",
                    "datas": self.evidence_file,
                    "res_model": "sms.microfunnel.consent.event",
                }
            )
        )

    def action_record(self):
        self.ensure_one()
        check_manager(self.env)
        number = self.env["sms.microfunnel.consent"]._sanitize_number(
            self.number, partner=self.partner_id, company=self.company_id
        )
        self._check_input(number)
        attachment = self._evidence_attachment()
        is_opt_in = self.event_type in OPT_IN_EVENTS
        vals = {
            "event_type": self.event_type,
            "event_date": self.event_date,
            "number": number,
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "legal_basis": self.legal_basis,
            "source": self.source,
            "source_ref": (self.source_ref or "").strip() or False,
            "method": self.method,
            "wording": self.wording if is_opt_in else False,
            "wording_version": self.wording_version if is_opt_in else False,
            "lang": self.partner_id.lang or self.env.lang,
            "user_id": self.env.uid,
            "attachment_id": attachment.id,
            "note": self.note,
        }
        event = self.env["sms.microfunnel.consent.event"]._record([vals])
        if attachment:
            attachment.write({"res_id": event.id})
        return {
            "type": "ir.actions.act_window",
            "res_model": "sms.microfunnel.consent.event",
            "res_id": event.id,
            "view_mode": "form",
            "target": "current",
        }
