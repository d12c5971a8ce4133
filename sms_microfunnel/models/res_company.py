# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools.translate import LazyTranslate

from ..tools import send_window

try:
    import phonenumbers
except ImportError:  # pragma: no cover - declared in external_dependencies
    phonenumbers = None

_lt = LazyTranslate(__name__)

# The shipped service messages, in English in the code and translated in
# i18n/<lang>.po.  Each names the sender and tells how to stop (compliance book
# docs/compliance.md, "Keywords and service replies").
SERVICE_TEXTS = {
    "doi_request": _lt(
        "{company}: reply YES to confirm you want our text messages (about "
        "2/month), or open {link}. Reply STOP to opt out."
    ),
    "doi_confirmed": _lt(
        "{company}: you are subscribed to our text messages (about 2/month). "
        "Msg & data rates may apply. Reply HELP for help, STOP to opt out."
    ),
    "stop": _lt(
        "{company}: you are unsubscribed and will receive no more marketing "
        "messages. Reply START to subscribe again."
    ),
    "start": _lt(
        "{company}: you are subscribed again to our text messages. Reply STOP "
        "to opt out."
    ),
    "help": _lt(
        "{company}: marketing messages (about 2/month). Support: {contact}. "
        "Reply STOP to opt out."
    ),
}
# the region used when a language is installed under several codes
DEFAULT_REGIONS = {
    "en": "en_US",
    "fr": "fr_FR",
    "es": "es_ES",
    "de": "de_DE",
    "it": "it_IT",
    "nl": "nl_NL",
    "pt": "pt_PT",
}
# countries (phone regions) where one language is clearly the one to write in;
# multilingual countries (BE, CH, CA, LU…) are left to the other signals
REGION_LANGUAGES = {
    # the French family (one definition, in the send-window tools) and Monaco
    **dict.fromkeys((*sorted(send_window.FR_FAMILY), "MC"), "fr"),
    **dict.fromkeys(("DE", "AT"), "de"),
    "ES": "es",
    "IT": "it",
    "NL": "nl",
    "PT": "pt",
    **dict.fromkeys(("GB", "IE", "US", "AU", "NZ"), "en"),
}


def phone_language(number):
    """The language of the country of an E.164 ``number``, or None."""
    if not number or phonenumbers is None:
        return None
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    return REGION_LANGUAGES.get(phonenumbers.region_code_for_number(parsed))


#: Sectors whose companies send no marketing SMS from funnels (compliance
#: book, "Regulated sectors"; each has a sector rule in sms.microfunnel.rule).
REGULATED_SECTORS = [
    ("health", "Health"),
    ("legal", "Legal"),
    ("finance", "Finance"),
    ("energy_renovation", "Energy renovation and home adaptation (France)"),
]


#: stands for the company's name in the consent wording
COMPANY_PLACEHOLDER = "{company}"
#: Odoo's name of a new database's company
DEMO_COMPANY_NAME = "YourCompany"


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
        default=lambda self: self._sms_consent_wording_default(),
        help="Text shown next to the consent checkbox of the public form. Each "
        "change creates a new version; every consent event stores the exact "
        "text, its version and its SHA-256 hash. {company} stands for the "
        "company's name.",
    )
    sms_consent_wording_warning = fields.Boolean(
        "Consent Wording to Review", compute="_compute_sms_consent_wording_warning"
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
        help="Placeholders: {company}, {link}. Empty: the shipped text, in the "
        "contact's language. A text typed here serves the language it is typed in.",
    )
    sms_text_doi_confirmed = fields.Char(
        string="Opt-in Confirmation SMS",
        translate=True,
        help="Placeholders: {company}, {contact}. Empty: the shipped text, in the "
        "contact's language. A text typed here serves the language it is typed in.",
    )
    sms_text_stop = fields.Char(
        string="STOP Confirmation SMS",
        translate=True,
        help="Placeholder: {company}. Empty: the shipped text, in the contact's "
        "language. A text typed here serves the language it is typed in.",
    )
    sms_text_start = fields.Char(
        string="START Confirmation SMS",
        translate=True,
        help="Placeholder: {company}. Empty: the shipped text, in the contact's "
        "language. A text typed here serves the language it is typed in.",
    )
    sms_text_help = fields.Char(
        string="HELP Reply SMS",
        translate=True,
        help="Placeholders: {company}, {contact} (company phone, e-mail or "
        "website). Empty: the shipped text, in the contact's language. A text "
        "typed here serves the language it is typed in.",
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
    sms_funnel_regulated_sector = fields.Selection(
        REGULATED_SECTORS,
        string="Regulated Sector",
        help="Health, legal, finance or energy renovation: the company's funnels "
        "may only send transactional or informational messages (appointment "
        "reminders, file updates, deadlines, messages of a contract in "
        "progress); marketing steps are refused.",
    )
    sms_revoke_all = fields.Boolean(
        string="Opt-out Stops Every Message (US)",
        default=True,
        help="FCC “revoke-all” rule (47 CFR 64.1200(a)(10), rule "
        "US-FCC-REVOKE-ALL): an opt-out of a US number, whatever message it "
        "answered, stops every message of the company, transactional included, "
        "and every funnel. Applies from the rule's start date (31 January 2027) "
        "while this is set.",
    )

    @api.constrains("sms_funnel_regulated_sector")
    def _check_sms_funnel_regulated_sector(self):
        """A company may not become regulated while funnels of it still run
        marketing steps: they would be refused at their next start anyway."""
        regulated = self.filtered("sms_funnel_regulated_sector")
        if not regulated:
            return
        steps = self.env["sms.microfunnel.step"].search(
            [
                ("campaign_id.company_id", "in", regulated.ids),
                ("campaign_id.state", "in", ("running", "paused")),
                ("message_class", "=", "marketing"),
                ("step_type", "not in", ("activity", "crm_update")),
            ]
        )
        if steps:
            raise ValidationError(
                self.env._(
                    "%(company)s cannot be set as a regulated sector while funnels "
                    "send marketing steps: %(funnels)s. Set those steps to "
                    "Transactional or stop the funnels first.",
                    company=steps[0].campaign_id.company_id.name,
                    funnels=", ".join(sorted(set(steps.campaign_id.mapped("name")))),
                )
            )

    def _sms_funnel_regulated_refusal(self, step):
        """The explanation given when a regulated company's funnel has a
        marketing ``step``."""
        self.ensure_one()
        field = self._fields["sms_funnel_regulated_sector"]
        sectors = dict(field._description_selection(self.env))
        sector = self.sms_funnel_regulated_sector
        if sector == "energy_renovation":
            text = self.env._(
                "%(company)s works in a regulated sector (%(sector)s): canvassing "
                "consumers by telephone, SMS, e-mail or social networks for "
                "energy-renovation or home-adaptation work is banned unless a "
                "contract is in progress. Its funnels may only send messages of "
                "a contract in progress. Step “%(step)s” is a marketing message: "
                "make it Transactional, or remove it.",
                company=self.name,
                sector=sectors.get(sector, ""),
                step=step.name,
            )
        else:
            text = self.env._(
                "%(company)s works in a regulated sector (%(sector)s): its funnels "
                "may only send transactional or informational messages, such as "
                "appointment reminders, file updates or deadlines. Step "
                "“%(step)s” is a marketing message: make it Transactional, or "
                "remove it.",
                company=self.name,
                sector=sectors.get(sector, ""),
                step=step.name,
            )
        rule = self.env["sms.microfunnel.rule"]._sector_rule(sector)
        if rule:
            text += "\n" + self.env._("Rule %(rule)s", rule=rule._rule_reference())
        return text

    @api.model
    def _sms_consent_wording_default(self):
        """The stock wording in the context's language; ``{company}`` is
        replaced by the company's name when shown and stored."""
        return self.env._(
            "I agree to receive marketing text messages (about 2 per month) from "
            "%(company)s at this number. Reply STOP to opt out at any time, HELP "
            "for help. Consent is not a condition of purchase.",
            company=COMPANY_PLACEHOLDER,
        )

    def _sms_consent_wording_text(self):
        """The wording a contact reads in the context's language, with the
        company's real name: the stock wording in that language while the
        company kept it untranslated."""
        self.ensure_one()
        wording = self.sms_consent_wording or ""
        english = self.with_context(lang="en_US")._sms_consent_wording_default()
        if wording == english:
            wording = self._sms_consent_wording_default()
        return wording.replace(COMPANY_PLACEHOLDER, self.name or "")

    @api.depends("sms_consent_wording", "name")
    def _compute_sms_consent_wording_warning(self):
        for company in self:
            wording = company.sms_consent_wording or ""
            company.sms_consent_wording_warning = COMPANY_PLACEHOLDER in wording or (
                DEMO_COMPANY_NAME in wording and company.name != DEMO_COMPANY_NAME
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

    def _sms_lang(self, partner=None, number=None, language=None):
        """The installed language a contact reads: theirs, else a hint (the
        language of their reply or of the page they used), else their number's
        country, else the company's."""
        self.ensure_one()
        number_language = phone_language(number)
        for candidate in (
            partner and partner.lang,
            language,
            number_language,
            self.partner_id.lang,
        ):
            code = self._sms_installed_lang(candidate)
            if code:
                return code
        return "en_US"

    @api.model
    def _sms_installed_lang(self, code):
        """``code`` (``fr``, ``fr_FR``, ``fr-BE``…) as an installed language."""
        if not code:
            return False
        code = code.replace("-", "_")
        installed = [lang for lang, _name in self.env["res.lang"].get_installed()]
        if code in installed:
            return code
        short = code.split("_")[0]
        preferred = DEFAULT_REGIONS.get(short)
        if preferred in installed:
            return preferred
        return next((lang for lang in installed if lang.split("_")[0] == short), False)

    def _sms_service_text(self, key, lang=None, **values):
        """A service SMS (``doi_request``, ``stop``, ``help``…) in ``lang``.

        The company's own text for exactly that language wins; otherwise the
        shipped text, translated into that language.  (A text typed in French
        only does not reach English contacts.)
        """
        self.ensure_one()
        lang = self._sms_installed_lang(lang) or "en_US"
        company = self.with_context(lang=lang)
        field = self._fields[f"sms_text_{key}"]
        own = field._get_stored_translations(self) or {}
        if lang == "en_US" and own.get("en_US") in {
            text for code, text in own.items() if code != "en_US"
        }:
            # the first text typed in another language is also stored by Odoo
            # as the source value: it is not an English text
            own.pop("en_US")
        template = own.get(lang) or SERVICE_TEXTS[key]._translate(lang)
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
        lang = self._sms_lang(partner=partner, number=number, language=lang)
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
