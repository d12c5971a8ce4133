# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio status callbacks.

Our SMS ask Twilio to call ``/sms_microfunnel_twilio/status/<uuid>``
(``tools/sms_api.py``).  The signature is checked first, against the tokens
every worker keeps: a forged callback reads and locks nothing.  Then one
statement, on unique indexes, locks the tracker, decides (sent by the company
that signed, a status that may move forward) and moves the tracker, the SMS
and, for SMS of a mailing (funnel SMS included), the ``mailing.trace`` and the
funnel trace forward together, with the values and the guards of the ORM
methods core's route calls (``sms.tracker`` of ``sms``, ``mass_mailing_sms``
and this module, monotonic: see ``models/sms_tracker.py``).  A callback that
may not move the status (replayed, late or out of order) stores at most the
message SID.

The rarer cases take the ORM path of core's route, which knows their models:
trackers linked to a chatter notification (its message is notified on the
bus), a callback that moves a mailing trace to "process" or whose mailing is
not done yet (the mailing's state changes), and any model of the statement
with a write automation rule (``base_automation`` patches ``write``).

Core's route ``/sms_twilio/status/<uuid>`` keeps its code, with the callback in
the context so that trackers apply it monotonically too.
"""

import logging
import random
import re
import time

import psycopg2.errors

from odoo.exceptions import ConcurrencyError
from odoo.http import Response, request, route
from odoo.tools import SQL

from odoo.addons.sms_microfunnel.models.mailing_trace import SMS_STATUS_EVENTS
from odoo.addons.sms_microfunnel.models.sms_microfunnel_trace import (
    RANK as FUNNEL_RANK,
)
from odoo.addons.sms_microfunnel.models.sms_microfunnel_trace import sms_report_state
from odoo.addons.sms_twilio.controllers.controllers import (
    TWILIO_TO_SMS_STATE,
    TWILIO_TO_SMS_STATE_ERRORS,
    SmsTwilioController,
)
from odoo.addons.sms_twilio.models.sms_tracker import TWILIO_CODE_TO_FAILURE_TYPE

from ..models.sms_tracker import (
    CALLBACK_CONTEXT_KEY,
    SMS_STATE_RANK,
    STATUS_RANK,
    STATUS_TO_SMS_STATE,
    status_allowed,
)
from ..tools import twilio_signature
from .main import SIGNATURE_PATTERN, WEBHOOK_ROUTING, webhook_env

_logger = logging.getLogger(__name__)

STATUS_PATH = "/sms_microfunnel_twilio/status/"
CORE_STATUS_PATH = "/sms_twilio/status/"
UUID_PATTERN = re.compile(r"[0-9a-f]{32}")
ERROR_CODE_PATTERN = re.compile(r"\d{1,8}")
SID_PATTERN = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
# a callback waiting for another one of the same SMS retries this often
LOCK_ATTEMPTS = 40
LOCK_PAUSE = 0.005
# PostgreSQL errors of two transactions on the same rows: the request is
# retried from the start in a fresh transaction (odoo.service.model.retrying)
CONCURRENCY_ERRORS = (
    psycopg2.errors.SerializationFailure,
    psycopg2.errors.DeadlockDetected,
    psycopg2.errors.LockNotAvailable,
)
# mass_mailing_sms (sms.tracker._update_sms_traces): the mailing trace statuses
# a new status does not overwrite
TRACE_STATUSES_KEPT = {
    "cancel": ["cancel", "process", "pending", "sent"],
    "outgoing": ["outgoing", "process", "pending", "sent"],
    "process": ["process", "pending", "sent"],
    "pending": ["pending", "sent"],
    "bounce": ["bounce"],
    "sent": ["sent"],
    "error": ["error"],
}
# ... and those that get no sent_datetime
TRACE_STATUSES_UNSENT = {"outgoing", "process", "error", "cancel"}
# the models the set-based statement writes
WRITTEN_MODELS = ("sms.tracker", "sms.sms", "mailing.trace", "sms.microfunnel.trace")
# the time every write of a callback records: its transaction's, in UTC
NOW = SQL("(now() AT TIME ZONE 'UTC')")


def _execute(cr, query):
    """Run ``query``; a conflict with a concurrent transaction is retried
    (INFO in the log), never logged as a failed query."""
    try:
        cr.execute(query, log_exceptions=False)
    except CONCURRENCY_ERRORS as error:
        raise ConcurrencyError(f"Twilio status callback: {error.pgcode}") from error


def status_callback_url(url):
    """The StatusCallback URL of our route for core's URL of the same SMS."""
    return url.replace(CORE_STATUS_PATH, STATUS_PATH, 1)


class SmsMicrofunnelTwilioStatus(SmsTwilioController):
    # -- our route ------------------------------------------------------------

    @route(STATUS_PATH + "<string:uuid>", **WEBHOOK_ROUTING)
    def status(self, uuid, **_kwargs):
        if not webhook_env():
            return Response("Not Found", status=404)
        form = request.httprequest.form
        status = form.get("SmsStatus") or form.get("MessageStatus")
        signature = request.httprequest.headers.get("X-Twilio-Signature") or ""
        if not SIGNATURE_PATTERN.fullmatch(signature):
            return Response("Forbidden", status=403)
        if not UUID_PATTERN.fullmatch(uuid) or status not in TWILIO_TO_SMS_STATE:
            return Response("Not Found", status=404)
        companies = self._signing_companies(uuid, signature)
        if not companies:
            _logger.warning(
                "Twilio status callback refused (bad signature, uuid=%s)", uuid
            )
            return Response("Forbidden", status=403)
        error_code = form.get("ErrorCode") or False
        if error_code and not ERROR_CODE_PATTERN.fullmatch(error_code):
            error_code = False
        sid = form.get("MessageSid") or form.get("SmsSid") or False
        if sid and not SID_PATTERN.fullmatch(sid):
            sid = False
        callback = {"status": status, "error_code": error_code, "sid": sid}
        error_message = (form.get("ErrorMessage") or "").replace("\x00", "") or None
        row = self._status_update(uuid, companies, callback, error_message)
        if not row:
            return Response("Not Found", status=404)
        if not row["signed"]:
            # signed with the token of a company that did not send this SMS
            _logger.warning(
                "Twilio status callback refused (bad signature, uuid=%s)", uuid
            )
            return Response("Forbidden", status=403)
        if row["allowed"] and row["needs_orm"]:
            self._apply_with_orm(row, callback, error_message)
        return "OK"

    def _signing_companies(self, uuid, signature):
        """Ids of the companies whose Twilio token signed this callback for
        the URL each of them gives Twilio for SMS ``uuid``.  The tokens come
        from what every worker keeps (no query): a forged callback is
        refused before anything is read or locked."""
        Company = request.env["res.company"].sudo()
        params = list(request.httprequest.form.items(multi=True))
        signing = []
        for company_id, token in Company._sms_twilio_status_tokens().items():
            base_url = Company.browse(company_id).get_base_url().rstrip("/")
            url = status_callback_url(base_url + CORE_STATUS_PATH + uuid)
            if twilio_signature.is_valid_signature(token, url, params, signature):
                signing.append(company_id)
        return signing

    def _status_update(self, uuid, companies, callback, error_message):
        """Lock the tracker of SMS ``uuid``, decide and apply the callback in
        one statement; returns the tracker's row as it was, with the
        decision (``signed``: sent by one of ``companies``; ``allowed``: its
        Twilio status may move to this one; ``needs_orm``: the ORM path
        applies it, see the module's docstring), or None without tracker.

        What the statement writes: nothing unless signed; the SID alone
        when the status may not move (replayed, late or out of order);
        tracker, SMS, mailing trace and funnel trace forward when it may
        and no ORM path is needed.  Each UPDATE is its own CTE so they all
        run; each reads the one row of the decision (``d``, or ``ok`` when
        it goes forward) through a scalar subquery (the SMS uuid is unique),
        less for PostgreSQL to plan than a join."""
        env = request.env
        status = callback["status"]
        failure_type = self._failure_type(status, callback["error_code"])
        registry = env.registry
        set_based = not any("write" in vars(registry[m]) for m in WRITTEN_MODELS)
        if status in STATUS_RANK:
            blocked = [cur for cur in STATUS_RANK if not status_allowed(cur, status)]
            allowed = SQL("NOT (COALESCE(t.twilio_status, '') = ANY(%s))", blocked)
        else:
            allowed = SQL("FALSE")
        decided = [
            ("t", self._locked_tracker(uuid)),
            (
                "d",
                SQL(
                    """
                    SELECT t.*, t.company_id = ANY(%(companies)s) AS signed,
                           %(allowed)s AS allowed,
                           (t.notification_id IS NOT NULL OR NOT %(set_based)s
                            OR (t.mailing_trace_id IS NOT NULL
                                AND (%(process)s
                                     OR COALESCE(t.mailing_state, 'done') <> 'done')))
                               AS needs_orm
                      FROM t
                    """,
                    companies=companies,
                    allowed=allowed,
                    set_based=set_based,
                    # "sending": core sets the mailing's state to "sending"
                    process=TWILIO_TO_SMS_STATE.get(status) == "process",
                ),
            ),
            ("ok", SQL("SELECT * FROM d WHERE signed AND allowed AND NOT needs_orm")),
        ]
        writes = self._forward_updates(callback, failure_type, error_message)
        if callback["sid"]:
            writes.append(
                (
                    "sid",
                    SQL(
                        "UPDATE sms_tracker SET sms_twilio_sid = %s WHERE id = "
                        "(SELECT tracker_id FROM d WHERE signed AND NOT allowed "
                        "AND COALESCE(sid, '') = '') RETURNING 1",
                        callback["sid"],
                    ),
                )
            )
        ctes = SQL(", ").join(
            SQL("%s AS (%s)", SQL.identifier(name), query)
            for name, query in decided + writes
        )
        self._lock(env.cr, SQL("WITH %s SELECT * FROM d", ctes))
        rows = env.cr.dictfetchall()
        if rows:
            return rows[0]
        # No tracker: a sender may hold this SMS, its tracker not yet
        # committed.  Wait for it; if it changed the SMS meanwhile, start again
        # with a fresh snapshot (which then sees the tracker).
        _execute(
            env.cr,
            SQL("SELECT id FROM sms_sms WHERE uuid = %s FOR NO KEY UPDATE", uuid),
        )
        return None

    @staticmethod
    def _locked_tracker(uuid):
        """The tracker of SMS ``uuid``, locked, with what the decision reads:
        its SMS and its mailing's state (unique indexes only)."""
        return SQL(
            """
            SELECT t.id AS tracker_id, t.sms_twilio_status AS twilio_status,
                   t.sms_twilio_sid AS sid, t.mail_notification_id AS notification_id,
                   t.mailing_trace_id, t.sms_twilio_company_id AS company_id,
                   -- a subquery rather than two joins: less to plan
                   (SELECT mm.state FROM mailing_trace m
                      JOIN mailing_mailing mm ON mm.id = m.mass_mailing_id
                     WHERE m.id = t.mailing_trace_id) AS mailing_state,
                   s.id AS sms_id, s.state AS sms_state
              FROM sms_tracker t
         LEFT JOIN sms_sms s ON s.uuid = t.sms_uuid
             WHERE t.sms_uuid = %s
               FOR NO KEY UPDATE OF t NOWAIT
            """,
            uuid,
        )

    @staticmethod
    def _lock(cr, query):
        """Run the locking ``query`` as first write-intent of the request.

        Callbacks of one SMS arrive together (sent, delivered…): the one
        holding the tracker makes the others start again at once in a fresh
        transaction (nothing was written yet), rather than failing with a
        serialization error or waiting for Odoo's retry back-off.
        """
        for attempt in range(LOCK_ATTEMPTS):
            try:
                cr.execute(query, log_exceptions=False)
                return
            except CONCURRENCY_ERRORS:
                cr.rollback()
                time.sleep(random.uniform(0, LOCK_PAUSE * (attempt + 1)))
        raise ConcurrencyError("Twilio status callback: tracker busy")

    def _failure_type(self, status, error_code):
        """sms.sms failure type of a Twilio failure (as core maps it)."""
        if status not in TWILIO_TO_SMS_STATE_ERRORS:
            return False
        provider_error = TWILIO_CODE_TO_FAILURE_TYPE.get(error_code or "") or (
            None if status == "failed" else "not_delivered"
        )
        failure_type = f"sms_{provider_error}"
        if failure_type not in request.env["sms.sms"].DELIVERY_ERRORS:
            return "unknown"
        return failure_type

    @staticmethod
    def _trace_status(status, failure_type):
        """The mailing trace status core's trackers give Twilio ``status``
        (``failure_type``: that of an error status)."""
        if status not in TWILIO_TO_SMS_STATE_ERRORS:
            sms_state = TWILIO_TO_SMS_STATE[status]
            return request.env["sms.tracker"].SMS_STATE_TO_TRACE_STATUS[sms_state]
        if failure_type in request.env["sms.sms"].BOUNCE_DELIVERY_ERRORS:
            return "bounce"
        return "error"

    def _forward_updates(self, callback, failure_type, error_message):
        """The named UPDATEs that move the tracker, its SMS and, for SMS of a
        mailing (funnel SMS included), the mailing trace and the funnel
        trace forward, for the rows of ``ok`` (see ``_status_update``)."""
        status = callback["status"]
        uid = request.env.uid
        tracker_set = [
            SQL("sms_twilio_status = %s", status),
            SQL("write_date = %s", NOW),
            SQL("write_uid = %s", uid),
        ]
        if callback["error_code"]:
            tracker_set.append(
                SQL("sms_twilio_error_code = %s", callback["error_code"])
            )
        elif status == "delivered":
            tracker_set.append(SQL("sms_twilio_error_code = NULL"))
        if callback["sid"]:
            tracker_set.append(
                SQL(
                    "sms_twilio_sid = CASE WHEN COALESCE(sms_twilio_sid, '') = '' "
                    "THEN %s ELSE sms_twilio_sid END",
                    callback["sid"],
                )
            )
        updates = [
            (
                "tracker",
                SQL(
                    "UPDATE sms_tracker SET %s WHERE id = "
                    "(SELECT tracker_id FROM ok) RETURNING 1",
                    SQL(", ").join(tracker_set),
                ),
            )
        ]
        sms_state = STATUS_TO_SMS_STATE.get(status)
        forward = SQL("FALSE")
        if sms_state:
            # the SMS moves on from a lower state, and to "sent" from any
            # other (an unknown state ranks lowest)
            kept = [
                current
                for current, rank in SMS_STATE_RANK.items()
                if SMS_STATE_RANK[sms_state] <= rank
                and (sms_state != "sent" or current == "sent")
            ]
            forward = SQL("NOT (COALESCE(sms_state, '') = ANY(%s))", kept)
            sms_set = [
                SQL("state = %s", sms_state),
                SQL("sms_twilio_hold = NULL"),
                SQL("sms_twilio_hold_until = NULL"),
                SQL(
                    "failure_type = %s", failure_type if sms_state == "error" else None
                ),
                SQL("to_delete = TRUE"),
                SQL("write_date = %s", NOW),
                SQL("write_uid = %s", uid),
            ]
            if callback["error_code"]:
                sms_set.append(
                    SQL("sms_twilio_error_code = %s", callback["error_code"])
                )
            updates.append(
                (
                    "sms",
                    SQL(
                        "UPDATE sms_sms SET %s WHERE id = "
                        "(SELECT sms_id FROM ok WHERE %s) RETURNING 1",
                        SQL(", ").join(sms_set),
                        forward,
                    ),
                )
            )
        # otherwise, as core: a reported SMS is left to the queue's garbage
        # collector
        updates.append(
            (
                "sms_done",
                SQL(
                    "UPDATE sms_sms SET to_delete = TRUE, write_date = %s, "
                    "write_uid = %s WHERE id = (SELECT sms_id FROM ok "
                    "WHERE NOT %s) AND NOT to_delete RETURNING 1",
                    NOW,
                    uid,
                    forward,
                ),
            )
        )
        return updates + self._trace_updates(status, failure_type, error_message)

    def _trace_updates(self, status, failure_type, error_message):
        """The mailing trace's UPDATE (``sms.tracker._update_sms_traces`` of
        ``mass_mailing_sms``) and the funnel traces' that follows it
        (``sms.microfunnel.trace._update_from_sms_mailing_trace``), for the
        mailing trace of the rows of ``ok``.  A tracker's mailing trace is
        an SMS one, whose funnel traces are those of SMS steps (email steps
        have email mailing traces, without tracker)."""
        uid = request.env.uid
        trace_status = self._trace_status(status, failure_type)
        if status not in TWILIO_TO_SMS_STATE_ERRORS:
            failure_type = False  # core passes none outside errors
        trace_set = [
            SQL("trace_status = %s", trace_status),
            SQL("failure_type = %s", failure_type or None),
            SQL(
                "failure_reason = %s",
                error_message if status in TWILIO_TO_SMS_STATE_ERRORS else None,
            ),
            SQL("write_date = %s", NOW),
            SQL("write_uid = %s", uid),
        ]
        if trace_status not in TRACE_STATUSES_UNSENT:
            trace_set.append(SQL("sent_datetime = COALESCE(sent_datetime, %s)", NOW))
        updates = [
            (
                "mt",
                SQL(
                    "UPDATE mailing_trace SET %s WHERE id = "
                    "(SELECT mailing_trace_id FROM ok) AND "
                    "(trace_status IS NULL OR trace_status <> ALL(%s)) RETURNING id",
                    SQL(", ").join(trace_set),
                    TRACE_STATUSES_KEPT[trace_status],
                ),
            )
        ]
        event = SMS_STATUS_EVENTS.get(trace_status)
        new_state = event and sms_report_state(event, failure_type)
        if not new_state:
            return updates
        # Datetime.now() of the ORM method: whole seconds
        at = SQL("date_trunc('second', %s)", NOW)
        funnel_set = [
            SQL("state = %s", new_state),
            SQL("failure_type = %s", failure_type or None),
            SQL("write_date = %s", NOW),
            SQL("write_uid = %s", uid),
        ]
        if new_state in ("sent", "delivered"):
            funnel_set.append(
                SQL("sent_at = %s", at)
                if new_state == "sent"
                else SQL("sent_at = COALESCE(sent_at, %s)", at)
            )
        if new_state == "delivered":
            funnel_set.append(SQL("delivered_at = %s", at))
        # states that rank as high as the new one keep it (RANK, unknown = 0)
        kept = [
            state
            for state, rank in FUNNEL_RANK.items()
            if rank >= FUNNEL_RANK[new_state]
        ]
        updates.append(
            (
                "ft",
                SQL(
                    "UPDATE sms_microfunnel_trace SET %s "
                    "WHERE mailing_trace_id = (SELECT id FROM mt) "
                    "AND step_type = 'sms' "
                    "AND (state IS NULL OR state <> ALL(%s)) RETURNING 1",
                    SQL(", ").join(funnel_set),
                    kept,
                ),
            )
        )
        return updates

    def _apply_with_orm(self, row, callback, error_message):
        """Chatter notifications and mailing traces: core's code, monotonic."""
        request.update_context(**{CALLBACK_CONTEXT_KEY: callback})
        tracker = request.env["sms.tracker"].sudo().browse(row["tracker_id"])
        status = callback["status"]
        if status in TWILIO_TO_SMS_STATE_ERRORS:
            tracker._action_update_from_twilio_error(
                status, callback["error_code"], error_message
            )
        else:
            tracker._action_update_from_sms_state(TWILIO_TO_SMS_STATE[status])
        if row["sms_id"]:
            request.env["sms.sms"].sudo().browse(row["sms_id"]).to_delete = True

    # -- core's route ---------------------------------------------------------

    @route()
    def update_sms_status(
        self, uuid, SmsStatus=None, ErrorCode=None, ErrorMessage=None, **kwargs
    ):
        request.update_context(
            **{
                CALLBACK_CONTEXT_KEY: {
                    "status": SmsStatus,
                    "error_code": ErrorCode or False,
                    "sid": kwargs.get("MessageSid") or kwargs.get("SmsSid") or False,
                }
            }
        )
        return super().update_sms_status(
            uuid,
            SmsStatus=SmsStatus,
            ErrorCode=ErrorCode,
            ErrorMessage=ErrorMessage,
            **kwargs,
        )
