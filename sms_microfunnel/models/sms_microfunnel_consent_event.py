# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Append-only proof of consent (RGPD art. 7(1), L34-5 CPCE).

One row per consent event and scope.  Rows are never edited or deleted by
users: corrections are new events.  The only change allowed is the erasure
done by the system (RGPD art. 17), which anonymises personal data.
"""

import hashlib
import secrets

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..tools.encrypted_fields import EncryptedChar, EncryptedText

EVENT_TYPES = [
    ("requested", "Opt-in requested (double opt-in pending)"),
    ("confirmed", "Opt-in confirmed"),
    ("soft_opt_in", "Soft opt-in (existing customer)"),
    ("opt_out", "Opt-out"),
    ("re_opt_in", "Re-opt-in"),
    ("expired", "Expired"),
]
# the consent state an event leaves its scope in
EVENT_STATE = {
    "requested": "pending",
    "confirmed": "confirmed",
    "soft_opt_in": "confirmed",
    "re_opt_in": "confirmed",
    "opt_out": "withdrawn",
    "expired": "expired",
}
LEGAL_BASES = [
    ("consent", "Consent"),
    ("soft_opt_in", "Soft opt-in (existing customer, L34-5 CPCE)"),
    ("pewc_tcpa", "Prior express written consent (TCPA)"),
    ("casl_express", "Express consent (CASL)"),
    ("casl_implied", "Implied consent (CASL)"),
]
SOURCES = [
    ("web_form", "Web form"),
    ("keyword_sms", "Keyword SMS"),
    ("import", "Import"),
    ("point_of_sale", "Point of sale"),
    ("manual", "Recorded by a user"),
    ("api", "API"),
    ("unsubscribe_link", "Unsubscribe link"),
    ("provider", "SMS provider"),
    ("system", "System"),
]
METHODS = [
    ("checkbox", "Checkbox"),
    ("keyword", "Keyword"),
    ("link_click", "Link click"),
    ("verbal", "Verbal"),
    ("written", "Written / signature"),
    ("import", "Import"),
    ("system", "System"),
]
# what a proven opt-in needs; an import row without them is kept, unproven
PROOF_FIELDS = ("event_date", "source", "wording")
# personal data emptied by an erasure
PERSONAL_FIELDS = (
    "partner_id",
    "ip",
    "ip_hash",
    "user_agent",
    "raw_text",
    "attachment_id",
    "note",
    "source_ref",
)


def wording_hash(text):
    return hashlib.sha256((text or "").encode()).hexdigest() if text else False


class SmsMicrofunnelConsentEvent(models.Model):
    _name = "sms.microfunnel.consent.event"
    _description = "SMS Consent Event"
    _order = "event_date desc, id desc"
    _rec_name = "event_type"

    event_date = fields.Datetime(
        "Date", required=True, default=fields.Datetime.now, readonly=True
    )
    event_type = fields.Selection(EVENT_TYPES, "Event", required=True, readonly=True)
    proven = fields.Boolean(
        readonly=True,
        default=True,
        help="False for imported consents without date, source or wording: they "
        "are kept for the record but never make a number marketable.",
    )
    partner_id = fields.Many2one(
        "res.partner", "Contact", index="btree_not_null", ondelete="set null"
    )
    number = fields.Char("Number (E.164)", required=True, index=True, readonly=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    purpose = fields.Selection(
        [("marketing", "Marketing")], required=True, default="marketing"
    )
    scope = fields.Char(
        help="Empty for the company's whole marketing; otherwise a narrower scope "
        "such as a funnel or a list (e.g. 'sms.microfunnel.campaign,4').",
    )
    legal_basis = fields.Selection(LEGAL_BASES, default="consent")
    source = fields.Selection(SOURCES, required=True, default="manual")
    source_ref = fields.Char(
        "Source Reference",
        help="Form URL, import batch, provider message id, sale order…",
    )
    method = fields.Selection(METHODS, default="checkbox")
    # the evidence is encrypted at rest (tools/sms_crypto.py): a database dump
    # alone does not reveal it
    wording = EncryptedText(help="The exact text the person agreed to or was shown.")
    wording_version = fields.Char()
    wording_sha256 = fields.Char("Wording SHA-256", readonly=True)
    wording_verified = fields.Boolean(
        "Wording Matches its Hash",
        compute="_compute_wording_verified",
        help="The decrypted wording still has the SHA-256 recorded with the "
        "event: the text shown is the one the person saw.",
    )
    lang = fields.Char("Language Code")
    lang_name = fields.Char("Language", compute="_compute_lang_name")
    ip = EncryptedChar("IP Address")
    ip_hash = fields.Char(
        "IP Address (keyed hash)",
        index="btree_not_null",
        readonly=True,
        groups="base.group_system",
        help="Keyed hash of the IP address, to count requests from one address "
        "without decrypting the evidence.",
    )
    user_agent = EncryptedChar()
    user_id = fields.Many2one(
        "res.users", "Recorded by", default=lambda self: self.env.user
    )
    provider_message_id = fields.Char(index="btree_not_null")
    raw_text = EncryptedText("Message Text")
    attachment_id = fields.Many2one("ir.attachment", "Evidence")
    note = EncryptedText()
    doi_token = fields.Char(
        "Confirmation Token",
        index="btree_not_null",
        copy=False,
        groups="base.group_system",
    )
    anonymized = fields.Boolean(readonly=True)
    interest_ids = fields.Many2many(
        "sms.microfunnel.interest",
        "sms_microfunnel_consent_event_interest_rel",
        "event_id",
        "interest_id",
        string="Interests",
        readonly=True,
        help="Interests the person chose with this consent (opt-in form).",
    )
    interest_names = fields.Char(
        "Interests Chosen",
        readonly=True,
        help="The labels of the chosen interests exactly as shown to the person.",
    )

    @api.depends("wording", "wording_sha256")
    def _compute_wording_verified(self):
        for event in self:
            event.wording_verified = bool(
                event.wording and wording_hash(event.wording) == event.wording_sha256
            )

    @api.depends("lang")
    @api.depends_context("lang")
    def _compute_lang_name(self):
        """The language's name in the reader's language (“Français”), not its
        code."""
        names = dict(self.env["res.lang"].get_installed())
        for event in self:
            event.lang_name = names.get(event.lang, event.lang or "")

    # -- immutability --------------------------------------------------------

    def write(self, vals):
        if not self.env.context.get("sms_consent_erasure") or not self.env.su:
            raise UserError(
                self.env._(
                    "Consent events are proofs and cannot be modified. Record a new "
                    "event instead (e.g. an opt-out)."
                )
            )
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_only_for_erasure(self):
        if not self.env.context.get("sms_consent_erasure") or not self.env.su:
            raise UserError(
                self.env._("Consent events are proofs and cannot be deleted.")
            )

    # -- recording -----------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        Suppression = self.env["sms.microfunnel.suppression"]
        for vals in vals_list:
            vals["wording_sha256"] = wording_hash(vals.get("wording"))
            vals["ip_hash"] = Suppression._keyed_hash(vals.get("ip"), purpose="ip")
            if vals.get("event_type") in ("confirmed", "soft_opt_in", "re_opt_in"):
                vals.setdefault("proven", all(vals.get(f) for f in PROOF_FIELDS[1:]))
            if vals.get("event_type") == "requested" and not vals.get("doi_token"):
                vals["doi_token"] = secrets.token_urlsafe(24)
        events = super().create(vals_list)
        self.env["sms.microfunnel.consent"]._apply_events(events)
        return events

    @api.model
    def _record(self, vals_list):
        """Record consent events, the one entry point for every source.

        Numbers are normalised to E.164 (a clear error on a malformed one),
        opt-ins of suppressed (erased) numbers are refused, and a global
        marketing opt-out or re-opt-in updates Odoo's ``phone.blacklist``.
        """
        Consent = self.env["sms.microfunnel.consent"]
        prepared = []
        for vals in vals_list:
            vals = dict(vals)
            company = self.env["res.company"].browse(
                vals.get("company_id") or self.env.company.id
            )
            partner = self.env["res.partner"].browse(vals.get("partner_id") or [])
            vals["company_id"] = company.id
            vals["number"] = Consent._sanitize_number(
                vals.get("number"), partner=partner, company=company
            )
            prepared.append(vals)
        grants = [
            v["number"]
            for v in prepared
            if EVENT_STATE.get(v.get("event_type")) in ("pending", "confirmed")
        ]
        suppressed = self.env["sms.microfunnel.suppression"]._suppressed(grants)
        if suppressed:
            raise UserError(
                self.env._(
                    "These numbers were erased at the contact's request and stay "
                    "suppressed; no consent can be recorded for them: %(numbers)s",
                    numbers=", ".join(sorted(suppressed)),
                )
            )
        events = self.sudo().create(prepared)
        global_events = events.filtered(lambda e: not e.scope)
        opt_outs = global_events.filtered(lambda e: e.event_type == "opt_out")
        if opt_outs:
            numbers = list(set(opt_outs.mapped("number")))
            self.env["phone.blacklist"].sudo()._add(
                numbers,
                message=self.env._("Opted out of SMS marketing (consent ledger)"),
            )
            # nothing already queued for these numbers may still go out
            queued = (
                self.env["sms.sms"]
                .sudo()
                .search([("number", "in", numbers), ("state", "=", "outgoing")])
            )
            queued._update_sms_state_and_trackers("canceled", failure_type="sms_optout")
            self.env["sms.microfunnel.enrollment"].sudo().search(
                [("number", "in", numbers), ("state", "=", "active")]
            )._exit("opted_out")
        opt_ins = global_events.filtered(lambda e: e.event_type == "re_opt_in")
        if opt_ins:
            self.env["phone.blacklist"].sudo()._remove(
                list(set(opt_ins.mapped("number"))),
                message=self.env._("Opted in again to SMS marketing (consent ledger)"),
            )
        return events.with_env(self.env)

    # -- erasure ------------------------------------------------------------

    def _anonymize(self):
        """Erase personal data from these events (system only, RGPD art. 17).

        The number is replaced by its keyed hash, which the suppression list
        also keeps, so the proof chain stays countable but no longer personal.
        """
        Suppression = self.env["sms.microfunnel.suppression"]
        for event in self.sudo():
            vals = dict.fromkeys(PERSONAL_FIELDS, False)
            vals.update(number=Suppression._hash(event.number), anonymized=True)
            event.with_context(sms_consent_erasure=True).write(vals)
