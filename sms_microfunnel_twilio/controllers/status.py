# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio status callbacks.

Our SMS ask Twilio to call ``/sms_microfunnel_twilio/status/<uuid>``
(``tools/sms_api.py``): one indexed lookup that also locks the tracker, the
signature, then one statement that moves the tracker, the SMS and, for SMS of
a mailing (funnel SMS included), the ``mailing.trace`` and the funnel trace
forward together, with the values and the guards of the ORM methods core's
route calls (``sms.tracker`` of ``sms``, ``mass_mailing_sms`` and this
module, monotonic: see ``models/sms_tracker.py``).  A callback that changes
nothing (replayed, late or out of order) costs the lookup alone.

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
        row = self._status_lookup(uuid)
        if not row or not row["token"]:
            return Response("Not Found", status=404)
        company = request.env["res.company"].sudo().browse(row["company_id"])
        url = status_callback_url(
            company.get_base_url().rstrip("/") + CORE_STATUS_PATH + uuid
        )
        if not self._signed(row["token"], url, signature):
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
        if not status_allowed(row["twilio_status"], status):
            # replayed, late or out of order: nothing moves back
            if sid and not row["sid"]:
                _execute(
                    request.env.cr,
                    SQL(
                        "UPDATE sms_tracker SET sms_twilio_sid = %s WHERE id = %s",
                        sid,
                        row["tracker_id"],
                    ),
                )
            return "OK"
        error_message = (form.get("ErrorMessage") or "").replace("\x00", "") or None
        if self._needs_orm(row, status):
            self._apply_with_orm(row, callback, error_message)
        else:
            self._apply(row, callback, error_message)
        return "OK"

    def _signed(self, token, url, signature):
        params = list(request.httprequest.form.items(multi=True))
        return twilio_signature.is_valid_signature(token, url, params, signature)

    def _status_lookup(self, uuid):
        """The tracker of SMS ``uuid`` (locked), its company's token, its SMS
        and the transaction's time: one query on unique indexes."""
        env = request.env
        query = SQL(
            """
            SELECT t.id AS tracker_id, t.sms_twilio_status AS twilio_status,
                   t.sms_twilio_sid AS sid, t.mail_notification_id AS notification_id,
                   t.mailing_trace_id,
                   -- a subquery rather than two joins: less to plan
                   (SELECT mm.state FROM mailing_trace m
                      JOIN mailing_mailing mm ON mm.id = m.mass_mailing_id
                     WHERE m.id = t.mailing_trace_id) AS mailing_state,
                   c.id AS company_id, c.sms_twilio_auth_token AS token,
                   s.id AS sms_id, s.state AS sms_state,
                   -- the time of the update, without a query of its own
                   (now() AT TIME ZONE 'UTC') AS now
              FROM sms_tracker t
              JOIN res_company c ON c.id = t.sms_twilio_company_id
         LEFT JOIN sms_sms s ON s.uuid = t.sms_uuid
             WHERE t.sms_uuid = %(uuid)s
               FOR NO KEY UPDATE OF t NOWAIT
            """,
            uuid=uuid,
        )
        self._lock(env.cr, query)
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
    def _lock(cr, query):
        """Run the locking lookup ``query`` as first write-intent of the request.

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

    def _needs_orm(self, row, status):
        """Must this callback take the ORM path (see the module's docstring)?"""
        if row["notification_id"]:
            return True
        registry = request.env.registry
        if any("write" in vars(registry[model]) for model in WRITTEN_MODELS):
            return True  # base_automation's write patch: rules to run
        if not row["mailing_trace_id"]:
            return False
        return (
            # "sending": core sets the mailing's state to "sending"
            TWILIO_TO_SMS_STATE.get(status) == "process"
            or (row["mailing_state"] or "done") != "done"
        )

    def _apply(self, row, callback, error_message=None):
        """Tracker, SMS, mailing trace and funnel trace forward in one
        statement."""
        status = callback["status"]
        failure_type = self._failure_type(status, callback["error_code"])
        now = row.get("now") or request.env.cr.now()
        uid = request.env.uid
        tracker_set = [
            SQL("sms_twilio_status = %s", status),
            SQL("write_date = %s", now),
            SQL("write_uid = %s", uid),
        ]
        if callback["error_code"]:
            tracker_set.append(
                SQL("sms_twilio_error_code = %s", callback["error_code"])
            )
        elif status == "delivered":
            tracker_set.append(SQL("sms_twilio_error_code = NULL"))
        if callback["sid"] and not row["sid"]:
            tracker_set.append(SQL("sms_twilio_sid = %s", callback["sid"]))
        parts = [
            SQL(
                "UPDATE sms_tracker SET %s WHERE id = %s",
                SQL(", ").join(tracker_set),
                row["tracker_id"],
            )
        ]
        sms_state = STATUS_TO_SMS_STATE.get(status)
        current = row["sms_state"]
        if (
            row["sms_id"]
            and sms_state
            and (
                SMS_STATE_RANK[sms_state] > SMS_STATE_RANK.get(current, 0)
                or (sms_state == "sent" and current != "sent")
            )
        ):
            sms_set = [
                SQL("state = %s", sms_state),
                SQL("sms_twilio_hold = NULL"),
                SQL("sms_twilio_hold_until = NULL"),
                SQL(
                    "failure_type = %s", failure_type if sms_state == "error" else None
                ),
                SQL("to_delete = TRUE"),
                SQL("write_date = %s", now),
                SQL("write_uid = %s", uid),
            ]
            if callback["error_code"]:
                sms_set.append(
                    SQL("sms_twilio_error_code = %s", callback["error_code"])
                )
            parts.append(
                SQL(
                    "UPDATE sms_sms SET %s WHERE id = %s",
                    SQL(", ").join(sms_set),
                    row["sms_id"],
                )
            )
        elif row["sms_id"]:
            # as core: a reported SMS is left to the queue's garbage collector
            parts.append(
                SQL(
                    "UPDATE sms_sms SET to_delete = TRUE, write_date = %s, "
                    "write_uid = %s WHERE id = %s AND NOT to_delete",
                    now,
                    uid,
                    row["sms_id"],
                )
            )
        if row["mailing_trace_id"]:
            parts += self._trace_updates(
                row, status, failure_type, error_message, now, uid
            )
        # one round trip; each UPDATE is its own CTE so they all run (the
        # funnel traces' one reads the mailing traces' "mt")
        named = [
            part if isinstance(part, tuple) else (f"u{i}", SQL("%s RETURNING 1", part))
            for i, part in enumerate(parts)
        ]
        ctes = SQL(", ").join(
            SQL("%s AS (%s)", SQL.identifier(name), query) for name, query in named
        )
        _execute(request.env.cr, SQL("WITH %s SELECT 1", ctes))

    def _trace_updates(self, row, status, failure_type, error_message, now, uid):
        """The mailing trace's UPDATE (``sms.tracker._update_sms_traces`` of
        ``mass_mailing_sms``) and the funnel traces' that follows it
        (``sms.microfunnel.trace._update_from_sms_mailing_trace``): named
        statements for ``_apply``.  A tracker's mailing trace is an SMS one,
        whose funnel traces are those of SMS steps (email steps have email
        mailing traces, without tracker)."""
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
            SQL("write_date = %s", now),
            SQL("write_uid = %s", uid),
        ]
        if trace_status not in TRACE_STATUSES_UNSENT:
            trace_set.append(SQL("sent_datetime = COALESCE(sent_datetime, %s)", now))
        updates = [
            (
                "mt",
                SQL(
                    "UPDATE mailing_trace SET %s WHERE id = %s AND "
                    "(trace_status IS NULL OR trace_status <> ALL(%s)) RETURNING id",
                    SQL(", ").join(trace_set),
                    row["mailing_trace_id"],
                    TRACE_STATUSES_KEPT[trace_status],
                ),
            )
        ]
        event = SMS_STATUS_EVENTS.get(trace_status)
        new_state = event and sms_report_state(event, failure_type)
        if not new_state:
            return updates
        # Datetime.now() of the ORM method: whole seconds
        at = now.replace(microsecond=0)
        funnel_set = [
            SQL("state = %s", new_state),
            SQL("failure_type = %s", failure_type or None),
            SQL("write_date = %s", now),
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
                    "WHERE mailing_trace_id IN (SELECT id FROM mt) "
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
