# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    sms_funnel_sender_label = fields.Char(
        related="company_id.sms_funnel_sender_label", readonly=False
    )
    sms_funnel_optout_mention = fields.Char(
        related="company_id.sms_funnel_optout_mention", readonly=False
    )
    sms_funnel_max_segments = fields.Integer(
        related="company_id.sms_funnel_max_segments", readonly=False
    )
    sms_consent_wording = fields.Text(
        related="company_id.sms_consent_wording", readonly=False
    )
    sms_consent_wording_version = fields.Integer(
        related="company_id.sms_consent_wording_version"
    )
    sms_doi_expiry_hours = fields.Integer(
        related="company_id.sms_doi_expiry_hours", readonly=False
    )
    sms_text_doi_request = fields.Char(
        related="company_id.sms_text_doi_request", readonly=False
    )
    sms_text_doi_confirmed = fields.Char(
        related="company_id.sms_text_doi_confirmed", readonly=False
    )
    sms_text_stop = fields.Char(related="company_id.sms_text_stop", readonly=False)
    sms_text_start = fields.Char(related="company_id.sms_text_start", readonly=False)
    sms_text_help = fields.Char(related="company_id.sms_text_help", readonly=False)
    sms_retention_years = fields.Integer(
        related="company_id.sms_retention_years", readonly=False
    )
    sms_retention_auto_erase = fields.Boolean(
        related="company_id.sms_retention_auto_erase", readonly=False
    )
    sms_funnel_regulated_sector = fields.Selection(
        related="company_id.sms_funnel_regulated_sector", readonly=False
    )
    sms_revoke_all = fields.Boolean(related="company_id.sms_revoke_all", readonly=False)
