# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models
from odoo.tools import SQL


class SmsMicrofunnelCohortReport(models.Model):
    _name = "sms.microfunnel.cohort.report"
    _description = "SMS Consent Cohorts"
    _auto = False
    _order = "cohort_month desc"
    _rec_name = "cohort_month"

    cohort_month = fields.Date("Opt-in Month", readonly=True)
    company_id = fields.Many2one("res.company", readonly=True)
    status = fields.Selection(
        [
            ("active", "Active"),
            ("engaged", "Engaged"),
            ("dormant", "Dormant"),
            ("opted_out", "Opted out"),
        ],
        readonly=True,
    )
    contact_count = fields.Integer("Contacts", readonly=True)
    active_count = fields.Integer("Active", readonly=True)
    engaged_count = fields.Integer("Engaged", readonly=True)
    dormant_count = fields.Integer("Dormant", readonly=True)
    opted_out_count = fields.Integer("Opted out", readonly=True)

    @property
    def _table_query(self):
        return SQL(
            """
            WITH optins AS (
                SELECT ev.company_id, ev.number,
                       MIN(ev.event_date) FILTER (
                           WHERE ev.event_type
                                 IN ('confirmed', 'soft_opt_in', 're_opt_in')
                       ) AS first_optin,
                       MAX(ev.event_date) FILTER (
                           WHERE ev.event_type
                                 IN ('confirmed', 'soft_opt_in', 're_opt_in')
                       ) AS last_optin,
                       MAX(ev.event_date) FILTER (
                           WHERE ev.event_type = 'opt_out'
                       ) AS last_optout
                  FROM sms_microfunnel_consent_event ev
                 WHERE ev.number IS NOT NULL
              GROUP BY ev.company_id, ev.number
            ), engagement AS (
                SELECT t.company_id, t.number,
                       MAX(GREATEST(t.clicked_at, t.replied_at)) AS last_engaged,
                       MAX(t.delivered_at) AS last_delivered
                  FROM sms_microfunnel_trace t
                 WHERE t.number IS NOT NULL
              GROUP BY t.company_id, t.number
            ), classified AS (
                SELECT o.company_id,
                       DATE_TRUNC('month', o.first_optin)::date AS cohort_month,
                       CASE
                           WHEN o.last_optout IS NOT NULL
                                AND o.last_optout >= o.last_optin THEN 'opted_out'
                           WHEN g.last_engaged >= (NOW() AT TIME ZONE 'UTC')
                                - INTERVAL '90 days' THEN 'engaged'
                           WHEN g.last_delivered >= (NOW() AT TIME ZONE 'UTC')
                                - INTERVAL '90 days' THEN 'active'
                           ELSE 'dormant'
                       END AS status
                  FROM optins o
             LEFT JOIN engagement g
                    ON g.company_id = o.company_id AND g.number = o.number
                 WHERE o.first_optin IS NOT NULL
            )
            SELECT ROW_NUMBER() OVER (
                       ORDER BY cohort_month, company_id, status
                   ) AS id,
                   cohort_month, company_id, status,
                   COUNT(*) AS contact_count,
                   COUNT(*) FILTER (WHERE status = 'active') AS active_count,
                   COUNT(*) FILTER (WHERE status = 'engaged') AS engaged_count,
                   COUNT(*) FILTER (WHERE status = 'dormant') AS dormant_count,
                   COUNT(*) FILTER (WHERE status = 'opted_out') AS opted_out_count
              FROM classified
          GROUP BY cohort_month, company_id, status
            """
        )
