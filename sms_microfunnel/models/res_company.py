# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResCompany(models.Model):
    _inherit = "res.company"

    sms_funnel_sender_label = fields.Char(
        string="SMS Sender Identification",
        help="Prefix that names the sender in every marketing SMS, e.g. 'ACME: '. "
        "Leave empty when an alphanumeric sender ID already names the company.",
    )
    sms_funnel_optout_mention = fields.Char(
        string="SMS Opt-out Mention",
        translate=True,
        help="Opt-out instruction appended to every marketing SMS, e.g. "
        "'STOP au 36xxx' or 'Reply STOP to opt out'.",
    )
    sms_funnel_max_segments = fields.Integer(
        string="Maximum SMS Segments",
        default=3,
        help="A message longer than this number of segments cannot be sent.",
    )

    _sms_funnel_max_segments_positive = models.Constraint(
        "CHECK(sms_funnel_max_segments >= 1)",
        "The maximum number of SMS segments must be at least 1.",
    )
