# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.tools import create_index


class SmsTwilioNumber(models.Model):
    _inherit = "sms.twilio.number"

    # every inbound webhook finds its company by the receiving number
    number = fields.Char(index=True)

    def init(self):
        res = super().init()
        # once every model's columns exist (the SID is a column we add)
        self.pool.post_init(self._create_service_sid_index)
        return res

    def _create_service_sid_index(self):
        """Inbound messages sent through a Messaging Service find their
        company by its SID."""
        create_index(
            self.env.cr,
            "res_company_sms_twilio_messaging_service_sid_index",
            "res_company",
            ["sms_twilio_messaging_service_sid"],
            where="sms_twilio_messaging_service_sid IS NOT NULL",
        )

    # the inbound routes of the companies (res.company._sms_twilio_inbound_routes)
    @api.model_create_multi
    def create(self, vals_list):
        numbers = super().create(vals_list)
        self.env.registry.clear_cache()
        return numbers

    def write(self, vals):
        result = super().write(vals)
        self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result
