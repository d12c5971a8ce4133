# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class SmsMicrofunnelEnrollment(models.Model):
    _inherit = "sms.microfunnel.enrollment"

    exit_reason = fields.Selection(
        selection_add=[("registration_canceled", "Registration canceled")]
    )
