# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One step for one enrollment: the unit of exactly-once dispatch.

State machine::

    scheduled ─► deferred (reason, until) ─► queued (sms.sms + sms.tracker)
        │                                       │
        └──────► canceled (reason)              ├─► sent ─► delivered
                                                └─► failed / bounced

A unique index on (enrollment, step) and the row lock taken by the dispatch
cron guarantee at most one SMS per enrollment and step, even with several
workers or a crash between queueing and commit (the transaction is then
rolled back as a whole and the trace is picked up again).
"""

import logging

import psycopg2

from odoo import api, fields, models
from odoo.tools import SQL

from ..tools.encrypted_fields import EncryptedText
from .sms_send_time import HOURS, SLOT_SOURCES, WEEKDAYS

_logger = logging.getLogger(__name__)

TRACE_STATES = [
    ("scheduled", "Scheduled"),
    ("deferred", "Deferred"),
    ("queued", "Queued"),
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
    ("bounced", "Bounced"),
    ("canceled", "Canceled"),
    ("done", "Executed"),  # activity and CRM update steps
]
CANCEL_REASONS = [
    ("no_number", "No number"),
    ("invalid_number", "Invalid number"),
    ("no_consent", "No consent"),
    ("unproven_consent", "Unproven consent"),
    ("pending_doi", "Double opt-in pending"),
    ("opted_out", "Opted out"),
    ("duplicate", "Duplicate number"),
    ("frequency_cap", "Frequency cap"),
    ("no_window", "No send window within 400 days"),
    ("too_long", "Message too long"),
    ("no_contact", "No sender contact (CASL)"),
    ("condition_not_met", "Condition not met"),
    ("no_date", "No date on the record"),
    ("exited", "Left the funnel"),
    ("funnel_stopped", "Funnel stopped"),
    ("no_slot", "Send slot never within the legal window"),
    # email, activity and CRM update steps (sms_funnel_channel.py)
    ("no_email", "No email address"),
    ("invalid_email", "Invalid email address"),
    ("email_blacklisted", "Email blacklisted"),
    ("email_opted_out", "Email opted out"),
    ("duplicate_email", "Duplicate email"),
    ("email_canceled", "Email canceled"),
    ("no_record", "Record not found"),
    ("not_a_lead", "Not a lead"),
    ("no_assignee", "Nobody to assign"),
]
# delivery states reported through sms.tracker, in rank order
SMS_TO_TRACE = {
    "outgoing": "queued",
    "process": "queued",
    "pending": "sent",
    "sent": "delivered",
    "error": "failed",
    "canceled": "canceled",
}
RANK = {
    "scheduled": 0,
    "deferred": 0,
    "queued": 1,
    "sent": 2,
    "failed": 3,
    "bounced": 3,
    "canceled": 3,
    "delivered": 4,
    "done": 4,
}
BOUNCE_FAILURES = {
    "sms_number_format",
    "sms_number_missing",
    "sms_invalid_destination",
    "sms_not_allowed",
    "sms_rejected",
}


class SmsMicrofunnelTrace(models.Model):
    _name = "sms.microfunnel.trace"
    _description = "SMS Funnel Step Trace"
    _inherit = ["sms.microfunnel.trace.channel"]  # sms_funnel_channel.py
    _order = "due_at, id"

    enrollment_id = fields.Many2one(
        "sms.microfunnel.enrollment", required=True, ondelete="cascade", index=True
    )
    step_id = fields.Many2one(
        "sms.microfunnel.step", required=True, ondelete="cascade", index=True
    )
    variant_id = fields.Many2one("sms.microfunnel.step.variant", ondelete="set null")
    step_type = fields.Selection(related="step_id.step_type", store=True)
    campaign_id = fields.Many2one(
        related="enrollment_id.campaign_id", store=True, index=True
    )
    company_id = fields.Many2one(related="enrollment_id.company_id", store=True)
    parent_trace_id = fields.Many2one(
        "sms.microfunnel.trace", ondelete="set null", index="btree_not_null"
    )
    number = fields.Char(related="enrollment_id.number", store=True)
    state = fields.Selection(
        TRACE_STATES,
        default="scheduled",
        required=True,
        index=True,
    )
    due_at = fields.Datetime("Due", required=True, index=True)
    defer_reason = fields.Selection(
        [
            ("window_closed", "Send window closed"),
            ("frequency_cap", "Frequency cap"),
            ("send_slot", "Waiting for the step's send slot"),
        ]
    )
    cancel_reason = fields.Selection(CANCEL_REASONS)
    # proof: the rule that allowed, deferred or canceled the message (gate)
    decision_rule = fields.Char(
        "Deciding Rule",
        readonly=True,
        help="Rule ID of the compliance book that allowed, deferred or blocked "
        "this message at its last evaluation.",
    )
    decision_source = fields.Text("Rule Source", readonly=True)
    failure_type = fields.Char()
    body = fields.Text("Sent Text", readonly=True)
    segments = fields.Integer(readonly=True)
    encoding = fields.Char(readonly=True)
    cost = fields.Float(
        readonly=True, groups="sms_microfunnel.group_sms_funnel_manager"
    )
    sms_id_int = fields.Integer("SMS ID", index="btree_not_null", readonly=True)
    sms_uuid = fields.Char("SMS UUID", index="btree_not_null", readonly=True)
    queued_at = fields.Datetime(readonly=True)
    first_attempt = fields.Boolean(
        "First Message of the Enrollment",
        compute="_compute_first_attempt",
        store=True,
        help="The enrollment's first queued message: it carries the enrollment's "
        "per-recipient figures in the funnel analysis.",
    )
    sent_at = fields.Datetime(readonly=True)
    delivered_at = fields.Datetime(readonly=True)
    clicked_at = fields.Datetime(readonly=True)
    replied_at = fields.Datetime(readonly=True)
    reply_text = EncryptedText(readonly=True)  # encrypted at rest
    # send time in the recipient's clock (models/sms_send_time.py)
    send_tz = fields.Char("Recipient Time Zone", readonly=True)
    send_weekday = fields.Selection(
        WEEKDAYS, "Local Weekday", compute="_compute_send_local_time", store=True
    )
    send_hour = fields.Selection(
        HOURS, "Local Hour", compute="_compute_send_local_time", store=True
    )
    send_slot_source = fields.Selection(SLOT_SOURCES, "Send Slot Used", readonly=True)

    _one_per_step = models.UniqueIndex(
        "(enrollment_id, step_id)", "A step runs once per enrollment."
    )

    @api.depends("queued_at", "enrollment_id.trace_ids.queued_at")
    def _compute_first_attempt(self):
        for trace in self:
            queued = trace.enrollment_id.trace_ids.filtered("queued_at")
            first = min(queued, key=lambda x: (x.queued_at, x.id), default=None)
            trace.first_attempt = bool(trace.queued_at) and trace == first

    @api.depends("queued_at", "send_tz")
    def _compute_send_local_time(self):
        self.env["sms.microfunnel.send.time"]._compute_local_time(self)

    # -- scheduling ---------------------------------------------------------------

    @api.model
    def _schedule(self, steps, enrollments, parents=None):
        """Create the traces of ``steps`` for ``enrollments`` (set-based).

        ``parents`` maps an enrollment id to the parent trace that triggered
        these steps (for waits after the previous step and branch conditions).
        """
        parents = parents or {}
        vals_list = []
        for step in steps:
            variants = step._pick_variants(len(enrollments))
            for enrollment, variant in zip(enrollments, variants, strict=True):
                parent = parents.get(enrollment.id, self.browse())
                due = enrollment._due_date(
                    step, anchor=parent.queued_at or fields.Datetime.now()
                )
                vals = {
                    "enrollment_id": enrollment.id,
                    "step_id": step.id,
                    "variant_id": variant.id,
                    "parent_trace_id": parent.id,
                    "due_at": due or fields.Datetime.now(),
                }
                if due is None:
                    vals.update(state="canceled", cancel_reason="no_date")
                vals_list.append(vals)
        traces = self.sudo().create(vals_list)
        self._wake_dispatch(traces)
        return traces

    @api.model
    def _wake_dispatch(self, traces):
        due = [t.due_at for t in traces if t.state in ("scheduled", "deferred")]
        if due:
            cron = self.env.ref("sms_microfunnel.ir_cron_sms_funnel_dispatch")
            cron._trigger(at=max(min(due), fields.Datetime.now()))

    # -- dispatch -----------------------------------------------------------------

    def _due_domain(self, now):
        return [
            ("state", "in", ("scheduled", "deferred")),
            ("due_at", "<=", now),
            ("campaign_id.state", "=", "running"),
        ]

    @api.model
    def _cron_dispatch(self, batch_size=500):
        """Claim due traces in locked batches and queue their SMS."""
        cron_model = self.env["ir.cron"]
        Funnel = self.env["sms.microfunnel.campaign"]
        Funnel._cron_scheduled_enrolments()
        Funnel._cron_decide_ab_winners()
        stale_snapshots = 0
        while True:
            now = fields.Datetime.now()
            # look further than one batch: rows another worker holds are skipped
            candidates = self.search(self._due_domain(now), limit=batch_size * 4)
            traces = self._claim(candidates, batch_size)
            if traces is None:
                # another worker queued some candidates and committed after
                # this transaction began: look again from a fresh snapshot
                stale_snapshots += 1
                if stale_snapshots > 5 or cron_model._commit_progress(0) <= 0:
                    break
                continue
            if not traces:
                break
            self._dispatch(traces, now)
            remaining = self.search_count(self._due_domain(now))
            if cron_model._commit_progress(len(traces), remaining=remaining) <= 0:
                break
            if not remaining:
                break
        scheduled = Funnel.search(
            [
                ("state", "=", "running"),
                ("enroll_at", "!=", False),
                ("audience_enrolled_at", "=", False),
            ],
            order="enroll_at",
            limit=1,
        )
        if scheduled:
            self.env.ref("sms_microfunnel.ir_cron_sms_funnel_dispatch")._trigger(
                at=scheduled.enroll_at
            )
        upcoming = self.search(
            [
                ("state", "in", ("scheduled", "deferred")),
                ("campaign_id.state", "=", "running"),
            ],
            order="due_at",
            limit=1,
        )
        if upcoming:
            self.env.ref("sms_microfunnel.ir_cron_sms_funnel_dispatch")._trigger(
                at=upcoming.due_at
            )

    def _claim(self, candidates, limit):
        """Lock up to ``limit`` of ``candidates``, skipping rows another worker
        holds (like ``try_lock_for_update``).  Returns None when one of them
        was changed by a transaction committed after ours began (PostgreSQL
        refuses the lock under Odoo's repeatable-read isolation): the caller
        starts again from a fresh snapshot, as Odoo's cron runner does when it
        acquires a job."""
        if not candidates:
            return candidates
        query = candidates._as_query(ordered=True)
        query.limit = limit
        cr = self.env.cr
        try:
            with cr.savepoint(flush=False):
                cr.execute(
                    SQL("%s FOR UPDATE SKIP LOCKED", query.select()),
                    log_exceptions=False,
                )
                ids = {row[0] for row in cr.fetchall()}
        except psycopg2.extensions.TransactionRollbackError:
            return None
        return candidates.filtered(lambda trace: trace.id in ids)

    def _dispatch(self, traces, now):
        """Decide and act for a locked batch (constant number of queries per
        batch and step, whatever its size)."""
        traces = traces.filtered(lambda t: t.state in ("scheduled", "deferred"))
        exited = traces.filtered(lambda t: t.enrollment_id.state != "active")
        exited.write({"state": "canceled", "cancel_reason": "exited"})
        traces -= exited
        unmet = traces.filtered(lambda t: not t._condition_met())
        unmet.write({"state": "canceled", "cancel_reason": "condition_not_met"})
        traces -= unmet
        traces = self._dispatch_channels(traces, now)  # email, activity, CRM
        by_group = {}
        for trace in traces:
            key = (trace.company_id, trace.step_id.message_class)
            by_group.setdefault(key, self.browse())
            by_group[key] |= trace
        for (company, message_class), group in by_group.items():
            decisions = self.env["sms.microfunnel.gate"]._evaluate_traces(
                group, message_class, company, now
            )
            # a step's send slot narrows the window (reason "send_slot")
            self.env["sms.microfunnel.send.time"]._apply_to_traces(
                group, decisions, company, now
            )
            allowed = self.browse()
            proofs = {}
            for trace in group:
                decision = decisions[trace.id]
                proof = (
                    decision.get("rule") or False,
                    decision.get("rule_source") or False,
                )
                if decision["action"] == "allow":
                    allowed |= trace
                    proofs.setdefault(proof, self.browse())
                    proofs[proof] |= trace
                elif decision["action"] == "defer":
                    trace.write(
                        {
                            "state": "deferred",
                            "due_at": decision["until"],
                            "defer_reason": decision.get("reason") or "window_closed",
                            "decision_rule": proof[0],
                            "decision_source": proof[1],
                        }
                    )
                else:
                    trace.write(
                        {
                            "state": "canceled",
                            "cancel_reason": decision["reason"],
                            "decision_rule": proof[0],
                            "decision_source": proof[1],
                        }
                    )
            for (rule, source), traces_ in proofs.items():
                traces_.write({"decision_rule": rule, "decision_source": source})
            allowed._queue_sms(company)
        self._wake_dispatch(traces.filtered(lambda t: t.state == "deferred"))

    def _condition_met(self):
        """Branch condition of this trace's step, read on its parent trace."""
        self.ensure_one()
        condition = self.step_id.condition
        if condition == "always":
            return True
        parent = self.parent_trace_id
        enrollment = self.enrollment_id
        if condition == "clicked":
            return bool(parent.clicked_at)
        if condition == "not_clicked":
            return not parent.clicked_at
        if condition == "replied":
            return bool(parent.replied_at)
        if condition == "not_replied":
            return not parent.replied_at
        if condition == "replied_keyword":
            wanted = {
                w.strip().casefold()
                for w in (self.step_id.condition_keyword or "").split(",")
                if w.strip()
            }
            return (parent.reply_text or "").strip().casefold() in wanted
        if condition == "converted":
            return bool(enrollment.converted_at)
        if condition == "not_converted":
            return not enrollment.converted_at
        return self._channel_condition_met(condition)

    def _queue_sms(self, company):
        """Create the outgoing SMS and their trackers for allowed traces."""
        if not self:
            return
        rules = self.env["sms.microfunnel.message.rules"]
        to_send, too_long = [], self.browse()
        for trace in self:
            step = trace.step_id
            record = trace.enrollment_id._record()
            composed = rules._compose(
                trace.variant_id.body or step.body,
                record=record,
                company=company,
                message_class=step.message_class,
                number=trace.number,
                values=trace.enrollment_id.values or {},
            )
            if composed.get("blocked"):
                if composed.get("blocked_reason") == "no_contact":
                    trace.write(
                        {
                            "state": "canceled",
                            "cancel_reason": "no_contact",
                            "decision_rule": "CA-CASL-IDENTIFICATION",
                        }
                    )
                    continue
                too_long |= trace
                continue
            to_send.append((trace, composed))
        too_long.write({"state": "canceled", "cancel_reason": "too_long"})
        if not to_send:
            return
        sms_records = (
            self.env["sms.sms"]
            .sudo()
            .with_company(company)
            .create(
                [
                    {
                        "number": trace.number,
                        "body": composed["text"],
                        "partner_id": trace.enrollment_id.partner_id.id,
                        "state": "outgoing",
                    }
                    for trace, composed in to_send
                ]
            )
        )
        sms_records._sms_funnel_track_links()
        self.env["sms.tracker"].sudo().create(
            [
                {"sms_uuid": sms.uuid, "sms_microfunnel_trace_id": trace.id}
                for sms, (trace, _composed) in zip(sms_records, to_send, strict=True)
            ]
        )
        now = fields.Datetime.now()
        for sms, (trace, composed) in zip(sms_records, to_send, strict=True):
            trace.write(
                {
                    "state": "queued",
                    "queued_at": now,
                    "sms_id_int": sms.id,
                    "sms_uuid": sms.uuid,
                    "body": sms.body,
                    "segments": composed.get("segments", 0),
                    "encoding": composed.get("encoding"),
                    "cost": composed.get("cost", 0.0),
                }
            )
        queued = self.browse([trace.id for trace, _c in to_send])
        queued._schedule_children()

    def _schedule_children(self):
        by_step = {}
        for trace in self:
            for child in trace.step_id.child_ids:
                by_step.setdefault(child, []).append(trace)
        for child, parents in by_step.items():
            enrollments = self.env["sms.microfunnel.enrollment"].browse(
                [p.enrollment_id.id for p in parents]
            )
            self._schedule(
                child, enrollments, parents={p.enrollment_id.id: p for p in parents}
            )

    # -- delivery, clicks, replies -----------------------------------------------------

    def _update_from_sms_state(self, sms_state, failure_type=False):
        """Apply a delivery report; a state never moves back (monotonic)."""
        new_state = SMS_TO_TRACE.get(sms_state)
        if new_state == "failed" and failure_type in BOUNCE_FAILURES:
            new_state = "bounced"
        if not new_state:
            return
        now = fields.Datetime.now()
        for trace in self:
            if RANK[new_state] <= RANK[trace.state] and not (
                new_state == "delivered" and trace.state in ("failed", "bounced")
            ):
                continue
            vals = {"state": new_state, "failure_type": failure_type or False}
            if new_state == "sent":
                vals["sent_at"] = now
            if new_state == "delivered":
                vals["delivered_at"] = now
                vals["sent_at"] = trace.sent_at or now
            trace.write(vals)

    def _set_clicked(self):
        now = fields.Datetime.now()
        for trace in self.filtered(lambda t: not t.clicked_at):
            trace.clicked_at = now
            if trace.campaign_id.goal == "link_clicked":
                trace.enrollment_id._mark_converted()

    def _set_replied(self, text, classification=None):
        now = fields.Datetime.now()
        for trace in self:
            trace.write({"replied_at": now, "reply_text": text})
            enrollment = trace.enrollment_id
            if classification == "opt_out":
                enrollment._exit("replied_stop")
            elif classification == "confirm" and enrollment.campaign_id.goal == (
                "replied_yes"
            ):
                enrollment._mark_converted()
