# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Micro-funnels: the campaign (its steps and A/B variants have their own files)."""

import secrets
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools import SQL, email_normalize
from odoo.tools.safe_eval import safe_eval

from ..tools import send_window, sql_array
from .sms_microfunnel_gate import _aware
from .sms_microfunnel_trace import DISPATCH_CRON

TARGET_MODELS = [("res.partner", "Contacts"), ("crm.lead", "CRM Leads")]
#: audiences up to this size are enrolled while the user waits (a few
#: seconds); larger ones by the dispatch job, committed chunk by chunk
ENROL_NOW_MAX = 50000
# key rates of a funnel (report and alerts)
RATE_MEASURES = [
    "recipient_count:sum",
    "delivered_count:sum",
    "failed_count:sum",
    "conversion_count:sum",
    "deliverability_rate:avg",
    "click_rate:avg",
    "unsubscribe_rate:avg",
    "conversion_rate:avg",
    "cost:sum",
]
# per step, in the funnel-shaped view (``_report_step_funnel``)
STEP_MEASURES = [
    "__count",
    "delivered_count:sum",
    "clicked_count:sum",
    "converted_after_count:sum",
]


class SmsMicrofunnelCampaign(models.Model):
    _name = "sms.microfunnel.campaign"
    _description = "SMS Funnel"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "create_date desc, id desc"

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    user_id = fields.Many2one(
        "res.users", "Responsible", default=lambda self: self.env.user, tracking=True
    )
    state = fields.Selection(
        [
            ("draft", "Draft"),
            ("running", "Running"),
            ("paused", "Paused"),
            ("stopped", "Stopped"),
        ],
        default="draft",
        required=True,
        tracking=True,
        copy=False,
    )
    model_name = fields.Selection(
        selection="_selection_target_models",
        string="Target",
        required=True,
        default="res.partner",
    )
    domain = fields.Char("Audience", default="[]")
    segment_id = fields.Many2one(
        "sms.microfunnel.segment",
        domain="[('model_name', '=', model_name), ('company_id', '=', company_id)]",
        index="btree_not_null",
        help="Audience: the members of this segment that also match the filter. "
        "Enrollments remember it, for the rates per segment.",
    )
    utm_campaign_id = fields.Many2one("utm.campaign", "UTM Campaign")
    goal = fields.Selection(
        [
            ("none", "None"),
            ("stage_reached", "Lead reaches a stage"),
            ("lead_won", "Lead won"),
            ("link_clicked", "Link clicked"),
            ("replied_yes", "Replied YES"),
        ],
        default="none",
        required=True,
    )
    goal_stage_id = fields.Many2one("crm.stage")
    attribution_hours = fields.Integer("Attribution Window (hours)", default=168)
    exit_on_conversion = fields.Boolean(default=True)
    reenroll = fields.Selection(
        [("never", "Never"), ("after_exit", "After the previous enrollment ended")],
        "Re-enrollment",
        default="never",
        required=True,
    )
    step_ids = fields.One2many(
        "sms.microfunnel.step", "campaign_id", "Steps", copy=True
    )
    enrollment_ids = fields.One2many("sms.microfunnel.enrollment", "campaign_id")
    enrollment_count = fields.Integer(compute="_compute_counts")
    active_enrollment_count = fields.Integer(compute="_compute_counts")
    converted_count = fields.Integer(compute="_compute_counts")
    sent_count = fields.Integer(compute="_compute_counts")
    step_stats = fields.Json(
        compute="_compute_step_stats",
        help="Live figures of each step for the funnel builder: {step id: counts}.",
    )
    enroll_at = fields.Datetime(
        "Enroll Audience At",
        help="Scheduled enrollment: the audience is enrolled at this time (in your "
        "time zone) if "
        "the funnel is running.",
    )
    audience_enrolled_at = fields.Datetime(readonly=True, copy=False)
    enroll_skip_blocked = fields.Boolean(
        "Enroll Without the Blocked Records",
        readonly=True,
        copy=False,
        help="The audience enrolled in the background leaves out the records "
        "the pre-flight check blocks, as asked when it was launched.",
    )
    event_token = fields.Char(
        "Event API Token",
        copy=False,
        groups="sms_microfunnel.group_sms_funnel_manager",
        help="Bearer token of the HTTP endpoint that enrolls contacts from "
        "external events (e.g. an abandoned cart).",
    )

    _attribution_positive = models.Constraint(
        "CHECK(attribution_hours >= 0)", "The attribution window cannot be negative."
    )

    @api.constrains("company_id")
    def _check_regulated_company(self):
        self.step_ids._check_regulated_sector()

    @api.constrains("goal", "goal_stage_id", "model_name")
    def _check_goal(self):
        for funnel in self:
            if funnel.goal == "stage_reached" and not funnel.goal_stage_id:
                raise ValidationError(
                    self.env._("Choose the stage that counts as a goal.")
                )
            if funnel.goal in ("stage_reached", "lead_won") and funnel.model_name != (
                "crm.lead"
            ):
                raise ValidationError(
                    self.env._("Lead goals need a funnel that targets CRM leads.")
                )

    @api.constrains("segment_id", "model_name")
    def _check_segment(self):
        for funnel in self.filtered("segment_id"):
            if funnel.segment_id.model_name != funnel.model_name:
                raise ValidationError(
                    self.env._(
                        "Segment “%(segment)s” does not target the records of "
                        "this funnel.",
                        segment=funnel.segment_id.name,
                    )
                )

    def _compute_counts(self):
        Enrollment = self.env["sms.microfunnel.enrollment"]
        groups = Enrollment._read_group(
            [("campaign_id", "in", self.ids)], ["campaign_id", "state"], ["__count"]
        )
        counts = {}
        for campaign, state, count in groups:
            counts.setdefault(campaign.id, {})[state] = count
        sent = dict(
            self.env["sms.microfunnel.trace"]._read_group(
                [
                    ("campaign_id", "in", self.ids),
                    ("state", "in", ("sent", "delivered", "failed", "bounced")),
                ],
                ["campaign_id"],
                ["__count"],
            )
        )
        # "in progress": enrollments that can still receive something (a message
        # scheduled, deferred or handed to the provider), not those whose every
        # message was cancelled
        reachable = dict(
            Enrollment._read_group(
                [
                    ("campaign_id", "in", self.ids),
                    ("state", "=", "active"),
                    (
                        "trace_ids",
                        "any",
                        [("state", "in", ("scheduled", "deferred", "queued"))],
                    ),
                ],
                ["campaign_id"],
                ["__count"],
            )
        )
        for funnel in self:
            by_state = counts.get(funnel.id, {})
            funnel.enrollment_count = sum(by_state.values())
            funnel.active_enrollment_count = reachable.get(funnel, 0)
            funnel.converted_count = by_state.get("converted", 0)
            funnel.sent_count = sent.get(funnel, 0)

    def _compute_step_stats(self):
        """Per step: scheduled, sent, delivered, clicked, replied, converted,
        cancelled and the most frequent cancel reason (a few grouped queries
        per funnel set, whatever the number of traces)."""
        Trace = self.env["sms.microfunnel.trace"]
        saved = self.filtered("id")
        stats = {}

        def bump(step, key, count):
            line = stats.setdefault(
                step.id,
                dict.fromkeys(
                    (
                        "scheduled",
                        "sent",
                        "delivered",
                        "clicked",
                        "replied",
                        "converted",
                        "cancelled",
                    ),
                    0,
                ),
            )
            line[key] += count

        if saved:
            base = [("campaign_id", "in", saved.ids)]
            buckets = {
                "scheduled": ("scheduled", "deferred", "queued"),
                "sent": ("sent", "delivered", "failed", "bounced", "done"),
                "delivered": ("delivered",),
                "cancelled": ("canceled",),
            }
            for step, state, count in Trace._read_group(
                base, ["step_id", "state"], ["__count"]
            ):
                for key, states in buckets.items():
                    if state in states:
                        bump(step, key, count)
            for key, domain in (
                ("clicked", [("clicked_at", "!=", False)]),
                ("replied", [("replied_at", "!=", False)]),
                ("converted", [("enrollment_id.converted_at", "!=", False)]),
            ):
                for step, count in Trace._read_group(
                    base + domain + [("state", "!=", "canceled")],
                    ["step_id"],
                    ["__count"],
                ):
                    bump(step, key, count)
            reasons = dict(
                Trace._fields["cancel_reason"]._description_selection(self.env)
            )
            top = {}
            for step, reason, count in Trace._read_group(
                [*base, ("state", "=", "canceled"), ("cancel_reason", "!=", False)],
                ["step_id", "cancel_reason"],
                ["__count"],
            ):
                if count > top.get(step.id, ("", 0))[1]:
                    top[step.id] = (reason, count)
            for step_id, (reason, _count) in top.items():
                stats[step_id]["top_reason"] = reasons.get(reason, reason)
        for funnel in self:
            funnel.step_stats = {
                str(step_id): line
                for step_id, line in stats.items()
                if step_id in funnel.step_ids.ids
            }

    # -- audience ----------------------------------------------------------------

    @api.model
    def _marketable_domain(self, model_name):
        """The records of ``model_name`` a marketing SMS may reach: a number,
        SMS marketing consent, and for contacts neither a company nor a user of
        this database."""
        if not model_name or model_name not in self.env:
            return []
        Model = self.env[model_name]
        domain = []
        if model_name == "res.partner":
            domain += [("is_company", "=", False), ("partner_share", "=", True)]
        if "phone_sanitized" in Model._fields:
            domain.append(("phone_sanitized", "!=", False))
        if "sms_consent_state" in Model._fields:
            domain.append(("sms_consent_state", "in", ["confirmed"]))
        return domain

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        # a new funnel starts on its marketable records, not on "every record"
        # (companies and users included)
        if "domain" in fields_list and "default_domain" not in self.env.context:
            values["domain"] = repr(
                self._marketable_domain(values.get("model_name") or "res.partner")
            )
        return values

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if "domain" not in vals and "default_domain" not in self.env.context:
                vals["domain"] = repr(
                    self._marketable_domain(vals.get("model_name") or "res.partner")
                )
        return super().create(vals_list)

    @api.onchange("model_name")
    def _onchange_model_name_audience(self):
        origin = self._origin.model_name if self._origin else False
        if self.domain in (
            False,
            "[]",
            repr(self._marketable_domain(origin)),
            repr(self._marketable_domain("res.partner")),
        ):
            self.domain = repr(self._marketable_domain(self.model_name))

    def _audience_domain(self):
        self.ensure_one()
        try:
            domain = safe_eval(self.domain or "[]", {"uid": self.env.uid})
        except Exception as error:
            raise UserError(
                self.env._("The audience filter is invalid: %(error)s", error=error)
            ) from error
        domain = Domain(domain)
        if self.segment_id:
            domain &= self.segment_id._members_domain()
        return domain

    def _audience(self):
        self.ensure_one()
        return self.env[self.model_name].search(self._audience_domain())

    # -- lifecycle ---------------------------------------------------------------

    def action_start(self):
        for funnel in self:
            if not funnel.step_ids:
                raise UserError(self.env._("Add at least one step before starting."))
            funnel.step_ids._check_ready()
        self.write({"state": "running"})
        # the SMS mailing of each SMS step, before parallel dispatchers need it
        for step in self.step_ids.filtered(lambda s: s.step_type == "sms"):
            step._channel_mailing()
        self.env.ref(DISPATCH_CRON)._trigger()
        return True

    def action_open_launch(self):
        """Start / Enroll audience from the form: a confirmation with the
        pre-flight figures of the audience (``launch_mode`` in the context)."""
        self.ensure_one()
        mode = self.env.context.get("launch_mode") or (
            "enroll" if self.state == "running" else "start"
        )
        if mode == "start":
            if not self.step_ids:
                raise UserError(self.env._("Add at least one step before starting."))
            self.step_ids._check_ready()
        wizard = (
            self.env["sms.microfunnel.launch"]
            .with_context(active_test=True)
            .create({"campaign_id": self.id, "mode": mode})
        )
        wizard._check_audience()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Start the funnel")
            if mode == "start"
            else self.env._("Enroll the audience"),
            "res_model": wizard._name,
            "res_id": wizard.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
        }

    def action_pause(self):
        self.write({"state": "paused"})

    def action_resume(self):
        return self.action_start()

    def action_stop(self):
        self.write({"state": "stopped"})
        self.enrollment_ids.filtered(lambda e: e.state == "active")._exit("stopped")

    def action_enroll_audience(self):
        """Enroll every record of the audience (set-based)."""
        self.ensure_one()
        if self.state != "running":
            raise UserError(
                self.env._("Start the funnel before enrolling its audience.")
            )
        records = self._audience()
        if len(records) > ENROL_NOW_MAX:
            self._enroll_in_background()
            message = self.env._(
                "%(count)s records are being enrolled in the background; each "
                "receives the first step as soon as it is enrolled.",
                count=len(records),
            )
        else:
            enrollments = self._enroll(records)
            message = self.env._(
                "%(count)s records enrolled (%(skipped)s already in this funnel).",
                count=len(enrollments),
                skipped=len(records) - len(enrollments),
            )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"type": "success", "message": message},
        }

    def _consent_scope(self):
        """The consent scope of this funnel (a funnel-level opt-out blocks)."""
        self.ensure_one()
        return f"{self._name},{self.id}"

    def action_preflight(self):
        """Open the pre-flight check on this funnel's audience."""
        self.ensure_one()
        classes = set(self.step_ids.mapped("message_class")) or {"marketing"}
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Pre-flight: %(name)s", name=self.name),
            "res_model": "sms.microfunnel.preflight",
            "view_mode": "form",
            "target": "new",
            "context": {
                "default_res_model": self.model_name,
                "default_domain": self.domain or "[]",
                "default_segment_id": self.segment_id.id,
                "default_company_id": self.company_id.id,
                "default_scope": self._consent_scope(),
                "default_message_class": "marketing"
                if "marketing" in classes
                else "transactional",
            },
        }

    @api.model
    def _cron_scheduled_enrolments(self):
        """Enroll the audiences due (scheduled, or too large to enroll while
        the user waits), committing chunk by chunk; an audience whose
        enrolment the job's time cut short is finished by the next run
        (triggered at once), skipping those already in."""
        now = fields.Datetime.now()
        due = self.search(
            [
                ("state", "=", "running"),
                ("enroll_at", "<=", now),
                ("audience_enrolled_at", "=", False),
            ]
        )
        Enrollment = self.env["sms.microfunnel.enrollment"]
        for funnel in due:
            # the gate decides chunk by chunk (bounded memory)
            keep = funnel._not_blocked if funnel.enroll_skip_blocked else None
            if not Enrollment._create_in_job(funnel, funnel._audience(), keep=keep):
                self.env.ref(DISPATCH_CRON)._trigger()
                return due
            funnel.write({"audience_enrolled_at": now, "enroll_skip_blocked": False})
        return due

    def _not_blocked(self, records):
        """``records`` less those the gate blocks now (no consent, opted out,
        invalid number…), as the pre-flight check of the launch shows them."""
        self.ensure_one()
        decisions = self.env["sms.microfunnel.gate"]._evaluate(
            records,
            self._audience_message_class(),
            self.company_id,
            fields.Datetime.now(),
            scope=self._consent_scope(),
        )
        blocked = {d["res_id"] for d in decisions if d["action"] == "block"}
        return records.browse([rid for rid in records.ids if rid not in blocked])

    def _audience_message_class(self):
        """The rules the audience is checked with before enrolment: those
        of marketing messages when any step (or none yet) is marketing."""
        self.ensure_one()
        steps = self.step_ids
        if not steps or "marketing" in steps.mapped("message_class"):
            return "marketing"
        return "transactional"

    def _enroll_in_background(self, skip_blocked=False):
        """Leave the enrolment of the audience to the dispatch job (chunks
        committed one by one): for audiences larger than ENROL_NOW_MAX."""
        self.write(
            {
                "enroll_at": fields.Datetime.now(),
                "audience_enrolled_at": False,
                "enroll_skip_blocked": skip_blocked,
            }
        )
        self.env.ref(DISPATCH_CRON)._trigger()

    @api.model
    def _cron_decide_ab_winners(self):
        """Pick the winning variant of A/B steps whose decision delay is over:
        best click rate (clicking / queued) or conversion rate (converted
        enrollments / queued); ties and empty samples keep the test running."""
        now = fields.Datetime.now()
        steps = self.env["sms.microfunnel.step"].search(
            [
                ("campaign_id.state", "=", "running"),
                ("ab_winner_mode", "in", ("click_rate", "conversion_rate")),
                ("winner_variant_id", "=", False),
                ("variant_ids", "!=", False),
            ]
        )
        Trace = self.env["sms.microfunnel.trace"]
        for step in steps:
            first = Trace.search(
                [("step_id", "=", step.id), ("queued_at", "!=", False)],
                order="queued_at",
                limit=1,
            )
            if not first or now < first.queued_at + timedelta(
                hours=step.ab_decision_hours
            ):
                continue
            stats = {}
            traces = Trace.search_fetch(
                [("step_id", "=", step.id), ("queued_at", "!=", False)],
                ["variant_id", "clicked_at", "enrollment_id"],
            )
            for trace in traces:
                sent, hits = stats.get(trace.variant_id, (0, 0))
                if step.ab_winner_mode == "click_rate":
                    hit = bool(trace.clicked_at)
                else:
                    hit = bool(trace.enrollment_id.converted_at)
                stats[trace.variant_id] = (sent + 1, hits + int(hit))
            rates = sorted(
                (
                    (hits / sent, variant)
                    for variant, (sent, hits) in stats.items()
                    if sent
                ),
                key=lambda item: item[0],
                reverse=True,
            )
            if len(rates) >= 2 and rates[0][0] > rates[1][0]:
                step.winner_variant_id = rates[0][1]
                step.campaign_id.message_post(
                    body=self.env._(
                        "A/B test of “%(step)s”: variant %(variant)s wins "
                        "(%(rate)s %%).",
                        step=step.name,
                        variant=rates[0][1].name,
                        rate=round(rates[0][0] * 100, 1),
                    )
                )

    def action_generate_event_token(self):
        for funnel in self:
            funnel.event_token = secrets.token_urlsafe(32)

    def action_open_send_test(self):
        """Send a test of the funnel's first message (saved first)."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send a test"),
            "res_model": "sms.microfunnel.send.test",
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "new",
            "context": {"default_campaign_id": self.id},
        }

    def action_view_enrollments(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_funnel_enrollment"
        )
        action["domain"] = [("campaign_id", "=", self.id)]
        action["context"] = {"default_campaign_id": self.id}
        return action

    def action_view_traces(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_funnel_trace"
        )
        action["domain"] = [("campaign_id", "=", self.id)]
        return action

    def _enroll_from_event(self, payload):
        """Enroll the contact an external event names; returns a JSON-able dict.

        The contact is found by ``partner_id``, ``ref`` or ``phone`` (created
        from ``phone`` + ``name`` when unknown, for contact funnels).  The same
        ``idempotency_key`` twice enrolls once.
        """
        self.ensure_one()
        values = payload.get("values") or {}
        if not isinstance(values, dict):
            raise UserError(self.env._("“values” must be an object."))
        key = payload.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
            raise UserError(self.env._("“idempotency_key” must be a short string."))
        if key:
            previous = (
                self.env["sms.microfunnel.enrollment"]
                .sudo()
                .search(
                    [("campaign_id", "=", self.id), ("idempotency_key", "=", key)],
                    limit=1,
                )
            )
            if previous:
                return {"duplicate": True, "enrollment_id": previous.id}
        records = self._event_target(payload)
        enrollment = self._enroll(records, values=values, idempotency_key=key)
        if not enrollment:
            return {
                "duplicate": True,
                "enrolled": False,
                "detail": "already in this funnel",
            }
        return {"duplicate": False, "enrollment_id": enrollment.id}

    def _event_target(self, payload):
        Model = self.env[self.model_name].sudo()
        company_domain = [("company_id", "in", [False, self.company_id.id])]
        if payload.get("partner_id") and self.model_name == "res.partner":
            try:
                partner_id = int(payload["partner_id"])
            except (TypeError, ValueError) as error:
                raise UserError(self.env._("“partner_id” must be a number.")) from error
            record = Model.search([("id", "=", partner_id), *company_domain], limit=1)
        elif payload.get("ref") and "ref" in Model._fields:
            record = Model.search(
                [("ref", "=", str(payload["ref"])), *company_domain], limit=1
            )
        elif payload.get("phone"):
            number = self.env["sms.microfunnel.consent"]._sanitize_number(
                str(payload["phone"]), company=self.company_id
            )
            Consent = self.env["sms.microfunnel.consent"].sudo()
            found = Consent._contacts_by_number(
                [number], self.company_id, self.model_name, order="write_date desc"
            )
            record = found.get(number, Model.browse())[:1]
            if not record and self.model_name == "res.partner":
                record = Model.create(
                    {
                        "name": str(payload.get("name") or number),
                        "phone": number,
                        "company_id": self.company_id.id,
                    }
                )
            if not record:
                record = self._event_create_target(Model, number, payload)
        else:
            raise UserError(self.env._("Give “phone”, “partner_id” or “ref”."))
        if not record:
            raise UserError(self.env._("No matching record."))
        return record

    def _enroll(self, records, values=None, idempotency_key=None):
        """Enroll ``records`` (of the funnel's target model); returns the new
        enrollments. Records already enrolled (or not re-enrollable) are skipped."""
        self.ensure_one()
        if records._name != self.model_name:
            raise UserError(
                self.env._(
                    "This funnel targets %(target)s, not %(model)s.",
                    target=self.model_name,
                    model=records._name,
                )
            )
        return self.env["sms.microfunnel.enrollment"]._create_for(
            self, records, values=values, idempotency_key=idempotency_key
        )

    # -- dry-run ------------------------------------------------------------------

    @api.model
    def _local_label(self, when, tz_name):
        if not when or not tz_name:
            return ""
        local = send_window.utc_to_local(_aware(when), tz_name)
        return local.strftime("%a %Y-%m-%d %H:%M ") + tz_name

    def _simulate(self, record, start_at=None):
        """Planned messages for ``record`` as the dispatcher would decide them,
        assuming every branch condition holds (each line says which one)."""
        self.ensure_one()
        start_at = start_at or fields.Datetime.now()
        gate = self.env["sms.microfunnel.gate"]
        rules = self.env["sms.microfunnel.message.rules"]
        lines, frontier = (
            [],
            [
                (step, start_at)
                for step in self.step_ids.filtered(lambda s: not s.parent_id)
            ],
        )
        seen = set()
        while frontier:
            step, anchor = frontier.pop(0)
            if step.id in seen:
                continue
            seen.add(step.id)
            # the scheduler's own computation (waits, dates in the zone)
            due = self.env["sms.microfunnel.enrollment"]._step_due(
                step, record, self.company_id, start_at, anchor
            )
            line = {
                "step_name": step.name,
                "condition": dict(
                    step._fields["condition"]._description_selection(self.env)
                ).get(step.condition),
                "due_at": due,
            }
            if due is None:
                line.update(outcome="canceled", reason="no_date")
                lines.append(line)
                continue
            if step.step_type != "sms":  # email, activity, CRM update
                line.update(self._simulate_channel_step(step, record, due))
                lines.append(line)
                frontier += [(child, due) for child in step.child_ids]
                continue
            decision = gate._evaluate_one(
                record, step.message_class, self.company_id, due
            )
            decision = self.env["sms.microfunnel.send.time"]._apply_to_decision(
                step, record, decision, self.company_id, due
            )
            send_at = due
            if decision["action"] == "defer":
                send_at = decision["until"]
            line.update(
                send_at=send_at if decision["action"] != "block" else False,
                local_time=self._local_label(send_at, decision.get("tz")),
                outcome=decision["action"],
                reason=decision.get("reason") or "",
            )
            body = (step.variant_ids[:1].body if step.variant_ids else step.body) or ""
            composed = rules._compose(
                body,
                record=record,
                company=self.company_id,
                message_class=step.message_class,
                number=decision.get("number"),
            )
            line.update(
                text=composed.get("text"),
                encoding=composed.get("encoding"),
                segments=composed.get("segments", 0),
                cost=composed.get("cost", 0.0),
            )
            if composed.get("blocked"):
                line.update(
                    outcome="block", reason=composed.get("blocked_reason") or "too_long"
                )
            lines.append(line)
            frontier += [(child, send_at) for child in step.child_ids]
        return lines

    # -- key rates and the deliverability / unsubscribe alerts ----------------

    report_recipient_count = fields.Integer("Recipients", compute="_compute_rates")
    report_final_count = fields.Integer(
        "Messages with a final status",
        compute="_compute_rates",
        help="Delivered, failed and bounced messages.",
    )
    report_deliverability = fields.Float(
        "Deliverability (%)", compute="_compute_rates", digits=(16, 1)
    )
    report_click_rate = fields.Float(
        "Click Rate (%)", compute="_compute_rates", digits=(16, 1)
    )
    report_unsubscribe_rate = fields.Float(
        "Unsubscribe Rate (%)", compute="_compute_rates", digits=(16, 1)
    )
    report_conversion_rate = fields.Float(
        "Conversion Rate (%)", compute="_compute_rates", digits=(16, 1)
    )
    report_cost = fields.Float(
        "Cost",
        compute="_compute_report_cost",
        help="Estimated cost of the sent messages, in the company currency.",
        groups="sms_microfunnel.group_sms_funnel_manager",
    )
    report_conversion_count = fields.Integer(
        "Conversions", compute="_compute_report_cost"
    )
    report_cost_per_acquisition = fields.Float(
        "Cost per Acquisition",
        compute="_compute_report_cost",
        groups="sms_microfunnel.group_sms_funnel_manager",
        help="Cost of the sent messages / conversions.",
    )
    report_currency_id = fields.Many2one(
        related="company_id.currency_id", string="Report Currency"
    )
    report_revenue = fields.Monetary(
        "Revenue",
        compute="_compute_report_revenue",
        currency_field="report_currency_id",
        help="Revenue of the conversions, in the company currency (see the "
        "definitions of the funnel metrics).",
    )
    report_roi = fields.Float(
        "Return on Investment (%)",
        compute="_compute_report_cost",
        digits=(16, 1),
        groups="sms_microfunnel.group_sms_funnel_manager",
        help="(Revenue - cost) / cost of the sent messages.",
    )
    report_step_funnel = fields.Json(
        "Funnel by Step",
        compute="_compute_report_step_funnel",
        help="Each step in order: recipients, delivered, clicked, converted "
        "and the drop-off from the step before.",
    )
    alert_deliverability_min = fields.Float(
        "Minimum Deliverability (%)",
        default=95.0,
        help="Alert when the deliverability of the running funnel falls below.",
    )
    alert_unsubscribe_max = fields.Float(
        "Maximum Unsubscribe Rate (%)",
        default=2.0,
        help="Alert when the unsubscribe rate of the running funnel exceeds.",
    )
    alert_min_volume = fields.Integer(
        "Minimum Volume",
        default=50,
        help="No alert before this many messages reached a final status "
        "(deliverability) or this many contacts received a message "
        "(unsubscribe rate).",
    )
    alert_auto_pause = fields.Boolean(
        "Pause on Alert", help="Pause the funnel automatically when an alert fires."
    )
    alert_active = fields.Boolean("Alert", readonly=True, copy=False)
    alert_message = fields.Char(readonly=True, copy=False)

    @api.constrains(
        "alert_deliverability_min", "alert_unsubscribe_max", "alert_min_volume"
    )
    def _check_alert_thresholds(self):
        for funnel in self:
            rates = (funnel.alert_deliverability_min, funnel.alert_unsubscribe_max)
            if any(rate < 0 or rate > 100 for rate in rates):
                raise ValidationError(
                    self.env._("Alert thresholds are percentages between 0 and 100.")
                )
            if funnel.alert_min_volume < 0:
                raise ValidationError(
                    self.env._("The minimum volume of an alert cannot be negative.")
                )

    def _rates(self):
        """Figures per funnel id, keyed like the measures of the SQL report
        (``RATE_MEASURES``), equal to what ``sms.microfunnel.report`` gives
        grouped by funnel.

        One scan of the traces, not through the report view: the
        per-message figures are counted on the traces, the per-recipient ones
        on the few enrollments that opted out or converted, joined to their
        first attempt (a hash of a few percent of the enrollments).  The
        view joins every trace with its enrollment: the dashboard of all
        funnels over a million traces took seconds.  (The revenue, a
        correlated subquery that would keep PostgreSQL from scanning in
        parallel, is read apart: ``_revenues``.)
        """
        if not self.ids:
            return {}
        for model, fnames in (
            (
                "sms.microfunnel.trace",
                [
                    "campaign_id",
                    "enrollment_id",
                    "state",
                    "queued_at",
                    "clicked_at",
                    "first_attempt",
                    "cost",
                ],
            ),
            (
                "sms.microfunnel.enrollment",
                ["campaign_id", "exit_reason", "converted_at", "enrolled_at"],
            ),
            ("sms.microfunnel.campaign", ["attribution_hours"]),
        ):
            self.env[model].flush_model(fnames)
        # no JIT compilation for this one query: PostgreSQL would spend
        # longer compiling it (a third of a second) than running it
        [(jit, _off)] = self.env.execute_query(
            SQL("SELECT current_setting('jit'), set_config('jit', 'off', TRUE)")
        )
        rows = self.env.execute_query(
            SQL(
                """
                SELECT a.campaign_id,
                       COUNT(*) FILTER (WHERE a.first_attempt),
                       COUNT(*) FILTER (WHERE a.state = 'delivered'),
                       COUNT(*) FILTER (WHERE a.state IN ('failed', 'bounced')),
                       COUNT(*) FILTER (WHERE a.state = 'delivered'
                                          AND a.clicked_at IS NOT NULL),
                       SUM(COALESCE(a.cost, 0)),
                       COUNT(*) FILTER (WHERE en.opted_out),
                       COUNT(*) FILTER (WHERE en.converted)
                  FROM sms_microfunnel_trace a
                  -- the few enrollments that opted out or converted, on
                  -- their first attempt
             LEFT JOIN (
                    SELECT e.id, e.campaign_id,
                           COALESCE(e.exit_reason IN ('opted_out', 'replied_stop'),
                                    FALSE) AS opted_out,
                           (e.converted_at IS NOT NULL AND (
                               c.attribution_hours = 0
                               OR e.converted_at <= e.enrolled_at
                                  + c.attribution_hours * INTERVAL '1 hour'
                           )) AS converted
                      FROM sms_microfunnel_enrollment e
                      JOIN sms_microfunnel_campaign c ON c.id = e.campaign_id
                     WHERE e.campaign_id = ANY(%(ids)s)
                       AND (e.converted_at IS NOT NULL
                            OR e.exit_reason IN ('opted_out', 'replied_stop'))
                   ) en
                    ON a.first_attempt
                   AND en.id = a.enrollment_id AND en.campaign_id = a.campaign_id
                 WHERE a.campaign_id = ANY(%(ids)s)
                   AND a.queued_at IS NOT NULL
              GROUP BY a.campaign_id
                """,
                ids=sql_array.literal(self.ids, "int"),
            )
        )
        self.env.execute_query(SQL("SELECT set_config('jit', %s, TRUE)", jit))

        def rate(part, whole):
            return 100.0 * part / whole if whole else None

        rates = {}
        for row in rows:
            campaign_id, recipients, delivered, failed, clicked, cost = row[:6]
            optouts, conversions = row[6:]
            rates[campaign_id] = {
                "recipient_count:sum": recipients,
                "delivered_count:sum": delivered,
                "failed_count:sum": failed,
                "conversion_count:sum": conversions,
                "deliverability_rate:avg": rate(delivered, delivered + failed),
                "click_rate:avg": rate(clicked, delivered),
                "unsubscribe_rate:avg": rate(optouts, recipients),
                "conversion_rate:avg": rate(conversions, recipients),
                "cost:sum": float(cost),
            }
        return rates

    def _revenues(self):
        """{funnel id: revenue of its conversions}, from the SQL report (its
        ``_revenue_sql`` hook: won leads, confirmed orders…)."""
        if not self.ids:
            return {}
        groups = (
            self.env["sms.microfunnel.report"]
            .sudo()
            ._read_group(
                [("campaign_id", "in", self.ids), ("conversion_count", "=", 1)],
                ["campaign_id"],
                ["revenue:sum"],
            )
        )
        return {campaign.id: revenue or 0.0 for campaign, revenue in groups}

    def _compute_rates(self):
        rates = self._rates()
        for funnel in self:
            figures = rates.get(funnel.id, {})
            funnel.report_recipient_count = figures.get("recipient_count:sum", 0)
            funnel.report_final_count = figures.get(
                "delivered_count:sum", 0
            ) + figures.get("failed_count:sum", 0)
            funnel.report_deliverability = figures.get("deliverability_rate:avg") or 0
            funnel.report_click_rate = figures.get("click_rate:avg") or 0
            funnel.report_unsubscribe_rate = figures.get("unsubscribe_rate:avg") or 0
            funnel.report_conversion_rate = figures.get("conversion_rate:avg") or 0

    def _compute_report_revenue(self):
        revenues = self._revenues()
        for funnel in self:
            funnel.report_revenue = revenues.get(funnel.id, 0.0)

    def _compute_report_cost(self):
        revenues = self._revenues()
        figures = {
            campaign_id: (
                values["cost:sum"],
                values["conversion_count:sum"],
                revenues.get(campaign_id, 0.0),
            )
            for campaign_id, values in self._rates().items()
        }
        Price = self.env["sms.microfunnel.price"].sudo()
        today = fields.Date.context_today(self)
        for funnel in self:
            cost, won, revenue = figures.get(funnel.id, (0.0, 0, 0.0))
            # message costs are estimated in the currency of the SMS prices:
            # shown (and compared with the revenue) in the company currency
            company = funnel.company_id or self.env.company
            price_currency = Price._get_price(
                company=company, country=company.country_id
            ).currency_id
            if cost and price_currency and price_currency != company.currency_id:
                cost = price_currency._convert(
                    cost, company.currency_id, company, today
                )
            funnel.report_conversion_count = won
            funnel.report_cost = cost
            funnel.report_cost_per_acquisition = cost / won if won else 0.0
            funnel.report_roi = (revenue - cost) / cost * 100 if cost else 0.0

    def _compute_report_step_funnel(self):
        for funnel in self:
            funnel.report_step_funnel = (
                funnel._report_step_funnel() if funnel.id else []
            )

    def _report_step_funnel(self):
        """The funnel-shaped view of this funnel: one dict per step, in the
        order of the step tree (depth first, by sequence), with its
        recipients, delivered, clicked and converted-after counts (one
        grouped SQL query) and the drop-off from its reference step: the
        step it follows, or the previous first-level step."""
        self.ensure_one()
        groups = (
            self.env["sms.microfunnel.report"]
            .sudo()
            ._read_group([("campaign_id", "=", self.id)], ["step_id"], STEP_MEASURES)
        )
        figures = {step.id: values for step, *values in groups}
        steps = self.step_ids.sorted(lambda s: (s.sequence, s.id))
        children = {}
        for step in steps:
            children.setdefault(step.parent_id.id, []).append(step)
        ordered, todo = [], [(step, 0) for step in children.get(False, [])]
        while todo:
            step, level = todo.pop(0)
            ordered.append((step, level))
            todo[:0] = [(child, level + 1) for child in children.get(step.id, [])]

        def share(part, whole):
            return round(100.0 * part / whole, 1) if whole else 0.0

        lines, recipients_by_step, previous_root = [], {}, None
        widest = max((values[0] for values in figures.values()), default=0)
        for step, level in ordered:
            recipients, delivered, clicked, converted = figures.get(
                step.id, (0, 0, 0, 0)
            )
            recipients_by_step[step.id] = recipients
            reference = step.parent_id if step.parent_id else previous_root
            if not step.parent_id:
                previous_root = step
            line = {
                "id": step.id,
                "name": step.name,
                "level": level,
                "recipients": recipients,
                "delivered": delivered,
                "clicked": clicked,
                "converted": converted,
                "delivered_share": share(delivered, recipients),
                "clicked_share": share(clicked, recipients),
                "converted_share": share(converted, recipients),
                "width": share(recipients, widest),
                "reference": reference.name if reference else False,
                "drop_off": False,
                "drop_off_share": False,
            }
            if reference:
                before = recipients_by_step[reference.id]
                line["drop_off"] = before - recipients
                line["drop_off_share"] = share(before - recipients, before)
            lines.append(line)
        return lines

    def _alert_reasons(self):
        """The breached thresholds of this funnel (empty when healthy)."""
        self.ensure_one()
        reasons = []
        if (
            self.report_final_count >= self.alert_min_volume
            and self.report_final_count
            and self.report_deliverability < self.alert_deliverability_min
        ):
            reasons.append(
                self.env._(
                    "deliverability %(rate).1f %% is below %(limit).1f %%",
                    rate=self.report_deliverability,
                    limit=self.alert_deliverability_min,
                )
            )
        if (
            self.report_recipient_count >= self.alert_min_volume
            and self.report_recipient_count
            and self.report_unsubscribe_rate > self.alert_unsubscribe_max
        ):
            reasons.append(
                self.env._(
                    "unsubscribe rate %(rate).1f %% exceeds %(limit).1f %%",
                    rate=self.report_unsubscribe_rate,
                    limit=self.alert_unsubscribe_max,
                )
            )
        return reasons

    def _check_alerts(self):
        """Raise or clear the alert of each running funnel; a new alert gives
        the responsible a warning activity and pauses the funnel if asked."""
        activity_type = self.env.ref(
            "mail.mail_activity_data_warning", raise_if_not_found=False
        )
        raised = self.browse()
        for funnel in self.filtered(lambda f: f.state == "running"):
            reasons = funnel._alert_reasons()
            if not reasons:
                if funnel.alert_active:
                    funnel.write({"alert_active": False, "alert_message": False})
                continue
            message = self.env._(
                "Funnel health alert: %(reasons)s.", reasons="; ".join(reasons)
            )
            if funnel.alert_active and funnel.alert_message == message:
                continue
            funnel.write({"alert_active": True, "alert_message": message})
            funnel.activity_schedule(
                activity_type_id=activity_type.id if activity_type else False,
                summary=self.env._("SMS funnel alert"),
                note=message,
                user_id=(funnel.user_id or self.env.user).id,
            )
            if funnel.alert_auto_pause:
                funnel.action_pause()
                funnel.message_post(
                    body=self.env._(
                        "Paused automatically: %(message)s", message=message
                    )
                )
            raised |= funnel
        return raised

    @api.model
    def _cron_check_alerts(self):
        funnels = self.search([("state", "=", "running")])
        return funnels._check_alerts()

    def action_open_report(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_funnel_report"
        )
        action["domain"] = [("campaign_id", "=", self.id)]
        action["context"] = {"search_default_group_step": 1}
        return action

    def _report_step_lines(self):
        """Per step and variant figures for the printed report (SQL grouped)."""
        self.ensure_one()
        measures = [
            "sent_count:sum",
            "delivered_count:sum",
            "failed_count:sum",
            "clicked_count:sum",
            "replied_count:sum",
            "segments:sum",
        ]
        groups = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "=", self.id)], ["step_id", "variant_id"], measures
        )
        keys = ["sent", "delivered", "failed", "clicked", "replied", "segments"]
        return [
            {
                "step": step.display_name or "",
                "variant": variant.display_name or "",
                **dict(zip(keys, values, strict=True)),
            }
            for step, variant, *values in groups
        ]

    # -- targets, activity entry point, dry-run of non-SMS steps -------------

    entry_activity_type_id = fields.Many2one(
        "mail.activity.type",
        "Enroll on Done Activity",
        help="When an activity of this type (e.g. “Call not answered”) is marked "
        "as done on a record of the funnel's target (or on a record whose contact "
        "is, for contact funnels), that record is enrolled while the funnel runs.",
    )

    @api.model
    def _selection_target_models(self):
        """Models a funnel can target, as Odoo mailings choose theirs: every
        model with a sanitised phone number and a chatter (``mail.thread.phone``:
        contacts, leads, mailing contacts, event registrations…)."""
        registry = self.env.registry
        phone_thread = registry["mail.thread.phone"]
        names = [
            name
            for name, model in registry.items()
            if not model._abstract
            and not model._transient
            and model._auto
            and name != "mail.thread.phone"
            and issubclass(model, phone_thread)
        ]
        labels = {
            model.model: model.name
            for model in self.env["ir.model"]
            .sudo()
            .search_fetch([("model", "in", names)], ["model", "name"])
        }
        first = ["res.partner", "crm.lead"]
        ordered = [n for n in first if n in names] + sorted(
            (n for n in names if n not in first), key=lambda n: labels.get(n, n)
        )
        return [(name, labels.get(name, name)) for name in ordered]

    def _event_create_target(self, Model, number, payload):
        """An unknown caller of an external event (e.g. a missed call) on a
        lead funnel becomes a new lead; other models are not created."""
        self.ensure_one()
        if Model._name != "crm.lead":
            return Model.browse()
        name = str(payload.get("name") or "")
        Consent = self.env["sms.microfunnel.consent"].sudo()
        found = Consent._contacts_by_number([number], self.company_id, order=None)
        partner = found.get(number, self.env["res.partner"].sudo())[:1]
        return Model.create(
            {
                "name": self.env._(
                    "%(funnel)s: %(contact)s",
                    funnel=self.name,
                    contact=name or partner.name or number,
                ),
                "type": "lead",
                "contact_name": name or partner.name or False,
                "partner_id": partner.id,
                "phone": number,
                "company_id": self.company_id.id,
                "user_id": self.user_id.id,
            }
        )

    @api.model
    def _enroll_from_activities(self, activities):
        """Enroll the records of done activities in the running funnels whose
        entry point is their activity type (e.g. a call not answered)."""
        activities = activities.sudo().filtered(
            lambda a: a.activity_type_id and a.res_model and a.res_id
        )
        if not activities:
            return self.browse()
        funnels = self.sudo().search(
            [
                ("state", "=", "running"),
                ("entry_activity_type_id", "in", activities.activity_type_id.ids),
            ]
        )
        enrolled = self.env["sms.microfunnel.enrollment"]
        for funnel in funnels:
            for activity in activities.filtered(
                lambda a, f=funnel: a.activity_type_id == f.entry_activity_type_id
            ):
                record = self.env[activity.res_model].sudo().browse(activity.res_id)
                if not record.exists():
                    continue
                if record._name != funnel.model_name:
                    partner = (
                        record["partner_id"] if "partner_id" in record._fields else None
                    )
                    if funnel.model_name != "res.partner" or not partner:
                        continue
                    record = partner
                if "company_id" in record._fields and record.company_id not in (
                    funnel.company_id,
                    self.env["res.company"],
                ):
                    continue
                values = {
                    "activity": activity.summary or activity.activity_type_id.name
                }
                if activity.feedback:
                    values["feedback"] = activity.feedback
                enrolled |= funnel._enroll(record, values=values)
        return enrolled

    # -- dry-run --------------------------------------------------------------

    def _simulate_channel_step(self, step, record, due):
        """Dry-run line values of a non-SMS step for ``record``."""
        self.ensure_one()
        line = {"send_at": due, "outcome": "allow", "reason": ""}
        if step.step_type == "email":
            recipients = record._message_get_default_recipients().get(record.id, {})
            emails = [
                email_normalize(e, strict=False)
                for e in (recipients.get("email_to") or "").split(",")
                if e.strip()
            ] + self.env["res.partner"].browse(recipients.get("partner_ids")).mapped(
                "email_normalized"
            )
            emails = [e for e in emails if e]
            blacklisted = (
                self.env["mail.blacklist"]
                .sudo()
                .search_count([("email", "in", emails)], limit=1)
            )
            if not emails:
                line.update(outcome="canceled", reason="no_email")
            elif blacklisted:
                line.update(outcome="canceled", reason="email_blacklisted")
            subject = step.mail_template_id._render_field("subject", record.ids)
            line["text"] = self.env._(
                "Email “%(subject)s” to %(email)s",
                subject=subject.get(record.id) or "",
                email=", ".join(emails) or "—",
            )
        elif step.step_type == "activity":
            user = self.env["sms.microfunnel.trace"]._channel_assignee(step, record)
            line["text"] = self.env._(
                "%(type)s for %(user)s, due %(days)s day(s) later",
                type=step.activity_type_id.name,
                user=user.name or "—",
                days=step.activity_delay_days,
            )
        elif step.step_type == "crm_update":
            line["text"] = step._crm_update_summary()
        return line
