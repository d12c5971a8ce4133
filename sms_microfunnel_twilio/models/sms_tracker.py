# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Monotonic Twilio delivery states on ``sms.tracker`` (compliance book
docs/compliance.md, "Delivery states").

Twilio does not guarantee the order of status callbacks. Core's status route
(``/sms_twilio/status/<uuid>``, signature checked by core) applies each one
as it comes; our route override puts the callback in the context and these
overrides drop those that would move a message back:
queued/accepted/scheduled < sending < sent < delivered/undelivered/failed/
canceled, and ``delivered`` beats a failure in either order.
"""

from odoo import fields, models

CALLBACK_CONTEXT_KEY = "sms_twilio_status_callback"
STATUS_RANK = {
    "queued": 1,
    "accepted": 1,
    "scheduled": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "read": 5,
}
# sms.sms state after a status callback (never back to the queue: Twilio has it)
STATUS_TO_SMS_STATE = {
    "queued": "pending",
    "accepted": "pending",
    "scheduled": "pending",
    "sending": "pending",
    "sent": "pending",
    "delivered": "sent",
    "read": "sent",
    "undelivered": "error",
    "failed": "error",
    "canceled": "canceled",
}
# sms.sms states in the same order, to never move a row back either
SMS_STATE_RANK = {
    "outgoing": 0,
    "process": 0,
    "pending": 1,
    "error": 2,
    "canceled": 2,
    "sent": 3,
}


def status_allowed(current, new):
    """May a tracker at Twilio status ``current`` move to ``new``?"""
    if new not in STATUS_RANK or new == current:
        return False
    if current not in STATUS_RANK:
        return True
    if new == "delivered":  # beats a failure, whatever the order
        return current != "read"
    return STATUS_RANK[new] > STATUS_RANK[current]


class SmsTracker(models.Model):
    _inherit = "sms.tracker"

    sms_twilio_status = fields.Char(
        "Twilio Status",
        readonly=True,
        help="The highest-ranked status Twilio reported (callbacks may arrive "
        "out of order; a lower one never replaces a higher one).",
    )
    sms_twilio_error_code = fields.Char("Twilio Error Code", readonly=True)
    sms_twilio_company_id = fields.Many2one(
        "res.company",
        "Twilio Sending Company",
        readonly=True,
        ondelete="set null",
        help="Kept to check the signature of late status callbacks once the SMS "
        "itself is deleted.",
    )

    def _sms_twilio_set_status(self, status, error_code=False, sid=False):
        """Record a status seen at send time or while reconciling (monotonic)."""
        for tracker in self:
            vals = {}
            if status and status_allowed(tracker.sms_twilio_status, status):
                vals["sms_twilio_status"] = status
            if error_code:
                vals["sms_twilio_error_code"] = error_code
            if sid and not tracker.sms_twilio_sid:
                vals["sms_twilio_sid"] = sid
            if vals:
                tracker.write(vals)

    def _sms_twilio_callback_trackers(self):
        """The trackers the status callback in the context may still move.

        Outside a status callback: all of them (core behaviour).
        """
        callback = self.env.context.get(CALLBACK_CONTEXT_KEY)
        if not callback:
            return self
        status = callback.get("status")
        accepted = self.filtered(lambda t: status_allowed(t.sms_twilio_status, status))
        for tracker in accepted:
            vals = {"sms_twilio_status": status}
            if callback.get("error_code"):
                vals["sms_twilio_error_code"] = callback["error_code"]
            elif status == "delivered":
                vals["sms_twilio_error_code"] = False
            if callback.get("sid") and not tracker.sms_twilio_sid:
                vals["sms_twilio_sid"] = callback["sid"]
            tracker.write(vals)
        return accepted

    def _action_update_from_sms_state(
        self, sms_state, failure_type=False, failure_reason=False
    ):
        trackers = self._sms_twilio_callback_trackers()
        if not trackers:
            return None
        result = super(SmsTracker, trackers)._action_update_from_sms_state(
            sms_state, failure_type=failure_type, failure_reason=failure_reason
        )
        trackers._sms_twilio_update_sms()
        return result

    def _action_update_from_twilio_error(self, sms_status, error_code, error_message):
        trackers = self._sms_twilio_callback_trackers()
        if not trackers:
            return None
        result = super(SmsTracker, trackers)._action_update_from_twilio_error(
            sms_status, error_code, error_message
        )
        failure_type = result[1] if isinstance(result, tuple) else "unknown"
        trackers._sms_twilio_update_sms(failure_type)
        return result

    def _sms_twilio_update_sms(self, failure_type=False):
        """Bring the SMS rows of these trackers to the callback's status."""
        callback = self.env.context.get(CALLBACK_CONTEXT_KEY)
        if not callback or not self:
            return
        state = STATUS_TO_SMS_STATE.get(callback.get("status"))
        if not state:
            return
        sms_records = (
            self.env["sms.sms"]
            .sudo()
            .search([("uuid", "in", self.mapped("sms_uuid"))])
            .filtered(
                lambda sms: (
                    SMS_STATE_RANK[state] > SMS_STATE_RANK.get(sms.state, 0)
                    or (state == "sent" and sms.state != "sent")
                )
            )
        )
        vals = {
            "state": state,
            "sms_twilio_hold": False,
            "sms_twilio_hold_until": False,
            "failure_type": failure_type if state == "error" else False,
        }
        if callback.get("error_code"):
            vals["sms_twilio_error_code"] = callback["error_code"]
        sms_records.write(vals)
