# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo import api, fields, models
from odoo.exceptions import AccessError

from ..tools import encrypted_fields, sms_crypto


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
    sms_consent_wording_warning = fields.Boolean(
        related="company_id.sms_consent_wording_warning"
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
    # where the key that encrypts the evidence comes from (never the database)
    sms_encryption_key_source = fields.Selection(
        [
            ("config", "Odoo configuration file"),
            ("environment", "Environment variable"),
            ("file", "Key file in Odoo's data directory (not for production)"),
        ],
        "Encryption Key",
        compute="_compute_sms_encryption_key",
    )
    sms_encryption_key_file = fields.Char(
        "Key File", compute="_compute_sms_encryption_key"
    )

    @api.depends("company_id")
    def _compute_sms_encryption_key(self):
        source = sms_crypto.key_source()
        for settings in self:
            settings.sms_encryption_key_source = source
            settings.sms_encryption_key_file = (
                sms_crypto.key_file_path() if source == "file" else False
            )

    def action_sms_reencrypt(self):
        """Re-encrypt the evidence with the first configured key (rotation)."""
        if not self.env.is_admin():
            raise AccessError(
                self.env._("Only administrators can re-encrypt the evidence.")
            )
        count = encrypted_fields.reencrypt_all(self.env)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": self.env._(
                    "%(count)s encrypted values rewritten with the current key.",
                    count=count,
                ),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }
