# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime, time, timedelta

from odoo import api, fields, models
from odoo.tools import SQL
from odoo.tools.sql import drop_index

from ..tools import send_window
from .sms_microfunnel_trace import bulk_insert

#: records enrolled per INSERT (bounded memory for 100,000 records and more)
ENROL_CHUNK = 10000
#: the index of earlier versions on the state, which Odoo keeps once the field
#: loses ``index`` (it cost every insert and update)
FORMER_INDEXES = ("sms_microfunnel_enrollment__state_index",)
#: audiences from this size refresh the statistics of the tables they fill
ANALYZE_FROM = 10000

ENROLLMENT_STATES = [
    ("active", "In progress"),
    ("completed", "Completed"),
    ("converted", "Converted"),
    ("exited", "Exited"),
]


class SmsMicrofunnelEnrollment(models.Model):
    _name = "sms.microfunnel.enrollment"
    _description = "SMS Funnel Enrollment"
    _order = "enrolled_at desc, id desc"
    _rec_name = "display_target"

    campaign_id = fields.Many2one(
        "sms.microfunnel.campaign",
        "Funnel",
        required=True,
        ondelete="cascade",
        index=True,
    )
    company_id = fields.Many2one(related="campaign_id.company_id", store=True)
    res_model = fields.Char("Target Model", required=True, readonly=True)
    res_id = fields.Many2oneReference("Target", model_field="res_model", required=True)
    display_target = fields.Char("Enrolled Record", compute="_compute_display_target")
    partner_id = fields.Many2one("res.partner", "Contact", index="btree_not_null")
    number = fields.Char("Number (E.164)", readonly=True)
    # not indexed: a handful of values; active enrolments of a funnel are
    # found through the unique index of one active enrolment per record
    state = fields.Selection(ENROLLMENT_STATES, default="active", required=True)
    exit_reason = fields.Selection(
        [
            ("opted_out", "Opted out"),
            ("replied_stop", "Replied STOP"),
            ("converted", "Converted"),
            ("manual", "Removed by a user"),
            ("stopped", "Funnel stopped"),
            ("erased", "Contact erased"),
        ]
    )
    enrolled_at = fields.Datetime(
        default=fields.Datetime.now, required=True, index=True
    )
    converted_at = fields.Datetime()
    ended_at = fields.Datetime()
    values = fields.Json(help="Extra placeholder values from the triggering event.")
    idempotency_key = fields.Char(index="btree_not_null", copy=False)
    segment_id = fields.Many2one(
        "sms.microfunnel.segment",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
        help="The funnel's segment, when the record was a member of it at "
        "enrollment: the reports give the rates per segment.",
    )
    trace_ids = fields.One2many("sms.microfunnel.trace", "enrollment_id")

    _one_active_per_record = models.UniqueIndex(
        "(campaign_id, res_model, res_id) WHERE state = 'active'",
        "This record is already in the funnel.",
    )
    _idempotency_unique = models.UniqueIndex(
        "(campaign_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
        "This event was already received.",
    )

    def init(self):
        result = super().init()
        for name in FORMER_INDEXES:
            drop_index(self.env.cr, name, self._table)
        return result

    @api.depends("res_model", "res_id")
    def _compute_display_target(self):
        for model_name in set(self.mapped("res_model")):
            records = self.filtered(lambda e, m=model_name: e.res_model == m)
            targets = self.env[model_name].browse(records.mapped("res_id")).exists()
            names = {t.id: t.display_name for t in targets}
            for enrollment in records:
                enrollment.display_target = names.get(enrollment.res_id, "—")

    def _record(self):
        self.ensure_one()
        return self.env[self.res_model].browse(self.res_id)

    @api.model
    def _create_for(self, campaign, records, values=None, idempotency_key=None):
        """Enroll ``records`` in ``campaign``, set-based; skip those already in.

        Chunks of ENROL_CHUNK records: per chunk, one INSERT of enrolments and
        one of their first traces, so 100,000 records cost a few dozen
        queries and bounded memory.  One transaction: the caller's (see
        ``_create_in_job`` for audiences too large for one)."""
        if idempotency_key and self.sudo().search_count(
            [
                ("campaign_id", "=", campaign.id),
                ("idempotency_key", "=", idempotency_key),
            ]
        ):
            return self.browse()
        created = []
        for ids, _more in self._enrol_chunks(
            campaign, records, values, idempotency_key
        ):
            created += ids
        if not created:
            return self.browse()
        self._analyze_after(len(created))
        return self.browse(created).with_env(self.env)

    def _create_in_job(self, campaign, records, keep=None):
        """Enroll ``records`` in ``campaign`` from a cron job, committing
        every chunk (``ir.cron._commit_progress``): a million records take
        minutes, more than one transaction may last.  Stops once the job's
        time is up; True when every record is in.  Run again, it skips
        those already in, so a stopped (or killed) enrolment resumes.
        ``keep(records)``: the records of a chunk to enroll (all without)."""
        Cron = self.env["ir.cron"]
        created = 0
        complete = True
        for ids, more in self._enrol_chunks(campaign, records, keep=keep):
            if not ids:  # everyone of this chunk was in already
                continue
            created += len(ids)
            if Cron._commit_progress() <= 0 and more:
                complete = False
                break
        self._analyze_after(created)
        Cron._commit_progress()
        return complete

    def _enrol_chunks(
        self, campaign, records, values=None, idempotency_key=None, keep=None
    ):
        """Enroll ``records`` chunk by chunk, yielding the ids of each
        chunk's new enrolments (their first traces scheduled) and whether
        chunks follow; ``keep``: see ``_create_in_job``."""
        existing_domain = [
            ("campaign_id", "=", campaign.id),
            ("res_model", "=", records._name),
        ]
        if campaign.reenroll == "after_exit":
            existing_domain.append(("state", "=", "active"))
        now = fields.Datetime.now()
        segment = campaign.segment_id
        root_steps = campaign.step_ids.filtered(lambda s: not s.parent_id)
        asked = list(dict.fromkeys(records.ids))
        # a funnel's first audience has nobody in yet: nothing to look up
        anyone_in = bool(self.sudo().search_count(existing_domain, limit=1))
        for start in range(0, len(asked), ENROL_CHUNK):
            chunk_ids = asked[start : start + ENROL_CHUNK]
            taken = set()
            if anyone_in:
                # those already in, looked up per chunk (bounded memory)
                in_chunk = [*existing_domain, ("res_id", "in", chunk_ids)]
                taken = {
                    row["res_id"]
                    for row in self.sudo().search_read(in_chunk, ["res_id"], load=None)
                }
            todo_ids = [rid for rid in chunk_ids if rid not in taken]
            more = start + ENROL_CHUNK < len(asked)
            todo = records.browse(todo_ids)
            if keep is not None and todo:
                todo = keep(todo)
            if not todo:
                yield [], more
                continue
            numbers = self._target_numbers(todo)
            partners = self._target_partners(todo)
            members = set(segment._filter_members(todo).ids) if segment else set()
            ids = bulk_insert(
                self.env,
                self._name,
                [
                    {
                        "campaign_id": campaign.id,
                        "company_id": campaign.company_id.id,
                        "res_model": todo._name,
                        "res_id": res_id,
                        "number": numbers.get(res_id) or False,
                        "partner_id": partners.get(res_id) or False,
                        "state": "active",
                        "enrolled_at": now,
                        "values": values or False,
                        "idempotency_key": idempotency_key or False,
                        "segment_id": segment.id if res_id in members else False,
                    }
                    for res_id in todo.ids
                ],
            )
            enrollments = self.sudo().browse(ids)
            self.env["sms.microfunnel.trace"]._schedule(root_steps, enrollments)
            if len(asked) > ENROL_CHUNK:
                self.env.invalidate_all()  # bounded memory
            yield ids, more

    def _analyze_after(self, created):
        """PostgreSQL plans the dispatch's claim from the tables' statistics:
        refreshed after a large enrolment, its first chunk reads the index of
        due traces instead of sorting them all (autovacuum would refresh them
        later, or never where it is off)."""
        if created >= ANALYZE_FROM:
            self.env.cr.execute(
                SQL("ANALYZE sms_microfunnel_enrollment, sms_microfunnel_trace")
            )

    @api.model
    def _target_numbers(self, records):
        """{record id: sanitised number} (one query)."""
        if "phone_sanitized" not in records._fields:
            return {}
        return {
            row["id"]: row["phone_sanitized"]
            for row in records.with_context(active_test=False).search_read(
                [("id", "in", records.ids)], ["phone_sanitized"]
            )
        }

    @api.model
    def _target_partners(self, records):
        if records._name == "res.partner":
            return {r.id: r.id for r in records}
        if "partner_id" in records._fields:
            return {
                row["id"]: row["partner_id"]
                for row in records.with_context(active_test=False).search_read(
                    [("id", "in", records.ids)], ["partner_id"], load=None
                )
            }
        return {}

    @api.model
    def _step_due(
        self, step, record, company, enrolled_at, anchor, zone=None, number=None
    ):
        """When ``step`` is due (UTC), or None when its date is empty: the one
        computation of a step's wait, for the scheduler and the dry-run.

        ``record``: the enrolled record, or a function returning it (read
        only by date-relative steps); ``anchor``: when the previous step went
        (``after_parent``); ``zone``: the recipient's zone when known (a date
        without a time means 09:00 there), else the gate's zone resolver is
        asked for it (``number``: the number it is reached at).
        """
        wait = timedelta(hours=step.wait_hours or 0)
        if step.wait_mode == "after_enrollment":
            return enrolled_at + wait
        if step.wait_mode == "after_parent":
            return anchor + wait
        record = record() if callable(record) else record
        value = record[step.date_field_id.name]
        if not value:
            return None
        if not isinstance(value, datetime):
            zone = zone or self._recipient_zone(record, company, step, number)
            local = datetime.combine(value, time(9, 0))
            value = send_window.local_to_utc(local, zone).replace(tzinfo=None)
        return value - wait if step.wait_mode == "before_date" else value + wait

    @api.model
    def _date_due(self, step, record, company, zone=None):
        """Due time of a date-relative step of ``record`` (UTC), or None when
        the record has no date."""
        return self._step_due(step, record, company, None, None, zone=zone)

    @api.model
    def _recipient_zone(self, record, company, step, number=None):
        """The gate's zone of ``record`` reached at ``number`` (default: the
        record's own number)."""
        if number is None:
            number = self._target_numbers(record).get(record.id)
        return self.env["sms.microfunnel.gate"]._target_zones(
            [(record.id, record._name, record.id, number)],
            company,
            step.message_class or "marketing",
        )[record.id]

    def _exit(self, reason):
        active = self.filtered(lambda e: e.state == "active")
        active.write(
            {
                "state": "converted" if reason == "converted" else "exited",
                "exit_reason": reason,
                "ended_at": fields.Datetime.now(),
            }
        )
        pending = active.trace_ids.filtered(
            lambda t: t.state in ("scheduled", "deferred")
        )
        pending.write({"state": "canceled", "cancel_reason": "exited"})

    def action_exit(self):
        self._exit("manual")

    def _mark_converted(self):
        now = fields.Datetime.now()
        for enrollment in self.filtered(lambda e: e.state in ("active", "completed")):
            window = timedelta(hours=enrollment.campaign_id.attribution_hours)
            if enrollment.campaign_id.attribution_hours and now > (
                enrollment.enrolled_at + window
            ):
                continue
            enrollment.converted_at = now
            if enrollment.campaign_id.exit_on_conversion:
                enrollment._exit("converted")
            else:
                enrollment.state = "converted"
