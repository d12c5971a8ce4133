# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Inbound SMS: one entry point for every provider (compliance book
docs/compliance.md: "Keywords and service replies", US-FCC-REVOCATION).

Each provider addon (Twilio, …) authenticates its webhook, then hands the
message to ``_process_inbound``.  It is processed exactly once per
``(provider, provider_message_id)``: keywords change consent through the
ledger (``sms.microfunnel.consent.event._record``), service replies go
through the company's SMS outbox, and any other text is a reply that is
shown to the salesperson.
"""

import logging
from datetime import UTC, datetime, timedelta

import psycopg2.errors
from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import AccessError, ConcurrencyError, UserError
from odoo.tools import SQL, create_index, mute_logger
from odoo.tools.sql import table_exists

from ..tools import sms_keywords
from ..tools.encrypted_fields import EncryptedText

_logger = logging.getLogger(__name__)

PROCESS_CRON = "sms_microfunnel.ir_cron_sms_inbound_process"
RETRY_DELAY = 2  # seconds
CLASSIFICATIONS = [
    ("opt_out", "Opt-out (STOP)"),
    ("opt_in", "Opt-in (START)"),
    ("help", "Help"),
    ("confirm", "Confirmation (YES)"),
    ("reply", "Reply"),
    ("none", "Empty"),
]
KEYWORD_ACTIONS = [
    ("opt_out", "Opt-out"),
    ("opt_in", "Opt-in"),
    ("help", "Help"),
    ("confirm", "Confirm"),
]


class SmsMicrofunnelInbound(models.Model):
    _name = "sms.microfunnel.inbound"
    _description = "Inbound SMS"
    _order = "received_at desc, id desc"
    _rec_name = "from_number_raw"
    _check_company_auto = True

    from_number = fields.Char(
        "From (E.164)", readonly=True, index=True, help="Empty when not parseable."
    )
    from_number_raw = fields.Char("From", readonly=True)
    to_number = fields.Char("To", readonly=True)
    # encrypted at rest (tools/sms_crypto.py); searching it decrypts in Python
    body = EncryptedText(readonly=True, help="The message as received, unchanged.")
    provider = fields.Char(required=True, readonly=True, default="generic")
    provider_message_id = fields.Char("Provider Message ID", readonly=True)
    received_at = fields.Datetime(
        "Received", required=True, readonly=True, default=fields.Datetime.now
    )
    company_id = fields.Many2one(
        "res.company",
        required=True,
        readonly=True,
        index=True,
        default=lambda self: self.env.company,
    )
    partner_id = fields.Many2one(
        "res.partner",
        "Contact",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
    )
    lead_id = fields.Many2one(
        "crm.lead",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
    )
    classification = fields.Selection(
        CLASSIFICATIONS,
        required=True,
        readonly=True,
        default="none",
        help="What the message was handled as.  A YES is a confirmation when a "
        "double opt-in was pending, an opt-in after a keyword opt-out, "
        "otherwise a reply.",
    )
    keyword_action = fields.Selection(
        KEYWORD_ACTIONS,
        "Keyword",
        readonly=True,
        help="What the keyword classifier read in the text, before context.",
    )
    language = fields.Char(
        readonly=True, help="Language of the keyword table that matched."
    )
    match_rule = fields.Char(readonly=True)
    needs_review = fields.Boolean(
        readonly=True,
        help="Unclassified text that may still ask to stop (e.g. 'stop, what "
        "time is it?'): check it and record an opt-out if it is one.",
    )
    action_taken = fields.Text(readonly=True)
    consent_event_id = fields.Many2one(
        "sms.microfunnel.consent.event",
        readonly=True,
        ondelete="set null",
        groups="sms_microfunnel.group_sms_funnel_manager",
    )
    reply_sms_id = fields.Many2one(
        "sms.sms",
        "Reply SMS",
        readonly=True,
        ondelete="set null",
        groups="base.group_system",
    )
    reply_body = fields.Text("Reply Sent", readonly=True)
    provider_replied = fields.Boolean(
        readonly=True,
        help="The provider already answered this keyword itself (e.g. Twilio's "
        "default STOP/START/HELP handling), so no reply was sent from Odoo.",
    )
    processed = fields.Boolean(
        readonly=True,
        default=True,
        help="Unticked while a message stored by a webhook waits for the inbound "
        "job (a few seconds): the job reads it, changes consent, replies and "
        "notifies in the order the messages arrived.",
    )

    _provider_message_unique = models.UniqueIndex(
        "(provider, provider_message_id) WHERE provider_message_id IS NOT NULL",
        "This provider message was already received.",
    )
    _to_process_index = models.Index("(received_at, id) WHERE NOT processed")

    def init(self):
        res = super().init()
        # after every model's table exists (the traces' table comes later)
        self.pool.post_init(self._create_lookup_indexes)
        return res

    def _create_lookup_indexes(self):
        """The lookups of every inbound message: its contact, its lead and the
        funnel message it answers (one index scan each, never a table scan)."""
        cr = self.env.cr
        indexes = [
            ("res_partner", "res_partner_sms_microfunnel_phone_sanitized_index"),
            ("crm_lead", "crm_lead_sms_microfunnel_phone_sanitized_index"),
        ]
        for table, name in indexes:
            if table_exists(cr, table):
                create_index(
                    cr,
                    name,
                    table,
                    ["phone_sanitized"],
                    where="phone_sanitized IS NOT NULL",
                )
        if table_exists(cr, "sms_microfunnel_trace"):
            create_index(
                cr,
                "sms_microfunnel_trace_number_company_index",
                "sms_microfunnel_trace",
                ["number", "company_id"],
                where="number IS NOT NULL",
            )

    # -- entry point ----------------------------------------------------------

    @api.model
    def _process_inbound(
        self,
        from_number,
        to_number,
        body,
        provider_message_id,
        received_at=None,
        provider="generic",
        company=None,
        provider_replied=False,
    ):
        """Record and act on one inbound SMS; return the inbound record.

        Idempotent per ``(provider, provider_message_id)``: a message already
        received is returned as it is and nothing else happens, also when a
        concurrent transaction records it first (the second one is retried
        through ``ConcurrencyError`` and then finds it).  A malformed sender
        number is stored and explained, never raised.
        """
        self_sudo = self.sudo()
        company = (company or self.env.company).sudo()
        provider = (provider or "generic").strip() or "generic"
        provider_message_id = (
            str(provider_message_id).strip() if provider_message_id else ""
        ) or False
        existing = self_sudo._find_received(provider, provider_message_id)
        if existing:
            return existing.with_env(self.env)
        vals = self._received_vals(
            from_number,
            to_number,
            body,
            provider_message_id,
            received_at=received_at,
            provider=provider,
            company=company,
            provider_replied=provider_replied,
        )
        inbound, created = self_sudo._claim(vals)
        if created:
            inbound._handle()
        return inbound.with_env(self.env)

    @api.model
    def _received_vals(
        self,
        from_number,
        to_number,
        body,
        provider_message_id,
        received_at=None,
        provider="generic",
        company=None,
        provider_replied=False,
    ):
        """The stored columns of a message as received (nothing derived yet).

        PostgreSQL cannot store NUL characters: they become U+FFFD in the
        body (its only change) and are dropped from the numbers.
        """
        body = body if isinstance(body, str) else (str(body) if body else "")
        raw_from = str(from_number).replace("\x00", "").strip() if from_number else ""
        to_number = str(to_number).replace("\x00", "").strip() if to_number else ""
        return {
            "from_number_raw": raw_from or False,
            "to_number": to_number or False,
            "body": body.replace("\x00", "\ufffd"),
            "provider": provider,
            "provider_message_id": provider_message_id or False,
            "received_at": self._to_utc(received_at),
            "company_id": (company or self.env.company).id,
            "provider_replied": bool(provider_replied),
            "processed": False,
        }

    @api.model
    def _store_received(self, vals):
        """Store a message as received and trigger the inbound job.

        One statement: the id, or None when this provider message is already
        stored (a retried or concurrent delivery of the same message).  After
        None the transaction may be aborted (the duplicate was committed by a
        concurrent transaction after this one's snapshot): roll it back.
        Column values go through the fields' own conversion.
        """
        now = fields.Datetime.now()
        vals = {
            **vals,
            "classification": "none",
            "create_uid": self.env.uid,
            "write_uid": self.env.uid,
            "create_date": now,
            "write_date": now,
        }
        columns = list(vals)
        values = [
            self._fields[name].convert_to_column_insert(vals[name], self, vals)
            for name in columns
        ]
        module, name = PROCESS_CRON.split(".")
        query = SQL(
            """
            WITH stored AS (
                INSERT INTO sms_microfunnel_inbound (%(columns)s) VALUES %(values)s
                ON CONFLICT (provider, provider_message_id)
                   WHERE provider_message_id IS NOT NULL DO NOTHING
                RETURNING id
            ), triggered AS (
                INSERT INTO ir_cron_trigger (cron_id, call_at, create_uid,
                       write_uid, create_date, write_date)
                SELECT d.res_id, %(now)s, %(uid)s, %(uid)s, %(now)s, %(now)s
                  FROM ir_model_data d
                 WHERE d.module = %(module)s AND d.name = %(name)s
                   AND d.model = 'ir.cron' AND EXISTS (SELECT FROM stored)
                   -- one due trigger wakes the job for every message stored
                   AND NOT EXISTS (
                       SELECT FROM ir_cron_trigger t
                        WHERE t.cron_id = d.res_id AND t.call_at <= %(now)s
                   )
             RETURNING id
            )
            SELECT id, EXISTS (SELECT FROM triggered) FROM stored
            """,
            columns=SQL(", ").join(SQL.identifier(column) for column in columns),
            values=tuple(values),
            now=now,
            uid=self.env.uid,
            module=module,
            name=name,
        )
        try:
            self.env.cr.execute(query, log_exceptions=False)
        except psycopg2.errors.SerializationFailure:
            # the same message, committed by a concurrent transaction
            return None
        row = self.env.cr.fetchone()
        if not row:
            return None
        inbound_id, triggered = row
        if triggered:
            # wake the cron workers up once committed (as ir.cron._trigger
            # does); a trigger already due was notified by the message that
            # inserted it: a burst of messages notifies once, not once each
            # (a connection to the ``postgres`` database per NOTIFY)
            self.env.cr.postcommit.add(self.env["ir.cron"].sudo()._notifydb)
        return inbound_id

    @api.model
    def _cron_process_received(self, batch_size=100):
        """Process the messages stored by webhooks, oldest first, in batches
        committed one by one.  One job runs at a time, so the messages of one
        number change its consent in the order they arrived."""
        self.flush_model()
        while True:
            ids = [
                row[0]
                for row in self.env.execute_query(
                    SQL(
                        """
                        SELECT id FROM sms_microfunnel_inbound
                         WHERE NOT processed
                      ORDER BY received_at, id
                         LIMIT %s FOR NO KEY UPDATE SKIP LOCKED
                        """,
                        batch_size,
                    )
                )
            ]
            if not ids:
                return
            for inbound in self.sudo().browse(ids):
                try:
                    with self.env.cr.savepoint():
                        inbound._handle()
                except ConcurrencyError:
                    # a page changed this number's consent at the same moment:
                    # this batch starts again in a fresh transaction shortly
                    self.env.cr.rollback()
                    self.env.invalidate_all()
                    self.env.ref(PROCESS_CRON)._trigger(
                        fields.Datetime.now() + timedelta(seconds=RETRY_DELAY)
                    )
                    self.env["ir.cron"]._commit_progress(0)
                    return
                except Exception:
                    # a bug, not the sender's fault: keep the message, say so,
                    # and go on with the others
                    _logger.exception(
                        "Inbound SMS %s could not be processed", inbound.id
                    )
                    inbound.write(
                        {
                            "processed": True,
                            "action_taken": self.env._(
                                "Not processed: internal error (see the server log)."
                            ),
                        }
                    )
            self.env.flush_all()
            remaining = self.search_count([("processed", "=", False)])
            time_left = self.env["ir.cron"]._commit_progress(
                len(ids), remaining=remaining
            )
            if not remaining or time_left <= 0:
                return

    def _handle(self):
        """Classify a stored message and carry out what it asks (once)."""
        self.ensure_one()
        company = self.company_id
        body = self.body or ""
        number = self.env["sms.microfunnel.consent"]._sanitize_number(
            self.from_number_raw, company=company, raise_exception=False
        )
        partner, lead = self._match_contact(number, company)
        found = sms_keywords.match(body, preferred=partner.lang or None)
        if found:
            classification = found.action
        else:
            classification = "reply" if body.strip() else "none"
        self.write(
            {
                "from_number": number or False,
                "partner_id": partner.id,
                "lead_id": lead.id,
                "classification": classification,
                "keyword_action": found.action if found else False,
                "language": found.language if found else False,
                "match_rule": found.rule if found else False,
                "needs_review": bool(not found and sms_keywords.needs_review(body)),
                "processed": True,
            }
        )
        # what was done is written for the company's team, in its language
        team_lang = company.partner_id.lang
        staff = self.with_context(lang=team_lang) if team_lang else self
        staff._act()
        staff._log_on_records()
        self._notify_funnels()

    def _notify_funnels(self):
        """A reply counts for the last funnel message sent to this number
        (branches "replied", "replied YES", exit on STOP, goal "replied YES")."""
        self.ensure_one()
        if not self.from_number:
            return
        trace = (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .search(
                [
                    ("number", "=", self.from_number),
                    ("company_id", "=", self.company_id.id),
                    ("state", "in", ("queued", "sent", "delivered")),
                    ("step_type", "=", "sms"),
                ],
                order="queued_at desc, id desc",
                limit=1,
            )
        )
        trace._set_replied(self.body, self.keyword_action or self.classification)

    # -- helpers of the entry point -------------------------------------------

    @api.model
    def _find_received(self, provider, provider_message_id):
        if not provider_message_id:
            return self.browse()
        return self.search(
            [
                ("provider", "=", provider),
                ("provider_message_id", "=", provider_message_id),
            ],
            limit=1,
        )

    @api.model
    def _claim(self, vals):
        """Insert the inbound row; (record, created).

        The unique index on (provider, provider_message_id) decides between
        concurrent deliveries of the same message.
        """
        try:
            with mute_logger("odoo.sql_db"), self.env.cr.savepoint():
                return self.create(vals), True
        except psycopg2.errors.UniqueViolation as error:
            existing = self._find_received(
                vals["provider"], vals["provider_message_id"]
            )
            if existing:
                return existing, False
            # committed by a concurrent transaction after our snapshot: retry
            raise ConcurrencyError(
                f"Inbound SMS {vals['provider']}/{vals['provider_message_id']} "
                "is being recorded by another transaction."
            ) from error

    @api.model
    def _to_utc(self, received_at):
        """Naive UTC datetime from a datetime (aware or UTC) or a string."""
        if isinstance(received_at, datetime):
            if received_at.tzinfo:
                received_at = received_at.astimezone(UTC).replace(tzinfo=None)
            return received_at.replace(microsecond=0)
        if isinstance(received_at, str) and received_at.strip():
            try:
                return self._to_utc(datetime.fromisoformat(received_at.strip()))
            except ValueError:
                _logger.info("Unreadable inbound SMS time %r, using now", received_at)
        return fields.Datetime.now()

    @api.model
    def _match_contact(self, number, company):
        """Most recent contact and lead of the company with this number."""
        Partner = self.env["res.partner"]
        Lead = self.env["crm.lead"]
        if not number:
            return Partner, Lead
        lookup = self.env["sms.microfunnel.consent"]._contacts_by_number
        latest = "write_date desc, id desc"
        partner = lookup([number], company, order=latest).get(number, Partner)[:1]
        lead = lookup([number], company, "crm.lead", latest).get(number, Lead)[:1]
        return partner or lead.partner_id, lead

    def _reply_lang(self):
        """Language of service replies: contact, keyword, number, company."""
        self.ensure_one()
        return self.company_id._sms_lang(
            partner=self.partner_id, number=self.from_number, language=self.language
        )

    def _evidence(self):
        """Consent event fields that prove this message."""
        self.ensure_one()
        return {
            "number": self.from_number,
            "company_id": self.company_id.id,
            "partner_id": self.partner_id.id,
            "source": "keyword_sms",
            "method": "keyword",
            "provider_message_id": self.provider_message_id,
            "raw_text": self.body,
            "source_ref": self.to_number,
            "lang": self._reply_lang(),
        }

    def _consent_status(self):
        self.ensure_one()
        return (
            self.env["sms.microfunnel.consent"]
            .sudo()
            .search(
                [
                    ("number", "=", self.from_number),
                    ("company_id", "=", self.company_id.id),
                    ("purpose", "=", "marketing"),
                    ("scope", "=", False),
                ],
                limit=1,
            )
        )

    def _current_state(self):
        self.ensure_one()
        return self.env["sms.microfunnel.consent"]._get_states(
            [self.from_number], company=self.company_id
        )[self.from_number]

    # -- actions ----------------------------------------------------------------

    def _act(self):
        """Carry out what the message asks for and write down what was done."""
        self.ensure_one()
        if not self.from_number:
            self.action_taken = self.env._(
                "The sender “%(number)s” is not a valid phone number: the message "
                "is kept, but no consent change, reply or activity was made.",
                number=self.from_number_raw or "",
            )
            return
        handler = {
            "opt_out": self._act_opt_out,
            "opt_in": self._act_opt_in,
            "help": self._act_help,
            "confirm": self._act_confirm,
            "reply": self._act_reply,
        }.get(self.classification)
        if not handler:
            self.action_taken = self.env._("Empty message: nothing to do.")
            return
        try:
            with self.env.cr.savepoint():
                done = handler()
        except UserError as error:
            # a refusal of the consent ledger: keep the message, say why
            done = [self.env._("Not processed: %(error)s", error=error.args[0])]
        self.action_taken = "\n".join(done)

    def _reply(self, key):
        """Queue one service SMS unless the provider already answered."""
        if self.provider_replied:
            return [
                self.env._(
                    "No reply sent from Odoo: the provider already answered this "
                    "keyword."
                )
            ]
        sms = self.company_id._sms_send_service(
            self.from_number, key, partner=self.partner_id, lang=self._reply_lang()
        )
        self.write({"reply_sms_id": sms.id, "reply_body": sms.body})
        return [self.env._("Reply sent: %(body)s", body=sms.body)]

    def _act_opt_out(self):
        already = self._current_state() == "withdrawn"
        event = self.env["sms.microfunnel.consent.event"]._record(
            [{"event_type": "opt_out", **self._evidence()}]
        )
        self.consent_event_id = event
        done = [
            self.env._(
                "Opted out of SMS marketing: opt-out recorded and number added to "
                "the opt-out list."
            )
        ]
        if already:
            done.append(
                self.env._(
                    "The number had already opted out: no second confirmation sent."
                )
            )
            return done
        return done + self._reply("stop")

    def _act_opt_in(self):
        number = self.from_number
        if self.env["sms.microfunnel.suppression"]._suppressed([number]):
            return [
                self.env._(
                    "Opt-in refused: this number was erased at the contact's "
                    "request and stays suppressed."
                )
            ]
        state = self._current_state()
        if state == "confirmed":
            return [
                self.env._("Already subscribed: consent unchanged."),
                *self._reply("start"),
            ]
        if state != "withdrawn":
            return [
                self.env._(
                    "Opt-in keyword from a number that had not opted out: no consent "
                    "recorded (an opt-in needs the consent wording to be shown)."
                )
            ]
        Event = self.env["sms.microfunnel.consent.event"]
        previous = Event.sudo().search(
            [
                ("number", "=", number),
                ("company_id", "=", self.company_id.id),
                ("purpose", "=", "marketing"),
                ("scope", "=", False),
                ("event_type", "in", ("confirmed", "soft_opt_in", "re_opt_in")),
                ("proven", "=", True),
            ],
            limit=1,
        )
        vals = {"event_type": "re_opt_in", **self._evidence()}
        if previous:
            vals.update(
                legal_basis=previous.legal_basis or "consent",
                wording=previous.wording,
                wording_version=previous.wording_version,
                lang=previous.lang or vals["lang"],
                note=f"Restores the consent of event #{previous.id}",
            )
        event = Event._record([vals])
        self.consent_event_id = event
        done = [
            self.env._(
                "Subscribed again: re-opt-in recorded and number removed from the "
                "opt-out list."
            )
        ]
        if not event.proven:
            done.append(
                self.env._(
                    "No earlier proven consent to restore: the number stays "
                    "unproven and receives no marketing."
                )
            )
        return done + self._reply("start")

    def _act_help(self):
        if self._current_state() == "withdrawn":
            return [
                self.env._(
                    "Help requested by an opted-out number: no reply sent (only the "
                    "STOP confirmation may go to an opted-out number)."
                )
            ]
        return [self.env._("Help requested."), *self._reply("help")]

    def _act_confirm(self):
        status = self._consent_status()
        if status.state == "pending":
            last_sms = self.env["sms.sms"].sudo().search([], order="id desc", limit=1)
            event = self.env["sms.microfunnel.consent"]._confirm_doi(
                self.company_id,
                number=self.from_number,
                method="keyword",
                source="keyword_sms",
                provider_message_id=self.provider_message_id,
                raw_text=self.body,
            )
            if event:
                sms = (
                    self.env["sms.sms"]
                    .sudo()
                    .search(
                        [("id", ">", last_sms.id), ("number", "=", self.from_number)],
                        order="id desc",
                        limit=1,
                    )
                )
                self.write(
                    {
                        "consent_event_id": event.id,
                        "reply_sms_id": sms.id,
                        "reply_body": sms.body,
                    }
                )
                done = [self.env._("Double opt-in confirmed.")]
                if sms:
                    done.append(self.env._("Reply sent: %(body)s", body=sms.body))
                return done
        last_event = status.last_event_id
        if (
            status.state == "withdrawn"
            and last_event.event_type == "opt_out"
            and last_event.method == "keyword"
        ):
            self.classification = "opt_in"
            return [
                self.env._("Confirmation keyword after a keyword opt-out:"),
                *self._act_opt_in(),
            ]
        self.classification = "reply"
        return self._act_reply()

    def _act_reply(self):
        record = self.lead_id or self.partner_id
        user = self.lead_id.user_id or self.partner_id.user_id
        if not record:
            return [self.env._("Reply from an unknown number: kept for review.")]
        if not user:
            return [self.env._("Reply logged; no salesperson to notify.")]
        try:
            with self.env.cr.savepoint():
                record.sudo().activity_schedule(
                    "mail.mail_activity_data_todo",
                    user_id=user.id,
                    summary=self.env._(
                        "SMS reply from %(number)s", number=self.from_number
                    ),
                    note=Markup("<blockquote>%s</blockquote>") % self.body,
                )
        except (AccessError, UserError) as error:
            return [
                self.env._(
                    "Reply logged; no activity for %(user)s: %(error)s",
                    user=user.name,
                    error=error.args[0],
                )
            ]
        return [
            self.env._(
                "Reply logged; to-do activity for %(user)s.", user=user.display_name
            )
        ]

    def _log_on_records(self):
        """Show the message and what was done on the contact's and lead's chatter."""
        self.ensure_one()
        body = Markup(
            "<p>%(title)s</p><blockquote>%(text)s</blockquote><p>%(done)s</p>"
        ) % {
            "title": self.env._(
                "SMS received from %(number)s:", number=self.from_number
            ),
            "text": self.body or "",
            "done": Markup("<br/>").join((self.action_taken or "").split("\n")),
        }
        for record in (self.partner_id, self.lead_id):
            if record:
                record.sudo().message_post(
                    body=body,
                    author_id=self.partner_id.id or None,
                    message_type="comment",
                    subtype_xmlid="mail.mt_note",
                )
