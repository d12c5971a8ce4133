# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Current consent status per (number, company, purpose, scope).

Derived from the consent events (the latest event of a scope wins) and
stored, so that audiences can be filtered in SQL.  A number in Odoo's global
``phone.blacklist`` is always treated as withdrawn, whatever its events say.
"""

import base64
import binascii

import psycopg2.errors

from odoo import Command, api, fields, models
from odoo.exceptions import ConcurrencyError, UserError
from odoo.fields import Domain
from odoo.tools import SQL, consteq, mute_logger
from odoo.tools.misc import hmac as odoo_hmac

from ..tools import sql_array
from .sms_microfunnel_consent_event import EVENT_STATE, LEGAL_BASES

UNSUBSCRIBE_SCOPE = "sms_microfunnel-unsubscribe"

CONSENT_STATES = [
    ("none", "No consent"),
    ("unproven", "Unproven"),
    ("pending", "Pending confirmation"),
    ("confirmed", "Confirmed"),
    ("withdrawn", "Opted out"),
    ("expired", "Expired"),
]
# how often a contact accepts marketing SMS (preferences page), and the cap
# each choice puts on the number: (messages, per hours)
FREQUENCIES = [
    ("all", "Every message"),
    ("weekly", "At most one a week"),
    ("monthly", "At most one a month"),
]
FREQUENCY_CAPS = {"weekly": (1, 7 * 24), "monthly": (1, 30 * 24)}


#: longest list of numbers whose consents are read by number (``_states_sql``)
LISTED_LOOKUP_MAX = 20000


class SmsMicrofunnelConsent(models.Model):
    _name = "sms.microfunnel.consent"
    _description = "SMS Consent Status"
    _order = "last_event_date desc, id desc"
    _rec_name = "number"

    number = fields.Char("Number (E.164)", required=True, readonly=True)
    company_id = fields.Many2one("res.company", required=True, readonly=True)
    purpose = fields.Selection(
        [("marketing", "Marketing")], required=True, default="marketing", readonly=True
    )
    scope = fields.Char(readonly=True)
    partner_id = fields.Many2one(
        "res.partner", "Contact", index="btree_not_null", ondelete="set null"
    )
    state = fields.Selection(
        CONSENT_STATES, required=True, default="none", readonly=True
    )
    legal_basis = fields.Selection(LEGAL_BASES, readonly=True)
    last_event_id = fields.Many2one(
        "sms.microfunnel.consent.event", readonly=True, ondelete="set null"
    )
    last_event_date = fields.Datetime(readonly=True)
    pending_since = fields.Datetime(
        readonly=True, help="When the pending double opt-in request was made."
    )
    blacklisted = fields.Boolean(
        compute="_compute_blacklisted", search="_search_blacklisted"
    )
    frequency = fields.Selection(
        FREQUENCIES,
        "Message Frequency",
        required=True,
        default="all",
        readonly=True,
        help="Chosen by the contact on the preferences page: the compliance gate "
        "caps the marketing SMS of this number accordingly.",
    )

    _scope_unique = models.UniqueIndex(
        "(number, company_id, purpose, COALESCE(scope, ''))",
        "A number has one consent status per company, purpose and scope.",
    )
    # the few numbers that asked for fewer messages, which every dispatch
    # chunk looks up (``_frequency_caps``): an index of those alone
    _frequency_capped_index = models.Index(
        "(number, company_id) WHERE frequency != 'all'"
    )

    def _compute_blacklisted(self):
        listed = set(
            self.env["phone.blacklist"]
            .sudo()
            .search([("number", "in", self.mapped("number"))])
            .mapped("number")
        )
        for status in self:
            status.blacklisted = status.number in listed

    def _search_blacklisted(self, operator, value):
        if operator not in ("in", "not in"):
            return NotImplemented
        listed = self.env["phone.blacklist"].sudo()._search([])
        subquery = listed.subselect("number")
        return Domain("number", operator, subquery)

    # -- derived from events --------------------------------------------------

    @api.model
    def _apply_events(self, events):
        """Move each touched scope to the state of its latest event."""
        latest = {}
        for event in events.sorted(lambda e: (e.event_date, e.id)):
            key = (
                event.number,
                event.company_id.id,
                event.purpose,
                event.scope or False,
            )
            latest[key] = event
        if not latest:
            return self.browse()
        existing = self.sudo().search([("number", "in", list({k[0] for k in latest}))])
        existing._lock_for_update()
        by_key = {
            (s.number, s.company_id.id, s.purpose, s.scope or False): s
            for s in existing
        }
        to_create = []
        for key, event in latest.items():
            status = by_key.get(key)
            if (
                status
                and status.last_event_date
                and (
                    (status.last_event_date, status.last_event_id.id)
                    > (event.event_date, event.id)
                )
            ):
                continue  # an older event recorded late does not win
            state = EVENT_STATE[event.event_type]
            if state == "confirmed" and not event.proven:
                state = "unproven"
            vals = {
                "state": state,
                "legal_basis": event.legal_basis,
                "last_event_id": event.id,
                "last_event_date": event.event_date,
                "pending_since": event.event_date if state == "pending" else False,
            }
            if event.partner_id:
                vals["partner_id"] = event.partner_id.id
            if status:
                status.sudo().write(vals)
            else:
                number, company_id, purpose, scope = key
                vals.update(
                    number=number, company_id=company_id, purpose=purpose, scope=scope
                )
                to_create.append(vals)
        if not to_create:
            return self.browse()
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                return self.sudo().create(to_create)
        except psycopg2.errors.UniqueViolation as error:
            # the first event of a number recorded twice at once (e.g. STOP
            # from a web page and by SMS): start again, the status now exists
            raise ConcurrencyError(
                "A consent status is being created by another transaction."
            ) from error

    def _lock_for_update(self):
        """Lock these statuses before changing them; one changed by a concurrent
        transaction makes the whole transaction start again (Odoo retries a
        ``ConcurrencyError``) instead of failing at commit with an error."""
        if not self:
            return
        try:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM sms_microfunnel_consent WHERE id IN %s "
                    "FOR NO KEY UPDATE",
                    tuple(self.ids),
                ),
                log_exceptions=False,
            )
        except (
            psycopg2.errors.SerializationFailure,
            psycopg2.errors.DeadlockDetected,
        ) as error:
            raise ConcurrencyError(
                "A consent status is being changed by another transaction."
            ) from error

    # -- queries used by forms, funnels and the pre-flight check --------------

    @api.model
    def _sanitize_number(
        self, number, partner=None, company=None, raise_exception=True
    ):
        """E.164 form of ``number`` (partner's, then company's country), or an error."""
        country = (partner and partner.country_id) or (
            company or self.env.company
        ).country_id
        sanitized = False
        if number:
            sanitized = self.env["res.partner"]._phone_format(
                number=number, country=country, force_format="E164"
            )
        if not sanitized and raise_exception:
            raise UserError(
                self.env._(
                    "“%(number)s” is not a valid phone number. Use the international "
                    "form, e.g. +33 6 12 34 56 78.",
                    number=number or "",
                )
            )
        return sanitized

    @api.model
    def _contacts_by_number(
        self, numbers, company, model_name="res.partner", order="id"
    ):
        """{number: records} of ``model_name`` (contacts by default, leads…)
        reached at each E.164 number in ``company`` (its own records and the
        shared ones), in ``order``: the one lookup of "the contact of this
        number in this company".  One query whatever the number of numbers,
        on the sanitised number's index (``sms.microfunnel.inbound``
        creates it); numbers without a record are left out."""
        numbers = sorted({n for n in numbers if n})
        Model = self.env[model_name]
        if not numbers:
            return {}
        domain = [("phone_sanitized", "in", numbers)]
        if "company_id" in Model._fields:
            domain.append(("company_id", "in", [company.id, False]))
        # order None: the model's own order
        found = Model.search_fetch(domain, ["phone_sanitized"], order=order)
        by_number = {}
        for record in found:
            by_number.setdefault(record.phone_sanitized, []).append(record.id)
        return {number: Model.browse(ids) for number, ids in by_number.items()}

    @api.model
    def _get_states(self, numbers, company=None, purpose="marketing", scope=False):
        """{number: state} for E.164 numbers; blacklist and erasure win
        (``_states_sql``, the one resolver of the consent state)."""
        company = company or self.env.company
        numbers = [n for n in set(numbers) if n]
        states = dict.fromkeys(numbers, "none")
        # Plain SQL: a pre-flight check asks for 100,000 numbers at once; the
        # ORM would spend seconds on the domain and on caching the records,
        # and the search method of phone.blacklist.number re-parses every
        # value (~0.3 ms each: 30 s).  The numbers are E.164 already.
        rows = self.env.execute_query(
            self._states_sql(
                SQL("SELECT unnest(%s)", sql_array.literal(numbers)),
                company,
                purpose=purpose,
                scope=scope,
                number_list=numbers,
            )
        )
        states.update(rows)
        return states

    @api.model
    def _states_sql(
        self, numbers, company, purpose="marketing", scope=False, number_list=None
    ):
        """SQL of the rows ``(number, state)`` for the numbers that the SQL
        query ``numbers`` selects: the one resolver of the consent state,
        which every reader uses (the gate, the segments' counts, the records'
        consent field and its search).

        ``withdrawn`` for a number in ``phone.blacklist`` or on the erasure
        suppression list, else the status in ``company`` for ``purpose`` and
        ``scope``, else ``none``.  The suppression list is keyed (no number in
        clear): the suppressed numbers among those selected are found first
        (``number_list``: the same numbers as a list, when the caller has
        them; else one query reads them, and none when the list is empty).
        """
        self.flush_model(["number", "company_id", "purpose", "scope", "state"])
        self.env["phone.blacklist"].flush_model(["number", "active"])
        suppressed = sorted(self._suppressed_among(numbers, number_list))
        consent = SQL(
            """
            SELECT c.state FROM sms_microfunnel_consent c
             WHERE c.number = n.number AND c.company_id = %s
               AND c.purpose = %s AND COALESCE(c.scope, '') = %s
            """,
            company.id,
            purpose,
            scope or "",
        )
        blacklisted = SQL(
            "SELECT bl.id FROM phone_blacklist bl "
            "WHERE bl.number = n.number AND bl.active"
        )
        # A list (a dispatch chunk, a page of records): each number is looked
        # up in the unique indexes of both tables (LIMIT 1: PostgreSQL keeps
        # the lookup per number).  Otherwise it may hash every consent and
        # blacklisted number to join a few thousand, a cost that grows with
        # the tables, not the chunk.  For the numbers of a query, or a list
        # as long as a pre-flight's, which joins most of the table, hashing
        # is the cheaper way: the lookups then join as PostgreSQL plans.
        per_number = SQL(
            "LIMIT 1"
            if number_list is not None and len(number_list) <= LISTED_LOOKUP_MAX
            else ""
        )
        joins = SQL(
            """
            LEFT JOIN LATERAL (%s %s) c ON TRUE
            LEFT JOIN LATERAL (%s %s) bl ON TRUE
            """,
            consent,
            per_number,
            blacklisted,
            per_number,
        )
        return SQL(
            """
            SELECT n.number,
                   CASE WHEN bl.id IS NOT NULL
                          OR n.number = ANY(%(suppressed)s::varchar[])
                        THEN 'withdrawn'
                        ELSE COALESCE(c.state, 'none') END
              FROM (%(numbers)s) AS n(number)
              %(joins)s
             WHERE n.number IS NOT NULL
            """,
            numbers=numbers,
            suppressed=suppressed,
            joins=joins,
        )

    @api.model
    def _suppressed_among(self, numbers, number_list=None):
        """The suppressed numbers among those the SQL query ``numbers``
        selects (or among ``number_list`` when given)."""
        Suppression = self.env["sms.microfunnel.suppression"]
        if number_list is None:
            if not Suppression.sudo()._has_any():
                return set()
            number_list = [
                number
                for (number,) in self.env.execute_query(
                    SQL("SELECT DISTINCT n.number FROM (%s) AS n(number)", numbers)
                )
                if number
            ]
        return Suppression._suppressed(number_list)

    @api.model
    def _frequency_caps(self, numbers, company=None):
        """{number: (messages, hours)} for the numbers that asked for fewer
        marketing SMS in ``company`` (one query)."""
        company = company or self.env.company
        numbers = [n for n in set(numbers) if n]
        if not numbers:
            return {}
        self.flush_model(["number", "company_id", "purpose", "scope", "frequency"])
        rows = self.env.execute_query(
            SQL(
                """
                SELECT number, frequency FROM sms_microfunnel_consent
                 WHERE company_id = %s AND purpose = 'marketing'
                   AND COALESCE(scope, '') = '' AND frequency != 'all'
                   AND number = ANY(%s)
                """,
                company.id,
                sql_array.literal(numbers),
            )
        )
        return {
            number: FREQUENCY_CAPS[frequency]
            for number, frequency in rows
            if frequency in FREQUENCY_CAPS
        }

    @api.model
    def _marketable_numbers(self, numbers, company=None, scope=False):
        """The subset of ``numbers`` that may receive marketing SMS now."""
        states = self._get_states(numbers, company=company)
        if scope:
            scoped = self._get_states(numbers, company=company, scope=scope)
            return {
                n
                for n, s in states.items()
                if s == "confirmed" and scoped[n] not in ("withdrawn", "expired")
            }
        return {n for n, s in states.items() if s == "confirmed"}

    @api.model
    def _cron_expire_pending(self):
        """Expire double opt-in requests not confirmed in time (per company)."""
        now = fields.Datetime.now()
        companies = self.env["res.company"].search([])
        pending = self.browse()
        for company in companies:
            limit = fields.Datetime.subtract(now, hours=company.sms_doi_expiry_hours)
            pending |= self.sudo().search(
                [
                    ("state", "=", "pending"),
                    ("company_id", "=", company.id),
                    ("pending_since", "<=", limit),
                ]
            )
        if pending:
            self.env["sms.microfunnel.consent.event"].sudo().create(
                [
                    {
                        "event_type": "expired",
                        "number": status.number,
                        "partner_id": status.partner_id.id,
                        "company_id": status.company_id.id,
                        "purpose": status.purpose,
                        "scope": status.scope,
                        "source": "system",
                        "method": "system",
                        "legal_basis": status.legal_basis,
                        "user_id": self.env.ref("base.user_root").id,
                        "note": "Double opt-in not confirmed in time.",
                    }
                    for status in pending
                ]
            )
        self.env["ir.cron"]._commit_progress(len(pending), remaining=0)
        return len(pending)

    # -- double opt-in ------------------------------------------------------------

    def _doi_is_open(self, now=None):
        """A pending request not yet past its company's expiry delay.  The
        expiry job may not have recorded an overdue request yet: it is closed
        all the same.  False for no status at all."""
        if not self:
            return False
        self.ensure_one()
        if self.state != "pending" or not self.pending_since:
            return False
        deadline = fields.Datetime.add(
            self.pending_since, hours=self.company_id.sms_doi_expiry_hours
        )
        return (now or fields.Datetime.now()) <= deadline

    @api.model
    def _request_doi(self, number, company=None, partner=None, **evidence):
        """Record a pending opt-in and send the one confirmation request SMS.

        ``evidence`` holds the consent event's proof fields (wording, source,
        source_ref, method, ip, user_agent, lang…).  Returns the event.
        """
        company = company or self.env.company
        partner = partner or self.env["res.partner"]
        number = self._sanitize_number(number, partner=partner, company=company)
        vals = {
            "event_type": "requested",
            "number": number,
            "company_id": company.id,
            "partner_id": partner.id,
            "legal_basis": "consent",
            **evidence,
        }
        event = self.env["sms.microfunnel.consent.event"]._record([vals])
        link = f"{company.get_base_url()}/sms/optin/confirm/{event.sudo().doi_token}"
        company._sms_send_service(
            number, "doi_request", partner=partner, lang=evidence.get("lang"), link=link
        )
        return event

    @api.model
    def _confirm_doi(self, company, number=None, token=None, **evidence):
        """Confirm a pending double opt-in, found by number or by link token.

        Returns the ``confirmed`` event, or an empty recordset when nothing is
        pending for that number and company (a YES alone is then no consent).
        """
        Event = self.env["sms.microfunnel.consent.event"].sudo()
        if token:
            request = Event.search(
                [("doi_token", "=", token), ("event_type", "=", "requested")], limit=1
            )
            company = request.company_id
            number = request.number
        if not number or not company:
            return Event.browse()
        status = self.sudo().search(
            [
                ("number", "=", number),
                ("company_id", "=", company.id),
                ("purpose", "=", "marketing"),
                ("scope", "=", False),
                ("state", "=", "pending"),
            ],
            limit=1,
        )
        request = status.last_event_id
        if not status or (token and request.doi_token != token):
            return Event.browse()
        if not status._doi_is_open():
            return Event.browse()  # too late: the expiry job records it
        confirmed = Event.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": number,
                    "company_id": company.id,
                    "partner_id": request.partner_id.id,
                    "legal_basis": request.legal_basis or "consent",
                    "wording": request.wording,
                    "wording_version": request.wording_version,
                    "lang": request.lang,
                    "source_ref": request.source_ref,
                    "note": f"Confirms request #{request.id}",
                    "interest_ids": [Command.set(request.interest_ids.ids)],
                    "interest_names": request.interest_names,
                    **evidence,
                }
            ]
        )
        if request.interest_ids and request.partner_id:
            # interests chosen on the form reach the contact once confirmed
            request.partner_id.sudo().write(
                {
                    "sms_microfunnel_interest_ids": [
                        Command.link(interest.id) for interest in request.interest_ids
                    ]
                }
            )
        company._sms_send_service(
            number, "doi_confirmed", partner=request.partner_id, lang=request.lang
        )
        return confirmed

    # -- per-recipient unsubscribe link -------------------------------------------

    @api.model
    def _unsubscribe_token(self, number, company):
        payload = f"{company.id}:{number}"
        signature = odoo_hmac(self.env(su=True), UNSUBSCRIBE_SCOPE, payload)[:32]
        encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"{encoded}.{signature}"

    @api.model
    def _unsubscribe_url(self, number, company):
        token = self._unsubscribe_token(number, company)
        return f"{company.get_base_url()}/sms/unsubscribe/{token}"

    @api.model
    def _decode_unsubscribe_token(self, token):
        """(company, number) for a valid token, else (None, None)."""
        try:
            encoded, signature = (token or "").split(".", 1)
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            text = payload.decode()
            company_id, number = text.split(":", 1)
            company_id = int(company_id)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None, None
        # the signature first: nothing of a forged token reaches the database
        expected = odoo_hmac(self.env(su=True), UNSUBSCRIBE_SCOPE, text)[:32]
        if not signature.isascii() or not consteq(signature, expected):
            return None, None
        company = self.env["res.company"].sudo().browse(company_id).exists()
        if not company:
            return None, None
        return company, number
