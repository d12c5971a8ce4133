# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Erasure and retention of prospect data (RGPD art. 17; CNIL: 3 years from
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

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.fields import Domain
from odoo.tools import split_every

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
QUIET = {"tracking_disable": True, "mail_notrack": True, "mail_create_nolog": True}


class ResPartner(models.Model):
    _inherit = "res.partner"

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

        Suppresses their numbers, anonymises their consent events (number →
        keyed hash), deletes their consent statuses, cancels their queued SMS,
        anonymises and archives the contacts and empties the contact data of
        their leads.  Only non-personal facts are logged on the chatter.
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
        events = Event.search(
            [("partner_id", "in", partners.ids), ("anonymized", "=", False)]
        )
        statuses = Consent.search([("partner_id", "in", partners.ids)])
        numbers = (
            set(partners.mapped("phone_sanitized"))
            | set(events.mapped("number"))
            | set(statuses.mapped("number"))
        )
        numbers.discard(False)
        # every trace of these numbers, whoever recorded it
        if numbers:
            events |= Event.search(
                [("number", "in", list(numbers)), ("anonymized", "=", False)]
            )
            statuses |= Consent.search([("number", "in", list(numbers))])
        company = partners.company_id if len(partners.company_id) == 1 else None
        suppressed = env["sms.microfunnel.suppression"]._suppress(
            numbers, reason=reason, company=company
        )
        events._anonymize()
        statuses.unlink()
        recipients = Domain("partner_id", "in", partners.ids)
        if numbers:
            recipients |= Domain("number", "in", list(numbers))
        outgoing = env["sms.sms"].search(Domain("state", "=", "outgoing") & recipients)
        outgoing.action_set_canceled()
        inbound = self._sms_erase_inbound(env, partners, numbers)
        leads = env["crm.lead"].with_context(active_test=False)
        leads = leads.search([("partner_id", "in", partners.ids)])
        leads.write(dict.fromkeys(LEAD_ERASED_FIELDS, False))
        # the chatter holds names, numbers and message bodies: it goes too
        env["mail.message"].search(
            [("model", "=", "res.partner"), ("res_id", "in", partners.ids)]
        ).unlink()
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
            "sms": len(outgoing),
            "leads": len(leads),
            "inbound": len(inbound),
        }
        if reason == "retention":
            why = self.env._("retention period over")
        else:
            why = self.env._("erasure request (RGPD art. 17)")
        body = self.env._(
            "Contact erased: %(why)s. %(numbers)s number(s) suppressed, "
            "%(events)s consent event(s) anonymised, %(sms)s queued SMS canceled, "
            "%(leads)s lead(s) emptied.",
            why=why,
            numbers=counts["numbers"],
            events=counts["events"],
            sms=counts["sms"],
            leads=counts["leads"],
        )
        for partner in partners:
            partner.message_post(
                body=body, message_type="notification", subtype_xmlid="mail.mt_note"
            )
        return counts

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
