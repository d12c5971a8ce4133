# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Contacts: SMS consent (the consent mixin), interests, and the erasure and
retention of prospect data.

Erasure and retention of prospect data (RGPD art. 17; CNIL: 3 years from
the last contact initiated by the prospect; compliance book, "Retention").

Erasure is not suppression: the person's data goes, but a keyed hash of each
of their numbers stays on the suppression list, so a later import, form or
keyword of that number cannot bring them back.

A prospect is a contact with a phone number and consent events that is not a
customer: no won lead (nor, when those apps are installed, a confirmed sale
order or ``customer_rank`` > 0) for it or its company.  Once its last
interaction (a consent event other than an expiry, an inbound SMS) is older
than the company's retention period, the daily job flags it as stale for a
manager, or erases it when the company chose automatic erasure.
"""

import html
import json
import re

import phonenumbers
from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Command, Domain
from odoo.tools import SQL, split_every

INBOUND_MODEL = "sms.microfunnel.inbound"
INBOUND_DATE_FIELDS = ("received_at", "date", "create_date")
INBOUND_NUMBER_FIELDS = ("from_number", "number")

# personal data of a contact emptied by an erasure (the language is kept)
PARTNER_ERASED_FIELDS = (
    "email",
    "phone",
    "street",
    "street2",
    "city",
    "zip",
    "website",
    "comment",
    "vat",
    "function",
    "image_1920",
)
LEAD_ERASED_FIELDS = (
    "contact_name",
    "email_from",
    "phone",
    "partner_id",
    "street",
    "street2",
    "city",
    "zip",
    "function",
)
INBOUND_ERASED_FIELDS = (
    "from_number",
    "from_number_raw",
    "body",
    "reply_body",
    "action_taken",
    "partner_id",
    "lead_id",
)
# a name shorter than this is not searched for in texts (too many false hits)
MIN_NAME_LENGTH = 3
QUIET = {"tracking_disable": True, "mail_notrack": True, "mail_create_nolog": True}


class _Needles:
    """The numbers, addresses and names of erased contacts, found in texts.

    A number is found in any format (E.164, national, with spaces or dots):
    the digits of its national significant number among the text's digits.
    """

    def __init__(self, numbers, emails, names):
        self.digits = {d for d in map(self._national_digits, numbers) if d}
        self.emails = {e.strip() for e in emails if e and e.strip()}
        self.names = {
            n.strip() for n in names if n and len(n.strip()) >= MIN_NAME_LENGTH
        }
        words = sorted(self.emails | self.names, key=len, reverse=True)
        self.words = (
            re.compile("|".join(map(re.escape, words)), re.IGNORECASE)
            if words
            else None
        )

    @staticmethod
    def _national_digits(number):
        if not number:
            return False
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            digits = re.sub(r"\D", "", number)
            return digits[-9:] if len(digits) >= 6 else False
        return str(parsed.national_number)

    def found_in(self, text):
        if not text:
            return False
        text = html.unescape(str(text))
        if self.words and self.words.search(text):
            return True
        digits = re.sub(r"\D", "", text)
        return any(d in digits for d in self.digits)

    def replace(self, text, by):
        if not text or not self.words:
            return text
        return self.words.sub(by, text)


class ResPartner(models.Model):
    _name = "res.partner"
    _inherit = ["res.partner", "sms.microfunnel.consent.mixin"]

    sms_consent_event_ids = fields.One2many(
        "sms.microfunnel.consent.event",
        "partner_id",
        "SMS Consent History",
        groups="sms_microfunnel.group_sms_funnel_manager",
    )
    sms_microfunnel_interest_ids = fields.Many2many(
        "sms.microfunnel.interest",
        "sms_microfunnel_interest_res_partner_rel",
        "partner_id",
        "interest_id",
        string="SMS Interests",
        help="Chosen by the contact on the SMS opt-in form or preferences page.",
    )

    sms_retention_stale = fields.Boolean(
        "Stale SMS Prospect",
        readonly=True,
        copy=False,
        help="Set by the retention job: a prospect with no interaction for longer "
        "than the retention period, to be erased or asked again for consent.",
    )

    # -- who is a prospect -----------------------------------------------------

    @api.model
    def _sms_retention_customer_domain(self):
        """Contacts that are customers (themselves or through their company)."""
        Partner = self.sudo().with_context(active_test=False)
        buyers = []
        won = (
            self.env["crm.lead"]
            .sudo()
            .with_context(active_test=False)
            ._search([("won_status", "=", "won"), ("partner_id", "!=", False)])
        )
        buyers.append(won.subselect("partner_id"))
        if "sale.order" in self.env:
            sales = self.env["sale.order"].sudo()._search([("state", "=", "sale")])
            buyers.append(sales.subselect("partner_id"))
        domain = Domain.FALSE
        for subquery in buyers:
            commercial = Partner._search([("id", "in", subquery)])
            domain |= Domain(
                "commercial_partner_id",
                "in",
                commercial.subselect("commercial_partner_id"),
            )
        if "customer_rank" in self._fields:
            domain |= Domain("customer_rank", ">", 0)
        return domain

    @api.model
    def _sms_retention_prospect_domain(self):
        Event = self.env["sms.microfunnel.consent.event"].sudo()
        events = Event._search([("anonymized", "=", False)])
        has_events = Domain("id", "in", events.subselect("partner_id")) | Domain(
            "phone_sanitized", "in", events.subselect("number")
        )
        return (
            Domain("phone_sanitized", "!=", False)
            & Domain("user_ids", "=", False)
            & has_events
            & ~self._sms_retention_customer_domain()
        )

    # -- when did they last reach out ------------------------------------------

    def _sms_retention_last_interactions(self):
        """{partner id: datetime of the last interaction it initiated}.

        Consent events (except expiries, which the system records) and, when
        the inbound SMS model exists, inbound messages, by contact or number.
        Extend this to count other interactions (link clicks…).
        """
        last = {}

        def bump(partner_id, when):
            if when and (partner_id not in last or when > last[partner_id]):
                last[partner_id] = when

        by_number = {}
        for partner in self:
            by_number.setdefault(partner.phone_sanitized, []).append(partner.id)
        Event = self.env["sms.microfunnel.consent.event"].sudo()
        base = Domain("event_type", "!=", "expired")
        for partner, when in Event._read_group(
            base & Domain("partner_id", "in", self.ids),
            ["partner_id"],
            ["event_date:max"],
        ):
            bump(partner.id, when)
        for number, when in Event._read_group(
            base & Domain("number", "in", list(by_number)),
            ["number"],
            ["event_date:max"],
        ):
            for partner_id in by_number.get(number, ()):
                bump(partner_id, when)
        for partner_id, when in self._sms_retention_inbound_dates(by_number).items():
            bump(partner_id, when)
        return last

    def _sms_retention_inbound_dates(self, by_number):
        if INBOUND_MODEL not in self.env:
            return {}
        Inbound = self.env[INBOUND_MODEL].sudo()
        fields_ = Inbound._fields
        date_field = next(
            (f for f in INBOUND_DATE_FIELDS if f in fields_ and fields_[f].store), None
        )
        if not date_field:
            return {}
        dates = {}
        if "partner_id" in fields_ and fields_["partner_id"].store:
            for partner, when in Inbound._read_group(
                [("partner_id", "in", self.ids)], ["partner_id"], [f"{date_field}:max"]
            ):
                dates[partner.id] = when
        number_field = next(
            (
                f
                for f in INBOUND_NUMBER_FIELDS
                if f in fields_ and fields_[f].store and fields_[f].type == "char"
            ),
            None,
        )
        if number_field:
            for number, when in Inbound._read_group(
                [(number_field, "in", list(by_number))],
                [number_field],
                [f"{date_field}:max"],
            ):
                for partner_id in by_number.get(number, ()):
                    if when and (partner_id not in dates or when > dates[partner_id]):
                        dates[partner_id] = when
        return dates

    # -- the job -----------------------------------------------------------------

    @api.model
    def _sms_retention_find_stale(self):
        """(stale prospects, those of them to erase automatically).

        A contact of one company follows that company's settings; a shared
        contact keeps the longest period of all companies and is erased
        automatically only when every company asks for it.
        """
        Partner = self.sudo()
        # archived users count as users: their contact is never erased here
        candidates = Partner.with_context(active_test=False).search_fetch(
            self._sms_retention_prospect_domain() & Domain("active", "=", True),
            ["phone_sanitized", "company_id", "create_date"],
        )
        candidates = candidates.with_env(Partner.env)
        if not candidates:
            return Partner, Partner
        companies = self.env["res.company"].sudo().search([])
        now = fields.Datetime.now()
        last = candidates._sms_retention_last_interactions()
        # opt-outs some laws keep longer (rule US-VA-OPTOUT-RETENTION: 10 years)
        floors = self.env["sms.microfunnel.rule"]._opt_out_retention_years(candidates)
        stale = auto = Partner
        for partner in candidates:
            policy = partner.company_id or companies
            years = max(policy.mapped("sms_retention_years"))
            if years < 1:
                continue
            years = max(years, floors.get(partner.id, 0))
            since = last.get(partner.id) or partner.create_date
            if since < now - relativedelta(years=years):
                stale |= partner
                if all(policy.mapped("sms_retention_auto_erase")):
                    auto |= partner
        return stale, auto

    @api.model
    def _cron_sms_retention(self, batch_size=100):
        """Flag stale prospects; erase those of auto-erasing companies in batches."""
        Cron = self.env["ir.cron"]
        stale, to_erase = self._sms_retention_find_stale()
        flagged = self.sudo().search([("sms_retention_stale", "=", True)])
        (flagged - stale).write({"sms_retention_stale": False})
        (stale - flagged).write({"sms_retention_stale": True})
        if not to_erase:
            Cron._commit_progress(len(stale), remaining=0)
            return
        remaining = len(to_erase)
        Cron._commit_progress(len(stale - to_erase), remaining=remaining)
        for ids in split_every(batch_size, to_erase.ids):
            self.browse(ids)._sms_erase_contacts(reason="retention")
            remaining -= len(ids)
            if not Cron._commit_progress(len(ids), remaining=remaining):
                break

    # -- erasure (RGPD art. 17, retention) ---------------------------------------

    def _sms_erase_contacts(self, reason="erasure"):
        """Erase these contacts in one transaction; returns counts per step.

        Afterwards the database keeps none of their numbers (in any format),
        e-mail addresses or names, only the keyed hash of each number on the
        suppression list (and in place of the number where a record must stay
        countable: consent events, funnel enrolments and traces, so that the
        funnel reports keep their figures).  In detail: suppresses the
        numbers, anonymises the consent events, deletes the consent statuses
        and the ``phone.blacklist`` / ``mail.blacklist`` entries (the
        suppression list replaces them), cancels and empties their SMS,
        empties their mailing traces, link clicks, funnel enrolments and
        traces, inbound SMS and leads, deletes their chatter, activities and
        the messages and tracking values about them, and anonymises and
        archives the contacts.  Only non-personal facts are logged.
        """
        partners = self.sudo().with_context(active_test=False, **QUIET).exists()
        if not partners:
            return {}
        users = partners.filtered("user_ids")
        if users:
            raise UserError(
                self.env._(
                    "%(count)s of these contacts are users of this database; "
                    "remove their user account before erasing them.",
                    count=len(users),
                )
            )
        env = partners.env
        Event = env["sms.microfunnel.consent.event"]
        Consent = env["sms.microfunnel.consent"]
        Enrollment = env["sms.microfunnel.enrollment"].with_context(active_test=False)
        leads = env["crm.lead"].with_context(active_test=False)
        leads = leads.search([("partner_id", "in", partners.ids)])
        events = Event.search(
            [("partner_id", "in", partners.ids), ("anonymized", "=", False)]
        )
        statuses = Consent.search([("partner_id", "in", partners.ids)])
        enrollments = Enrollment.search(
            Domain("partner_id", "in", partners.ids)
            | (
                Domain("res_model", "=", "res.partner")
                & Domain("res_id", "in", partners.ids)
            )
            | (Domain("res_model", "=", "crm.lead") & Domain("res_id", "in", leads.ids))
        )
        numbers = (
            set(partners.mapped("phone_sanitized"))
            | set(events.mapped("number"))
            | set(statuses.mapped("number"))
            | set(enrollments.mapped("number"))
        )
        numbers.discard(False)
        # every trace of these numbers, whoever recorded it
        if numbers:
            events |= Event.search(
                [("number", "in", list(numbers)), ("anonymized", "=", False)]
            )
            statuses |= Consent.search([("number", "in", list(numbers))])
            enrollments |= Enrollment.search([("number", "in", list(numbers))])
        needles = _Needles(
            numbers=numbers | set(leads.mapped("phone_sanitized")),
            emails=set(partners.mapped("email_normalized"))
            | set(partners.mapped("email"))
            | set(leads.mapped("email_normalized"))
            | set(leads.mapped("email_from")),
            names=set(partners.mapped("name")) | set(leads.mapped("contact_name")),
        )
        company = partners.company_id if len(partners.company_id) == 1 else None
        Suppression = env["sms.microfunnel.suppression"]
        suppressed = Suppression._suppress(numbers, reason=reason, company=company)
        events._anonymize()
        statuses.unlink()
        blacklisted = self._sms_erase_blacklists(env, numbers, needles.emails)
        sms = self._sms_erase_sms(env, partners, numbers)
        self._sms_erase_funnels(env, enrollments)
        mailing_traces = self._sms_erase_mailing_traces(
            env, partners, leads, numbers, needles.emails
        )
        inbound = self._sms_erase_inbound(env, partners, numbers)
        self._sms_erase_chatter(env, partners, leads, inbound, needles)
        lead_names = {
            lead.id: needles.replace(lead.name, self.env._("Erased contact"))
            for lead in leads
        }
        leads.write(dict.fromkeys(LEAD_ERASED_FIELDS, False))
        for lead in leads:
            values = {"name": lead_names[lead.id]}
            if needles.found_in(lead.description):
                values["description"] = False
            lead.write(values)
        for partner in partners:
            partner.write(
                {
                    **dict.fromkeys(PARTNER_ERASED_FIELDS, False),
                    "name": self.env._("Erased contact #%(id)s", id=partner.id),
                    "active": False,
                    "sms_retention_stale": False,
                }
            )
        counts = {
            "numbers": len(numbers),
            "suppressed": len(suppressed),
            "events": len(events),
            "statuses": len(statuses),
            "blacklist": len(blacklisted),
            "sms": len(sms),
            "enrollments": len(enrollments),
            "mailing_traces": len(mailing_traces),
            "leads": len(leads),
            "inbound": len(inbound),
        }
        if reason == "retention":
            why = self.env._("retention period over")
        else:
            why = self.env._("erasure request (RGPD art. 17)")
        body = self.env._(
            "Contact erased: %(why)s. %(numbers)s number(s) suppressed, "
            "%(events)s consent event(s) anonymised, %(sms)s SMS emptied, "
            "%(enrollments)s funnel enrolment(s) anonymised, "
            "%(leads)s lead(s) emptied.",
            why=why,
            numbers=counts["numbers"],
            events=counts["events"],
            sms=counts["sms"],
            enrollments=counts["enrollments"],
            leads=counts["leads"],
        )
        for partner in partners:
            partner.message_post(
                body=body, message_type="notification", subtype_xmlid="mail.mt_note"
            )
        return counts

    @api.model
    def _sms_erase_blacklists(self, env, numbers, emails):
        """Delete the opt-out list entries of these numbers and addresses, and
        their chatter (it names the number): the suppression list keeps the
        numbers' keyed hashes and wins over any later consent."""
        removed = []
        for model, field, values in (
            ("phone.blacklist", "number", numbers),
            ("mail.blacklist", "email", emails),
        ):
            values = [v for v in values if v]
            if not values or model not in env:
                continue
            entries = (
                env[model]
                .with_context(active_test=False)
                .search([(field, "in", values)])
            )
            env["mail.message"].search(
                [("model", "=", model), ("res_id", "in", entries.ids)]
            ).unlink()
            removed += [(model, entry_id) for entry_id in entries.ids]
            entries.unlink()
        return removed

    @api.model
    def _sms_erase_sms(self, env, partners, numbers):
        """Cancel the queued SMS of these contacts, empty the number and text
        of all their SMS and of Odoo's SMS notifications."""
        recipients = Domain("partner_id", "in", partners.ids)
        if numbers:
            recipients |= Domain("number", "in", list(numbers))
        sms = env["sms.sms"].search(recipients)
        sms.filtered(lambda s: s.state == "outgoing").action_set_canceled()
        sms.write({"number": False, "body": False})
        notifications = Domain("res_partner_id", "in", partners.ids)
        if numbers:
            notifications |= Domain("sms_number", "in", list(numbers))
        env["mail.notification"].search(notifications).write(
            {"sms_number": False, "failure_reason": False}
        )
        return sms

    @api.model
    def _sms_erase_funnels(self, env, enrollments):
        """Take these enrolments out of their funnels and replace their number
        by its keyed hash (as on the consent events): the funnel and cohort
        reports keep counting them, nobody can read the number back."""
        if not enrollments:
            return
        active = enrollments.filtered(lambda e: e.state == "active")
        active._exit("erased")
        Suppression = env["sms.microfunnel.suppression"]
        key = Suppression._key()
        for number, group in enrollments.grouped("number").items():
            group.write(
                {
                    "number": Suppression._hash(number, key) if number else False,
                    "values": False,
                    "idempotency_key": False,
                }
            )
        traces = enrollments.trace_ids
        erased = {"body": False, "reply_text": False}
        if "email" in traces._fields:
            erased["email"] = False
        traces.write(erased)

    @api.model
    def _sms_erase_mailing_traces(self, env, partners, leads, numbers, emails):
        """Empty the number and address of the mailing traces of these
        contacts (kept for the mailing statistics) and the IP address of
        their link clicks."""
        Trace = env["mailing.trace"]
        domain = (
            Domain("model", "=", "res.partner") & Domain("res_id", "in", partners.ids)
        ) | (Domain("model", "=", "crm.lead") & Domain("res_id", "in", leads.ids))
        if numbers and "sms_number" in Trace._fields:
            domain |= Domain("sms_number", "in", list(numbers))
        emails = [e for e in emails if e]
        if emails:
            domain |= Domain("email", "in", emails)
        traces = Trace.search(domain)
        erased = {"email": False, "failure_reason": False}
        if "sms_number" in Trace._fields:
            erased["sms_number"] = False
        traces.write(erased)
        traces.links_click_ids.write({"ip": False})
        return traces

    @api.model
    def _sms_erase_inbound(self, env, partners, numbers):
        """Empty the sender and text of the inbound SMS of these contacts."""
        if INBOUND_MODEL not in env:
            return env["res.partner"].browse()
        Inbound = env[INBOUND_MODEL]
        domain = Domain("partner_id", "in", partners.ids)
        if numbers:
            domain |= Domain("from_number", "in", list(numbers))
        messages = Inbound.search(domain)
        erased = [f for f in INBOUND_ERASED_FIELDS if f in Inbound._fields]
        messages.write(dict.fromkeys(erased, False))
        return messages

    @api.model
    def _sms_erase_chatter(self, env, partners, leads, inbound, needles):
        """Delete the chatter of these contacts, their messages elsewhere, the
        messages and activities of their leads that name them, and the tracking
        values that show their name, number or address."""
        Message = env["mail.message"]
        messages = Message.search(
            (Domain("model", "=", "res.partner") & Domain("res_id", "in", partners.ids))
            | Domain("author_id", "in", partners.ids)
            | (
                Domain("model", "=", INBOUND_MODEL)
                & Domain("res_id", "in", inbound.ids)
            )
        )
        candidates = Message.search(
            [("model", "=", "crm.lead"), ("res_id", "in", leads.ids)]
        )
        messages |= candidates.filtered(
            lambda m: (
                needles.found_in(m.body)
                or needles.found_in(m.subject)
                or needles.found_in(m.email_from)
            )
        )
        candidates -= messages
        candidates.filtered(lambda m: needles.found_in(m.record_name)).write(
            {"record_name": False}
        )
        trackings = candidates.sudo().tracking_value_ids.filtered(
            lambda t: any(
                needles.found_in(t[f])
                for f in (
                    "old_value_char",
                    "new_value_char",
                    "old_value_text",
                    "new_value_text",
                )
            )
        )
        trackings.unlink()
        messages.unlink()
        Activity = env["mail.activity"]
        activities = Activity.search(
            (
                Domain("res_model", "=", "res.partner")
                & Domain("res_id", "in", partners.ids)
            )
            | (Domain("res_model", "=", "crm.lead") & Domain("res_id", "in", leads.ids))
        )
        naming = activities.filtered(
            lambda a: (
                a.res_model == "res.partner"
                or needles.found_in(a.summary)
                or needles.found_in(a.note)
            )
        )
        naming.unlink()
        (activities - naming).filtered(lambda a: needles.found_in(a.res_name)).write(
            {"res_name": False}
        )
        env["mail.followers"].search([("partner_id", "in", partners.ids)]).unlink()
        # e-mails still in Odoo's outbox for them (sent ones are deleted)
        outbox = Domain("recipient_ids", "in", partners.ids)
        for email in needles.emails:
            outbox |= Domain("email_to", "ilike", email)
        mails = env["mail.mail"].search(outbox)
        theirs = mails.filtered(lambda m: not (m.recipient_ids - partners))
        theirs.unlink()
        (mails - theirs).write(
            {"recipient_ids": [Command.unlink(p) for p in partners.ids]}
        )
        self._sms_erase_bus(env, needles)

    @api.model
    def _sms_erase_bus(self, env, needles):
        """Delete the pending live notifications (``bus.bus``, kept a few
        minutes for the browsers) that carry these contacts' data."""
        if "bus.bus" not in env:
            return
        env["bus.bus"].flush_model()
        rows = env.execute_query(SQL("SELECT id, message FROM bus_bus"))
        ids = []
        for row_id, message in rows:
            try:
                # JSON escapes accents: compare the decoded text
                text = json.dumps(json.loads(message), ensure_ascii=False)
            except (TypeError, ValueError):
                text = message
            if needles.found_in(text):
                ids.append(row_id)
        if ids:
            env.cr.execute(SQL("DELETE FROM bus_bus WHERE id = ANY(%s)", ids))
