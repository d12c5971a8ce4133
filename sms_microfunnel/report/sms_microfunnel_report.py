# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Funnel metrics as SQL views (no Python loop over traces).

``sms.microfunnel.report`` has one row per SMS attempt (a trace that reached
the queue).  Per-message measures are 0/1 columns; per-recipient measures
(recipients, opt-outs, conversions, revenue) are carried by the first attempt
of each enrollment only, so that sums never count an enrollment twice.  The rate
columns hold 100/0 on the rows that belong to their denominator and NULL
elsewhere: their average (``aggregator="avg"``) is therefore the exact ratio of
the definitions written in ``readme/CONTEXT.md``.
"""

from odoo import fields, models
from odoo.tools import SQL

from ..models.sms_microfunnel_enrollment import ENROLLMENT_STATES
from ..models.sms_microfunnel_trace import TRACE_STATES


class SmsMicrofunnelReport(models.Model):
    _name = "sms.microfunnel.report"
    _description = "SMS Funnel Analysis"
    _auto = False
    _order = "date desc, id desc"
    _rec_name = "campaign_id"

    date = fields.Datetime("Queued On", readonly=True)
    campaign_id = fields.Many2one("sms.microfunnel.campaign", "Funnel", readonly=True)
    step_id = fields.Many2one("sms.microfunnel.step", readonly=True)
    variant_id = fields.Many2one("sms.microfunnel.step.variant", readonly=True)
    trace_id = fields.Many2one("sms.microfunnel.trace", readonly=True)
    enrollment_id = fields.Many2one("sms.microfunnel.enrollment", readonly=True)
    partner_id = fields.Many2one("res.partner", "Contact", readonly=True)
    segment_id = fields.Many2one("sms.microfunnel.segment", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    # a report row is a trace that reached the queue: the queued states onwards
    state = fields.Selection(
        [s for s in TRACE_STATES if s[0] not in ("scheduled", "deferred")],
        readonly=True,
    )
    enrollment_state = fields.Selection(ENROLLMENT_STATES, readonly=True)
    recipient_count = fields.Integer("Recipients", readonly=True)
    sent_count = fields.Integer("Sent", readonly=True)
    delivered_count = fields.Integer("Delivered", readonly=True)
    failed_count = fields.Integer("Failed / Bounced", readonly=True)
    clicked_count = fields.Integer("Unique Clicks", readonly=True)
    replied_count = fields.Integer("Replies", readonly=True)
    optout_count = fields.Integer("Opt-outs", readonly=True)
    conversion_count = fields.Integer("Conversions", readonly=True)
    converted_after_count = fields.Integer(
        "Converted after the Message",
        readonly=True,
        help="1 on each message whose recipient reached the goal after it, "
        "within the attribution window. Grouped by step: the recipients of "
        "that step who converted afterwards (a contact counts at every step "
        "it received, so this is not a total of conversions).",
    )
    segments = fields.Integer("Segments Sent", readonly=True)
    revenue = fields.Float(readonly=True)
    cost = fields.Float(
        readonly=True, groups="sms_microfunnel.group_sms_funnel_manager"
    )
    deliverability_rate = fields.Float(
        "Deliverability (%)", readonly=True, aggregator="avg"
    )
    click_rate = fields.Float("Click Rate (%)", readonly=True, aggregator="avg")
    unsubscribe_rate = fields.Float(
        "Unsubscribe Rate (%)", readonly=True, aggregator="avg"
    )
    conversion_rate = fields.Float(
        "Conversion Rate (%)", readonly=True, aggregator="avg"
    )

    @property
    def _table_query(self):
        return SQL(
            """
            WITH attempts AS (
                -- first_attempt: the enrollment's earliest queued trace (a
                -- stored flag, so no window function has to sort the table)
                SELECT t.*, COALESCE(t.first_attempt, FALSE) AS is_first
                  FROM sms_microfunnel_trace t
                 WHERE t.queued_at IS NOT NULL
            ), enrollments AS (
                SELECT e.id, e.campaign_id, e.state, e.partner_id, e.segment_id,
                       e.res_model, e.res_id, e.enrolled_at, e.converted_at,
                       c.attribution_hours,
                       COALESCE(
                           e.exit_reason IN ('opted_out', 'replied_stop'), FALSE
                       ) AS opted_out,
                       (e.converted_at IS NOT NULL AND (
                           c.attribution_hours = 0
                           OR e.converted_at <= e.enrolled_at
                              + c.attribution_hours * INTERVAL '1 hour'
                       )) AS converted
                  FROM sms_microfunnel_enrollment e
                  JOIN sms_microfunnel_campaign c ON c.id = e.campaign_id
            )
            SELECT a.id AS id,
                   a.id AS trace_id,
                   a.queued_at AS date,
                   a.campaign_id, a.step_id, a.variant_id, a.enrollment_id,
                   a.company_id, a.state,
                   en.partner_id, en.segment_id, en.state AS enrollment_state,
                   (a.is_first)::int AS recipient_count,
                   (a.state IN ('sent', 'delivered', 'failed', 'bounced'))::int
                       AS sent_count,
                   (a.state = 'delivered')::int AS delivered_count,
                   (a.state IN ('failed', 'bounced'))::int AS failed_count,
                   (a.clicked_at IS NOT NULL)::int AS clicked_count,
                   (a.replied_at IS NOT NULL)::int AS replied_count,
                   (a.is_first AND en.opted_out)::int AS optout_count,
                   (a.is_first AND en.converted)::int
                       AS conversion_count,
                   -- on every attempt: grouped by step, the recipients of
                   -- that step who converted after it (not additive)
                   (en.converted AND en.converted_at >= a.queued_at)::int
                       AS converted_after_count,
                   CASE WHEN a.is_first AND en.converted
                        THEN COALESCE(%(revenue)s, 0) ELSE 0 END AS revenue,
                   CASE WHEN a.state IN ('sent', 'delivered', 'failed', 'bounced')
                        THEN COALESCE(a.segments, 0) ELSE 0 END AS segments,
                   COALESCE(a.cost, 0) AS cost,
                   CASE WHEN a.state IN ('delivered', 'failed', 'bounced')
                        THEN (a.state = 'delivered')::int * 100.0 END
                       AS deliverability_rate,
                   CASE WHEN a.state = 'delivered'
                        THEN (a.clicked_at IS NOT NULL)::int * 100.0 END
                       AS click_rate,
                   CASE WHEN a.is_first
                        THEN en.opted_out::int * 100.0 END AS unsubscribe_rate,
                   CASE WHEN a.is_first
                        THEN en.converted::int * 100.0 END AS conversion_rate
              FROM attempts a
              JOIN enrollments en
                ON en.id = a.enrollment_id AND en.campaign_id = a.campaign_id
            """,
            revenue=self._revenue_sql(),
        )

    def _revenue_sql(self):
        """The revenue of a converted enrollment, as an SQL expression.

        Extension hook (``sms_microfunnel_sale`` adds confirmed sale orders):
        override it and combine ``super()._revenue_sql()`` rather than
        rewriting the view.  The expression is evaluated once per converted
        enrollment, on its first attempt, and may be NULL (no revenue).  In
        scope: ``a`` (that first attempt: ``a.queued_at`` is the first send,
        ``a.company_id``) and ``en`` (the enrollment: ``en.id``,
        ``en.res_model``, ``en.res_id``, ``en.partner_id``,
        ``en.enrolled_at``, ``en.converted_at``, ``en.attribution_hours``).
        Amounts are in the company currency.

        Here: the expected revenue of the won CRM lead.
        """
        return SQL(
            """(SELECT l.expected_revenue
                  FROM crm_lead l
                 WHERE en.res_model = 'crm.lead' AND l.id = en.res_id
                   AND l.won_status = 'won')"""
        )
