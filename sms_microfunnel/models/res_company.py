# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    sms_funnel_sender_label = fields.Char(
        string="SMS Sender Identification",
        help="Prefix that names the sender in every marketing SMS, e.g. 'ACME: '. "
        "Leave empty when an alphanumeric sender ID already names the company.",
    )
    sms_funnel_optout_mention = fields.Char(
        string="SMS Opt-out Mention",
        translate=True,
        help="Opt-out instruction appended to every marketing SMS, e.g. "
        "'STOP au 36xxx' or 'Reply STOP to opt out'.",
    )
    sms_funnel_max_segments = fields.Integer(
        string="Maximum SMS Segments",
        default=3,
        help="A message longer than this number of segments cannot be sent.",
    )

    _sms_funnel_max_segments_positive = models.Constraint(
        "CHECK(sms_funnel_max_segments >= 1)",
        "The maximum number of SMS segments must be at least 1.",
    )

    # -- consent collection and service replies ------------------------------

    sms_consent_wording = fields.Text(
        string="SMS Consent Wording",
        translate=True,
        default=lambda self: self.env._(
            "I agree to receive marketing text messages (about 2 per month) from "
            "%(company)s at this number. Reply STOP to opt out at any time, HELP "
            "for help. Consent is not a condition of purchase.",
            company=self.env.company.name,
        ),
        help="Text shown next to the consent checkbox of the public form. Each "
        "change creates a new version; every consent event stores the exact "
        "text, its version and its SHA-256 hash.",
    )
    sms_consent_wording_version = fields.Integer(
        string="SMS Consent Wording Version", default=1, readonly=True
    )
    sms_doi_expiry_hours = fields.Integer(
        string="Double Opt-in Expiry (hours)",
        default=48,
        help="A double opt-in request not confirmed within this delay expires.",
    )
    sms_text_doi_request = fields.Char(
        string="Double Opt-in Request SMS",
        translate=True,
        default="{company}: reply YES to confirm you want our text messages "
        "(about 2/month), or open {link}. Reply STOP to opt out.",
        help="Placeholders: {company}, {link}.",
    )
    sms_text_doi_confirmed = fields.Char(
        string="Opt-in Confirmation SMS",
        translate=True,
        default="{company}: you are subscribed to our text messages (about 2/month). "
        "Msg & data rates may apply. Reply HELP for help, STOP to opt out.",
    )
    sms_text_stop = fields.Char(
        string="STOP Confirmation SMS",
        translate=True,
        default="{company}: you are unsubscribed and will receive no more marketing "
        "messages. Reply START to subscribe again.",
    )
    sms_text_start = fields.Char(
        string="START Confirmation SMS",
        translate=True,
        default="{company}: you are subscribed again to our text messages. "
        "Reply STOP to opt out.",
    )
    sms_text_help = fields.Char(
        string="HELP Reply SMS",
        translate=True,
        default="{company}: marketing messages (about 2/month). Support: {contact}. "
        "Reply STOP to opt out.",
        help="Placeholders: {company}, {contact} (company phone, e-mail or website).",
    )
    sms_retention_years = fields.Integer(
        string="Prospect Retention (years)",
        default=3,
        help="Prospects with no interaction for this long are listed for erasure "
        "(CNIL: 3 years from the last contact initiated by the prospect).",
    )
    sms_retention_auto_erase = fields.Boolean(
        string="Erase Stale Prospects Automatically",
        help="When set, the retention job erases the stale prospects it finds; "
        "otherwise it only lists them for a manager.",
    )

    def write(self, vals):
        if "sms_consent_wording" in vals:
            for company in self:
                if company.sms_consent_wording != vals["sms_consent_wording"]:
                    super(ResCompany, company).write(
                        {
                            "sms_consent_wording_version": (
                                company.sms_consent_wording_version + 1
                            )
                        }
                    )
        return super().write(vals)

    def _sms_service_text(self, key, lang=None, **values):
        """A service SMS (``doi_request``, ``stop``, ``help``…) in ``lang``."""
        self.ensure_one()
        company = self.with_context(lang=lang) if lang else self
        template = company[f"sms_text_{key}"] or ""
        values.setdefault("company", company.sms_funnel_sender_label_clean())
        values.setdefault(
            "contact", company.phone or company.email or company.website or ""
        )
        return template.format_map(_Default(values))

    def _sms_send_service(self, number, key, partner=None, lang=None, **values):
        """Queue one service SMS (not marketing) through Odoo's SMS outbox.

        Service messages are exempt from send windows and consent, and the
        only kind an opted-out number may still receive (its STOP
        confirmation).  The message is logged on the contact's chatter.
        """
        self.ensure_one()
        partner = partner or self.env["res.partner"]
        lang = lang or partner.lang or self.partner_id.lang
        body = self._sms_service_text(key, lang=lang, **values)
        sms = (
            self.env["sms.sms"]
            .sudo()
            .with_company(self)
            .create(
                {
                    "number": number,
                    "body": body,
                    "partner_id": partner.id,
                    "state": "outgoing",
                }
            )
        )
        if partner:
            partner.sudo().message_post(
                body=self.env._(
                    "Service SMS to %(number)s: %(body)s", number=number, body=body
                ),
                message_type="comment",
                subtype_xmlid="mail.mt_note",
            )
        return sms

    def sms_funnel_sender_label_clean(self):
        self.ensure_one()
        return (self.sms_funnel_sender_label or "").strip(" :") or self.name


class _Default(dict):
    """``str.format_map`` mapping that leaves unknown placeholders visible."""

    def __missing__(self, key):
        return "{" + key + "}"
