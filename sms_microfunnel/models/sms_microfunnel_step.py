# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import re
import uuid

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools.mail import TEXT_URL_REGEX

from .sms_microfunnel_send_time import SLOT_PRESETS

URL_PATTERN = re.compile(TEXT_URL_REGEX)
EMAIL_CONDITIONS = ("opened", "not_opened")
ACTIVITY_CONDITIONS = ("activity_done", "activity_not_done")


class SmsMicrofunnelStep(models.Model):
    _name = "sms.microfunnel.step"
    _description = "SMS Funnel Step"
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
    # send-time targeting (models/sms_microfunnel_send_time.py)
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
        result = super().write(vals)
        if "body" in vals:  # the variants' texts: their own create and write
            self._prepare_link_trackers()
        return result

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

    # -- email, activity and CRM update settings -------------------------------

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
        """The ``mailing.mailing`` holding this step's statistics (created on
        first use, state "Sent" so that it is never sent as a whole): an email
        mailing for an email step, an SMS mailing for an SMS step."""
        self.ensure_one()
        if self.mailing_id:
            return self.mailing_id.sudo()
        funnel = self.campaign_id
        vals = {
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
        if self.step_type == "sms":
            # the medium ("SMS") is set by the mailing itself
            vals.update(
                subject=self.name,
                body_plaintext=self.body,
                mailing_type="sms",
                # the funnel writes its own opt-out mention (message rules)
                sms_allow_unsubscribe=False,
            )
        else:
            template = self.mail_template_id.sudo()
            vals.update(
                subject=template.subject or self.name,
                body_arch=template.body_html,
                body_html=template.body_html,
                mailing_type="mail",
            )
        mailing = self.env["mailing.mailing"].sudo().create(vals)
        self.sudo().mailing_id = mailing
        self._prepare_link_trackers()
        return mailing

    def _prepare_link_trackers(self):
        """Create the link trackers of the links written in these SMS steps'
        texts (the step's and its variants'), with the UTM values of the
        step's mailing, as the dispatch tracks them.  Done when the step gets
        its mailing (the funnel starts) and when a running step's text
        changes: the dispatch jobs, which compose their first chunks at the
        same moment, then all find them instead of each creating them (one
        would win and the others start their chunk again).  A link built by
        a placeholder is only known once rendered: the dispatch creates it."""
        rules = self.env["sms.microfunnel.message.rules"]
        for step in self.filtered(lambda s: s.step_type == "sms" and s.mailing_id):
            texts = [step.body or "", *step.variant_ids.mapped("body")]
            links = [
                match.group()
                for text in texts
                for match in URL_PATTERN.finditer(text)
                # a link a placeholder completes: rendered per recipient
                if "{" not in match.group() and not text.startswith("{", match.end())
            ]
            if links:
                rules._shorten_links_batch(
                    [" ".join(dict.fromkeys(links))],
                    step.mailing_id.sudo()._get_link_tracker_values(),
                )

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
