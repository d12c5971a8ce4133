# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import models
from odoo.tools import SQL


class SmsMicrofunnelReport(models.Model):
    _inherit = "sms.microfunnel.report"

    def _revenue_sql(self):
        """A conversion's revenue is the untaxed amount, in the company
        currency, of the confirmed sale orders of the enrolled lead (linked
        through the order's opportunity) or contact (the order's customer),
        of the funnel's company, confirmed from the first send to the end of
        the attribution window.  Without such an order, the revenue of the
        core definition (the won lead's expected revenue) stays."""
        return SQL("COALESCE(%s, %s)", self._sale_revenue_sql(), super()._revenue_sql())

    def _sale_revenue_sql(self):
        # ``currency_rate`` converts the company currency into the order's
        # (as in Odoo's sales analysis); ``date_order`` is the confirmation
        # date of a confirmed order
        return SQL(
            """(SELECT SUM(
                           so.amount_untaxed
                           / COALESCE(NULLIF(so.currency_rate, 0), 1.0)
                       )
                  FROM sale_order so
                 WHERE so.state = 'sale'
                   AND so.company_id = a.company_id
                   AND CASE en.res_model
                           WHEN 'crm.lead' THEN so.opportunity_id = en.res_id
                           WHEN 'res.partner' THEN so.partner_id = en.res_id
                           ELSE FALSE
                       END
                   AND so.date_order >= a.queued_at
                   AND (en.attribution_hours = 0
                        OR so.date_order <= a.queued_at
                           + en.attribution_hours * INTERVAL '1 hour'))"""
        )
