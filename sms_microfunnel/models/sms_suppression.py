# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Numbers erased at the contact's request (RGPD art. 17) stay suppressed.

Only a keyed hash (HMAC-SHA256) of the number is kept: a plain SHA-256 of a
phone number can be brute-forced, a keyed one cannot without the key.  The key
is the server option ``sms_microfunnel_suppression_key`` when set (kept outside
the database, as CNIL recommends), else a random secret generated once per
database.
"""

import hashlib
import hmac
import secrets

from odoo import api, fields, models
from odoo.tools import SQL, config

KEY_PARAM = "sms_microfunnel.suppression_key"


class SmsMicrofunnelSuppression(models.Model):
    _name = "sms.microfunnel.suppression"
    _description = "SMS Suppression (erased numbers)"
    _order = "create_date desc, id desc"
    _rec_name = "number_hash"

    number_hash = fields.Char(required=True, readonly=True, index=True)
    reason = fields.Selection(
        [("erasure", "Erasure request"), ("retention", "Retention period over")],
        required=True,
        default="erasure",
        readonly=True,
    )
    company_id = fields.Many2one("res.company", readonly=True)

    _number_hash_unique = models.UniqueIndex(
        "(number_hash)", "This number is already suppressed."
    )

    @api.model
    def _key(self):
        key = config.get("sms_microfunnel_suppression_key")
        if key:
            return key.encode()
        params = self.env["ir.config_parameter"].sudo()
        stored = params.get_param(KEY_PARAM)
        if not stored:
            stored = secrets.token_hex(32)
            params.set_param(KEY_PARAM, stored)
        return stored.encode()

    @api.model
    def _hash(self, number, key=None):
        return hmac.new(
            key or self._key(), (number or "").encode(), hashlib.sha256
        ).hexdigest()

    @api.model
    def _suppressed(self, numbers):
        """The E.164 numbers among ``numbers`` that are suppressed."""
        numbers = {n for n in numbers if n}
        if not numbers:
            return set()
        key = self._key()  # once, not per number (100,000 in a pre-flight)
        by_hash = {self._hash(n, key): n for n in numbers}
        self.flush_model(["number_hash"])
        found = self.env.execute_query(
            SQL(
                "SELECT number_hash FROM sms_microfunnel_suppression "
                "WHERE number_hash = ANY(%s)",
                list(by_hash),
            )
        )
        return {by_hash[number_hash] for (number_hash,) in found}

    @api.model
    def _suppress(self, numbers, reason="erasure", company=None):
        hashes = {self._hash(n) for n in numbers if n}
        known = set(
            self.sudo()
            .search_fetch([("number_hash", "in", list(hashes))], ["number_hash"])
            .mapped("number_hash")
        )
        return self.sudo().create(
            [
                {
                    "number_hash": h,
                    "reason": reason,
                    "company_id": company and company.id,
                }
                for h in sorted(hashes - known)
            ]
        )
