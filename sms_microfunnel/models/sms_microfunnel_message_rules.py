# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Message rules: the final text of an SMS, its encoding, segments and cost.

``_compose`` builds what is really sent for a body and a recipient
(compliance book ``docs/compliance.md``, "Message content"):

1. placeholders are rendered with Odoo's inline-template engine, the one of
   ``sms.template`` (``{{ object.name or 'client' }}``, ``{{ object.name |||
   client }}``), in the recipient's language;
2. links are shortened with ``link.tracker`` (``_shorten_links_text``);
3. the sender identification (company setting, e.g. ``ACME: ``) is prefixed,
   unless the text already starts with it;
4. marketing messages get the opt-out mention on a new line, unless already
   present: the company's text (``STOP au 36xxx``, ``Reply STOP to opt out``)
   or the recipient's one-click unsubscribe link shortened through
   ``link.tracker`` (when the mention contains ``{link}``, or on request);
5. the result is counted with ``tools/sms_encoding.py``, each short link at
   its final length (the recipient suffix ``/s/<sms id>`` included), priced
   with ``sms.microfunnel.price`` and checked against the company's maximum
   number of segments.
"""

import json
import re
from html import unescape
from typing import NamedTuple

from odoo import api, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL
from odoo.tools.mail import TEXT_URL_REGEX

from ..tools import run_cache, sms_encoding, sms_keywords
from .res_company import REGION_LANGUAGES
from .sms_microfunnel_gate import number_region
from .sms_microfunnel_price import plain_region

try:
    import phonenumbers
except ImportError:  # declared in the manifest
    phonenumbers = None

OPTOUT_MODES = ("mention", "link", "none")
#: ``{link}`` in the company's opt-out mention selects the unsubscribe link.
LINK_PLACEHOLDER = "{link}"
#: Short links of funnel SMS get ``/s/<sms id>`` appended once the SMS exists
#: (Odoo's SMS mailing rewriter, ``sms.sms._update_body_short_links``).
RECIPIENT_SUFFIX = "/s/"
#: the fields of a recipient's record the composition reads itself
#: (``_recipient_langs``, ``_record_country``), beside those its body names
RECORD_FIELDS_READ = ("lang", "lang_id", "partner_id", "country_id", "phone_sanitized")
_WORD_RE = re.compile(r"[^\W\d_]+")
_SPACES_RE = re.compile(r"\s+")


def _single_word_optout_keywords():
    words = set()
    for table in sms_keywords.KEYWORDS.values():
        words.update(w for w in table[sms_keywords.OPT_OUT] if " " not in w)
    # Words too common in marketing copy to be read as an opt-out instruction.
    return frozenset(words - {"end", "cancel", "quit", "baja", "alto", "basta"})


OPTOUT_WORDS = _single_word_optout_keywords()


def _number_language(number):
    """``res_company.phone_language`` (the language of the number's country)
    without parsing a plain E.164 number whose calling code is one country's
    or +1 (``sms_price.plain_region``, shared with the price lookup)."""
    if not number or phonenumbers is None:
        return None
    region, _checked, _parsed = plain_region(number)
    if region:
        return REGION_LANGUAGES.get(region)
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    return REGION_LANGUAGES.get(phonenumbers.region_code_for_number(parsed))


class ComposeOptions(NamedTuple):
    """How one SMS is composed (see ``_compose`` for each option): the
    message class, the recipient (number, country of the record, id of the
    SMS when it exists) and the caller's overrides."""

    message_class: str = "marketing"
    number: str | None = None
    country: object = None
    optout_mode: str | None = None
    recipient_links: bool = True
    transliterate: bool = False
    max_segments: int | None = None
    sms_id: int | None = None


def _fold(text):
    """Case- and space-insensitive form used to find a mention in a text."""
    return _SPACES_RE.sub(" ", (text or "").replace("\u00a0", " ")).strip().casefold()


def _folded_head(text, start):
    """The beginning of ``_fold(text)``, long enough to tell whether it
    starts with ``start`` (a folded text), without folding all of ``text``."""
    head = text[: 2 * len(start) + 16]
    folded = _fold(head)
    if len(head) == len(text or "") or len(folded) > len(start):
        return folded
    return _fold(text)


class SmsMicrofunnelMessageRules(models.AbstractModel):
    _name = "sms.microfunnel.message.rules"
    _description = "SMS Message Rules"

    # -- company policy ---------------------------------------------------------

    @api.model
    def _sender_name(self, company):
        """The sender identification without its separator (``ACME``)."""
        return (company.sms_funnel_sender_label or "").strip().rstrip(":").strip()

    @api.model
    def _sender_prefix(self, company):
        """The prefix put before the body (``ACME: ``), or ``""``."""
        label = (company.sms_funnel_sender_label or "").strip()
        if not label:
            return ""
        return f"{label} " if label.endswith(":") else f"{label}: "

    @api.model
    def _sender_identified_by_channel(self, company):
        """Whether the sending channel itself names the company.

        Hook for providers with an alphanumeric sender ID (the ID shows the
        brand; compliance book, "Message content"). Without it the text must name the
        sender.
        """
        return False

    @api.model
    def _optout_mode(self, company, message_class="marketing", optout_mode=None):
        """``mention``, ``link``, ``none`` or ``missing`` (marketing without one).

        Transactional messages get no opt-out unless one is asked for. Without
        an explicit mode, a company mention containing ``{link}`` selects the
        per-recipient unsubscribe link, any other mention is used as is.
        """
        mention = (company.sms_funnel_optout_mention or "").strip()
        if optout_mode:
            if optout_mode not in OPTOUT_MODES:
                raise ValueError(f"unknown opt-out mode {optout_mode!r}")
            if optout_mode == "mention" and not mention:
                return "missing"
            return optout_mode
        if message_class != "marketing":
            return "none"
        if LINK_PLACEHOLDER in mention:
            return "link"
        return "mention" if mention else "missing"

    @api.model
    def _names_sender(self, text, company):
        folded = _fold(text)
        names = {self._sender_name(company), company.name or ""}
        return any(name and _fold(name) in folded for name in names)

    @api.model
    def _folded_mention(self, company):
        """The company's opt-out mention as ``_contains_mention`` looks for
        it ("" for none, or for a mention with the unsubscribe link)."""
        mention = (company.sms_funnel_optout_mention or "").strip()
        if not mention or LINK_PLACEHOLDER in mention:
            return ""
        return _fold(mention)

    @api.model
    def _contains_mention(self, text, company, folded_mention=None):
        """Whether ``text`` already holds the company's opt-out mention
        (case and spaces ignored).  ``folded_mention``: its
        ``_folded_mention``, when the caller keeps it for a batch."""
        if folded_mention is None:
            folded_mention = self._folded_mention(company)
        return bool(folded_mention) and folded_mention in _fold(text)

    @api.model
    def _has_optout_instruction(self, text, company):
        """Whether ``text`` itself tells how to opt out: the company's mention,
        an upper-case opt-out keyword (``STOP``, ``ARRET``, ``STOPP``,
        ``UNSUBSCRIBE``...) or an unsubscribe link."""
        if self._contains_mention(text, company):
            return True
        if "/sms/unsubscribe/" in (text or ""):
            return True
        return any(
            word.isupper() and sms_keywords.normalize(word) in OPTOUT_WORDS
            for word in _WORD_RE.findall(text or "")
        )

    @api.model
    def _marketing_content_issues(self, text, company, optout_mode=None, number=None):
        """Codes of what a marketing ``text`` lacks: ``no_sender``, ``no_optout``,
        ``no_contact`` (a Canadian ``number``: CASL identification)."""
        issues = []
        if not (
            self._sender_prefix(company)
            or self._names_sender(text, company)
            or self._sender_identified_by_channel(company)
        ):
            issues.append("no_sender")
        mode = self._optout_mode(company, "marketing", optout_mode)
        if mode in ("missing", "none") and not self._has_optout_instruction(
            text, company
        ):
            issues.append("no_optout")
        if number and self._casl_contact_missing(text, company, number):
            issues.append("no_contact")
        return issues

    @api.model
    def _casl_contact_missing(self, text, company, number):
        """Rule CA-CASL-IDENTIFICATION: a commercial message to a Canadian
        number identifies the sender and tells how to reach it.  The sender
        is checked as for every marketing SMS; the contact must be in the
        text: the company's phone, e-mail or website, or a link (to a page
        with the contact details, as the CRTC regulations allow when the
        message is too short)."""
        if number_region(number) != "CA":
            return False
        if not self.env["sms.microfunnel.rule"]._in_force("CA-CASL-IDENTIFICATION"):
            return False
        if re.search(TEXT_URL_REGEX, text or ""):
            return False
        folded = _fold(text)
        contacts = [company.phone, company.email, company.website]
        return not any(c and _fold(c) in folded for c in contacts)

    @api.model
    def _issue_message(self, issue, company):
        if issue == "no_contact":
            return self.env._(
                "A commercial SMS to a Canadian number must tell how to contact "
                "the sender (CASL): write the phone, e-mail or website of "
                "%(company)s in the message, or a link to a page that gives them.",
                company=company.name,
            )
        if issue == "no_sender":
            return self.env._(
                "A marketing SMS must identify its sender: set the sender "
                "identification of %(company)s (SMS Funnels > Configuration > "
                "Settings) or name the company in the message.",
                company=company.name,
            )
        return self.env._(
            "A marketing SMS must tell how to opt out for free: set the opt-out "
            "mention of %(company)s (e.g. “STOP au 36xxx” or “Reply STOP to opt "
            "out”, or “STOP: {link}” for a one-click unsubscribe link) or write "
            "it in the message.",
            company=company.name,
        )

    @api.model
    def _check_marketing_content(self, body, company=None, optout_mode=None):
        """Raise a ValidationError when a marketing ``body`` lacks a sender
        identification or an opt-out mention (either may come from the company
        settings, which ``_compose`` adds)."""
        company = company or self.env.company
        issues = self._marketing_content_issues(body or "", company, optout_mode)
        if issues:
            raise ValidationError(
                "\n".join(self._issue_message(issue, company) for issue in issues)
            )
        return True

    # -- links ------------------------------------------------------------------------

    @api.model
    def _short_url_host(self):
        return self.env["link.tracker"].sudo().new({}).short_url_host or ""

    @api.model
    def _estimated_short_code_length(self):
        """Length of the next link.tracker code (as Odoo's SMS marketing guesses)."""
        last = (
            self.env["link.tracker.code"]
            .sudo()
            .search_read([], ["code"], order="id DESC", limit=1)
        )
        return max(len(last[0]["code"]) if last else 0, 3)

    @api.model
    def _next_sms_id(self):
        """The id the next ``sms.sms`` row will get (one query)."""
        sequence = f"{self.env['sms.sms']._table}_id_seq"
        self.env.cr.execute(
            SQL("SELECT last_value, is_called FROM %s", SQL.identifier(sequence))
        )
        last_value, is_called = self.env.cr.fetchone()
        return last_value + 1 if is_called else last_value

    @api.model
    def _link_tracker_vals(self, link_tracker_vals=None):
        vals = {}
        # Odoo's SMS medium (its id alone: no query to check it exists)
        medium_id = self.env["ir.model.data"]._xmlid_to_res_id(
            "mass_mailing_sms.utm_medium_sms", raise_if_not_found=False
        )
        if medium_id:
            vals["medium_id"] = medium_id
        vals.update(link_tracker_vals or {})
        return vals

    @api.model
    def _shorten_links(self, text, link_tracker_vals=None):
        """Shorten the links of ``text`` with Odoo's link trackers."""
        if not text:
            return text
        return (
            self.env["mail.render.mixin"]
            .sudo()
            ._shorten_links_text(text, self._link_tracker_vals(link_tracker_vals))
        )

    @api.model
    def _short_urls(self, text, cache=None):
        if cache is None:
            host = self._short_url_host()
        else:
            if "host" not in cache:
                cache["host"] = self._short_url_host()
            host = cache["host"]
        return [
            url
            for url in dict.fromkeys(re.findall(TEXT_URL_REGEX, text or ""))
            if host
            and url.startswith(host)
            and RECIPIENT_SUFFIX not in url[len(host) :]
        ]

    @api.model
    def _with_recipient_suffixes(self, texts, sms_ids=None, mailing=None):
        """``texts`` as Odoo's SMS mailing rewriter (``sms.sms.
        _update_body_short_links`` of ``mass_mailing_sms``) makes them: each
        short link followed by ``/s/<sms id>``, which tells the click route
        the recipient.

        ``sms_ids``: the ids the SMS will get (reserved, same order); without
        them, stand-in ids from the next id of the table, as long as the real
        ones will be, for counting.  ``mailing``: their SMS mailing; without
        it a stand-in id (the rewriter only changes SMS of a mailing and reads
        nothing of it).  The rewriter reads the SMS through the ORM: their
        ``body`` and ``mailing_id`` are put in the cache of those ids for the
        batch (no query), then dropped.  Returns the list of texts."""
        texts = list(texts)
        host = self.env["ir.config_parameter"].sudo().get_param("web.base.url")
        todo = [
            index
            for index, text in enumerate(texts)
            if text and host and f"{host}/r/" in text
        ]
        if not todo:
            return texts
        if sms_ids is None:
            next_id = self._next_sms_id()
            ids = [next_id + offset for offset in range(len(todo))]
        else:
            ids = [sms_ids[index] for index in todo]
        sms = self.env["sms.sms"].sudo().browse(ids)
        try:
            sms._fields["body"]._insert_cache(sms, [texts[index] for index in todo])
            sms._fields["mailing_id"]._insert_cache(
                sms, [mailing.id if mailing else -1] * len(ids)
            )
            rewritten = sms._update_body_short_links()
        finally:
            sms.invalidate_recordset(["body", "mailing_id"], flush=False)
        for index, sms_id in zip(todo, ids, strict=True):
            texts[index] = rewritten[sms_id]
        return texts

    @api.model
    def _unsubscribe_short_url(self, number, company):
        """The recipient's unsubscribe URL shortened through link.tracker, or
        ``(placeholder, False)`` of the same length when no number is known."""
        Consent = self.env["sms.microfunnel.consent"]
        number = number and (
            Consent._sanitize_number(number, company=company, raise_exception=False)
            or number
        )
        if not number:
            placeholder = self._short_url_host() + "x" * (
                self._estimated_short_code_length()
            )
            return placeholder, self.env["link.tracker"]
        tracker = (
            self.env["link.tracker"]
            .sudo()
            .search_or_create(
                [
                    {
                        "url": Consent._unsubscribe_url(number, company),
                        # a title avoids fetching the page to read its title
                        "title": self.env._("SMS unsubscribe link"),
                    }
                ]
            )
        )
        return tracker.short_url, tracker

    # -- rendering ------------------------------------------------------------------

    @api.model
    def _recipient_lang(self, record, company, number=None):
        """The record's language, else its number's country's, else the
        company's (the same order as the service messages)."""
        return self._recipient_langs([record], company, [number])[0]

    @api.model
    def _recipient_langs(self, records, company, numbers):
        """``_recipient_lang`` for parallel lists of records (or None) and
        numbers: the records' fields are read from the ORM cache (prefetch
        them), a number's country is looked up without parsing it twice and
        its language resolved once per country."""
        by_hint = {}
        langs = []
        for record, number in zip(records, numbers, strict=True):
            lang = None
            if record:
                fields_ = record._fields
                if "lang" in fields_ and record.lang:
                    lang = record.lang
                elif "lang_id" in fields_ and record.lang_id:
                    lang = record.lang_id.code
                elif "partner_id" in fields_ and record.partner_id.lang:
                    lang = record.partner_id.lang
                elif not number and "phone_sanitized" in fields_:
                    number = record.phone_sanitized
            if not lang:
                if not company:
                    lang = self.env.lang
                else:
                    hint = _number_language(number)
                    if hint not in by_hint:
                        by_hint[hint] = company._sms_lang(language=hint)
                    lang = by_hint[hint]
            langs.append(lang)
        return langs

    @api.model
    def _render_body(self, body, record, lang, values=None, company=None):
        """Render the placeholders of ``body`` on ``record`` (Odoo's engine)."""
        if not body or not record:
            return body or ""
        record.ensure_one()
        return self._render_bodies(body, record, lang, values, company)[record.id]

    @api.model
    def _render_bodies(self, body, records, lang, values=None, company=None):
        """{record id: ``body`` rendered on it}: one call of Odoo's renderer
        for the whole batch."""
        rendered = (
            self.env["mail.render.mixin"]
            .with_context(lang=lang)
            ._render_template(
                body,
                records._name,
                records.ids,
                engine="inline_template",
                add_context={"values": values or {}, "company": company},
            )
        )
        return {res_id: text or "" for res_id, text in rendered.items()}

    @api.model
    def _shorten_links_batch(self, texts, link_tracker_vals=None):
        """``_shorten_links`` for many texts: every distinct link of the batch
        gets its tracker from one ``search_or_create`` (one tracker per link,
        whoever receives it).  Returns (texts, [tracker ids per text])."""
        base_url = self.env["ir.config_parameter"].sudo().get_param("web.base.url")
        skipped = (base_url + "/r/", base_url + "/sms/")
        found = []
        for text in texts:
            urls = set(re.findall(TEXT_URL_REGEX, text)) if text else set()
            found.append([url for url in urls if not url.startswith(skipped)])
        distinct = list(dict.fromkeys(url for urls in found for url in urls))
        if not distinct:
            return list(texts), [[] for _text in texts]
        vals = self._link_tracker_vals(link_tracker_vals)

        def shorten():
            trackers = (
                self.env["link.tracker"]
                .sudo()
                .search_or_create([dict(vals, url=unescape(url)) for url in distinct])
            )
            self._claim_new_trackers(trackers, vals)
            return {
                url: (tracker.short_url, tracker.id)
                for url, tracker in zip(distinct, trackers, strict=True)
            }

        # the same links for every chunk of a step: one lookup per run
        short = run_cache.memo(
            self.env,
            ("links", tuple(sorted(vals.items())), tuple(distinct)),
            shorten,
            model="link.tracker",
            ids=lambda short: [tracker_id for _url, tracker_id in short.values()],
        )
        results, tracker_ids = [], []
        for text, urls in zip(texts, found, strict=True):
            ids = []
            for url in urls:
                short_url, tracker_id = short[url]
                if short_url:
                    text = re.sub(
                        re.escape(url) + r"(?![\w@:%.+&~#=/-])", short_url, text
                    )
                    ids.append(tracker_id)
            results.append(text)
            tracker_ids.append(ids)
        return results, tracker_ids

    @api.model
    def _claim_new_trackers(self, trackers, vals):
        """Make a tracker created here the only one of its link and UTM source.

        Odoo's link trackers have no unique key in the database, so two
        dispatchers composing the first chunks of a step at the same time
        would each create the step's tracker of a link.  One that created a
        tracker updates the row of its UTM source (the step's SMS mailing's):
        a concurrent creator's own update of that row then waits for it and
        fails with a serialization error once it commits, and that
        dispatcher starts its chunk again from a fresh snapshot, where the
        tracker is found."""
        source_id = vals.get("source_id")
        now = self.env.cr.now()
        if not source_id or not any(t.create_date == now for t in trackers):
            return
        self.env.cr.execute(
            SQL(
                "UPDATE utm_source SET write_date = write_date WHERE id = %s",
                source_id,
            ),
            log_exceptions=False,
        )

    @api.model
    def _unsubscribe_short_urls(self, numbers, company):
        """{number: (short URL, tracker)} of the recipients' unsubscribe
        links: one ``search_or_create`` for the batch."""
        Consent = self.env["sms.microfunnel.consent"]
        sanitized = {
            number: Consent._sanitize_number(
                number, company=company, raise_exception=False
            )
            or number
            for number in set(numbers)
            if number
        }
        if not sanitized:
            return {}
        urls = {
            e164: Consent._unsubscribe_url(e164, company)
            for e164 in set(sanitized.values())
        }
        title = self.env._("SMS unsubscribe link")
        ordered = list(urls)
        trackers = (
            self.env["link.tracker"]
            .sudo()
            .search_or_create([{"url": urls[e164], "title": title} for e164 in ordered])
        )
        by_e164 = dict(zip(ordered, trackers, strict=True))
        return {
            number: (by_e164[e164].short_url, by_e164[e164])
            for number, e164 in sanitized.items()
        }

    # -- composition -------------------------------------------------------------

    @api.model
    def _compose(
        self,
        body,
        record=None,
        company=None,
        message_class="marketing",
        lang=None,
        number=None,
        optout_mode=None,
        values=None,
        link_tracker_vals=None,
        shorten_links=True,
        recipient_links=True,
        transliterate=False,
        max_segments=None,
    ):
        """The final text of an SMS for ``body`` and a recipient, with its
        encoding, segments, characters forcing UCS-2, suggested GSM-7
        replacements and estimated cost.

        :param str body: the step or template body (Odoo placeholders)
        :param record: the recipient record placeholders are rendered on
            (``object``); without it, placeholders are counted as typed
        :param company: sender company (default: the record's, else current)
        :param str message_class: ``marketing`` or ``transactional``
        :param str lang: rendering language (default: the recipient's)
        :param str number: recipient number (price country, unsubscribe link)
        :param str optout_mode: ``mention``, ``link`` or ``none`` to force one;
            default: the company policy (see ``_optout_mode``)
        :param dict values: extra placeholder values (``values`` in templates)
        :param dict link_tracker_vals: UTM values of the link trackers
        :param bool shorten_links: shorten links with ``link.tracker``
        :param bool recipient_links: count ``/s/<sms id>`` after each short
            link, which funnel SMS get once created
        :param bool transliterate: replace the characters forcing UCS-2 by
            their GSM-7 look-alikes (``sms_encoding.GSM7_REPLACEMENTS``)
        :param int max_segments: override of the company maximum
        :return: dict with ``text`` (to send), ``encoding``, ``units``,
            ``segments``, ``units_left`` (in the last segment), ``ucs2_chars``,
            ``suggestions`` ({char: replacement}), ``cost``, ``currency_id``,
            ``price_per_segment``, ``price_id``, ``country_code``,
            ``max_segments``, ``blocked``, ``blocked_reason`` (``empty``,
            ``no_sender``, ``no_optout``, ``too_long``), ``blocked_message``,
            ``optout_mode``, ``sender_added``, ``optout_added``,
            ``link_tracker_ids``, ``counted_text`` (``text`` with the
            recipient suffixes counted) and ``estimated`` (the unsubscribe
            link could not be built without a number)
        """
        if record is not None and not record:
            record = None
        if not company and record and "company_id" in record._fields:
            company = record.company_id
        company = company or self.env.company
        lang = lang or self._recipient_lang(record, company, number)
        text = self._render_body(
            body, record, lang, values=values, company=company.with_context(lang=lang)
        ).strip()
        trackers = self.env["link.tracker"]
        if shorten_links and text:
            text, trackers = self._shorten_with_trackers(text, link_tracker_vals)
        options = ComposeOptions(
            message_class=message_class,
            number=number,
            country=self._record_country(record) or company.country_id,
            optout_mode=optout_mode,
            recipient_links=recipient_links,
            transliterate=transliterate,
            max_segments=max_segments,
        )
        return self._compose_finish(text, trackers.ids, company, lang, options, {})

    @api.model
    def _shorten_with_trackers(self, text, link_tracker_vals=None):
        """``(text, link trackers)``: the links of ``text`` shortened with
        ``link.tracker``, and the trackers of every short link in it."""
        text = self._shorten_links(text, link_tracker_vals)
        trackers = (
            self.env["link.tracker"]
            .sudo()
            .search([("link_code_ids.code", "in", self._codes(text))])
        )
        return text, trackers

    @api.model
    def _record_country(self, record):
        if record and "country_id" in record._fields:
            return record.country_id
        return self.env["res.country"]

    @api.model
    def _compose_batch(
        self,
        entries,
        company,
        message_class="marketing",
        sms_ids=None,
        link_tracker_vals=None,
        mailing=None,
    ):
        """``_compose`` for a batch of recipients of one company, with the
        work done once per batch: placeholders rendered by one call of
        Odoo's renderer per body and language, one link tracker per link,
        prices and languages resolved once per country, no query per
        recipient.

        ``entries``: dicts with ``body``, ``record`` (one record, or None),
        ``number`` and ``values``; prefetch the records' fields first.
        ``sms_ids``: the ids the SMS will get (same order) and ``mailing``
        their SMS mailing: each result's ``counted_text`` is then the body of
        its SMS, short links suffixed by Odoo's SMS mailing rewriter (one call
        for the batch, see ``_with_recipient_suffixes``).
        ``link_tracker_vals``: UTM values of the link trackers (the SMS
        mailing's).  Returns the list of ``_compose`` results.
        """
        cache = {}
        company = company or self.env.company
        records = [entry.get("record") or None for entry in entries]
        numbers = [entry.get("number") or None for entry in entries]
        langs = self._recipient_langs(records, company, numbers)
        texts = [None] * len(entries)
        groups = {}
        for index, (entry, record, lang) in enumerate(
            zip(entries, records, langs, strict=True)
        ):
            body = entry.get("body")
            if not body or not record:
                texts[index] = (body or "").strip()
                continue
            values = entry.get("values") or {}
            key = (
                body,
                lang,
                record._name,
                json.dumps(values, sort_keys=True, default=str),
            )
            groups.setdefault(key, (values, []))[1].append(index)
        for (body, lang, model, _values_key), (values, indexes) in groups.items():
            targets = self.env[model].browse(
                list(dict.fromkeys(records[i].id for i in indexes))
            )
            rendered = self._render_bodies(
                body, targets, lang, values, self._company_in(company, lang, cache)
            )
            for i in indexes:
                texts[i] = rendered[records[i].id].strip()
        texts, tracker_ids = self._shorten_links_batch(texts, link_tracker_vals)
        unsubscribe = {}
        if any(
            self._optout_mode(self._company_in(company, lang, cache), message_class)
            == "link"
            for lang in set(langs)
        ):
            unsubscribe = self._unsubscribe_short_urls(
                [n for n, text in zip(numbers, texts, strict=True) if text], company
            )
        cache["unsubscribe"] = unsubscribe
        options, drafts = [], []
        for index, text in enumerate(texts):
            options.append(
                ComposeOptions(
                    message_class=message_class,
                    number=numbers[index],
                    country=self._record_country(records[index]) or company.country_id,
                    sms_id=sms_ids[index] if sms_ids else None,
                )
            )
            drafts.append(
                self._compose_draft(text, company, langs[index], options[-1], cache)
            )
        counted = self._with_recipient_suffixes(
            [draft["text"] for draft in drafts], sms_ids, mailing
        )
        return [
            self._compose_counts(draft, counted[index], tracker_ids[index], opts, cache)
            for index, (draft, opts) in enumerate(zip(drafts, options, strict=True))
        ]

    @api.model
    def _company_in(self, company, lang, cache):
        companies = cache.setdefault("companies", {})
        if lang not in companies:
            companies[lang] = company.with_context(lang=lang)
        return companies[lang]

    @api.model
    def _compose_finish(self, text, tracker_ids, company, lang, options, cache=None):
        """The common end of ``_compose`` for one rendered, link-shortened
        ``text``: ``_compose_draft``, the recipient suffixes, then
        ``_compose_counts`` (``_compose_batch`` runs the same phases, the
        suffixes for the whole batch at once)."""
        cache = {} if cache is None else cache
        draft = self._compose_draft(text, company, lang, options, cache)
        counted = draft["text"]
        if options.recipient_links or options.sms_id is not None:
            sms_ids = None if options.sms_id is None else [options.sms_id]
            counted = self._with_recipient_suffixes([counted], sms_ids)[0]
        return self._compose_counts(draft, counted, tracker_ids, options, cache)

    @api.model
    def _compose_draft(self, text, company, lang, options, cache):
        """The first phases of composing one message: sender, opt-out,
        transliteration.  ``options``: a ``ComposeOptions`` (the message
        class and the recipient); ``cache`` holds what is the same for the
        whole batch (``unsubscribe``: the batch's unsubscribe links by
        number)."""
        company = self._company_in(company, lang, cache)
        policy = self._compose_policy(company, lang, options, cache)
        text, sender_added = self._add_sender(text, policy)
        text, optout = self._add_optout(text, company, lang, policy, options, cache)
        if options.transliterate:
            text = sms_encoding.transliterate(text)
        return {
            "text": text,
            "company": company,
            "lang": lang,
            "policy": policy,
            "sender_added": sender_added,
            "optout": optout,
        }

    @api.model
    def _compose_counts(self, draft, counted, tracker_ids, options, cache):
        """The last phases of composing one message: counting, price and
        checks, on ``counted`` (the drafted text with its recipient
        suffixes: the SMS body itself when the SMS id is known)."""
        text, company, policy = draft["text"], draft["company"], draft["policy"]
        optout = draft["optout"]
        analysis = sms_encoding.analyze(counted)
        return {
            "text": text,
            "counted_text": counted,
            **self._segment_counts(counted, analysis),
            # the characters forcing UCS-2 are the text's: its suffixes are ASCII
            "suggestions": {
                char: sms_encoding.GSM7_REPLACEMENTS[char]
                for char in analysis["ucs2_chars"]
                if char in sms_encoding.GSM7_REPLACEMENTS
            },
            **self._compose_price(company, analysis, options, cache),
            **self._compose_checks(text, company, analysis, policy, options),
            "message_class": options.message_class,
            "lang": draft["lang"],
            "optout_mode": policy["mode"],
            "sender_added": draft["sender_added"],
            "optout_added": optout["added"],
            "estimated": optout["estimated"],
            "link_tracker_ids": list(
                dict.fromkeys([*tracker_ids, *optout["tracker_ids"]])
            ),
        }

    @api.model
    def _compose_policy(self, company, lang, options, cache):
        """The company's sender, opt-out and length policy, read once per
        batch and language."""
        key = ("policy", lang, options.message_class, options.optout_mode)
        if key not in cache:
            cache[key] = {
                "prefix": self._sender_prefix(company),
                "sender": _fold(self._sender_name(company)),
                "mode": self._optout_mode(
                    company, options.message_class, options.optout_mode
                ),
                "mention": (company.sms_funnel_optout_mention or "").strip(),
                "max_segments": company.sms_funnel_max_segments,
            }
            cache[key]["mention_folded"] = self._folded_mention(company)
        return cache[key]

    @api.model
    def _add_sender(self, text, policy):
        """``(text, added)``: the sender prefix put first unless the text
        already starts with the sender's name."""
        prefix = policy["prefix"]
        if (
            text
            and prefix
            and not _folded_head(text, policy["sender"]).startswith(policy["sender"])
        ):
            return prefix + text, True
        return text, False

    @api.model
    def _add_optout(self, text, company, lang, policy, options, cache):
        """``(text, {"added", "estimated", "tracker_ids"})``: the opt-out
        mention or unsubscribe link appended as the policy asks, unless the
        mention is already in the text (``estimated``: the unsubscribe link
        could not be built without a number)."""
        done = {"added": False, "estimated": False, "tracker_ids": []}
        mode = policy["mode"]
        if (
            not text
            or mode not in ("mention", "link")
            or (
                mode == "mention"
                and self._contains_mention(text, company, policy["mention_folded"])
            )
        ):
            return text, done
        if mode == "mention":
            footer = policy["mention"]
        else:
            unsubscribe = cache.get("unsubscribe")
            number = options.number
            if unsubscribe and number in unsubscribe:
                url, tracker = unsubscribe[number]
            else:
                url, tracker = self._unsubscribe_short_url(number, company)
            done["tracker_ids"] = tracker.ids
            done["estimated"] = not tracker
            mention = policy["mention"]
            if LINK_PLACEHOLDER in mention:
                footer = mention.replace(LINK_PLACEHOLDER, url)
            else:
                footer = (
                    self.env["sms.composer"]
                    .with_context(lang=lang)
                    ._get_unsubscribe_info(url)
                )
        done["added"] = True
        return f"{text}\n{footer}", done

    @api.model
    def _segment_counts(self, counted, analysis):
        """Encoding, units, segments, units left in the last segment and the
        characters forcing UCS-2 of the counted text."""
        units_left = 0
        if analysis["segments"] == 1:
            units_left = (
                sms_encoding.SINGLE_CAPACITY[analysis["encoding"]] - analysis["units"]
            )
        elif analysis["segments"]:
            segments = sms_encoding.split_segments(counted)
            units_left = sms_encoding.SEGMENT_CAPACITY[
                analysis["encoding"]
            ] - sms_encoding.units(segments[-1], analysis["encoding"])
        return {
            "encoding": analysis["encoding"],
            "units": analysis["units"],
            "segments": analysis["segments"],
            "units_left": units_left,
            "ucs2_chars": analysis["ucs2_chars"],
        }

    @api.model
    def _compose_price(self, company, analysis, options, cache):
        """Estimated cost: the price of the recipient's country (from the
        number, else ``options.country``) times the segments."""
        Price = self.env["sms.microfunnel.price"]
        if "price" not in cache:
            cache["price"] = Price._price_resolver(company)
            cache["prices"] = {}
        country_code = Price._country_code(
            options.number, fallback_country=options.country
        )
        prices = cache["prices"]
        if country_code not in prices:
            price = cache["price"](country_code)
            prices[country_code] = {
                "currency_id": price.currency_id.id if price else False,
                "price_per_segment": price.price if price else 0.0,
                "price_id": price.id if price else False,
                "country_code": country_code,
            }
        found = prices[country_code]
        return {
            "cost": round(analysis["segments"] * found["price_per_segment"], 6),
            **found,
        }

    @api.model
    def _compose_checks(self, text, company, analysis, policy, options):
        """Why the message cannot be sent, if it cannot: empty, a marketing
        content issue (sender, opt-out, contact), or too many segments."""
        limit = options.max_segments or policy["max_segments"] or 0
        blocked_reason = False
        if not text:
            blocked_reason = "empty"
        elif options.message_class == "marketing":
            issues = self._marketing_content_issues(
                text, company, options.optout_mode, number=options.number
            )
            blocked_reason = issues[0] if issues else False
        if not blocked_reason and limit and analysis["segments"] > limit:
            blocked_reason = "too_long"
        return {
            "max_segments": limit,
            "blocked": bool(blocked_reason),
            "blocked_reason": blocked_reason,
            "blocked_message": self._blocked_message(
                blocked_reason, analysis, limit, company
            ),
        }

    @api.model
    def _codes(self, text):
        host = self._short_url_host()
        return [url[len(host) :].split("/")[0] for url in self._short_urls(text)]

    @api.model
    def _blocked_message(self, reason, analysis, limit, company):
        if not reason:
            return ""
        if reason == "empty":
            return self.env._("The message is empty.")
        if reason in ("no_sender", "no_optout", "no_contact"):
            return self._issue_message(reason, company)
        message = self.env._(
            "The message needs %(segments)s SMS segments (%(units)s %(encoding)s "
            "characters with the sender, opt-out mention and links) but at most "
            "%(limit)s are allowed. Shorten it",
            segments=analysis["segments"],
            units=analysis["units"],
            encoding=analysis["encoding"],
            limit=limit,
        )
        if analysis["ucs2_chars"]:
            message += self.env._(
                " or replace the characters forcing Unicode: %(chars)s",
                chars=" ".join(analysis["ucs2_chars"]),
            )
        return message + "."

    # -- browser counter ------------------------------------------------------------

    @api.model
    def get_counter_context(self):
        """What the browser counter adds to a typed body for the current
        company, so that it counts like ``_compose`` (placeholders excepted)."""
        company = self.env.company
        host = self._short_url_host()
        link = host + "x" * self._estimated_short_code_length()
        # what Odoo's SMS mailing rewriter appends to a short link of the
        # next SMS (the browser adds it to the links it finds)
        suffix = self._with_recipient_suffixes([link])[0][len(link) :]
        mention = (company.sms_funnel_optout_mention or "").strip()
        by_class = {}
        for message_class in ("marketing", "transactional"):
            mode = self._optout_mode(company, message_class)
            footer = ""
            if mode == "mention":
                footer = mention
            elif mode == "link":
                footer = mention.replace(LINK_PLACEHOLDER, link + suffix)
            by_class[message_class] = {
                "prefix": self._sender_prefix(company),
                "sender_name": self._sender_name(company),
                "footer": footer,
                "optout_mode": mode,
            }
        return {
            "classes": by_class,
            "short_url_host": host,
            "link_placeholder": link,
            "recipient_suffix": suffix,
            "skip_prefixes": [host, self.get_base_url() + "/sms/"],
            "max_segments": company.sms_funnel_max_segments,
        }
