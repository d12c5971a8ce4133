# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class MailNotification(models.Model):
    _inherit = "mail.notification"

    # Twilio 21610: the SMS notification fails as "opted out" (the value exists
    # on sms.sms and mailing.trace, not on notifications)
    failure_type = fields.Selection(selection_add=[("sms_optout", "Opted Out")])
