# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Time-of-day analysis: funnel SMS by the recipient's local weekday and hour.

One row per SMS a funnel queued, placed at the weekday and hour it was
queued on the recipient's clock (``send_weekday``/``send_hour`` of the trace,
worked out at dispatch in the recipient's zone).  Definitions:

* *sent*: queued and not failed, bounced or canceled (a message waiting for
  its delivery report counts);
* click, reply, click-or-reply rates: messages clicked / replied to / either,
  over the messages sent;
* conversion (last touch): the enrollment reached the funnel's goal within the
  attribution window, and this message is the last one it received before
  the conversion; the conversion rate is over the messages sent.

The rate columns hold 100/0 on sent messages and NULL elsewhere, so their
average (``aggregator="avg"``) is the exact ratio, as in the funnel analysis.
No window function: filters (a funnel, a number) reach the trace table, which
is what the "best hour" choice of ``sms.microfunnel.send.time`` relies on.
"""

from odoo import fields, models
from odoo.tools import SQL

from ..models.sms_microfunnel_send_time import HOURS, WEEKDAYS


class SmsMicrofunnelSendTimeReport(models.Model):
    _name = "sms.microfunnel.send.time.report"
    _description = "SMS Funnel Send-Time Analysis"
    _auto = False
    _order = "date desc, id desc"
    _rec_name = "campaign_id"
    _depends = {
        "sms.microfunnel.trace": [
            "campaign_id",
            "clicked_at",
            "company_id",
            "enrollment_id",
            "number",
            "queued_at",
            "replied_at",
            "send_hour",
            "send_tz",
            "send_weekday",
            "state",
            "step_id",
        ],
        "sms.microfunnel.enrollment": [
            "campaign_id",
            "converted_at",
            "enrolled_at",
            "partner_id",
            "segment_id",
        ],
        "sms.microfunnel.campaign": ["attribution_hours"],
    }

    date = fields.Datetime("Queued On", readonly=True)
    campaign_id = fields.Many2one("sms.microfunnel.campaign", "Funnel", readonly=True)
    step_id = fields.Many2one("sms.microfunnel.step", readonly=True)
    segment_id = fields.Many2one("sms.microfunnel.segment", readonly=True)
    trace_id = fields.Many2one("sms.microfunnel.trace", readonly=True)
    partner_id = fields.Many2one("res.partner", "Contact", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    number = fields.Char(readonly=True)
    send_tz = fields.Char("Recipient Time Zone", readonly=True)
    weekday = fields.Selection(WEEKDAYS, "Local Weekday", readonly=True)
    hour = fields.Selection(HOURS, "Local Hour", readonly=True)
    message_count = fields.Integer("Messages", readonly=True)
    sent_count = fields.Integer("Sent", readonly=True)
    clicked_count = fields.Integer("Clicked", readonly=True)
    replied_count = fields.Integer("Replied", readonly=True)
    engaged_count = fields.Integer("Clicked or Replied", readonly=True)
    conversion_count = fields.Integer("Conversions (Last Message)", readonly=True)
    click_rate = fields.Float("Click Rate (%)", readonly=True, aggregator="avg")
    reply_rate = fields.Float("Reply Rate (%)", readonly=True, aggregator="avg")
    engagement_rate = fields.Float(
        "Click or Reply Rate (%)", readonly=True, aggregator="avg"
    )
    conversion_rate = fields.Float(
        "Conversion Rate (%)", readonly=True, aggregator="avg"
    )

    @property
    def _table_query(self):
        return SQL(
            """
            WITH messages AS (
                SELECT t.id, t.queued_at, t.campaign_id, t.step_id,
                       t.enrollment_id, t.company_id, t.number, t.send_tz,
                       t.send_weekday, t.send_hour,
                       t.state NOT IN ('failed', 'bounced', 'canceled') AS sent,
                       t.clicked_at IS NOT NULL AS clicked,
                       t.replied_at IS NOT NULL AS replied,
                       e.partner_id, e.segment_id,
                       (e.converted_at IS NOT NULL
                        AND e.converted_at >= t.queued_at
                        AND (c.attribution_hours = 0
                             OR e.converted_at <= e.enrolled_at
                                + c.attribution_hours * INTERVAL '1 hour')
                        AND NOT EXISTS (
                            SELECT 1
                              FROM sms_microfunnel_trace n
                             WHERE n.enrollment_id = t.enrollment_id
                               AND n.queued_at IS NOT NULL
                               AND n.queued_at <= e.converted_at
                               AND (n.queued_at, n.id) > (t.queued_at, t.id)
                        )) AS converted
                  FROM sms_microfunnel_trace t
                  JOIN sms_microfunnel_enrollment e ON e.id = t.enrollment_id
                  JOIN sms_microfunnel_campaign c ON c.id = e.campaign_id
                 WHERE t.queued_at IS NOT NULL
            )
            SELECT m.id AS id,
                   m.id AS trace_id,
                   m.queued_at AS date,
                   m.campaign_id, m.step_id, m.segment_id, m.company_id,
                   m.partner_id,
                   m.number, m.send_tz,
                   m.send_weekday AS weekday,
                   m.send_hour AS hour,
                   1 AS message_count,
                   m.sent::int AS sent_count,
                   m.clicked::int AS clicked_count,
                   m.replied::int AS replied_count,
                   (m.clicked OR m.replied)::int AS engaged_count,
                   m.converted::int AS conversion_count,
                   CASE WHEN m.sent THEN m.clicked::int * 100.0 END AS click_rate,
                   CASE WHEN m.sent THEN m.replied::int * 100.0 END AS reply_rate,
                   CASE WHEN m.sent THEN (m.clicked OR m.replied)::int * 100.0 END
                       AS engagement_rate,
                   CASE WHEN m.sent THEN m.converted::int * 100.0 END
                       AS conversion_rate
              FROM messages m
            """
        )
