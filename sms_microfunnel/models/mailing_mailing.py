# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The mailings of funnel email steps send once per enrollment."""

from odoo import models


class MailingMailing(models.Model):
    _inherit = "mailing.mailing"

    def _get_seen_list(self):
        """A funnel email step sends once per enrollment, not once per address
        for ever: a re-enrolled record gets it again."""
        funnel_step = (
            self.env["sms.microfunnel.step"]
            .sudo()
            .search_count([("mailing_id", "=", self.id)], limit=1)
        )
        if funnel_step:
            return set()
        return super()._get_seen_list()
