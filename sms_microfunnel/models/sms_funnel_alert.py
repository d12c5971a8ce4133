# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Key rates of a funnel and the deliverability / unsubscribe alerts."""

from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import SQL

from ..tools import sql_array

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
    _inherit = "sms.microfunnel.campaign"

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
