# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Twilio sending of ``sms.sms``: per-company groups, held messages, error effects.

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
from datetime import datetime, timedelta, timezone

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..tools.sms_api import (
    DEFAULT_MPS,
    HELD_STATES,
    INVALID_NUMBER_CODES,
    OPT_OUT_CODES,
    SmsApiTwilioMicrofunnel,
    backoff_delay,
)

_logger = logging.getLogger(__name__)

BATCH_SIZE_PARAM = "sms_microfunnel_twilio.batch_size"
GRACE_PARAM = "sms_microfunnel_twilio.reconcile_grace"
MAX_ATTEMPTS_PARAM = "sms_microfunnel_twilio.max_attempts"
DEFAULT_GRACE = 300  # seconds before an ambiguous message not found is resent
DEFAULT_MAX_ATTEMPTS = 5
DELIVERY_FAILURE_TYPES = [
    ("sms_expired", "Expired"),
    ("sms_invalid_destination", "Invalid Destination"),
    ("sms_not_allowed", "Not Allowed"),
    ("sms_not_delivered", "Not Delivered"),
    ("sms_rejected", "Rejected"),
]


class SmsSms(models.Model):
    _inherit = "sms.sms"

    failure_type = fields.Selection(selection_add=DELIVERY_FAILURE_TYPES)
    sms_twilio_error_code = fields.Char("Twilio Error Code", readonly=True, copy=False)
    sms_twilio_hold = fields.Selection(
        [("retry", "Waiting to retry"), ("ambiguous", "Outcome unknown")],
        "Twilio Hold",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="Waiting to retry: Twilio was not reached or rate-limited the "
        "message. Outcome unknown: the request may have reached Twilio; it is "
        "looked up before anything is resent.",
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
        self._sms_twilio_ensure_trackers(sms_api.company)
        held = sms_api.sms_twilio_held = []
        try:
            result = super()._send_with_api(
                sms_api,
                unlink_failed=unlink_failed,
                unlink_sent=unlink_sent,
                raise_exception=raise_exception,
            )
        finally:
            del sms_api.sms_twilio_held
        if held:
            self.sudo()._sms_twilio_hold(held)
        return result

    def _sms_twilio_ensure_trackers(self, company):
        """One tracker per Twilio SMS: it keeps the SID, status and company
        after the SMS row is garbage-collected (core only fills existing ones)."""
        Tracker = self.env["sms.tracker"].sudo()
        uuids = [uuid for uuid in self.mapped("uuid") if uuid]
        existing = Tracker.search([("sms_uuid", "in", uuids)])
        existing.filtered(lambda t: not t.sms_twilio_company_id).write(
            {"sms_twilio_company_id": company.id}
        )
        known = set(existing.mapped("sms_uuid"))
        missing = [uuid for uuid in uuids if uuid not in known]
        if missing:
            Tracker.create(
                [
                    {"sms_uuid": uuid, "sms_twilio_company_id": company.id}
                    for uuid in missing
                ]
            )
            self.env["sms.sms"].invalidate_model(["sms_tracker_id"])

    def _handle_call_result_hook(self, results):
        super()._handle_call_result_hook(results)
        twilio_results = {
            r["uuid"]: r for r in results if r.get("provider") == "twilio"
        }
        if not twilio_results:
            return
        opt_outs, invalid = self.browse(), self.browse()
        for sms in self:
            result = twilio_results.get(sms.uuid)
            if not result:
                continue
            code = result.get("twilio_error_code") or False
            sms.write(
                {
                    "sms_twilio_error_code": code,
                    "sms_twilio_hold": False,
                    "sms_twilio_hold_until": False,
                }
            )
            sms.sms_tracker_id._sms_twilio_set_status(
                result.get("twilio_status"), code, result.get("sms_twilio_sid")
            )
            if code and int(code) in OPT_OUT_CODES:
                opt_outs |= sms
            elif code and int(code) in INVALID_NUMBER_CODES:
                invalid |= sms
        opt_outs._sms_twilio_record_opt_outs(twilio_results)
        invalid._sms_twilio_note_invalid_numbers(twilio_results)

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

    @api.model
    def _process_queue(self):
        self._sms_twilio_release_holds()
        return super()._process_queue()

    @api.model
    def _sms_twilio_release_holds(self, now=None):
        """Queue due ``retry`` holds again; look due ``ambiguous`` ones up."""
        now = now or fields.Datetime.now()
        due = (
            self.sudo()
            .search(
                [
                    ("sms_twilio_hold", "!=", False),
                    ("state", "=", "process"),
                    ("sms_twilio_hold_until", "<=", now),
                ],
                order="id",
                limit=1000,
            )
            .try_lock_for_update()
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
