# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Multichannel funnel steps: email, salesperson activity and CRM update.

Mixed into the funnel models (``_inherit`` of ``sms.microfunnel.campaign``,
``sms.microfunnel.step`` and ``sms.microfunnel.trace``); the dispatcher hands
the traces of non-SMS steps to ``_dispatch_channels`` and asks
``_channel_condition_met`` for the conditions on emails and activities.

* **Email**: a mail template sent through Odoo's mass-mailing stack, one
  ``mailing.mailing`` per step: the mail queue sends it, ``mail.blacklist``
  and mailing opt-outs cancel it (with a reason), opens (tracking pixel) and
  clicks (``/r/<code>/m/<trace id>``) come back through ``mailing.trace``.
* **Salesperson activity**: a ``mail.activity`` for the record's salesperson,
  a user or the least-loaded member of a sales team, whose note can quote the
  contact's last SMS reply; marking it done is recorded on the trace.
* **CRM update**: stage, tags, won / lost on the enrolled lead.
"""

from datetime import timedelta

from markupsafe import Markup

from odoo import Command, api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_normalize
from odoo.tools.mail import plaintext2html

EMAIL_CONDITIONS = ("opened", "not_opened")
ACTIVITY_CONDITIONS = ("activity_done", "activity_not_done")
# mailing.trace failure types of a still-born email -> funnel cancel reason
MAIL_FAILURE_TO_REASON = {
    "mail_bl": "email_blacklisted",
    "mail_optout": "email_opted_out",
    "mail_email_missing": "no_email",
    "mail_email_invalid": "invalid_email",
    "mail_dup": "duplicate_email",
}
MAIL_BOUNCE_FAILURES = {"mail_bounce", "mail_email_invalid", "mail_email_missing"}


class SmsMicrofunnelCampaignChannel(models.AbstractModel):
    _name = "sms.microfunnel.campaign.channel"
    _description = "SMS Funnel: Targets and Entry Points"

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


class SmsMicrofunnelStepChannel(models.AbstractModel):
    _name = "sms.microfunnel.step.channel"
    _description = "SMS Funnel Step: Email, Activity and CRM Settings"

    # email
    mail_template_id = fields.Many2one(
        "mail.template",
        "Email Template",
        domain="[('model', '=', model_name)]",
        help="Sent to the enrolled record through Odoo's mailing engine (mail "
        "queue, blacklist, opt-out, open and click tracking).",
    )
    mailing_id = fields.Many2one(
        "mailing.mailing",
        "Email Statistics",
        readonly=True,
        copy=False,
        ondelete="set null",
        help="Mailing that holds the statistics of this email step.",
    )
    # salesperson activity
    activity_type_id = fields.Many2one("mail.activity.type")
    activity_assign = fields.Selection(
        [
            ("salesperson", "Salesperson of the record"),
            ("user", "A user"),
            ("team", "A sales team"),
        ],
        "Assign To",
        default="salesperson",
        help="Salesperson of the record: its salesperson (or its contact's), else "
        "the funnel's responsible. Sales team: the member with the fewest open "
        "activities.",
    )
    activity_user_id = fields.Many2one("res.users", "Assigned User")
    activity_team_id = fields.Many2one("crm.team", "Assigned Team")
    activity_delay_days = fields.Integer(
        "Due After (days)", default=0, help="0: due the day it is created."
    )
    activity_summary = fields.Char()
    activity_note = fields.Text(
        help="Placeholders as in SMS, e.g. {{ object.name }}; the contact's last "
        "SMS reply is {{ values.get('last_reply') or '' }}.",
    )
    activity_quote_reply = fields.Boolean(
        "Quote the Last Reply",
        default=True,
        help="Add the contact's last SMS reply under the note.",
    )
    # CRM update
    crm_stage_id = fields.Many2one("crm.stage", "Move to Stage")
    crm_tag_add_ids = fields.Many2many(
        "crm.tag",
        "sms_microfunnel_step_crm_tag_add_rel",
        "step_id",
        "tag_id",
        "Add Tags",
        groups="sales_team.group_sale_salesman",
    )
    crm_tag_remove_ids = fields.Many2many(
        "crm.tag",
        "sms_microfunnel_step_crm_tag_remove_rel",
        "step_id",
        "tag_id",
        "Remove Tags",
        groups="sales_team.group_sale_salesman",
    )
    crm_outcome = fields.Selection(
        [("none", "Unchanged"), ("won", "Mark as won"), ("lost", "Mark as lost")],
        "Lead Outcome",
        default="none",
    )
    crm_lost_reason_id = fields.Many2one("crm.lost.reason", "Lost Reason")

    @api.constrains(
        "step_type",
        "condition",
        "parent_id",
        "mail_template_id",
        "activity_type_id",
        "activity_assign",
        "activity_user_id",
        "activity_team_id",
        "crm_outcome",
    )
    def _check_channel_settings(self):
        for step in self:
            parent_type = step.parent_id.step_type
            if step.condition in EMAIL_CONDITIONS and parent_type != "email":
                raise ValidationError(
                    self.env._(
                        "Step “%(name)s”: email conditions follow an email step.",
                        name=step.name,
                    )
                )
            if step.condition in ACTIVITY_CONDITIONS and parent_type != "activity":
                raise ValidationError(
                    self.env._(
                        "Step “%(name)s”: activity conditions follow an activity step.",
                        name=step.name,
                    )
                )
            if step.condition in ("clicked", "not_clicked") and parent_type not in (
                "sms",
                "email",
            ):
                raise ValidationError(
                    self.env._(
                        "Step “%(name)s”: click conditions follow an SMS or an "
                        "email step.",
                        name=step.name,
                    )
                )
            if (
                step.step_type == "email"
                and step.mail_template_id
                and step.mail_template_id.model != step.campaign_id.model_name
            ):
                raise ValidationError(
                    self.env._(
                        "Step “%(name)s”: the email template must be made for the "
                        "funnel's target (%(model)s).",
                        name=step.name,
                        model=step.campaign_id.model_name,
                    )
                )

    def _check_ready_channels(self):
        """Raise if a non-SMS step cannot run (called when a funnel starts)."""
        for step in self:
            model_name = step.campaign_id.model_name
            if step.step_type == "email" and not step.mail_template_id:
                raise UserError(
                    self.env._(
                        "Step “%(name)s” needs an email template.", name=step.name
                    )
                )
            if step.step_type == "activity":
                if not step.activity_type_id:
                    raise UserError(
                        self.env._(
                            "Step “%(name)s” needs an activity type.", name=step.name
                        )
                    )
                if "activity_ids" not in self.env[model_name]._fields:
                    raise UserError(
                        self.env._(
                            "Step “%(name)s”: activities cannot be scheduled on "
                            "%(model)s.",
                            name=step.name,
                            model=model_name,
                        )
                    )
                if (step.activity_assign == "user" and not step.activity_user_id) or (
                    step.activity_assign == "team" and not step.activity_team_id
                ):
                    raise UserError(
                        self.env._(
                            "Step “%(name)s”: choose who gets the activity.",
                            name=step.name,
                        )
                    )
            if step.step_type == "crm_update":
                if model_name != "crm.lead":
                    raise UserError(
                        self.env._(
                            "Step “%(name)s”: CRM updates need a funnel on leads.",
                            name=step.name,
                        )
                    )
                if not (
                    step.crm_stage_id
                    or step.crm_tag_add_ids
                    or step.crm_tag_remove_ids
                    or step.crm_outcome in ("won", "lost")
                ):
                    raise UserError(
                        self.env._(
                            "Step “%(name)s”: choose what to change on the lead.",
                            name=step.name,
                        )
                    )

    def _channel_mailing(self):
        """The ``mailing.mailing`` holding this email step's statistics (created
        on first use, state "Sent" so that it is never sent as a whole)."""
        self.ensure_one()
        if self.mailing_id:
            return self.mailing_id.sudo()
        funnel = self.campaign_id
        template = self.mail_template_id.sudo()
        mailing = (
            self.env["mailing.mailing"]
            .sudo()
            .create(
                {
                    "subject": template.subject or self.name,
                    "body_arch": template.body_html,
                    "body_html": template.body_html,
                    "mailing_type": "mail",
                    "mailing_model_id": self.env["ir.model"]._get_id(funnel.model_name),
                    "mailing_domain": repr([("id", "in", [])]),
                    "campaign_id": funnel.utm_campaign_id.id,
                    "user_id": funnel.user_id.id,
                    "use_exclusion_list": True,
                    "state": "done",
                    "sent_date": fields.Datetime.now(),
                    "name": self.env._(
                        "%(funnel)s – %(step)s", funnel=funnel.name, step=self.name
                    ),
                }
            )
        )
        self.sudo().mailing_id = mailing
        return mailing

    def _crm_update_summary(self):
        self.ensure_one()
        parts = []
        if self.crm_stage_id:
            parts.append(self.env._("stage %(stage)s", stage=self.crm_stage_id.name))
        if self.crm_tag_add_ids:
            parts.append(
                self.env._(
                    "add %(tags)s", tags=", ".join(self.crm_tag_add_ids.mapped("name"))
                )
            )
        if self.crm_tag_remove_ids:
            parts.append(
                self.env._(
                    "remove %(tags)s",
                    tags=", ".join(self.crm_tag_remove_ids.mapped("name")),
                )
            )
        if self.crm_outcome == "won":
            parts.append(self.env._("won"))
        elif self.crm_outcome == "lost":
            parts.append(self.env._("lost"))
        return "; ".join(parts)


class SmsMicrofunnelTraceChannel(models.AbstractModel):
    _name = "sms.microfunnel.trace.channel"
    _description = "SMS Funnel Trace: Email, Activity and CRM Results"

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
        # imported here: this module's mixins must be defined before the trace
        # model, which sms_funnel_trace defines when imported
        from .sms_microfunnel_trace import RANK as rank  # noqa: PLC0415

        now = fields.Datetime.now()
        if event == "opened":
            self.filtered(lambda t: not t.opened_at).write({"opened_at": now})
            unreported = self.filtered(
                lambda t: rank.get(t.state, 0) < rank["delivered"]
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
        self.filtered(lambda t: rank.get(t.state, 0) < rank[new_state]).write(vals)

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
