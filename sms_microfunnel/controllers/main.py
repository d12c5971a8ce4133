# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Public consent pages: double opt-in form, confirmation link, unsubscribe link.

Every page works for anonymous visitors.  Forms are protected by Odoo's CSRF
token, and state changes only happen on POST, so link scanners and
prefetchers that open an SMS link never confirm or unsubscribe anybody.
"""

from datetime import timedelta

from werkzeug.exceptions import NotFound

from odoo import Command, fields, http
from odoo.exceptions import UserError
from odoo.http import request

from ..models.sms_microfunnel_consent import FREQUENCIES
from ..models.sms_microfunnel_consent_event import wording_hash

# at most RATE_LIMIT opt-in requests recorded per IP address per RATE_WINDOW
RATE_LIMIT = 5
RATE_WINDOW = timedelta(hours=1)
NAME_MAX_LENGTH = 128
PHONE_MAX_LENGTH = 32
USER_AGENT_MAX_LENGTH = 512
TOKEN_MAX_LENGTH = 256
# database ids are PostgreSQL integers: a larger one is no record of ours
MAX_ID = 2**31 - 1


def is_clean_text(value):
    """No NUL nor other control character (newlines and tabs aside): PostgreSQL
    refuses NUL, and none of them belongs in a name, a number or a token."""
    return not any(ord(char) < 32 and char not in "\t\n\r" for char in value or "")


def is_token(value):
    """A link token: short, printable ASCII."""
    return (
        bool(value)
        and len(value) <= TOKEN_MAX_LENGTH
        and value.isascii()
        and value.isprintable()
    )


def mask_number(number):
    """``+33612345678`` → ``+33 ••••••• 78``: enough to recognise one's own."""
    number = number or ""
    if len(number) < 7:
        return "•" * len(number)
    return f"{number[:3]} {'•' * (len(number) - 5)} {number[-2:]}"


class SmsConsentController(http.Controller):
    # -- helpers ----------------------------------------------------------------

    def _sms_lang(self):
        lang = getattr(request, "lang", None)
        return (lang and lang.code) or request.env.lang or "en_US"

    def _sms_decode_contact_token(self, token):
        """(consent model, company, number) of a per-recipient link token;
        404 for a forged or oversized one."""
        Consent = request.env["sms.microfunnel.consent"].sudo()
        if not is_token(token):
            raise NotFound()
        company, number = Consent._decode_unsubscribe_token(token)
        if not company:
            raise NotFound()
        return Consent, company, number

    def _sms_adopt_contact_lang(self, company, number, partner=None, hint=None):
        """Show a page about one contact in that contact's language.

        The visitor's own choice wins: a language in the URL, the language
        cookie or a browser language other than the site's default (Odoo's
        routing turns those into ``request.lang``).  Otherwise the page is in
        the contact's language (contact, language used at opt-in, number's
        country, company), like the service messages they receive.
        """
        default = request.env["ir.http"]._get_default_lang()
        if getattr(request, "lang", None) and request.lang.code != default.code:
            return
        if not partner and number:
            partner = self._sms_status(number, company).partner_id
        lang = company._sms_lang(partner=partner, number=number, language=hint)
        if lang and lang != request.env.lang:
            request.update_context(lang=lang)
            request.lang = request.env["res.lang"]._get_data(code=lang)

    def _sms_evidence(self):
        """Collection context stored with every event recorded from a page."""
        user_agent = request.httprequest.headers.get("User-Agent") or ""
        return {
            "ip": request.httprequest.remote_addr,
            "user_agent": user_agent[:USER_AGENT_MAX_LENGTH] or False,
            "source_ref": request.httprequest.url,
        }

    def _sms_optin_company(self, company_id):
        """The company whose form is shown: ``?company=<id>``, else the current one."""
        Company = request.env["res.company"].sudo()
        if not company_id:
            return Company.browse(request.env.company.id)
        try:
            company_id = int(company_id)
        except (TypeError, ValueError):
            company_id = 0
        company = Company
        if 0 < company_id <= MAX_ID:
            company = Company.browse(company_id).exists()
        if not company:
            raise NotFound()
        return company

    def _sms_wording(self, company, lang):
        return company.with_context(lang=lang)._sms_consent_wording_text()

    def _sms_blocked(self, number):
        """Erased (suppressed) or globally blacklisted: never contacted again."""
        if request.env["sms.microfunnel.suppression"].sudo()._suppressed([number]):
            return True
        return bool(
            request.env["phone.blacklist"]
            .sudo()
            .search_count([("number", "=", number)])
        )

    def _sms_status(self, number, company):
        return (
            request.env["sms.microfunnel.consent"]
            .sudo()
            .search(
                [
                    ("number", "=", number),
                    ("company_id", "=", company.id),
                    ("purpose", "=", "marketing"),
                    ("scope", "=", False),
                ],
                limit=1,
            )
        )

    def _sms_rate_limited(self):
        since = fields.Datetime.now() - RATE_WINDOW
        # the IP is encrypted at rest: its keyed hash is searched instead
        ip_hash = (
            request.env["sms.microfunnel.suppression"]
            .sudo()
            ._keyed_hash(request.httprequest.remote_addr, purpose="ip")
        )
        recorded = (
            request.env["sms.microfunnel.consent.event"]
            .sudo()
            .search_count(
                [
                    ("ip_hash", "=", ip_hash),
                    ("source", "=", "web_form"),
                    ("event_type", "=", "requested"),
                    ("event_date", ">=", since),
                ]
            )
        )
        return recorded >= RATE_LIMIT

    def _sms_render(self, template, company, values=None, **kw):
        lang = self._sms_lang()
        qcontext = {
            "res_company": company,
            "sms_company": company,
            "html_data": {"lang": lang.replace("_", "-")},
            **(values or {}),
        }
        return request.render(f"sms_microfunnel.{template}", qcontext, **kw)

    # -- double opt-in form -------------------------------------------------------

    @http.route(
        "/sms/optin",
        type="http",
        auth="public",
        methods=["GET", "POST"],
        website=True,
        csrf=True,
    )
    def sms_optin(self, company=None, **post):
        company = self._sms_optin_company(company)
        if request.httprequest.method != "POST":
            return self._sms_render_optin_form(company)
        return self._sms_optin_submit(company, post)

    def _sms_render_optin_form(self, company, post=None, errors=None):
        wording = self._sms_wording(company, self._sms_lang())
        post = post or {}
        return self._sms_render(
            "sms_optin_form",
            company,
            {
                "wording": wording,
                "wording_sha256": wording_hash(wording),
                "wording_version": company.sms_consent_wording_version,
                "name": (post.get("name") or "")[:NAME_MAX_LENGTH],
                "phone": (post.get("phone") or "")[:PHONE_MAX_LENGTH],
                "errors": errors or {},
                "interests": self._sms_interests(company),
                "selected_interest_ids": self._sms_posted_interests(company).ids
                if post
                else [],
            },
        )

    def _sms_optin_submit(self, company, post):
        if self._sms_rate_limited():
            return self._sms_render(
                "sms_optin_rate_limited",
                company,
                status=429,
                headers=[("Retry-After", str(int(RATE_WINDOW.total_seconds())))],
            )
        lang = self._sms_lang()
        wording = self._sms_wording(company, lang)
        name = (post.get("name") or "").strip()
        phone = (post.get("phone") or "").strip()
        errors = {}
        if not name:
            errors["name"] = "missing"
        elif len(name) > NAME_MAX_LENGTH:
            errors["name"] = "too_long"
        elif not is_clean_text(name):
            errors["name"] = "invalid"
        number = False
        if not phone:
            errors["phone"] = "missing"
        elif len(phone) <= PHONE_MAX_LENGTH and is_clean_text(phone):
            number = (
                request.env["sms.microfunnel.consent"]
                .sudo()
                ._sanitize_number(phone, company=company, raise_exception=False)
            )
        if phone and not number:
            errors["phone"] = "invalid"
        if not post.get("consent"):
            errors["consent"] = "missing"
        elif post.get("wording_sha256") != wording_hash(wording):
            # the text changed since the page was shown: what was agreed to is
            # not what we would store, so ask again
            errors["consent"] = "changed"
        if errors:
            return self._sms_render_optin_form(company, post, errors)

        values = {"masked_number": mask_number(number)}
        if self._sms_blocked(number):
            return self._sms_render("sms_optin_blocked", company, values)
        status = self._sms_status(number, company)
        if status.state == "confirmed":
            return self._sms_render(
                "sms_optin_done", company, dict(values, outcome="already_confirmed")
            )
        if status._doi_is_open():
            # one confirmation request per pending opt-in: the form must not be
            # a way to text somebody repeatedly
            return self._sms_render(
                "sms_optin_done", company, dict(values, outcome="already_pending")
            )

        Partner = request.env["res.partner"].sudo()
        try:
            with request.env.cr.savepoint():
                partner = self._sms_number_partners(number, company)[:1]
                if not partner:
                    partner = Partner.with_company(company).create(
                        {
                            "name": name,
                            "phone": number,
                            "company_id": company.id,
                            "lang": lang,
                        }
                    )
                request.env["sms.microfunnel.consent"].sudo()._request_doi(
                    number,
                    company=company,
                    partner=partner,
                    source="web_form",
                    method="checkbox",
                    wording=wording,
                    wording_version=str(company.sms_consent_wording_version),
                    lang=lang,
                    **self._sms_interest_evidence(company, lang),
                    **self._sms_evidence(),
                )
        except UserError:
            # suppressed in the meantime: same neutral answer, nothing kept
            return self._sms_render("sms_optin_blocked", company, values)
        return self._sms_render(
            "sms_optin_done", company, dict(values, outcome="requested")
        )

    # -- confirmation link ----------------------------------------------------------

    def _sms_doi_request(self, token):
        """(request event, state) for a confirmation token.

        state: ``pending`` (can be confirmed), ``confirmed``, ``expired``,
        ``withdrawn`` or ``unknown``.
        """
        Event = request.env["sms.microfunnel.consent.event"].sudo()
        if not is_token(token):
            return Event, "unknown"
        doi_request = Event.search(
            [("doi_token", "=", token), ("event_type", "=", "requested")], limit=1
        )
        if not doi_request or doi_request.anonymized:
            return Event, "unknown"
        company = doi_request.company_id
        if self._sms_blocked(doi_request.number):
            return doi_request, "withdrawn"
        status = self._sms_status(doi_request.number, company)
        if not status:
            return doi_request, "expired"
        if status.last_event_id == doi_request:
            if status._doi_is_open():
                return doi_request, "pending"
            return doi_request, "expired"
        later = (status.last_event_date, status.last_event_id.id) > (
            doi_request.event_date,
            doi_request.id,
        )
        if later and status.state == "confirmed":
            return doi_request, "confirmed"
        if later and status.state == "withdrawn":
            return doi_request, "withdrawn"
        return doi_request, "expired"

    @http.route(
        "/sms/optin/confirm/<string:token>",
        type="http",
        auth="public",
        methods=["GET", "POST"],
        website=True,
        csrf=True,
    )
    def sms_optin_confirm(self, token, **post):
        doi_request, state = self._sms_doi_request(token)
        company = doi_request.company_id or self._sms_optin_company(None)
        if doi_request:
            self._sms_adopt_contact_lang(
                company, doi_request.number, doi_request.partner_id, doi_request.lang
            )
        values = {
            "token": token,
            "masked_number": mask_number(doi_request.number),
            "wording": doi_request.wording,
            "outcome": state,
        }
        if state != "pending":
            status = 404 if state == "unknown" else 200
            return self._sms_render(
                "sms_optin_confirm_done", company, values, status=status
            )
        if request.httprequest.method != "POST":
            return self._sms_render("sms_optin_confirm", company, values)
        confirmed = (
            request.env["sms.microfunnel.consent"]
            .sudo()
            ._confirm_doi(
                company,
                token=token,
                method="link_click",
                source="web_form",
                **self._sms_evidence(),
            )
        )
        values["outcome"] = "confirmed_now" if confirmed else "expired"
        return self._sms_render("sms_optin_confirm_done", company, values)

    # -- one-click unsubscribe link ---------------------------------------------------

    @http.route(
        "/sms/unsubscribe/<string:token>",
        type="http",
        auth="public",
        methods=["GET", "POST"],
        website=True,
        csrf=True,
    )
    def sms_unsubscribe(self, token, **post):
        Consent, company, number = self._sms_decode_contact_token(token)
        self._sms_adopt_contact_lang(company, number)
        values = {"token": token, "masked_number": mask_number(number)}
        withdrawn = Consent._get_states([number], company=company)[number] == (
            "withdrawn"
        )
        if request.httprequest.method != "POST":
            template = "sms_unsubscribe_done" if withdrawn else "sms_unsubscribe"
            if not withdrawn:
                values.update(self._sms_preferences_values(company, number))
            return self._sms_render(
                template, company, dict(values, already_withdrawn=withdrawn)
            )
        if not withdrawn:
            partner = self._sms_status(number, company).partner_id
            if not partner:
                partner = self._sms_number_partners(number, company)[:1]
            request.env["sms.microfunnel.consent.event"].sudo()._record(
                [
                    {
                        "event_type": "opt_out",
                        "number": number,
                        "company_id": company.id,
                        "partner_id": partner.id,
                        "source": "unsubscribe_link",
                        "method": "link_click",
                        "lang": self._sms_lang(),
                        **self._sms_evidence(),
                    }
                ]
            )
            # a revocation made on the web is not seen by the SMS provider:
            # we send its one STOP confirmation (compliance book: US-FCC-CONFIRMATION)
            company._sms_send_service(
                number, "stop", partner=partner, lang=partner.lang or self._sms_lang()
            )
        return self._sms_render(
            "sms_unsubscribe_done", company, dict(values, already_withdrawn=withdrawn)
        )

    # -- preferences (reached from the per-recipient link) ---------------------------

    def _sms_interests(self, company):
        """The interest choices ``company`` offers, in the page's language."""
        return request.env["sms.microfunnel.interest"]._for_company(company)

    def _sms_posted_interests(self, company):
        """The company's interests ticked in the posted form (others ignored)."""
        posted = set()
        for value in request.httprequest.form.getlist("interest_ids"):
            try:
                posted.add(int(value))
            except ValueError:
                continue
        return self._sms_interests(company).filtered(lambda i: i.id in posted)

    def _sms_interest_evidence(self, company, lang):
        """Consent event fields for the interests chosen on the opt-in form."""
        interests = self._sms_posted_interests(company)
        if not interests:
            return {}
        return {
            "interest_ids": [Command.set(interests.ids)],
            "interest_names": ", ".join(
                interests.with_context(lang=lang).mapped("name")
            ),
        }

    def _sms_number_partners(self, number, company):
        """The contacts of ``company`` (or shared) reached at ``number``."""
        Consent = request.env["sms.microfunnel.consent"].sudo()
        found = Consent._contacts_by_number([number], company)
        return found.get(number, request.env["res.partner"].sudo())

    def _sms_preferences_values(self, company, number):
        status = self._sms_status(number, company)
        partners = self._sms_number_partners(number, company)
        frequencies = []
        if status:
            frequencies = status._fields["frequency"]._description_selection(
                request.env
            )
        return {
            "interests": self._sms_interests(company),
            "selected_interest_ids": partners.sms_microfunnel_interest_ids.ids,
            "frequencies": frequencies,
            "frequency": status.frequency or "all",
            "preferences_saved": bool(request.params.get("saved")),
        }

    @http.route(
        "/sms/preferences/<string:token>",
        type="http",
        auth="public",
        methods=["POST"],
        website=True,
        csrf=True,
    )
    def sms_preferences(self, token, **post):
        """Save the interests and frequency chosen on the preferences page."""
        Consent, company, number = self._sms_decode_contact_token(token)
        page = f"/sms/unsubscribe/{token}"
        if Consent._get_states([number], company=company)[number] == "withdrawn":
            return request.redirect(page)  # the page says it is unsubscribed
        interests = self._sms_interests(company)
        chosen = self._sms_posted_interests(company)
        partners = self._sms_number_partners(number, company)
        changes = []
        for partner in partners:
            current = partner.sms_microfunnel_interest_ids
            wanted = (current - interests) | chosen
            if wanted != current:
                partner.sms_microfunnel_interest_ids = wanted
                changes.append(partner)
        status = self._sms_status(number, company)
        frequency = post.get("frequency")
        frequency_changed = (
            bool(status)
            and frequency in dict(FREQUENCIES)
            and frequency != status.frequency
        )
        if frequency_changed:
            status.frequency = frequency
        if changes or frequency_changed:
            labels = dict(
                status._fields["frequency"]._description_selection(request.env)
            )
            body = request.env._(
                "SMS preferences changed through the preferences link: "
                "interests: %(interests)s; frequency: %(frequency)s.",
                interests=", ".join(chosen.mapped("name")) or "—",
                frequency=labels.get(status.frequency, "—"),
            )
            for partner in partners:
                partner.message_post(
                    body=body, message_type="comment", subtype_xmlid="mail.mt_note"
                )
        return request.redirect(f"{page}?saved=1")
