# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Micro-funnels: a campaign, its tree of steps and A/B variants."""

import re
import secrets
import uuid
from datetime import timedelta

import pytz

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.fields import Domain
from odoo.tools.mail import TEXT_URL_REGEX
from odoo.tools.safe_eval import safe_eval

from .sms_send_time import SLOT_PRESETS

URL_PATTERN = re.compile(TEXT_URL_REGEX)
TARGET_MODELS = [("res.partner", "Contacts"), ("crm.lead", "CRM Leads")]


class SmsMicrofunnelCampaign(models.Model):
    _name = "sms.microfunnel.campaign"
    _description = "SMS Funnel"
    _inherit = [
        "mail.thread",
        "mail.activity.mixin",
        "sms.microfunnel.campaign.channel",  # sms_funnel_channel.py
    ]
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
        self.env.ref("sms_microfunnel.ir_cron_sms_funnel_dispatch")._trigger()
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
        enrollments = self._enroll(records)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": self.env._(
                    "%(count)s records enrolled (%(skipped)s already in this funnel).",
                    count=len(enrollments),
                    skipped=len(records) - len(enrollments),
                ),
            },
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
        now = fields.Datetime.now()
        due = self.search(
            [
                ("state", "=", "running"),
                ("enroll_at", "<=", now),
                ("audience_enrolled_at", "=", False),
            ]
        )
        for funnel in due:
            funnel._enroll(funnel._audience())
            funnel.audience_enrolled_at = now
        return due

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
            record = Model.search(
                [("phone_sanitized", "=", number), *company_domain],
                order="write_date desc",
                limit=1,
            )
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
        local = pytz.utc.localize(when).astimezone(pytz.timezone(tz_name))
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
            wait = timedelta(hours=step.wait_hours or 0)
            if step.wait_mode in ("after_enrollment", "after_parent"):
                due = anchor + wait
            else:
                due = self.env["sms.microfunnel.enrollment"]._date_due(
                    step, record, self.company_id
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


class SmsMicrofunnelStep(models.Model):
    _name = "sms.microfunnel.step"
    _description = "SMS Funnel Step"
    _inherit = ["sms.microfunnel.step.channel"]  # sms_funnel_channel.py
    _order = "sequence, id"
    _parent_name = "parent_id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    campaign_id = fields.Many2one(
        "sms.microfunnel.campaign",
        "Funnel",
        required=True,
        ondelete="cascade",
        index=True,
    )
    company_id = fields.Many2one(related="campaign_id.company_id", store=True)
    parent_id = fields.Many2one(
        "sms.microfunnel.step",
        "After Step",
        ondelete="cascade",
        domain="[('campaign_id', '=', campaign_id), ('id', '!=', id)]",
        index="btree_not_null",
    )
    child_ids = fields.One2many("sms.microfunnel.step", "parent_id")
    # The funnel builder links a new step to a step not saved yet (an unsaved
    # funnel has no step ids): each step has a key, a child names its parent's
    # key, and the server turns it into ``parent_id`` when both are saved.
    builder_key = fields.Char(default=lambda self: uuid.uuid4().hex, copy=True)
    parent_key = fields.Char(copy=True)
    step_type = fields.Selection(
        [
            ("sms", "SMS"),
            ("email", "Email"),
            ("activity", "Salesperson activity"),
            ("crm_update", "CRM update"),
        ],
        default="sms",
        required=True,
    )
    wait_mode = fields.Selection(
        [
            ("after_enrollment", "After enrollment"),
            ("after_parent", "After the previous step"),
            ("before_date", "Before a date of the record"),
            ("after_date", "After a date of the record"),
        ],
        default="after_enrollment",
        required=True,
    )
    wait_hours = fields.Float(
        "Wait (hours)",
        compute="_compute_wait_hours",
        store=True,
        readonly=False,
        precompute=True,
    )
    wait_value = fields.Float("Wait", default=0)
    wait_unit = fields.Selection(
        [("minutes", "Minutes"), ("hours", "Hours"), ("days", "Days")],
        default="hours",
        required=True,
    )
    date_field_id = fields.Many2one(
        "ir.model.fields",
        ondelete="cascade",
        domain="[('ttype', 'in', ('date', 'datetime')), ('model', '=', model_name)]",
    )
    model_name = fields.Selection(related="campaign_id.model_name")
    condition = fields.Selection(
        [
            ("always", "Always"),
            ("clicked", "Clicked a link of the previous step"),
            ("not_clicked", "Did not click the previous step"),
            ("replied", "Replied"),
            ("replied_keyword", "Replied with a keyword"),
            ("not_replied", "Did not reply"),
            ("converted", "Converted"),
            ("not_converted", "Not converted"),
            ("opened", "Opened the previous email"),
            ("not_opened", "Did not open the previous email"),
            ("activity_done", "Previous activity done"),
            ("activity_not_done", "Previous activity not done"),
        ],
        default="always",
        required=True,
    )
    condition_keyword = fields.Char(
        help="For 'Replied with a keyword': e.g. YES, OUI (comma-separated)."
    )
    message_class = fields.Selection(
        [("marketing", "Marketing"), ("transactional", "Transactional")],
        default="marketing",
        required=True,
    )
    body = fields.Text(
        help="Placeholders use Odoo's syntax, with a fallback: "
        "{{ object.name or 'client' }}."
    )
    variant_ids = fields.One2many("sms.microfunnel.step.variant", "step_id", copy=True)
    ab_winner_mode = fields.Selection(
        [
            ("manual", "Manual"),
            ("click_rate", "Best click rate"),
            ("conversion_rate", "Best conversion rate"),
        ],
        "A/B Winner",
        default="manual",
    )
    ab_decision_hours = fields.Integer("Decide the Winner After (hours)", default=24)
    winner_variant_id = fields.Many2one(
        "sms.microfunnel.step.variant", domain="[('step_id', '=', id)]"
    )
    # send-time targeting (models/sms_send_time.py)
    send_slot = fields.Selection(
        SLOT_PRESETS,
        default="none",
        required=True,
        help="Preferred hours in the recipient's local time, always within the "
        "legal send window: a due message waits for the next opening of both.",
    )
    send_slot_line_ids = fields.One2many(
        "sms.microfunnel.step.slot", "step_id", "Custom Hours", copy=True
    )
    send_best_hour = fields.Boolean(
        "Best Hour",
        help="Send at the hour of the week with the best click or reply rate of "
        "the contact, else of the segment they were enrolled from, else of the "
        "funnel's audience, else of the company's recipients; without enough "
        "history, the send slot applies.",
    )
    send_best_hour_min_sample = fields.Integer(
        "Minimum History",
        default=5,
        help="Past messages a contact needs before its own best hour is used; "
        "for the audience, each hour of the week needs as many messages.",
    )
    company_regulated_sector = fields.Selection(
        related="company_id.sms_funnel_regulated_sector"
    )
    # phone preview (views: sms_funnel_phone_preview widget)
    preview_ref = fields.Reference(
        selection="_selection_preview_models",
        string="Preview For",
        compute="_compute_preview_ref",
        readonly=False,
        help="The record whose values fill the placeholders of the preview.",
    )
    preview = fields.Json(compute="_compute_preview")

    @api.model
    def _selection_preview_models(self):
        return self.env["sms.microfunnel.campaign"]._selection_target_models()

    @api.depends("campaign_id.model_name")
    def _compute_preview_ref(self):
        cache = {}
        for step in self:
            model = step.campaign_id.model_name
            if step.preview_ref and step.preview_ref._name == model:
                continue
            if model not in cache:
                Campaign = self.env["sms.microfunnel.campaign"]
                record = (
                    self.env[model].search(Campaign._marketable_domain(model), limit=1)
                    if model
                    else None
                )
                if model and not record:
                    record = self.env[model].search([], limit=1)
                cache[model] = record
            record = cache[model]
            step.preview_ref = f"{record._name},{record.id}" if record else False

    @api.depends(
        "body",
        "message_class",
        "step_type",
        "preview_ref",
        "campaign_id.company_id",
        "variant_ids.body",
    )
    def _compute_preview(self):
        rules = self.env["sms.microfunnel.message.rules"]
        for step in self:
            body = (step.variant_ids[:1].body if step.variant_ids else step.body) or ""
            if step.step_type != "sms" or not body.strip():
                step.preview = False
                continue
            step.preview = step._compose_preview(
                rules,
                body,
                step.preview_ref or None,
                step.campaign_id.company_id or self.env.company,
            )

    def _compose_preview(self, rules, body, record, company):
        """The text as the recipient will read it, composed by the message
        rules (sender, opt-out mention, placeholders rendered on ``record``),
        without creating anything: links show as a short link of the length
        the tracker will give them, the unsubscribe link as its estimate."""
        host = rules._short_url_host()
        short = host + "x" * rules._estimated_short_code_length()
        body = URL_PATTERN.sub(
            lambda match: match.group(0) if match.group(0).startswith(host) else short,
            body,
        )
        number = (
            record.phone_sanitized if record and "phone_sanitized" in record else None
        )
        try:
            composed = rules._compose(
                body,
                record=record,
                company=company,
                message_class=self.message_class,
                shorten_links=False,
            )
        except UserError as error:  # a placeholder that does not render
            return {"error": str(error)}
        currency = self.env["res.currency"].browse(composed.get("currency_id"))
        sender = rules._sender_name(company) if company else ""
        return {
            "text": composed["text"],
            "sender": sender or company.name,
            "number": number or "",
            "encoding": composed["encoding"],
            "segments": composed["segments"],
            "units_left": composed["units_left"],
            "cost": composed["cost"],
            "cost_label": currency.format(composed["cost"]) if currency else "",
            "blocked_message": composed["blocked_message"] or "",
            "record": record.display_name if record else "",
        }

    @api.depends("wait_value", "wait_unit")
    def _compute_wait_hours(self):
        factors = {"minutes": 1 / 60, "hours": 1, "days": 24}
        for step in self:
            step.wait_hours = (step.wait_value or 0) * factors[
                step.wait_unit or "hours"
            ]

    @api.model
    def _wait_from_hours(self, hours):
        """(value, unit) showing ``hours`` in the largest whole unit."""
        hours = hours or 0
        if hours and hours % 24 == 0:
            return hours / 24, "days"
        if hours and round(hours * 60) != round(hours) * 60:
            return round(hours * 60, 2), "minutes"
        return hours, "hours"

    def _builder_vals(self, vals):
        """Fill ``wait_value``/``wait_unit`` from ``wait_hours`` and keep the
        parent key and ``parent_id`` of ``vals`` in step."""
        vals = dict(vals)
        if "wait_hours" in vals and not {"wait_value", "wait_unit"} & set(vals):
            vals["wait_value"], vals["wait_unit"] = self._wait_from_hours(
                vals["wait_hours"]
            )
            vals.pop("wait_hours")
        if vals.get("parent_id") and "parent_key" not in vals:
            vals["parent_key"] = self.browse(vals["parent_id"]).builder_key
        elif "parent_id" in vals and not vals["parent_id"]:
            vals.setdefault("parent_key", False)
        return vals

    @api.model_create_multi
    def create(self, vals_list):
        """Create parents before their children: a child naming its parent by
        ``parent_key`` gets the parent's id (the builder adds steps to funnels
        and steps not saved yet)."""
        vals_list = [self._builder_vals(vals) for vals in vals_list]
        pending = dict(enumerate(vals_list))
        created = {}
        while pending:
            ready = {}
            for index, vals in pending.items():
                key = vals.get("parent_key")
                if vals.get("parent_id") or not key:
                    ready[index] = vals
                    continue
                waiting = any(
                    other.get("builder_key") == key
                    for i, other in pending.items()
                    if i != index
                )
                if waiting:
                    continue
                parent = self.search(
                    [
                        ("campaign_id", "=", vals.get("campaign_id")),
                        ("builder_key", "=", key),
                    ],
                    limit=1,
                )
                vals["parent_id"] = parent.id or False
                if not parent:
                    vals["parent_key"] = False
                ready[index] = vals
            if not ready:  # a loop of keys: let the constraint speak
                ready = pending
            records = super().create(list(ready.values()))
            for index, record in zip(ready, records, strict=True):
                created[index] = record.id
                pending.pop(index)
            for vals in pending.values():
                key = vals.get("parent_key")
                for record in records:
                    if key and record.builder_key == key:
                        vals["parent_id"] = record.id
        return self.browse([created[index] for index in range(len(vals_list))])

    def write(self, vals):
        vals = self._builder_vals(vals)
        if vals.get("parent_key") and not vals.get("parent_id"):
            parent = self.search(
                [
                    ("campaign_id", "in", self.campaign_id.ids),
                    ("builder_key", "=", vals["parent_key"]),
                ],
                limit=1,
            )
            if parent:
                vals["parent_id"] = parent.id
        return super().write(vals)

    @api.constrains("parent_id", "wait_mode", "date_field_id", "condition")
    def _check_tree(self):
        for step in self:
            if step.parent_id and step.parent_id.campaign_id != step.campaign_id:
                raise ValidationError(
                    self.env._("A step follows a step of its funnel.")
                )
            if step.wait_mode == "after_parent" and not step.parent_id:
                raise ValidationError(
                    self.env._(
                        "Step “%(name)s” waits after a previous step: choose it.",
                        name=step.name,
                    )
                )
            if (
                step.wait_mode in ("before_date", "after_date")
                and not step.date_field_id
            ):
                raise ValidationError(
                    self.env._("Step “%(name)s” needs a date field.", name=step.name)
                )
            if step.condition != "always" and not step.parent_id:
                raise ValidationError(
                    self.env._(
                        "Only a step that follows another step can have a condition."
                    )
                )
        if self._has_cycle():
            raise ValidationError(
                self.env._("Steps cannot follow each other in a loop.")
            )

    @api.constrains("variant_ids")
    def _check_variants(self):
        for step in self.filtered("variant_ids"):
            if round(sum(step.variant_ids.mapped("split_percent")), 2) != 100:
                raise ValidationError(
                    self.env._(
                        "The A/B splits of “%(name)s” must add up to 100 %%.",
                        name=step.name,
                    )
                )

    @api.constrains("send_best_hour_min_sample")
    def _check_send_best_hour(self):
        for step in self:
            if step.send_best_hour_min_sample < 1:
                raise ValidationError(
                    self.env._("The minimum history of the best hour is at least 1.")
                )

    @api.constrains("message_class", "campaign_id", "step_type")
    def _check_regulated_sector(self):
        """Funnels of a regulated company send no marketing (res.company);
        activities and CRM updates send nothing to the recipient."""
        for step in self.filtered(
            lambda s: (
                s.message_class == "marketing"
                and s.step_type not in ("activity", "crm_update")
            )
        ):
            company = step.campaign_id.company_id
            if company.sms_funnel_regulated_sector:
                raise ValidationError(company._sms_funnel_regulated_refusal(step))

    def _check_ready(self):
        self._check_regulated_sector()
        for step in self.filtered(lambda s: s.send_slot == "custom"):
            if not step.send_slot_line_ids:
                raise UserError(
                    self.env._(
                        "Step “%(name)s” has a custom send slot without hours.",
                        name=step.name,
                    )
                )
        self._check_ready_channels()  # email, activity, CRM update steps
        for step in self.filtered(lambda s: s.step_type == "sms"):
            bodies = step.variant_ids.mapped("body") or [step.body]
            if not all(bodies):
                raise UserError(
                    self.env._("Step “%(name)s” has no message.", name=step.name)
                )
            rules = self.env["sms.microfunnel.message.rules"]
            if step.message_class == "marketing" and hasattr(
                rules, "_check_marketing_content"
            ):
                for body in bodies:
                    rules._check_marketing_content(body, company=step.company_id)

    def _pick_variants(self, count):
        """Deterministic A/B assignment for ``count`` new traces of this step."""
        self.ensure_one()
        if self.winner_variant_id:
            return [self.winner_variant_id] * count
        variants = self.variant_ids.sorted("sequence")
        if not variants:
            return [self.env["sms.microfunnel.step.variant"]] * count
        picks, quotas = [], [(v, v.split_percent / 100.0) for v in variants]
        assigned = dict.fromkeys(variants.ids, 0)
        already = dict(
            self.env["sms.microfunnel.trace"]._read_group(
                [("step_id", "=", self.id), ("variant_id", "!=", False)],
                ["variant_id"],
                ["__count"],
            )
        )
        for variant in variants:
            assigned[variant.id] = already.get(variant, 0)
        for _i in range(count):
            total = sum(assigned.values()) + 1
            # the variant furthest below its share gets the next recipient
            variant = max(quotas, key=lambda q: q[1] * total - assigned[q[0].id])[0]
            assigned[variant.id] += 1
            picks.append(variant)
        return picks


class SmsMicrofunnelStepVariant(models.Model):
    _name = "sms.microfunnel.step.variant"
    _description = "SMS Funnel Step Variant (A/B)"
    _order = "sequence, id"

    step_id = fields.Many2one(
        "sms.microfunnel.step", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer(default=10)
    name = fields.Char(required=True, default="A")
    body = fields.Text(required=True)
    split_percent = fields.Float("Split (%)", default=50)
