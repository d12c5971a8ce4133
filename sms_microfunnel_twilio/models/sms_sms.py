# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio sending of ``sms.sms``: per-company groups, held messages, error effects.

Queued Twilio SMS are sent by parallel workers (the queue cron and the
"Twilio sender" crons, on any number of servers), exactly once through crashes:

1. a worker *claims* a chunk of ``outgoing`` rows with ``FOR UPDATE SKIP
   LOCKED`` (disjoint between workers) and marks them *being sent* (state
   ``process``, hold ``sending``, a claim key), then commits, before any
   request leaves; the claim key is a PostgreSQL advisory lock the worker's
   connection holds while it sends;
2. it sends the chunk (its departures reserved in the company's shared
   schedule, see ``tools/sms_api.py``) and commits the results;
3. rows still *being sent* whose claim lock is free belong to a worker that
   died (killed server, lost connection): once ``crash_grace`` seconds have
   passed since the claim they are looked up at Twilio like ambiguous sends
   below, never resent blindly.

A chunk holds about one second of sending at the company's cap (at most 500
rows, at least the number of requests in flight, ``max_workers``), so one
crash leaves at most that many messages to look up.

A message Twilio gave no final answer for is *held* (state ``process``):

* ``retry``: rate limit still hit after the worker's own retries, or Twilio
  never reached; released to the queue at ``sms_twilio_hold_until``;
* ``ambiguous``: the request may have reached Twilio (timeout after sending,
  5xx, unreadable answer). A status callback for its uuid, or finding it in
  Twilio's message list, proves it was accepted; when the list still lacks it
  after the grace period it is queued again with the same uuid.

The queue cron (``_process_queue``) releases due holds before sending.
"""

import logging
import random
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2.errors

from odoo import api, fields, models, sql_db
from odoo.exceptions import UserError
from odoo.tools import SQL, config, split_every
from odoo.tools.urls import urljoin as url_join

from odoo.addons.base.models.ir_cron import ODOO_NOTIFY_FUNCTION

from ..tools.sms_api import (
    DEFAULT_MPS,
    DEFAULT_WORKERS,
    HELD_STATES,
    INVALID_NUMBER_CODES,
    OPT_OUT_CODES,
    WORKERS_PARAM,
    SmsApiTwilioMicrofunnel,
    backoff_delay,
    create_pace_table,
)

_logger = logging.getLogger(__name__)

BATCH_SIZE_PARAM = "sms_microfunnel_twilio.batch_size"
GRACE_PARAM = "sms_microfunnel_twilio.reconcile_grace"
MAX_ATTEMPTS_PARAM = "sms_microfunnel_twilio.max_attempts"
CRASH_GRACE_PARAM = "sms_microfunnel_twilio.crash_grace"
DEFAULT_GRACE = 300  # seconds before an ambiguous message not found is resent
DEFAULT_CRASH_GRACE = 60  # seconds after a claim before an orphan is looked up
DEFAULT_MAX_ATTEMPTS = 5
# records given at once to core's result handling (quadratic in their number)
RESULT_SLICE = 100
# a worker's chunk: about this many seconds of sending at the cap, at most
# MAX_CHUNK rows (see _sms_twilio_chunk_size)
CHUNK_SECONDS = 1
MAX_CHUNK = 500
# first key of the advisory locks held by a worker on its claimed rows
# ("SMST"); the second key is the claim, stored on the rows
CLAIM_LOCK_CLASS = 0x534D5354
SENDER_CRONS = [
    f"sms_microfunnel_twilio.ir_cron_twilio_sender_{index}" for index in (1, 2, 3, 4)
]
DELIVERY_FAILURE_TYPES = [
    ("sms_expired", "Expired"),
    ("sms_invalid_destination", "Invalid Destination"),
    ("sms_not_allowed", "Not Allowed"),
    ("sms_not_delivered", "Not Delivered"),
    ("sms_rejected", "Rejected"),
]


def _wake_cron_threads(dbname, delays=(3, 7, 20)):
    """NOTIFY the cron threads of this server (and the others) of ``dbname``."""
    for delay in delays:
        time.sleep(delay)
        try:
            with sql_db.db_connect("postgres").cursor() as cr:
                cr.execute(
                    SQL(
                        "SELECT %s('cron_trigger', %s)",
                        SQL.identifier(ODOO_NOTIFY_FUNCTION),
                        dbname,
                    )
                )
        except Exception:
            _logger.debug(
                "Could not wake the cron threads of %s", dbname, exc_info=True
            )
            return


class _SentResults:
    """The SMS API of a batch already sent: its results, or the error it
    raised, for the slice of messages core's ``_send_with_api`` asks for
    (see ``SmsSms._sms_twilio_send_sliced``); anything else is the API's."""

    def __init__(self, sms_api, results=None, error=None):
        self._sms_api = sms_api
        self._results = {result["uuid"]: result for result in results or []}
        self._error = error

    def __getattr__(self, name):
        return getattr(self._sms_api, name)

    def _send_sms_batch(self, messages, delivery_reports_url=False):
        if self._error is not None:
            raise self._error
        uuids = [n["uuid"] for m in messages for n in m.get("numbers") or []]
        return [self._results[uuid] for uuid in uuids if uuid in self._results]


class SmsSms(models.Model):
    _inherit = "sms.sms"

    # the queue in sending order, for the claims of the sending workers
    _queued_index = models.Index("(id) WHERE state = 'outgoing'")

    failure_type = fields.Selection(selection_add=DELIVERY_FAILURE_TYPES)
    sms_twilio_error_code = fields.Char("Twilio Error Code", readonly=True, copy=False)
    sms_twilio_hold = fields.Selection(
        [
            ("sending", "Being sent"),
            ("retry", "Waiting to retry"),
            ("ambiguous", "Outcome unknown"),
        ],
        "Twilio Hold",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Being sent: claimed by a sending worker (if the worker dies, the "
        "message is looked up at Twilio, never resent blindly). Waiting to "
        "retry: Twilio was not reached or rate-limited the message. Outcome "
        "unknown: the request may have reached Twilio; it is looked up before "
        "anything is resent.",
    )
    sms_twilio_claim = fields.Integer(
        "Twilio Sending Claim",
        readonly=True,
        copy=False,
        help="The sending worker's claim (a PostgreSQL advisory lock key).",
    )
    sms_twilio_hold_until = fields.Datetime(readonly=True, copy=False)
    sms_twilio_attempt_at = fields.Datetime(
        "First Twilio Attempt", readonly=True, copy=False
    )
    sms_twilio_attempts = fields.Integer(
        "Twilio Attempts",
        readonly=True,
        copy=False,
        help="Sending rounds that ended without a final answer from Twilio.",
    )

    # -- routing -------------------------------------------------------------

    def _send(self, unlink_failed=False, unlink_sent=True, raise_exception=False):
        """Group by API and batch first, as ``send()`` does: core's
        ``_process_queue`` calls ``_send`` on a mixed-company batch with no
        ``sms_api`` in the context."""
        if self.env.context.get("sms_api"):
            return super()._send(
                unlink_failed=unlink_failed,
                unlink_sent=unlink_sent,
                raise_exception=raise_exception,
            )
        for sms_api, records in self._split_by_api():
            for batch_ids in records._split_batch():
                super(
                    SmsSms, self.browse(batch_ids).with_context(sms_api=sms_api)
                )._send(
                    unlink_failed=unlink_failed,
                    unlink_sent=unlink_sent,
                    raise_exception=raise_exception,
                )

    def _get_send_batch_size(self):
        twilio = self._get_sms_company().filtered(lambda c: c.sms_provider == "twilio")
        if not twilio:
            return super()._get_send_batch_size()
        configured = self.env["ir.config_parameter"].sudo().get_param(BATCH_SIZE_PARAM)
        if configured and configured.strip().isdigit():
            return max(1, int(configured))
        # big enough for concurrency, small enough to commit every few seconds
        mps = min(twilio.mapped("sms_twilio_max_mps") or [DEFAULT_MPS]) or DEFAULT_MPS
        return max(10, min(500, 5 * mps))

    # -- sending -------------------------------------------------------------

    def _send_with_api(
        self, sms_api, unlink_failed=False, unlink_sent=True, raise_exception=False
    ):
        if not isinstance(sms_api, SmsApiTwilioMicrofunnel):
            return super()._send_with_api(
                sms_api,
                unlink_failed=unlink_failed,
                unlink_sent=unlink_sent,
                raise_exception=raise_exception,
            )
        if not self.env.context.get("sms_twilio_trackers_ready"):
            self._sms_twilio_ensure_trackers(sms_api.company)
        held = sms_api.sms_twilio_held = []
        try:
            api, slices = sms_api, [self]
            if len(self) > RESULT_SLICE:
                # sent at once, results stored by slices (see _SentResults)
                api = self._sms_twilio_send_at_once(sms_api)
                slices = [
                    self.browse(ids) for ids in split_every(RESULT_SLICE, self.ids)
                ]
            for records in slices:
                result = super(SmsSms, records)._send_with_api(
                    api,
                    unlink_failed=unlink_failed,
                    unlink_sent=unlink_sent,
                    raise_exception=raise_exception,
                )
        finally:
            del sms_api.sms_twilio_held
        if held:
            self.sudo()._sms_twilio_hold(held)
        return result

    def _sms_twilio_send_at_once(self, sms_api):
        """Send the whole batch at once (all its requests in flight together)
        and return the API core's ``_send_with_api`` then stores the results
        of, slice by slice: it filters the records it is given once per result
        group, record by record, which costs the square of their number."""
        messages = [
            {
                "content": body,
                "numbers": [{"number": sms.number, "uuid": sms.uuid} for sms in group],
            }
            for body, group in self.grouped("body").items()
        ]
        try:
            results = sms_api._send_sms_batch(
                messages,
                delivery_reports_url=url_join(self[0].get_base_url(), "/sms/status"),
            )
        except Exception as exc:  # core's handling, slice by slice  # noqa: BLE001
            return _SentResults(sms_api, error=exc)
        return _SentResults(sms_api, results=results)

    def _sms_twilio_ensure_trackers(self, company):
        """One tracker per Twilio SMS: it keeps the SID, status and company
        after the SMS row is garbage-collected (core only fills existing ones).
        One statement for the whole chunk: the missing trackers are inserted,
        the existing ones (a mailing's, a notification's) get the company."""
        uuids = [uuid for uuid in self.mapped("uuid") if uuid]
        if not uuids:
            return
        Tracker = self.env["sms.tracker"]
        Tracker.flush_model(["sms_uuid", "sms_twilio_company_id"])
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO sms_tracker AS tracker (sms_uuid, sms_twilio_company_id,
                    create_uid, write_uid, create_date, write_date)
                SELECT uuid, %(company)s, %(uid)s, %(uid)s,
                    now() at time zone 'UTC', now() at time zone 'UTC'
                FROM unnest(%(uuids)s::varchar[]) AS uuid
                ON CONFLICT (sms_uuid) DO UPDATE SET sms_twilio_company_id = %(company)s
                    WHERE tracker.sms_twilio_company_id IS NULL
                """,
                company=company.id,
                uid=self.env.uid,
                uuids=uuids,
            )
        )
        Tracker.invalidate_model(["sms_twilio_company_id"])
        self.env["sms.sms"].invalidate_model(["sms_tracker_id"])

    def _handle_call_result_hook(self, results):
        twilio_results = {
            r["uuid"]: r for r in results if r.get("provider") == "twilio"
        }
        # core stores the SID one tracker at a time: done below in one query;
        # core's hook only gets the SMS of the other results (it looks up the
        # company of each SMS it is given)
        others = [r for r in results if r.get("uuid") not in twilio_results]
        other_uuids = {r.get("uuid") for r in others}
        records = self.filtered(lambda s: s.uuid in twilio_results)
        super(
            SmsSms, self.filtered(lambda s: s.uuid in other_uuids)
        )._handle_call_result_hook(others)
        if not twilio_results:
            return
        by_code = records.grouped(
            lambda s: twilio_results[s.uuid].get("twilio_error_code") or False
        )
        for code, group in by_code.items():
            group.write(
                {
                    "sms_twilio_error_code": code,
                    "sms_twilio_hold": False,
                    "sms_twilio_hold_until": False,
                }
            )
        self._sms_twilio_store_results(twilio_results)
        opt_outs = invalid = self.browse()
        for code, group in by_code.items():
            if code and int(code) in OPT_OUT_CODES:
                opt_outs |= group
            elif code and int(code) in INVALID_NUMBER_CODES:
                invalid |= group
        opt_outs._sms_twilio_record_opt_outs(twilio_results)
        invalid._sms_twilio_note_invalid_numbers(twilio_results)

    def _sms_twilio_store_results(self, results):
        """SID, first status and error code of each tracker, in one statement.

        The status only fills an empty one: a status callback may already have
        brought a later status (see ``sms_tracker.py``)."""
        rows = [
            SQL(
                "(%s, %s, %s, %s)",
                uuid,
                result.get("sms_twilio_sid") or None,
                result.get("twilio_status") or None,
                result.get("twilio_error_code") or None,
            )
            for uuid, result in results.items()
        ]
        if not rows:
            return
        Tracker = self.env["sms.tracker"]
        Tracker.flush_model(
            ["sms_uuid", "sms_twilio_sid", "sms_twilio_status", "sms_twilio_error_code"]
        )
        self.env.cr.execute(
            SQL(
                """
                UPDATE sms_tracker tracker SET
                    sms_twilio_sid = COALESCE(tracker.sms_twilio_sid, result.sid),
                    sms_twilio_status = COALESCE(
                        tracker.sms_twilio_status, result.status),
                    sms_twilio_error_code = COALESCE(
                        result.code, tracker.sms_twilio_error_code)
                FROM (VALUES %s) AS result(uuid, sid, status, code)
                WHERE tracker.sms_uuid = result.uuid
                """,
                SQL(", ").join(rows),
            )
        )
        Tracker.invalidate_model(
            ["sms_twilio_sid", "sms_twilio_status", "sms_twilio_error_code"]
        )

    def _sms_twilio_record_opt_outs(self, results):
        """Twilio 21610: the recipient replied STOP to this sender at Twilio's
        side. Record it in the consent ledger (which also blacklists)."""
        Consent = self.env["sms.microfunnel.consent"].sudo()
        Event = self.env["sms.microfunnel.consent.event"].sudo()
        for sms in self:
            company = sms._get_sms_company()
            number = Consent._sanitize_number(
                sms.number,
                partner=sms.partner_id,
                company=company,
                raise_exception=False,
            )
            if not number:
                _logger.warning(
                    "Twilio opt-out (21610) for SMS %s: number not recordable", sms.id
                )
                continue
            withdrawn = Consent.search_count(
                [
                    ("number", "=", number),
                    ("company_id", "=", company.id),
                    ("purpose", "=", "marketing"),
                    ("scope", "=", False),
                    ("state", "=", "withdrawn"),
                ]
            )
            if withdrawn:
                continue
            result = results.get(sms.uuid) or {}
            try:
                Event._record(
                    [
                        {
                            "event_type": "opt_out",
                            "source": "provider",
                            "method": "system",
                            "number": number,
                            "partner_id": sms.partner_id.id or False,
                            "company_id": company.id,
                            "source_ref": f"twilio:{result.get('twilio_error_code')}",
                            "note": result.get("failure_reason") or False,
                        }
                    ]
                )
            except UserError as exc:
                _logger.warning(
                    "Twilio opt-out of SMS %s not recorded: %s", sms.id, exc
                )

    def _sms_twilio_note_invalid_numbers(self, results):
        """Twilio refused the number itself: say so on the contact."""
        for sms in self.filtered("partner_id"):
            result = results.get(sms.uuid) or {}
            sms.partner_id.sudo().message_post(
                body=self.env._(
                    "Twilio refused the number %(number)s (error %(code)s: %(reason)s)."
                    " It is flagged invalid: SMS to it are not retried.",
                    number=sms.number,
                    code=result.get("twilio_error_code"),
                    reason=result.get("failure_reason") or "",
                ),
                subtype_xmlid="mail.mt_note",
            )

    # -- held messages -----------------------------------------------------------

    def _sms_twilio_settings(self):
        ICP = self.env["ir.config_parameter"].sudo()

        def number(key, default):
            try:
                return int(ICP.get_param(key) or default)
            except ValueError:
                return default

        return number(GRACE_PARAM, DEFAULT_GRACE), number(
            MAX_ATTEMPTS_PARAM, DEFAULT_MAX_ATTEMPTS
        )

    def _sms_twilio_hold(self, held):
        """Hold the messages Twilio gave no final answer for (see module doc)."""
        grace, max_attempts = self._sms_twilio_settings()
        now = fields.Datetime.now()
        by_uuid = {sms.uuid: sms for sms in self}
        wake_up = set()
        for result in held:
            sms = by_uuid.get(result["uuid"])
            if not sms:
                continue
            kind = HELD_STATES[result["state"]]
            attempts = sms.sms_twilio_attempts + 1
            if kind == "retry" and attempts >= max_attempts:
                sms._sms_twilio_fail(
                    self.env._(
                        "Twilio could not take the message after %(count)s "
                        "attempts: %(error)s",
                        count=attempts,
                        error=result.get("failure_reason") or "",
                    )
                )
                continue
            if kind == "retry":
                delay = max(result.get("retry_after") or 0, backoff_delay(attempts))
            else:
                delay = grace
            until = now + timedelta(seconds=delay)
            vals = {
                "state": "process",
                "failure_type": False,
                "sms_twilio_hold": kind,
                "sms_twilio_hold_until": until,
                "sms_twilio_attempts": attempts,
            }
            if not sms.sms_twilio_attempt_at and result.get("sent_at"):
                vals["sms_twilio_attempt_at"] = datetime.fromtimestamp(
                    int(result["sent_at"]), timezone.utc
                ).replace(tzinfo=None)
            sms.write(vals)
            wake_up.add(until)
            _logger.info(
                "Twilio SMS %s held (%s) until %s: %s",
                sms.id,
                kind,
                until,
                result.get("failure_reason"),
            )
        if wake_up:
            self.env.ref("sms.ir_cron_sms_scheduler_action").sudo()._trigger(at=wake_up)

    def _sms_twilio_fail(self, reason):
        self.write(
            {
                "state": "error",
                "failure_type": "sms_server",
                "sms_twilio_hold": False,
                "sms_twilio_hold_until": False,
            }
        )
        self.sms_tracker_id._action_update_from_sms_state(
            "error", failure_type="sms_server", failure_reason=reason
        )

    # -- the queue: claiming workers ----------------------------------------------

    def init(self):
        result = super().init()
        create_pace_table(self.env.cr)
        return result

    def _register_hook(self):
        """A server coming back (after a crash) wakes its cron threads at once
        when SMS are queued or were being sent, instead of their first poll a
        minute later."""
        super()._register_hook()
        if config["stop_after_init"] or config["test_enable"]:
            return
        cr = self.env.cr
        cr.execute(
            "SELECT 1 FROM sms_sms WHERE state IN ('outgoing', 'process') LIMIT 1"
        )
        if cr.fetchall():
            # the server loads its registries before its cron threads listen:
            # notify them a little later
            threading.Thread(
                target=_wake_cron_threads,
                args=(cr.dbname,),
                name="sms-twilio-wake-crons",
                daemon=True,
            ).start()

    @api.model
    def _process_queue(self):
        """Core's queue cron: Twilio SMS through the claiming sender (the
        sender crons are woken up to help), the other providers as core does."""
        more = self._sms_twilio_send_queue(wake_workers=True)
        if self._sms_process_other_providers() or more:
            self.env["ir.cron"]._commit_progress(remaining=1)  # run again soon

    @api.model
    def _sms_twilio_cron_send(self):
        """One of the "Twilio sender" crons (one parallel worker each)."""
        if self._sms_twilio_send_queue():
            self.env["ir.cron"]._commit_progress(remaining=1)  # run again soon

    @api.model
    def _sms_twilio_queue_sql(self, twilio=True):
        """Ids of queued SMS of Twilio companies (or of the others)."""
        provider = SQL(
            "company.sms_provider = 'twilio'"
            if twilio
            else "company.sms_provider IS DISTINCT FROM 'twilio'"
        )
        return SQL(
            """
            SELECT sms.id FROM sms_sms sms
            LEFT JOIN mail_message message ON message.id = sms.mail_message_id
            LEFT JOIN res_company company ON company.id = COALESCE(
                message.record_company_id, sms.record_company_id, %(default)s)
            WHERE sms.state = 'outgoing' AND sms.to_delete IS NOT TRUE AND %(provider)s
            """,
            default=self.env.company.id,
            provider=provider,
        )

    @api.model
    def _sms_process_other_providers(self):
        """Core's ``_process_queue`` for the SMS of non-Twilio companies."""
        batch_size = self._get_send_batch_size()
        self.env.cr.execute(
            SQL(
                "%s ORDER BY sms.id LIMIT %s",
                self._sms_twilio_queue_sql(False),
                batch_size,
            )
        )
        records = self.browse([row[0] for row in self.env.cr.fetchall()])
        records = records.try_lock_for_update()
        if not records:
            return False
        records._send(unlink_failed=False, unlink_sent=True, raise_exception=False)
        self.env["ir.cron"]._commit_progress(len(records))
        return len(records) == batch_size

    def _sms_twilio_chunk_size(self):
        """Rows claimed at once by a worker: about ``CHUNK_SECONDS`` of sending
        at the slowest Twilio company's cap (at most ``MAX_CHUNK``), and never
        fewer than the requests it keeps in flight (``max_workers``). What a
        chunk costs in queries and commits is shared by all its messages."""
        workers = self.env["ir.config_parameter"].sudo().get_param(WORKERS_PARAM)
        try:
            workers = max(1, int(workers or DEFAULT_WORKERS))
        except ValueError:
            workers = DEFAULT_WORKERS
        companies = (
            self.env["res.company"].sudo().search([("sms_provider", "=", "twilio")])
        )
        mps = min(companies.mapped("sms_twilio_max_mps") or [DEFAULT_MPS])
        return max(workers, min(MAX_CHUNK, CHUNK_SECONDS * (mps or DEFAULT_MPS)))

    @api.model
    def _sms_twilio_send_queue(self, wake_workers=False):
        """Claim, send and commit chunks until the queue is empty or the cron's
        time is up; True when work is left."""
        sms_sudo = self.sudo()
        if sms_sudo._sms_twilio_release_holds():
            self.env["ir.cron"]._commit_progress()
        chunk = sms_sudo._sms_twilio_chunk_size()
        woken = not wake_workers
        while True:
            claim = sms_sudo._sms_twilio_claim(chunk)
            if not claim:
                sms_sudo._sms_twilio_trigger_next_hold()
                return False
            key, records, groups = claim
            if not woken and len(records) == chunk:
                # more than one chunk queued: the other workers help
                for xmlid in SENDER_CRONS:
                    cron = self.env.ref(xmlid, raise_if_not_found=False)
                    if cron and cron.active:
                        cron._trigger()
                woken = True
            try:
                self.env["ir.cron"]._commit_progress()  # the mark, before sending
                records._sms_twilio_send_claimed(key, groups)
                time_left = self.env["ir.cron"]._commit_progress(len(records))
            finally:
                sms_sudo._sms_twilio_unlock_claim(key)
            if not time_left:
                return True

    def _sms_twilio_trigger_next_hold(self):
        """Run this cron again when the next hold (an orphan's grace, a retry)
        falls due within its regular minute, not a minute late."""
        cron_id = self.env.context.get("cron_id")
        if not cron_id:
            return
        self.env.cr.execute(
            """
            SELECT min(sms_twilio_hold_until) FROM sms_sms
            WHERE state = 'process' AND sms_twilio_hold IS NOT NULL
              AND sms_twilio_hold_until > (now() at time zone 'UTC')
              AND sms_twilio_hold_until
                  < (now() at time zone 'UTC') + interval '1 minute'
            """
        )
        at = self.env.cr.fetchone()[0]
        if at:
            self.env["ir.cron"].sudo().browse(cron_id)._trigger(
                at=at + timedelta(seconds=1)
            )

    def _sms_twilio_lock_claim(self, key):
        """Lock claim ``key`` (session level: it survives the commits of this
        connection and ends with it); False if already taken."""
        self.env.cr.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (CLAIM_LOCK_CLASS, key)
        )
        return self.env.cr.fetchone()[0]

    def _sms_twilio_unlock_claim(self, key):
        cr = self.env.cr
        if cr.closed:
            return
        try:
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", (CLAIM_LOCK_CLASS, key))
        except psycopg2.Error:  # an aborted transaction: roll back, then unlock
            cr.rollback()
            cr.execute("SELECT pg_advisory_unlock(%s, %s)", (CLAIM_LOCK_CLASS, key))

    @api.model
    def _sms_twilio_claim(self, limit):
        """Mark up to ``limit`` queued Twilio SMS as being sent by this worker.

        :return: ``(claim key, records, [(company, its records)])`` or None
            when nothing is queued; the caller commits, sends, commits and
            unlocks the key.
        """
        crash_grace = self._sms_twilio_crash_grace()
        self.env.flush_all()
        for attempt in range(5):
            key = random.randint(1, 2**31 - 1)
            try:
                ids = self._sms_twilio_claim_rows(key, crash_grace, limit)
            except psycopg2.errors.SerializationFailure:
                # another worker committed rows after our snapshot: start again
                # from a fresh transaction (as Odoo's cron runner does)
                self.env.cr.rollback()
                time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
                continue
            if not ids:
                return None
            if self._sms_twilio_lock_claim(key):
                break
            self.env.cr.rollback()  # the same key twice: another one
        else:
            return None
        self.invalidate_model(
            [
                "state",
                "sms_twilio_hold",
                "sms_twilio_claim",
                "sms_twilio_hold_until",
                "sms_twilio_attempt_at",
            ]
        )
        records = self.browse(sorted(ids))
        companies = self.env["res.company"].sudo()
        groups = []
        for company_id in sorted(set(ids.values())):
            company = companies.browse(company_id)
            group = self.browse(sorted(i for i, c in ids.items() if c == company_id))
            group._sms_twilio_ensure_trackers(company)
            groups.append((company, group))
        return key, records, groups

    def _sms_twilio_claim_rows(self, key, crash_grace, limit):
        self.env.cr.execute(
            SQL(
                """
                WITH claimed AS (  -- a CTE: locked and limited once
                    -- the oldest queued rows first, through _queued_index:
                    -- the queue is not read beyond the chunk
                    SELECT sms.id, COALESCE(message.record_company_id,
                        sms.record_company_id, %(default)s) AS company_id
                    FROM sms_sms sms
                    LEFT JOIN mail_message message ON message.id = sms.mail_message_id
                    JOIN res_company company ON company.id = COALESCE(
                        message.record_company_id, sms.record_company_id,
                        %(default)s)
                    WHERE sms.state = 'outgoing' AND sms.to_delete IS NOT TRUE
                      AND company.sms_provider = 'twilio'
                    ORDER BY sms.id LIMIT %(limit)s
                    FOR UPDATE OF sms SKIP LOCKED
                )
                UPDATE sms_sms SET state = 'process',
                    sms_twilio_hold = 'sending',
                    sms_twilio_claim = %(key)s,
                    sms_twilio_hold_until = (now() at time zone 'UTC')
                        + make_interval(secs => %(grace)s),
                    sms_twilio_attempt_at = COALESCE(
                        sms_twilio_attempt_at, now() at time zone 'UTC')
                FROM claimed
                WHERE sms_sms.id = claimed.id AND sms_sms.state = 'outgoing'
                RETURNING sms_sms.id, claimed.company_id
                """,
                key=key,
                grace=crash_grace,
                limit=limit,
                default=self.env.company.id,
            ),
            log_exceptions=False,
        )
        return dict(self.env.cr.fetchall())

    def _sms_twilio_send_claimed(self, key, groups):
        """Send claimed rows (``groups``: [(company, its rows)]); rows of this
        claim left without a result are ambiguous."""
        for company, group in groups:
            sms_api = company._get_sms_api_class()(self.env)
            sms_api._set_company(company)
            # the claim made the trackers (_sms_twilio_claim)
            group.with_context(sms_api=sms_api, sms_twilio_trackers_ready=True)._send(
                unlink_failed=False, unlink_sent=True, raise_exception=False
            )
        self.env.flush_all()
        left = self.search(
            [
                ("id", "in", self.ids),
                ("sms_twilio_hold", "=", "sending"),
                ("sms_twilio_claim", "=", key),
            ]
        )
        if left:
            grace, _max_attempts = self._sms_twilio_settings()
            left.write(
                {
                    "sms_twilio_hold": "ambiguous",
                    "sms_twilio_hold_until": fields.Datetime.now()
                    + timedelta(seconds=grace),
                }
            )

    def _sms_twilio_crash_grace(self):
        value = self.env["ir.config_parameter"].sudo().get_param(CRASH_GRACE_PARAM)
        try:
            return max(0, int(value or DEFAULT_CRASH_GRACE))
        except ValueError:
            return DEFAULT_CRASH_GRACE

    @api.model
    def _sms_twilio_release_holds(self, now=None):
        """Queue due ``retry`` holds again; look due ``ambiguous`` ones up, and
        the ``sending`` ones whose worker died (its claim lock is free)."""
        now = now or fields.Datetime.now()
        self.env.flush_all()
        try:
            ids = self._sms_twilio_due_holds(now)
        except psycopg2.errors.SerializationFailure:
            # a sender committed some of them after our snapshot: next run
            self.env.cr.rollback()
            return self.browse()
        due = self.sudo().browse(ids)
        orphans = due.filtered(lambda s: s.sms_twilio_hold == "sending")
        for sms in orphans:
            _logger.info(
                "Twilio SMS %s: its sending worker died; looking it up", sms.id
            )
            sms.write(
                {
                    "sms_twilio_hold": "ambiguous",
                    "sms_twilio_attempts": sms.sms_twilio_attempts + 1,
                }
            )
        retry = due.filtered(lambda s: s.sms_twilio_hold == "retry")
        retry.write(
            {
                "state": "outgoing",
                "sms_twilio_hold": False,
                "sms_twilio_hold_until": False,
            }
        )
        ambiguous = due - retry
        for company, records in ambiguous.grouped(
            lambda s: s._get_sms_company()
        ).items():
            records._sms_twilio_reconcile(company, now)
        return due

    def _sms_twilio_due_holds(self, now):
        """Due holds, locked; ``sending`` ones only when their worker is gone."""
        self.env.cr.execute(
            SQL(
                """
                SELECT sms.id FROM sms_sms sms
                WHERE sms.sms_twilio_hold IS NOT NULL AND sms.state = 'process'
                  AND sms.sms_twilio_hold_until <= %(now)s
                  AND (sms.sms_twilio_hold != 'sending' OR NOT EXISTS (
                      SELECT 1 FROM pg_locks lock
                      WHERE lock.locktype = 'advisory' AND lock.objsubid = 2
                        AND lock.database = (
                            SELECT oid FROM pg_database
                            WHERE datname = current_database())
                        AND lock.classid = %(lock_class)s::oid
                        AND lock.objid = sms.sms_twilio_claim::oid))
                ORDER BY sms.id LIMIT 1000
                FOR UPDATE OF sms SKIP LOCKED
                """,
                now=now,
                lock_class=CLAIM_LOCK_CLASS,
            ),
            log_exceptions=False,
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _sms_twilio_reconcile(self, company, now):
        grace, max_attempts = self._sms_twilio_settings()
        api = company._get_sms_api_class()(self.env)
        api._set_company(company)
        if not isinstance(api, SmsApiTwilioMicrofunnel):
            self._sms_twilio_fail(
                self.env._("Outcome at Twilio unknown and Twilio no longer used.")
            )
            return
        try:
            service_sid = company._sms_twilio_sending_service_sid()
            items = {}
            for sms in self:
                data = {"To": sms.number, "Body": sms.body or ""}
                if service_sid:
                    data["MessagingServiceSid"] = service_sid
                since = sms.sms_twilio_attempt_at
                items[sms.uuid] = (
                    data,
                    since and since.replace(tzinfo=timezone.utc).timestamp(),
                )
            found = api._sms_twilio_reconcile(items)
        except UserError as exc:
            _logger.warning(
                "Twilio reconciliation of %s impossible: %s", company.name, exc
            )
            found = {}
        for sms in self:
            result = found.get(sms.uuid)
            if result:
                sms._sms_twilio_adopt(result)
            elif result is False and sms.sms_twilio_attempts >= max_attempts:
                sms._sms_twilio_fail(
                    self.env._(
                        "Twilio's answer was lost %(count)s times and the message is "
                        "not in its logs: check Twilio before resending.",
                        count=sms.sms_twilio_attempts,
                    )
                )
            elif result is False:
                # not at Twilio after the grace period: resend, same uuid
                sms.write(
                    {
                        "state": "outgoing",
                        "sms_twilio_hold": False,
                        "sms_twilio_hold_until": False,
                    }
                )
            else:  # the lookup failed: try again later
                sms.sms_twilio_hold_until = now + timedelta(seconds=grace)

    def _sms_twilio_adopt(self, result):
        """Twilio has this message (found in its list): it was sent."""
        self.ensure_one()
        self.write(
            {
                "state": "pending",
                "failure_type": False,
                "sms_twilio_hold": False,
                "sms_twilio_hold_until": False,
                "to_delete": True,
            }
        )
        tracker = self.sms_tracker_id
        tracker._action_update_from_sms_state("pending")
        tracker._sms_twilio_set_status(
            result.get("twilio_status"), False, result.get("sms_twilio_sid")
        )
