# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""One step for one enrollment: the unit of exactly-once dispatch.

State machine::

    scheduled ─► deferred (reason, until) ─► queued (sms.sms + sms.tracker
        │                                       │    + mailing.trace)
        └──────► canceled (reason)              ├─► sent ─► delivered
                                                └─► failed / bounced

An SMS step reports as Odoo's SMS mailings do: the step has its SMS
``mailing.mailing``, each SMS its ``mailing.trace``, which the SMS tracker
moves forward and the click route marks clicked; the funnel trace follows its
mailing trace (``models/mailing_trace.py``).

A unique index on (enrollment, step) and the row lock taken by the dispatch
cron guarantee at most one SMS per enrollment and step, even with several
workers or a crash between queueing and commit (the transaction is then
rolled back as a whole and the trace is picked up again).
"""

import json
import logging
import os
import random
import re
import string
import time
from contextlib import closing
from datetime import timedelta
from uuid import UUID

import psycopg2
from markupsafe import Markup

from odoo import Command, api, fields, models
from odoo.tools import SQL
from odoo.tools.mail import plaintext2html
from odoo.tools.sql import column_exists, create_index, drop_index

from ..tools import run_cache, send_window, sql_array
from ..tools.encrypted_fields import EncryptedText
from .sms_microfunnel_gate import _aware, _valid_zone
from .sms_microfunnel_message_rules import RECORD_FIELDS_READ
from .sms_microfunnel_send_time import HOURS, SLOT_SOURCES, WEEKDAYS

_logger = logging.getLogger(__name__)

#: a field of the enrolled record a body names (``object.<field>``)
_OBJECT_FIELD_RE = re.compile(r"\bobject\.(\w+)")
#: the main dispatch job (it also enrolls the audiences due)
DISPATCH_CRON = "sms_microfunnel.ir_cron_sms_funnel_dispatch"

#: dispatch chunk: starts at DEFAULT_CHUNK traces and adapts so that a chunk
#: (claimed, decided, queued and committed in one transaction) lasts about
#: CHUNK_SECONDS whatever the load, between MIN_CHUNK and MAX_CHUNK traces
#: (MAX_CHUNK bounds memory: Odoo's two cron threads of one server each hold
#: a chunk, and a fast server reaches the cap; the README's benchmarks give
#: the peak it leaves).  The first
#: chunk is small: a slow or busy server learns its pace from it instead of
#: holding a large first chunk for tens of seconds, and the jobs of several
#: servers share the start of a step instead of each taking a large part.
DEFAULT_CHUNK = 2000
MIN_CHUNK = 1000
MAX_CHUNK = 10000
CHUNK_SECONDS = 4.0
# generated column: the trace waits for the dispatch (scheduled or deferred)
DUE_COLUMN = "dispatch_due"
# room left in each page of traces for their status updates in place
TRACE_FILLFACTOR = 80
# indexes of earlier versions that Odoo keeps once their field or model
# index is gone: each costs every insert and update, and one on the state
# stops the status updates in place
FORMER_INDEXES = (
    "sms_microfunnel_trace_due_index",  # limited by the state
    "sms_microfunnel_trace__state_index",
    "sms_microfunnel_trace__enrollment_id_index",
    # the trace's SMS is never looked up by its id (by its UUID, or through
    # its SMS mailing trace)
    "sms_microfunnel_trace__sms_id_int_index",
)

#: the characters of a mailing trace's random code (mailing.trace._get_random_code)
CODE_CHARS = string.ascii_letters + string.digits
#: stored trace fields written by the dispatch, in its one UPDATE per chunk
DISPATCH_COLUMNS = {
    "state": "varchar",
    "due_at": "timestamp",
    "defer_reason": "varchar",
    "cancel_reason": "varchar",
    "send_tz": "varchar",
    "send_slot_source": "varchar",
    "queued_at": "timestamp",
    "sms_id_int": "int4",
    "sms_uuid": "varchar",
    "mailing_trace_id": "int4",
    "body": "text",
    "segments": "int4",
    "encoding": "varchar",
    "cost": "float8",
    "send_weekday": "varchar",
    "send_hour": "varchar",
    "first_attempt": "bool",
    "decision_rule": "varchar",
    "decision_source": "text",
}


def _uuid4_hexes(count):
    """``uuid4().hex`` of ``count`` SMS, from one read of the system's
    random source instead of one per SMS."""
    raw = os.urandom(16 * count)
    return (
        UUID(bytes=raw[i : i + 16], version=4).hex for i in range(0, 16 * count, 16)
    )


def reserve_ids(env, model_name, count):
    """``count`` new ids of ``model_name``'s table (one query)."""
    if not count:
        return []
    table = env[model_name]._table
    return [
        row[0]
        for row in env.execute_query(
            SQL(
                "SELECT nextval(%s) FROM generate_series(1, %s)",
                f"{table}_id_seq",
                count,
            )
        )
    ]


def _defaults(model, fnames):
    """``default_get`` of ``fnames``, memorised for the cursor's life (one
    dispatch run): every chunk inserts rows with the same defaults."""
    if not fnames:
        return {}
    context = model.env.context
    key = (
        "smf_defaults",
        model._name,
        tuple(fnames),
        model.env.uid,
        repr(sorted((k, v) for k, v in context.items() if k.startswith("default_"))),
    )
    memo = model.env.cr.cache
    if key not in memo:
        memo[key] = model.default_get(list(fnames))
    return dict(memo[key])


def _column_cast(field):
    return field.column_type[1].split("(")[0].lower()


def _column_value(field, value):
    """A value of ``field`` as its column holds it (None for NULL)."""
    if isinstance(value, models.BaseModel):
        value = value.id
    if field.type == "boolean":
        return bool(value)
    if value is None or value is False:
        return None
    if field.column_type[1] == "jsonb":
        return json.dumps(value)
    return value


def _column_values(field, values):
    """``_column_value`` of each of ``values`` (a loop per type, not a call
    per value: chunks hold tens of thousands of rows)."""
    if field.type == "boolean":
        return [bool(v) for v in values]
    if field.column_type[1] == "jsonb" or field.type == "many2one":
        return [_column_value(field, v) for v in values]
    return [None if v is False else v for v in values]


def insert_parts(model, arrays_by_name, constants_by_name=None):
    """The columns of an INSERT of ``model``'s rows: ``(arrays, constants)``,
    lists of ``(column, cast, values)`` and ``(column, cast, value)``.

    ``arrays_by_name`` ({field: values, one per row}) and
    ``constants_by_name`` ({field: value for every row}) are the given
    values; the other stored fields get their ORM default, computed once, and
    the magic columns the user and now."""
    constants_by_name = constants_by_name or {}
    env = model.env
    now = fields.Datetime.now()
    stored = {
        fname: field
        for fname, field in model._fields.items()
        if field.store and field.column_type and fname != "id"
    }
    missing = [
        fname
        for fname in stored
        if fname not in arrays_by_name
        and fname not in constants_by_name
        and fname not in models.MAGIC_COLUMNS
    ]
    defaults = _defaults(model, missing)
    magic = {"create_uid": env.uid, "write_uid": env.uid}
    magic.update(create_date=now, write_date=now)
    arrays, constants = [], []
    for fname, field in stored.items():
        cast = _column_cast(field)
        if fname in arrays_by_name:
            values = _column_values(field, arrays_by_name[fname])
            arrays.append((fname, cast, values))
            continue
        if fname in constants_by_name:
            value = constants_by_name[fname]
        elif fname in magic:
            value = magic[fname]
        elif fname in defaults:
            value = defaults[fname]
        else:
            continue
        constants.append((fname, cast, _column_value(field, value)))
    return arrays, constants


def insert_sql(table, arrays, constants):
    """``INSERT INTO table`` of one row per element of ``arrays`` in one
    statement: each column unnested from one array literal (parsed by
    PostgreSQL's array input at once, not as one expression per value),
    ``constants`` the same on every row."""
    names = [name for name, _cast, _values in arrays]
    names += [name for name, _cast, _value in constants]
    return SQL(
        "INSERT INTO %s (%s) SELECT u.*%s FROM unnest(%s) AS u",
        SQL.identifier(table),
        SQL(", ").join(SQL.identifier(name) for name in names),
        SQL("").join(
            SQL(", %s::%s", value, SQL(cast)) for _name, cast, value in constants
        ),
        SQL(", ").join(
            SQL("%s::%s[]", sql_array.column_text(values, cast), SQL(cast))
            for _name, cast, values in arrays
        ),
    )


def bulk_insert(env, model_name, vals_list):
    """Insert ``vals_list`` in one statement and return the new ids.

    For chunks of thousands of rows where ``create`` would run one INSERT per
    100 rows and compute each stored related field per record: the caller
    gives every stored value itself (related ones included).  Stored fields
    missing from the values get their ORM default, computed once; magic
    columns are filled.  The ORM cache of the model is invalidated.
    """
    if not vals_list:
        return []
    model = env[model_name]
    model.flush_model()
    given = set().union(*vals_list)
    arrays, constants = insert_parts(
        model,
        {
            fname: [vals.get(fname) for vals in vals_list]
            for fname in model._fields
            if fname in given
        },
    )
    ids = reserve_ids(env, model_name, len(vals_list))
    env.cr.execute(insert_sql(model._table, [("id", "int4", ids), *arrays], constants))
    model.invalidate_model()
    return ids


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
    # email, activity and CRM update steps
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
# funnel states in the order they may follow each other
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
# mailing.trace failure types of a still-born email -> funnel cancel reason
MAIL_FAILURE_TO_REASON = {
    "mail_bl": "email_blacklisted",
    "mail_optout": "email_opted_out",
    "mail_email_missing": "no_email",
    "mail_email_invalid": "invalid_email",
    "mail_dup": "duplicate_email",
}
MAIL_BOUNCE_FAILURES = {"mail_bounce", "mail_email_invalid", "mail_email_missing"}
# SMS failure types that mean the number itself is wrong: a bounce
SMS_BOUNCE_FAILURES = {
    "sms_number_format",
    "sms_number_missing",
    "sms_invalid_destination",
    "sms_not_allowed",
    "sms_rejected",
}
UNSUBSCRIBE_PATH = "/sms/unsubscribe/"


def sms_report_state(event, failure_type=False):
    """The state an SMS trace moves to (if its state ranks lower) on report
    ``event`` of its SMS mailing trace, None for an event that moves nothing
    ("opened": Odoo marks an SMS opened when it is clicked)."""
    new_state = event
    if event == "failed" and failure_type in SMS_BOUNCE_FAILURES:
        new_state = "bounced"
    if new_state not in ("sent", "delivered", "failed", "bounced", "canceled"):
        return None
    return new_state


class SmsMicrofunnelTrace(models.Model):
    _name = "sms.microfunnel.trace"
    _description = "SMS Funnel Step Trace"
    _order = "due_at, id"

    # found by enrolment through the unique index on (enrollment_id, step_id)
    enrollment_id = fields.Many2one(
        "sms.microfunnel.enrollment", required=True, ondelete="cascade"
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
    # not indexed: a handful of values; the dispatch reads the partial index
    # of due traces, reports go through the funnel's index
    state = fields.Selection(TRACE_STATES, default="scheduled", required=True)
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
    sms_id_int = fields.Integer("SMS ID", readonly=True)
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
    # send time in the recipient's clock (models/sms_microfunnel_send_time.py)
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

    def init(self):
        result = super().init()
        self._create_due_index()
        return result

    def _create_due_index(self):
        """What the dispatchers claim: due traces in due order.

        The index is limited by a generated column (``DUE_COLUMN``: scheduled
        or deferred), not by ``state``: PostgreSQL then updates a sent trace
        in place when its status callback moves it on (queued, sent,
        delivered), since no indexed column changes value (a HOT update,
        without a new entry in each of the table's indexes).  The pages keep
        some room for those updates (``fillfactor``)."""
        cr = self.env.cr
        if not column_exists(cr, self._table, DUE_COLUMN):
            cr.execute(
                SQL(
                    "ALTER TABLE %s ADD COLUMN %s boolean GENERATED ALWAYS AS "
                    "(state IN ('scheduled', 'deferred')) STORED",
                    SQL.identifier(self._table),
                    SQL.identifier(DUE_COLUMN),
                )
            )
        for name in FORMER_INDEXES:
            drop_index(cr, name, self._table)
        create_index(
            cr,
            "sms_microfunnel_trace_due_claim_index",
            self._table,
            ["due_at", "id"],
            where=DUE_COLUMN,
        )
        cr.execute(
            SQL(
                "ALTER TABLE %s SET (fillfactor = %s)",
                SQL.identifier(self._table),
                TRACE_FILLFACTOR,
            )
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
        """Create the traces of ``steps`` for ``enrollments`` (set-based: one
        INSERT for all of them, whatever their number).

        ``parents`` maps an enrollment id to the parent trace that triggered
        these steps (for waits after the previous step and branch conditions).
        """
        parents = parents or {}
        enrollments = enrollments.sudo()
        if not enrollments or not steps:
            return self.browse()
        self.env["sms.microfunnel.enrollment"].flush_model()
        # plain rows, not the ORM: this loop runs once per enrolment and step
        rows = {
            row[0]: row
            for row in self.env.execute_query(
                SQL(
                    "SELECT id, enrolled_at, res_model, res_id, campaign_id,"
                    " company_id, number FROM sms_microfunnel_enrollment"
                    " WHERE id = ANY(%s)",
                    enrollments.ids,
                )
            )
        }
        if any(
            step.wait_mode not in ("after_enrollment", "after_parent") for step in steps
        ):
            # date-relative steps read a date on the records: one query per model
            for model_name, group in enrollments.grouped("res_model").items():
                self.env[model_name].sudo().with_context(active_test=False).browse(
                    group.mapped("res_id")
                ).fetch([f.name for f in steps.date_field_id if f.model == model_name])
        now = fields.Datetime.now()
        zones = self._schedule_zones(steps, enrollments)
        step_due = self.env["sms.microfunnel.enrollment"]._step_due
        companies = {}
        vals_list = []
        for step in steps:
            variants = step._pick_variants(len(enrollments))
            message_class = step.message_class or "marketing"
            for enrollment_id, variant in zip(enrollments.ids, variants, strict=True):
                _id, enrolled_at, res_model, res_id, funnel_id, company_id, number = (
                    rows[enrollment_id]
                )
                if company_id not in companies:
                    companies[company_id] = self.env["res.company"].browse(company_id)
                parent = parents.get(enrollment_id, self.browse())
                due = step_due(
                    step,
                    # read by date-relative steps only
                    lambda model=res_model, rid=res_id: (
                        self.env[model].sudo().browse(rid)
                    ),
                    companies[company_id],
                    enrolled_at,
                    parent.queued_at or now,
                    zone=zones.get((message_class, enrollment_id)),
                    number=number,
                )
                vals = {
                    "enrollment_id": enrollment_id,
                    "step_id": step.id,
                    "variant_id": variant.id,
                    "parent_trace_id": parent.id,
                    "due_at": due or now,
                    "state": "scheduled",
                    "step_type": step.step_type,
                    "campaign_id": funnel_id,
                    "company_id": company_id,
                    "number": number,
                    "first_attempt": False,
                }
                if due is None:
                    vals.update(state="canceled", cancel_reason="no_date")
                vals_list.append(vals)
        traces = self.browse(bulk_insert(self.env, self._name, vals_list))
        self.env["sms.microfunnel.enrollment"].invalidate_model(["trace_ids"])
        self._wake_dispatch(
            [v["due_at"] for v in vals_list if v["state"] == "scheduled"]
        )
        return traces.with_env(self.env)

    @api.model
    def _schedule_zones(self, steps, enrollments):
        """{(message class, enrollment id): zone} of the enrollments when a
        step is due on a date without a time (09:00 in the recipient's zone):
        the gate's zone resolver, one batch per company and message class."""
        classes = {
            step.message_class or "marketing"
            for step in steps
            if step.wait_mode in ("before_date", "after_date")
            and step.date_field_id.ttype == "date"
        }
        zones = {}
        gate = self.env["sms.microfunnel.gate"]
        for message_class in classes:
            for company, group in enrollments.grouped("company_id").items():
                targets = [(e.id, e.res_model, e.res_id, e.number) for e in group]
                found = gate._target_zones(
                    targets, company or self.env.company, message_class
                )
                zones.update(
                    ((message_class, key), zone) for key, zone in found.items()
                )
        return zones

    @api.model
    def _dispatch_crons(self):
        """The dispatch jobs: the main one and its parallel workers."""
        main = self.env.ref(DISPATCH_CRON)
        workers = (
            self.env["ir.cron"]
            .sudo()
            .search(
                [
                    ("model_id.model", "=", self._name),
                    ("code", "like", "_cron_dispatch(worker="),
                ]
            )
        )
        return main.sudo() | workers

    @api.model
    def _wake_dispatch(self, traces_or_dates):
        """Trigger the dispatch jobs at the first due date of ``traces_or_dates``
        (traces, or naive UTC datetimes)."""
        if isinstance(traces_or_dates, models.BaseModel):
            due = [
                t.due_at
                for t in traces_or_dates
                if t.state in ("scheduled", "deferred")
            ]
        else:
            due = list(traces_or_dates)
        if due:
            at = max(min(due), fields.Datetime.now())
            for cron in self._dispatch_crons():
                cron._trigger(at=at)

    # -- dispatch -----------------------------------------------------------------

    def _due_sql(self, now=None):
        """The traces of running funnels waiting to go, due by ``now`` when
        given.  Written for the partial index of scheduled and deferred
        traces on (due_at, id), which gives them in due order without reading
        the others: the running funnels are an array, not a join (joined,
        PostgreSQL sorts every due trace for each chunk: seconds per chunk at
        a million).  The query names the fields it reads, which Odoo flushes
        before running it (``execute_query``, ``flush_query``)."""
        return SQL(
            """
            FROM sms_microfunnel_trace t
           WHERE t.%s
             AND %s
             AND t.campaign_id = ANY(ARRAY(
                     SELECT id FROM sms_microfunnel_campaign WHERE state = 'running'
                 ))
            """,
            SQL.identifier(DUE_COLUMN),
            SQL("t.due_at <= %s", now) if now else SQL("TRUE"),
            to_flush=[self._fields[name] for name in ("state", "due_at", "campaign_id")]
            + [self.env["sms.microfunnel.campaign"]._fields["state"]],
        )

    @api.model
    def _cron_dispatch(self, batch_size=None, worker=False):
        """Claim due traces in chunks and queue their SMS.

        Several jobs run this at once (the main job and its workers, on one
        or several servers): each chunk is claimed with ``FOR UPDATE SKIP
        LOCKED``, decided and queued, then committed through
        ``_commit_progress``.  Without ``batch_size`` the chunk adapts to
        last about ``CHUNK_SECONDS``.  Only the main job enrols scheduled
        audiences and decides A/B winners (``worker=True``: a worker)."""
        cron_model = self.env["ir.cron"]
        Funnel = self.env["sms.microfunnel.campaign"]
        if not worker:
            Funnel._cron_scheduled_enrolments()
            Funnel._cron_decide_ab_winners()
        size = batch_size or DEFAULT_CHUNK
        # the jobs that may share this run's traces (each server runs some)
        crons = None if batch_size else self._dispatch_crons().filtered("active")
        stale_snapshots = 0
        counted = False
        left_at_most = None
        # the configuration its chunks read, kept across their commits
        kept = run_cache.RunCache()
        self = self.with_context(smf_run_cache=kept)  # noqa: PLW0642
        woken = self
        while True:
            started = time.monotonic()
            now = fields.Datetime.now()
            traces = self._claim_due(now, size)
            if traces is None:
                # another worker queued some candidates and committed after
                # this transaction began: look again from a fresh snapshot
                stale_snapshots += 1
                if stale_snapshots > 5 or cron_model._commit_progress(0) <= 0:
                    break
                continue
            if not traces:
                break
            kept.refresh(self.env)
            try:
                dispatched = traces._dispatch(traces, now)
            except psycopg2.extensions.TransactionRollbackError:
                # a concurrent dispatcher committed a row this chunk also
                # had to create (a step's link tracker): start again from a
                # fresh snapshot, where it is found
                self.env.cr.rollback()
                kept.forget()
                stale_snapshots += 1
                if stale_snapshots > 5:
                    break
                continue
            if dispatched:
                # the sending queue is woken once its trigger is committed
                woken = self.with_context(smf_sms_queue_woken=True)
            full = len(traces) >= size
            # what is left is counted once per run, then Odoo subtracts each
            # chunk from it (a count per chunk reads every due trace again)
            remaining = None
            if not counted:
                remaining = self._count_due(now) if full else 0
                counted = True
                # at most what is left: this count less this job's chunks
                left_at_most = remaining
            else:
                left_at_most -= len(traces)
            self.env.flush_all()
            kept.keep(self.env)
            if cron_model._commit_progress(len(traces), remaining=remaining) <= 0:
                break
            self = woken  # noqa: PLW0642
            if not full:
                break
            if not batch_size:
                elapsed = max(time.monotonic() - started, 0.05)
                size = int(
                    min(MAX_CHUNK, max(MIN_CHUNK, size * CHUNK_SECONDS / elapsed))
                )
                size = self._share_of_the_rest(now, size, crons, left_at_most)
            self.env.invalidate_all()  # bounded memory: one chunk at a time
        self._wake_later()

    @api.model
    def _wake_later(self):
        scheduled = self.env["sms.microfunnel.campaign"].search(
            [
                ("state", "=", "running"),
                ("enroll_at", "!=", False),
                ("audience_enrolled_at", "=", False),
            ],
            order="enroll_at",
            limit=1,
        )
        if scheduled:
            self.env.ref(DISPATCH_CRON)._trigger(at=scheduled.enroll_at)
        upcoming = self.env.execute_query(
            SQL("SELECT t.due_at %s ORDER BY t.due_at, t.id LIMIT 1", self._due_sql())
        )
        if upcoming:
            self._wake_dispatch([upcoming[0][0]])

    @api.model
    def _share_of_the_rest(self, now, size, crons, left_at_most=None):
        """The next chunk's size: ``size``, or near the end of the due traces
        this job's share of what is left among the dispatch jobs ``crons``
        running now, so that they finish together instead of one running a
        full last chunk while the others have stopped.  Near the end only
        (``left_at_most``, when known, says it is not yet): one count of a
        few chunks at most and one look at the running jobs."""
        if not crons or len(crons) < 2:
            return size
        if left_at_most is not None and left_at_most >= len(crons) * size:
            return size
        left = self._count_due(now, cap=len(crons) * size)
        if left < len(crons) * size:
            jobs = self._running_jobs(crons)
            if jobs > 1 and left < jobs * size:
                size = max(MIN_CHUNK, -(-left // jobs))
        return size

    @api.model
    def _running_jobs(self, crons):
        """How many of the jobs ``crons`` run now.  Odoo's cron runner locks
        the row of each job it runs for as long as it runs: the free rows are
        locked in a savepoint rolled back at once (nothing stays locked) to
        count them; under a conflict, every job counts as running."""
        cr = self.env.cr
        try:
            with closing(cr.savepoint(flush=False)):
                cr.execute(
                    SQL(
                        "SELECT count(*) FROM (SELECT id FROM ir_cron "
                        "WHERE id = ANY(%s) FOR NO KEY UPDATE SKIP LOCKED) AS free",
                        crons.ids,
                    ),
                    log_exceptions=False,
                )
                free = cr.fetchone()[0]
        except psycopg2.extensions.TransactionRollbackError:
            return len(crons)
        return len(crons) - free

    @api.model
    def _count_due(self, now, cap=1000000):
        """Due traces left (counted up to ``cap``), for the job's progress."""
        return self.env.execute_query(
            SQL(
                "SELECT count(*) FROM (SELECT 1 %s LIMIT %s) AS due",
                self._due_sql(now),
                cap,
            )
        )[0][0]

    @api.model
    def _claim_due(self, now, limit):
        """Lock up to ``limit`` due traces no other worker holds (``FOR UPDATE
        SKIP LOCKED``, in due order).  None when one of them was changed by a
        transaction committed after ours began (PostgreSQL refuses the lock
        under Odoo's repeatable-read isolation): the caller starts again
        from a fresh snapshot, as Odoo's cron runner does."""
        query = SQL(
            "SELECT t.id %s ORDER BY t.due_at, t.id LIMIT %s "
            "FOR UPDATE OF t SKIP LOCKED",
            self._due_sql(now),
            limit,
        )
        self.env.flush_query(query)
        cr = self.env.cr
        try:
            with cr.savepoint(flush=False):
                cr.execute(query, log_exceptions=False)
                ids = [row[0] for row in cr.fetchall()]
        except psycopg2.extensions.TransactionRollbackError:
            return None
        return self.browse(ids)

    def _claim(self, candidates, limit):
        """Lock up to ``limit`` of ``candidates``, skipping rows another worker
        holds (like ``try_lock_for_update``).  Returns None when one of them
        was changed by a transaction committed after ours began."""
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

    def _prefetch_chunk(self):
        """Read everything the dispatch of these traces needs in a constant
        number of queries (one per model), whatever their number."""
        traces = self.sudo()
        if not traces:
            return
        traces.fetch(
            [
                "state",
                "enrollment_id",
                "step_id",
                "variant_id",
                "campaign_id",
                "company_id",
                "number",
                "parent_trace_id",
                "due_at",
                "step_type",
            ]
        )
        enrollments = traces.enrollment_id
        enrollments.fetch(
            [
                "state",
                "res_model",
                "res_id",
                "partner_id",
                "values",
                "segment_id",
                "converted_at",
                "campaign_id",
                "number",
                "enrolled_at",
                "company_id",
            ]
        )
        steps = traces.step_id
        steps.fetch(
            [
                "body",
                "message_class",
                "condition",
                "condition_keyword",
                "step_type",
                "child_ids",
                "campaign_id",
                "wait_mode",
                "wait_hours",
            ]
        )
        if traces.variant_id:
            traces.variant_id.fetch(["body"])
        if any(step.condition != "always" for step in steps):
            traces.parent_trace_id.fetch(
                ["clicked_at", "replied_at", "reply_text", "queued_at"]
            )

    def _chunk_rows(self):
        """{trace id: plain row} of these traces with their enrolment (one
        query): the dispatch reads these, not the ORM.  The recipient's zone
        is the gate's, recorded with its decision (``send_tz``).

        The enrolment and whether it already queued a message are read per
        trace through their indexes (``LATERAL … LIMIT 1`` keeps PostgreSQL
        from hashing every enrolment and every queued trace of the database
        instead, which it prefers for a chunk of a few thousand and which
        costs more with each audience ever sent)."""
        self.env.flush_all()
        result = self.env.execute_query(
            SQL(
                """
                SELECT t.id, t.state, t.step_id, t.variant_id, t.campaign_id,
                       t.company_id, t.number, t.send_tz, e.state, e.res_model,
                       e.res_id, e.partner_id, e.values, e.segment_id,
                       t.enrollment_id, q.queued IS NOT NULL
                  FROM sms_microfunnel_trace t
                  JOIN LATERAL (
                           SELECT e.state, e.res_model, e.res_id, e.partner_id,
                                  e.values, e.segment_id
                             FROM sms_microfunnel_enrollment e
                            WHERE e.id = t.enrollment_id
                            LIMIT 1
                       ) e ON TRUE
             LEFT JOIN LATERAL (
                           SELECT 1 AS queued FROM sms_microfunnel_trace o
                            WHERE o.enrollment_id = t.enrollment_id
                              AND o.queued_at IS NOT NULL
                            LIMIT 1
                       ) q ON TRUE
                 WHERE t.id = ANY(%s)
                """,
                self.ids,
            )
        )
        keys = (
            "id",
            "state",
            "step_id",
            "variant_id",
            "campaign_id",
            "company_id",
            "number",
            "send_tz",
            "enrollment_state",
            "res_model",
            "res_id",
            "partner_id",
            "values",
            "segment_id",
            "enrollment_id",
            "enrollment_queued",
        )
        return {row[0]: dict(zip(keys, row, strict=True)) for row in result}

    def _dispatch(self, traces, now):
        """Decide and act for a locked chunk: a constant number of queries
        per chunk whatever its size; the traces are written by one UPDATE."""
        rows = traces._chunk_rows()
        Step = self.env["sms.microfunnel.step"].sudo()
        steps = Step.browse({row["step_id"] for row in rows.values()})
        steps.fetch(["body", "message_class", "condition", "step_type", "child_ids"])
        steps = {step.id: step for step in steps}
        live = [
            tid
            for tid in traces.ids
            if tid in rows and rows[tid]["state"] in ("scheduled", "deferred")
        ]
        orm = [
            tid
            for tid in live
            if steps[rows[tid]["step_id"]].condition != "always"
            or steps[rows[tid]["step_id"]].step_type != "sms"
        ]
        if orm:
            self.browse(orm)._prefetch_chunk()
        updates = {}
        for tid in live:
            step = steps[rows[tid]["step_id"]]
            if rows[tid]["enrollment_state"] != "active":
                updates[tid] = {"state": "canceled", "cancel_reason": "exited"}
            elif step.condition != "always" and not self.browse(tid)._condition_met():
                updates[tid] = {
                    "state": "canceled",
                    "cancel_reason": "condition_not_met",
                }
        live = [tid for tid in live if tid not in updates]
        self._write_chunk(updates)
        updates = {}
        # email, activity, CRM steps (ORM writes of their own)
        others = [tid for tid in live if steps[rows[tid]["step_id"]].step_type != "sms"]
        if others:
            self._dispatch_channels(self.browse(others), now)
            live = [tid for tid in live if tid not in set(others)]
        by_group = {}
        for tid in live:
            row = rows[tid]
            key = (row["company_id"], steps[row["step_id"]].message_class)
            by_group.setdefault(key, []).append(tid)
        queued = self.browse()
        deferred = []
        for (company_id, message_class), ids in by_group.items():
            company = self.env["res.company"].browse(company_id)
            group = self.browse(ids)
            decisions = self.env["sms.microfunnel.gate"]._evaluate_traces(
                group, message_class, company, now, rows=rows
            )
            # a step's send slot narrows the window (reason "send_slot")
            self.env["sms.microfunnel.send.time"]._apply_to_traces(
                group, decisions, company, now, write=False, rows=rows, steps=steps
            )
            allowed = []
            for tid in ids:
                decision = decisions[tid]
                vals = updates.setdefault(tid, {})
                # proof: the rule that allowed, deferred or canceled it
                vals["decision_rule"] = decision.get("rule") or False
                vals["decision_source"] = decision.get("rule_source") or False
                if decision["action"] != "block":
                    vals["send_tz"] = decision.get("slot_tz") or False
                    vals["send_slot_source"] = decision.get("slot_source") or False
                if decision["action"] == "allow":
                    allowed.append(tid)
                elif decision["action"] == "defer":
                    vals.update(
                        state="deferred",
                        due_at=decision["until"],
                        defer_reason=decision.get("reason") or "window_closed",
                    )
                    deferred.append(decision["until"])
                else:
                    vals.update(state="canceled", cancel_reason=decision["reason"])
            queued |= self.browse(allowed)._queue_sms(
                company, updates, rows=rows, steps=steps
            )
        self._write_chunk(updates)
        parents = queued.filtered(lambda t: steps[rows[t.id]["step_id"]].child_ids)
        parents._schedule_children()
        self._wake_dispatch([d for d in deferred if d])
        return queued

    def _write_chunk(self, updates):
        """Write {trace id: vals} in one UPDATE (DISPATCH_COLUMNS only) and
        set the stored computed fields that depend on them.  Each column is
        sent as one array literal; a column given for some traces only keeps
        the others' value."""
        updates = {tid: vals for tid, vals in updates.items() if vals}
        if not updates:
            return
        self.env.flush_all()
        ids = list(updates)
        names = sorted({name for vals in updates.values() for name in vals})
        unknown = set(names) - set(DISPATCH_COLUMNS)
        if unknown:
            raise ValueError(f"not a dispatch column: {sorted(unknown)}")
        arrays = [("id", "int4", ids)]
        assignments = []
        for name in names:
            cast = DISPATCH_COLUMNS[name]
            values = [updates[tid].get(name, False) for tid in ids]
            if cast != "bool":
                values = [None if value is False else value for value in values]
            arrays.append((name, cast, values))
            column = SQL.identifier(name)
            present = [name in updates[tid] for tid in ids]
            if all(present):
                assignments.append(SQL("%s = u.%s", column, column))
                continue
            flag = SQL.identifier(f"has_{name}")
            arrays.append((f"has_{name}", "bool", present))
            assignments.append(
                SQL(
                    "%s = CASE WHEN u.%s THEN u.%s ELSE t.%s END",
                    column,
                    flag,
                    column,
                    column,
                )
            )
        self.env.cr.execute(
            SQL(
                """
                UPDATE sms_microfunnel_trace t
                   SET %s, write_date = %s, write_uid = %s
                  FROM unnest(%s) AS u(%s)
                 WHERE t.id = u.id
                """,
                SQL(", ").join(assignments),
                fields.Datetime.now(),
                self.env.uid,
                SQL(", ").join(
                    SQL("%s::%s[]", sql_array.column_text(values, cast), SQL(cast))
                    for _name, cast, values in arrays
                ),
                SQL(", ").join(SQL.identifier(name) for name, _c, _v in arrays),
            )
        )
        self.invalidate_model([*names, "write_date", "write_uid"])

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

    def _queue_sms(self, company, updates=None, rows=None, steps=None):
        """Queue the outgoing SMS, their SMS mailing traces and their trackers
        for allowed traces of ``company``, as Odoo's SMS mailings do (one
        ``mailing.mailing`` per step): the whole chunk is composed at once
        (one render per body and language, one link tracker per step and
        link, Odoo's ``/s/<sms id>`` suffix on each short link) and inserted
        in one statement per table.  The traces' new values go to
        ``updates`` ({trace id: vals}, written by the caller in one UPDATE),
        else are written here.  ``rows``/``steps``: the dispatcher's plain
        rows and steps.  Returns the queued traces."""
        if not self:
            return self.browse()
        own_write = updates is None
        updates = {} if own_write else updates
        if rows is None:
            rows = self._chunk_rows()
        if steps is None:
            steps = {step.id: step for step in self.sudo().step_id}
        mailings = self._step_mailings(
            [steps[step_id] for step_id in {rows[tid]["step_id"] for tid in self.ids}]
        )
        sms_ids = reserve_ids(self.env, "sms.sms", len(self))
        composed_list = self._compose_chunk(company, rows, steps, mailings, sms_ids)
        queued = self._queue_composed(
            company, composed_list, sms_ids, rows, mailings, updates
        )
        if own_write:
            self._write_chunk(updates)
        return self.browse(queued)

    @api.model
    def _step_mailings(self, steps):
        """{step id: its SMS mailing} (created when the funnel starts; a step
        added later gets it here, by one dispatcher: the steps are locked
        first, and a concurrent dispatcher that created it meanwhile makes
        this chunk roll back and be retried from a fresh snapshot)."""
        missing = [step.id for step in steps if not step.mailing_id]
        if missing:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM sms_microfunnel_step WHERE id = ANY(%s) "
                    "FOR NO KEY UPDATE",
                    missing,
                ),
                log_exceptions=False,
            )
        return {step.id: step._channel_mailing() for step in steps}

    def _chunk_records(self, rows, steps):
        """The variants ({id: variant}) and enrolled records ({(model, id):
        record}) of these traces: one query per model.  The records' fields
        read are those the bodies name (``object.<field>``) and those the
        composition reads (language, country, number); any other field a
        body reaches is read by the ORM on first use, for the whole chunk."""
        variant_ids = {rows[tid]["variant_id"] for tid in self.ids} - {None}
        Variant = self.env["sms.microfunnel.step.variant"].sudo()
        variants = Variant.browse(variant_ids)
        if variants:
            variants.fetch(["body"])
        bodies = [step.body or "" for step in steps.values()]
        bodies += [variant.body or "" for variant in variants]
        wanted = set(RECORD_FIELDS_READ)
        for body in bodies:
            wanted.update(_OBJECT_FIELD_RE.findall(body))
        by_model = {}
        for tid in self.ids:
            row = rows[tid]
            by_model.setdefault(row["res_model"], set()).add(row["res_id"])
        records = {}
        for model_name, res_ids in by_model.items():
            Model = self.env[model_name].sudo().with_context(active_test=False)
            names = [
                name
                for name in sorted(wanted)
                if name in Model._fields
                and Model._fields[name].store
                and Model._fields[name].column_type
            ]
            found = Model.search_fetch([("id", "in", sorted(res_ids))], names)
            for record in found:
                records[(model_name, record.id)] = record
        return {v.id: v for v in variants}, records

    def _compose_chunk(self, company, rows, steps, mailings, sms_ids):
        """The ``_compose`` result of each trace (same order), composed per
        step and message class in batches, links tracked with the step's
        mailing's UTM values."""
        variants, records = self._chunk_records(rows, steps)
        entries = []
        groups = {}
        for index, tid in enumerate(self.ids):
            row = rows[tid]
            variant = variants.get(row["variant_id"])
            step = steps[row["step_id"]]
            entries.append(
                {
                    "body": (variant and variant.body) or step.body,
                    "record": records.get((row["res_model"], row["res_id"])),
                    "number": row["number"],
                    "values": row["values"] or {},
                }
            )
            groups.setdefault((step.message_class, step.id), []).append(index)
        composed_list = [None] * len(entries)
        rules = self.env["sms.microfunnel.message.rules"]
        for (message_class, step_id), indexes in groups.items():
            results = rules._compose_batch(
                [entries[i] for i in indexes],
                company,
                message_class=message_class,
                sms_ids=[sms_ids[i] for i in indexes],
                link_tracker_vals=mailings[step_id]._get_link_tracker_values(),
                mailing=mailings[step_id],
            )
            for i, result in zip(indexes, results, strict=True):
                composed_list[i] = result
        return composed_list

    def _queue_composed(self, company, composed_list, sms_ids, rows, mailings, updates):
        """Insert the SMS, mailing traces and trackers of the composed
        messages (one statement) and put the traces' new values in
        ``updates``.  Returns the ids of the queued traces."""
        now = fields.Datetime.now()
        sms_rows, mailing_traces, queued = [], [], []
        zones = {}
        company_tz = company.partner_id.tz
        code_size = self.env["mailing.trace"].CODE_SIZE
        uuids = _uuid4_hexes(len(sms_ids))
        for tid, composed, sms_id in zip(self.ids, composed_list, sms_ids, strict=True):
            row = rows[tid]
            vals = updates.setdefault(tid, {})
            if composed.get("blocked"):
                self._blocked_vals(composed, vals)
                continue
            mailing = mailings[row["step_id"]]
            sms_rows.append(
                {
                    "id": sms_id,
                    "uuid": next(uuids),
                    "number": row["number"],
                    # the text Odoo's SMS mailing rewriter makes for this id
                    "body": composed["counted_text"],
                    "partner_id": row["partner_id"],
                    "mailing_id": mailing.id,
                }
            )
            # mass_mailing_sms: sms_composer._prepare_mass_sms_trace_values
            mailing_traces.append(
                {
                    "mass_mailing_id": mailing.id,
                    "campaign_id": mailing.campaign_id.id,
                    "model": row["res_model"],
                    "res_id": row["res_id"],
                    # mailing.trace._get_random_code, without a call per SMS
                    "sms_code": "".join(random.choices(CODE_CHARS, k=code_size)),
                    "sms_number": row["number"],
                    "sms_id_int": sms_id,
                }
            )
            # the gate's zone of the recipient, recorded with the decision
            zone = vals.get("send_tz") or row["send_tz"] or company_tz
            if zone not in zones:
                weekday, hour = send_window.local_weekday_hour(
                    _aware(now), zone if _valid_zone(zone) else "UTC"
                )
                zones[zone] = (str(weekday), f"{hour:02d}")
            vals.update(
                state="queued",
                queued_at=now,
                sms_id_int=sms_id,
                sms_uuid=sms_rows[-1]["uuid"],
                segments=composed.get("segments", 0),
                encoding=composed.get("encoding"),
                cost=composed.get("cost", 0.0),
                send_weekday=zones[zone][0],
                send_hour=zones[zone][1],
            )
            queued.append(tid)
        self._mark_first_attempts(queued, rows, updates)
        mailing_trace_ids = self._insert_sms(sms_rows, company, mailing_traces)
        for tid, sms in zip(queued, sms_rows, strict=True):
            updates[tid].update(
                body=sms["body"], mailing_trace_id=mailing_trace_ids[sms["id"]]
            )
        return queued

    @staticmethod
    def _blocked_vals(composed, vals):
        """A composed message that may not be sent: the trace's values."""
        if composed.get("blocked_reason") == "no_contact":
            vals.update(
                state="canceled",
                cancel_reason="no_contact",
                decision_rule="CA-CASL-IDENTIFICATION",
            )
        else:
            vals.update(state="canceled", cancel_reason="too_long")

    @staticmethod
    def _mark_first_attempts(queued, rows, updates):
        """The enrolment's first queued message (see _compute_first_attempt)."""
        already = {
            rows[tid]["enrollment_id"]
            for tid in queued
            if rows[tid]["enrollment_queued"]
        }
        for trace_id in sorted(queued):
            enrollment_id = rows[trace_id]["enrollment_id"]
            updates[trace_id]["first_attempt"] = enrollment_id not in already
            already.add(enrollment_id)

    @api.model
    def _insert_sms(self, rows, company, mailing_traces):
        """The outgoing ``sms.sms`` of a chunk (``rows``, with the ids
        reserved for them), their SMS mailing traces (``mailing_traces``, same
        order) and their ``sms.tracker``, as Odoo's SMS mailings link them, in
        one statement.  Their bodies are final: short links already carry
        ``/s/<sms id>`` (``_compose_batch`` got the reserved ids).
        Returns {sms id: mailing trace id}."""
        if not rows:
            return {}
        env = self.env
        SmsSms = env["sms.sms"].sudo().with_company(company)
        MailingTrace = env["mailing.trace"].sudo()
        Tracker = env["sms.tracker"].sudo()
        for model in (SmsSms, MailingTrace, Tracker):
            model.flush_model()
        given = ("uuid", "number", "partner_id", "mailing_id", "body")
        sms_values = {name: [row[name] or None for row in rows] for name in given}
        sms_constants = {"state": "outgoing"}
        if "record_company_id" in SmsSms._fields:
            sms_constants["record_company_id"] = company.id
        sms_arrays, sms_constants = insert_parts(SmsSms, sms_values, sms_constants)
        trace_arrays, trace_constants = insert_parts(
            MailingTrace,
            {
                name: [vals[name] for vals in mailing_traces]
                for name in mailing_traces[0]
            },
            {"trace_type": "sms", "trace_status": "outgoing"},
        )
        # the tracker's sms_uuid and mailing_trace_id come from the two above
        linked = {"sms_uuid": SQL("s.uuid"), "mailing_trace_id": SQL("m.id")}
        __, tracker_constants = insert_parts(Tracker, dict.fromkeys(linked, ()))
        result = env.execute_query(
            SQL(
                """
                WITH s AS (%s RETURNING id, uuid),
                     m AS (%s RETURNING id, sms_id_int),
                     k AS (
                        INSERT INTO sms_tracker (%s)
                        SELECT %s FROM m JOIN s ON s.id = m.sms_id_int
                     )
                SELECT m.sms_id_int, m.id FROM m
                """,
                insert_sql(
                    SmsSms._table,
                    [("id", "int4", [row["id"] for row in rows]), *sms_arrays],
                    sms_constants,
                ),
                insert_sql(MailingTrace._table, trace_arrays, trace_constants),
                SQL(", ").join(
                    SQL.identifier(name)
                    for name in [*linked, *(c[0] for c in tracker_constants)]
                ),
                SQL(", ").join(
                    [
                        *linked.values(),
                        *(
                            SQL("%s::%s", v, SQL(cast))
                            for _n, cast, v in tracker_constants
                        ),
                    ]
                ),
            )
        )
        for model in (SmsSms, MailingTrace, Tracker):
            model.invalidate_model()
        # what sms.sms.create does: wake the sending queue (the dispatch job
        # does it with its first chunk only)
        if not env.context.get("smf_sms_queue_woken"):
            env.ref("sms.ir_cron_sms_scheduler_action")._trigger()
        return dict(result)

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

    # -- email, activity and CRM update steps ----------------------------------
    #
    # The dispatcher hands the traces of non-SMS steps to ``_dispatch_channels``
    # and asks ``_channel_condition_met`` for the conditions on emails and
    # activities.
    #
    # * Email: a mail template sent through Odoo's mass-mailing stack, one
    #   ``mailing.mailing`` per step: the mail queue sends it, ``mail.blacklist``
    #   and mailing opt-outs cancel it (with a reason), opens (tracking pixel)
    #   and clicks (``/r/<code>/m/<trace id>``) come back through
    #   ``mailing.trace``.
    # * Salesperson activity: a ``mail.activity`` for the record's salesperson,
    #   a user or the least-loaded member of a sales team, whose note can quote
    #   the contact's last SMS reply; marking it done is recorded on the trace.
    # * CRM update: stage, tags, won / lost on the enrolled lead.

    mailing_trace_id = fields.Many2one(
        "mailing.trace", "Email Trace", index="btree_not_null", readonly=True
    )
    email = fields.Char("Email Address", readonly=True)
    opened_at = fields.Datetime("Email Opened", readonly=True)
    # searched each time any activity is marked as done: indexed
    activity_id = fields.Many2one(
        "mail.activity", ondelete="set null", readonly=True, index="btree_not_null"
    )
    activity_user_id = fields.Many2one("res.users", "Activity For", readonly=True)
    activity_done_at = fields.Datetime("Activity Done", readonly=True)

    # -- dispatch hook ---------------------------------------------------------

    def _dispatch_channels(self, traces, now):
        """Run the due traces of non-SMS steps; return the SMS ones."""
        others = traces.filtered(lambda t: t.step_id.step_type != "sms")
        if not others:
            return traces
        runners = {
            "email": self._run_email_steps,
            "activity": self._run_activity_steps,
            "crm_update": self._run_crm_update_steps,
        }
        for step_type, group in others.grouped(lambda t: t.step_id.step_type).items():
            runner = runners.get(step_type)
            if runner:
                runner(group, now)
        return traces - others

    def _channel_condition_met(self, condition):
        """Conditions read on an email or activity parent trace."""
        self.ensure_one()
        parent = self.parent_trace_id
        if condition == "opened":
            return bool(parent.opened_at)
        if condition == "not_opened":
            return not parent.opened_at
        if condition == "activity_done":
            return bool(parent.activity_done_at)
        if condition == "activity_not_done":
            return not parent.activity_done_at
        return False

    def _records_by_trace(self):
        """{trace: existing target record (sudo)}, one query per model."""
        result = {}
        by_model = self.grouped(lambda t: t.enrollment_id.res_model)
        for model_name, traces in by_model.items():
            existing = set(
                self.env[model_name]
                .sudo()
                .with_context(active_test=False)
                .browse(traces.enrollment_id.mapped("res_id"))
                .exists()
                .ids
            )
            for trace in traces:
                if trace.enrollment_id.res_id in existing:
                    result[trace] = (
                        self.env[model_name].sudo().browse(trace.enrollment_id.res_id)
                    )
        return result

    def _mark_executed(self, now, state="done", extra=None):
        vals = {"state": state, "queued_at": now}
        vals.update(extra or {})
        self.write(vals)
        self._schedule_children()

    # -- email -----------------------------------------------------------------

    def _run_email_steps(self, traces, now):
        records = traces._records_by_trace()
        missing = traces.filtered(lambda t: t not in records)
        missing.write({"state": "canceled", "cancel_reason": "no_record"})
        queued = self.browse()
        for step, group in (traces - missing).grouped("step_id").items():
            queued |= group._send_step_email(step, now)
        if queued:
            self.env.ref("mail.ir_cron_mail_scheduler_action")._trigger()

    def _send_step_email(self, step, now):
        """Send ``step``'s template to the records of these traces with the
        mass-mailing composer (exclusion lists, traces, link tracking)."""
        mailing = step._channel_mailing()
        model_name = step.campaign_id.model_name
        res_ids = sorted(set(self.enrollment_id.mapped("res_id")))
        composer = (
            self.env["mail.compose.message"]
            .sudo()
            .with_context(
                active_ids=res_ids,
                default_composition_mode="mass_mail",
                # like mailings: no contact created for an email address
                mail_composer_force_partners=False,
                **mailing._get_mass_mailing_context(),
            )
            .create(
                {
                    "composition_mode": "mass_mail",
                    "model": model_name,
                    "res_ids": repr(res_ids),
                    "template_id": step.mail_template_id.id,
                    "mass_mailing_id": mailing.id,
                    "campaign_id": mailing.campaign_id.id,
                    "use_exclusion_list": True,
                    "force_send": False,
                    # rendered per record by the composer when a placeholder
                    "email_from": step.mail_template_id.email_from
                    or mailing.email_from
                    or step.campaign_id.company_id.email_formatted,
                    "author_id": (
                        step.campaign_id.user_id.partner_id
                        or self.env.ref("base.partner_root")
                    ).id,
                }
            )
        )
        composer._action_send_mail(auto_commit=False)
        linked = self.sudo().search(
            [("mailing_trace_id.mass_mailing_id", "=", mailing.id)]
        )
        mailing_traces = (
            self.env["mailing.trace"]
            .sudo()
            .search(
                [
                    ("mass_mailing_id", "=", mailing.id),
                    ("model", "=", model_name),
                    ("res_id", "in", res_ids),
                    ("id", "not in", linked.mailing_trace_id.ids),
                ],
                order="id desc",
            )
        )
        by_res_id = {}
        for mailing_trace in mailing_traces:
            by_res_id.setdefault(mailing_trace.res_id, mailing_trace)
        subjects = step.mail_template_id.sudo()._render_field(
            "subject", list(by_res_id)
        )
        queued = self.browse()
        for trace in self:
            mailing_trace = by_res_id.pop(trace.enrollment_id.res_id, None)
            if not mailing_trace:
                trace.write({"state": "canceled", "cancel_reason": "no_email"})
                continue
            vals = {"mailing_trace_id": mailing_trace.id, "email": mailing_trace.email}
            if mailing_trace.trace_status == "cancel":
                vals.update(
                    state="canceled",
                    cancel_reason=MAIL_FAILURE_TO_REASON.get(
                        mailing_trace.failure_type, "email_canceled"
                    ),
                    failure_type=mailing_trace.failure_type or False,
                )
                trace.write(vals)
            elif mailing_trace.trace_status in ("error", "bounce"):
                vals.update(
                    state="failed", failure_type=mailing_trace.failure_type or False
                )
                trace.write(vals)
            else:
                vals["body"] = subjects[trace.enrollment_id.res_id]
                trace.write(vals)
                queued |= trace
        queued._mark_executed(now, state="queued")
        return queued

    def _update_from_mailing_trace(self, event, failure_type=False):
        """Report of the mailing engine on the emails of these traces:
        ``sent``, ``opened``, ``clicked``, ``failed``, ``bounced``,
        ``canceled``.  States never move back."""
        sms = self.filtered(lambda t: t.step_type == "sms")
        if sms:
            sms._update_from_sms_mailing_trace(event, failure_type)
            if sms == self:
                return
            (self - sms)._update_from_mailing_trace(event, failure_type)
            return
        now = fields.Datetime.now()
        if event == "opened":
            self.filtered(lambda t: not t.opened_at).write({"opened_at": now})
            unreported = self.filtered(
                lambda t: RANK.get(t.state, 0) < RANK["delivered"]
            )
            unreported.filtered(lambda t: not t.sent_at).write({"sent_at": now})
            unreported.write({"state": "delivered", "delivered_at": now})
            return
        if event == "clicked":
            self.filtered(lambda t: not t.opened_at)._update_from_mailing_trace(
                "opened"
            )
            self._set_clicked()
            return
        new_state = {
            "sent": "sent",
            "failed": "failed",
            "bounced": "bounced",
            "canceled": "canceled",
        }.get(event)
        if event == "failed" and failure_type in MAIL_BOUNCE_FAILURES:
            new_state = "bounced"
        if not new_state:
            return
        vals = {"state": new_state}
        if new_state == "sent":
            vals["sent_at"] = now
        else:
            vals["failure_type"] = failure_type or False
        if new_state == "canceled":
            vals["cancel_reason"] = MAIL_FAILURE_TO_REASON.get(
                failure_type, "email_canceled"
            )
        # one write for the batch (the mail queue reports hundreds at once)
        self.filtered(lambda t: RANK.get(t.state, 0) < RANK[new_state]).write(vals)

    def _update_from_sms_mailing_trace(self, event, failure_type=False):
        """Report of the SMS trackers (through the SMS mailing trace) on these
        SMS traces: ``sent`` (to the provider), ``delivered``, ``failed``,
        ``bounced``, ``canceled``, ``clicked``.  States never move back, but
        a delivery report overrides an earlier failure."""
        if event == "clicked":
            self._sms_clicked()._set_clicked()
            return
        new_state = sms_report_state(event, failure_type)
        if not new_state:
            return
        now = fields.Datetime.now()
        vals = {"state": new_state, "failure_type": failure_type or False}
        if new_state == "sent":
            vals["sent_at"] = now
        moving = self.filtered(lambda t: RANK.get(t.state, 0) < RANK[new_state])
        if new_state == "delivered":
            vals["delivered_at"] = now
            moving.filtered("sent_at").write(vals)
            moving.filtered(lambda t: not t.sent_at).write(dict(vals, sent_at=now))
            return
        moving.write(vals)

    def _sms_clicked(self):
        """These SMS traces but those whose last click was on the recipient's
        unsubscribe link: opening it is not a click (it must not fire
        "clicked" branches)."""
        clicks = (
            self.env["link.tracker.click"]
            .sudo()
            .search_fetch(
                [("mailing_trace_id", "in", self.mailing_trace_id.ids)],
                ["mailing_trace_id", "link_id"],
                order="id desc",
            )
        )
        last = {}
        for click in clicks:
            last.setdefault(click.mailing_trace_id.id, click)
        return self.filtered(
            lambda t: (
                t.mailing_trace_id.id not in last
                or UNSUBSCRIBE_PATH
                not in (last[t.mailing_trace_id.id].link_id.url or "")
            )
        )

    # -- salesperson activity --------------------------------------------------

    @api.model
    def _channel_assignee(self, step, record, loads=None):
        """Who gets the activity of ``step`` for ``record``.  ``loads``
        ({user: open activities}) is shared by a batch, which counts the
        activities it assigns."""
        if step.activity_assign == "user" and step.activity_user_id:
            return step.activity_user_id
        if step.activity_assign == "team" and step.activity_team_id:
            return self._least_loaded(
                step.activity_team_id, {} if loads is None else loads
            )
        return self._sms_funnel_salesperson(record) or step.campaign_id.user_id

    @api.model
    def _sms_funnel_salesperson(self, record):
        """The salesperson of ``record``: its own, else its contact's."""
        field = record._fields.get("user_id")
        if field and field.comodel_name == "res.users" and record.user_id:
            return record.user_id
        partner = record if record._name == "res.partner" else None
        if partner is None and "partner_id" in record._fields:
            partner = record.partner_id
        if partner and partner.user_id:
            return partner.user_id
        return self.env["res.users"]

    @api.model
    def _least_loaded(self, team, loads):
        """The member of ``team`` with the fewest open activities; ``loads``
        caches the counts (one query per team and batch)."""
        members = team.member_ids or team.user_id
        if not members:
            return self.env["res.users"]
        unknown = members.filtered(lambda u: u not in loads)
        if unknown:
            counts = dict(
                self.env["mail.activity"]
                .sudo()
                ._read_group([("user_id", "in", unknown.ids)], ["user_id"], ["__count"])
            )
            loads.update({user: counts.get(user, 0) for user in unknown})
        return min(members.sorted("id"), key=lambda u: loads[u])

    def _last_reply(self):
        """Text of the contact's last SMS reply in this enrollment."""
        self.ensure_one()
        replied = self.enrollment_id.trace_ids.filtered("replied_at").sorted(
            "replied_at"
        )
        return replied[-1:].reply_text or ""

    def _run_activity_steps(self, traces, now):
        records = traces._records_by_trace()
        missing = traces.filtered(lambda t: t not in records)
        missing.write({"state": "canceled", "cancel_reason": "no_record"})
        rules = self.env["sms.microfunnel.message.rules"]
        vals_list, created, loads = [], self.browse(), {}
        for trace in traces - missing:
            step, record = trace.step_id, records[trace]
            user = self._channel_assignee(step, record, loads)
            if not user:
                trace.write({"state": "canceled", "cancel_reason": "no_assignee"})
                continue
            if user in loads:
                loads[user] += 1
            last_reply = trace._last_reply()
            values = dict(trace.enrollment_id.values or {}, last_reply=last_reply)
            company = trace.company_id
            note = rules._render_body(
                step.activity_note or "",
                record,
                user.lang or company.partner_id.lang or self.env.lang,
                values=values,
                company=company,
            )
            note = plaintext2html(note) if note else Markup()
            if step.activity_quote_reply and last_reply:
                note += Markup("<blockquote>%s</blockquote>") % last_reply
            today = fields.Date.context_today(
                self.with_context(tz=user.tz or company.partner_id.tz or "UTC"),
                timestamp=now,
            )
            vals_list.append(
                {
                    "activity_type_id": step.activity_type_id.id,
                    "res_model_id": self.env["ir.model"]._get_id(record._name),
                    "res_id": record.id,
                    "user_id": user.id,
                    "summary": step.activity_summary or step.activity_type_id.summary,
                    "note": note,
                    "date_deadline": today + timedelta(days=step.activity_delay_days),
                    "automated": True,
                }
            )
            created |= trace
        activities = self.env["mail.activity"].sudo().create(vals_list)
        for trace, activity in zip(created, activities, strict=True):
            trace._mark_executed(
                now,
                extra={
                    "activity_id": activity.id,
                    "activity_user_id": activity.user_id.id,
                },
            )

    def _set_activity_done(self, when=None):
        self.filtered(lambda t: not t.activity_done_at).write(
            {"activity_done_at": when or fields.Datetime.now()}
        )

    # -- CRM update ------------------------------------------------------------

    def _run_crm_update_steps(self, traces, now):
        records = traces._records_by_trace()
        missing = traces.filtered(lambda t: t not in records)
        missing.write({"state": "canceled", "cancel_reason": "no_record"})
        wrong = (traces - missing).filtered(lambda t: records[t]._name != "crm.lead")
        wrong.write({"state": "canceled", "cancel_reason": "not_a_lead"})
        for trace in traces - missing - wrong:
            step, lead = trace.step_id, records[trace]
            vals = {}
            if step.crm_stage_id:
                vals["stage_id"] = step.crm_stage_id.id
            tags = [Command.link(t.id) for t in step.crm_tag_add_ids] + [
                Command.unlink(t.id) for t in step.crm_tag_remove_ids
            ]
            if tags:
                vals["tag_ids"] = tags
            # the execution is recorded first: a goal reached by this update
            # (stage, won) may end the enrollment
            trace._mark_executed(now, extra={"body": step._crm_update_summary()})
            if vals:
                lead.write(vals)
            if step.crm_outcome == "won":
                lead.action_set_won()
            elif step.crm_outcome == "lost":
                lead.action_set_lost(lost_reason_id=step.crm_lost_reason_id.id)
