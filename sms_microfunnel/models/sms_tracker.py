# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import re

from odoo import fields, models
from odoo.tools.mail import TEXT_URL_REGEX


class SmsTracker(models.Model):
    _inherit = "sms.tracker"

    sms_microfunnel_trace_id = fields.Many2one(
        "sms.microfunnel.trace", ondelete="cascade", index="btree_not_null"
    )

    def _action_update_from_sms_state(
        self, sms_state, failure_type=False, failure_reason=False
    ):
        result = super()._action_update_from_sms_state(
            sms_state, failure_type=failure_type, failure_reason=failure_reason
        )
        self.sms_microfunnel_trace_id._update_from_sms_state(sms_state, failure_type)
        return result

    def _action_update_from_provider_error(self, provider_error):
        error_status, failure_type, failure_reason = (
            super()._action_update_from_provider_error(provider_error)
        )
        self.sms_microfunnel_trace_id._update_from_sms_state("error", failure_type)
        return error_status, failure_type, failure_reason


class SmsSms(models.Model):
    _inherit = "sms.sms"

    def _sms_funnel_track_links(self):
        """Make each short link of these SMS identify its recipient (``/s/<id>``),
        as Odoo's SMS marketing does, so clicks reach the funnel trace."""
        for sms in self:
            base = sms.get_base_url() + "/r/"
            body = sms.body or ""
            for url in set(re.findall(TEXT_URL_REGEX, body)):
                if url.startswith(base) and "/s/" not in url[len(base) :]:
                    body = re.sub(
                        re.escape(url) + r"(?![\w@:%.+&~#=/-])",
                        f"{url}/s/{sms.id}",
                        body,
                    )
            if body != sms.body:
                sms.body = body
