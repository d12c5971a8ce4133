# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Numbers erased at the contact's request (RGPD art. 17) stay suppressed.

Only a keyed hash (HMAC-SHA256) of the number is kept: a plain SHA-256 of a
phone number can be brute-forced, a keyed one cannot without the key.  The key
is never readable from the database alone:

- the server option ``sms_microfunnel_suppression_key`` when set;
- else a random secret generated once per database and stored in the system
  parameter ``sms_microfunnel.suppression_key`` *encrypted* with the
  encryption key, which lives outside the database (tools/sms_crypto.py).
  A database that kept that secret in clear (before encryption at rest) has
  it encrypted in place the first time it is used: the secret itself does not
  change, so every existing hash keeps matching.  Rotating the encryption key
  re-encrypts this secret too; the hashes never need recomputing.
"""

import hashlib
import hmac
import secrets

from odoo import api, fields, models
from odoo.tools import SQL, config, ormcache

from ..tools import sms_crypto, sql_array

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

    @api.model_create_multi
    def create(self, vals_list):
        self.env.registry.clear_cache()  # _has_any
        return super().create(vals_list)

    def unlink(self):
        self.env.registry.clear_cache()  # _has_any
        return super().unlink()

    @api.model
    @ormcache()
    def _has_any(self):
        """Whether any number is suppressed (cached: the readers that select
        their numbers in SQL read them back only when the list is not
        empty)."""
        self.flush_model(["number_hash"])
        return bool(
            self.env.execute_query(
                SQL("SELECT 1 FROM sms_microfunnel_suppression LIMIT 1")
            )
        )

    @api.model
    def _key(self):
        key = config.get("sms_microfunnel_suppression_key")
        if key:
            return key.encode()
        params = self.env["ir.config_parameter"].sudo()
        stored = params.get_param(KEY_PARAM)
        if not stored:
            stored = sms_crypto.encrypt(secrets.token_hex(32))
            params.set_param(KEY_PARAM, stored)
        elif not sms_crypto.is_encrypted(stored):
            # kept in clear by an earlier version: the same secret, encrypted
            params.set_param(KEY_PARAM, sms_crypto.encrypt(stored))
            return stored.encode()
        return sms_crypto.decrypt(stored, strict=True).encode()

    @api.model
    def _reencrypt_key(self):
        """Encrypt the stored secret with the current first key (rotation)."""
        params = self.env["ir.config_parameter"].sudo()
        stored = params.get_param(KEY_PARAM)
        if stored:
            params.set_param(KEY_PARAM, sms_crypto.reencrypt(stored, strict=True))

    @api.model
    def _hash(self, number, key=None):
        return hmac.new(
            key or self._key(), (number or "").encode(), hashlib.sha256
        ).hexdigest()

    @api.model
    def _keyed_hash(self, value, purpose, key=None):
        """Keyed hash of another personal value (e.g. an IP address), to find
        equal values without storing them in clear; False when empty."""
        if not value:
            return False
        return self._hash(f"{purpose}:{value}", key=key)

    @api.model
    def _suppressed(self, numbers):
        """The E.164 numbers among ``numbers`` that are suppressed."""
        numbers = {n for n in numbers if n}
        if not numbers:
            return set()
        self.flush_model(["number_hash"])
        # an empty list (no erasure yet) needs no hash at all
        if not self.env.execute_query(
            SQL("SELECT 1 FROM sms_microfunnel_suppression LIMIT 1")
        ):
            return set()
        # the key once, not per number (100,000 in a pre-flight); a copy of
        # the keyed state per number is 3 times cheaper than a new HMAC
        keyed = hmac.new(self._key(), digestmod=hashlib.sha256)
        by_hash = {}
        for number in numbers:
            digest = keyed.copy()
            digest.update(number.encode())
            by_hash[digest.hexdigest()] = number
        found = self.env.execute_query(
            SQL(
                "SELECT number_hash FROM sms_microfunnel_suppression "
                "WHERE number_hash = ANY(%s)",
                sql_array.literal(by_hash),
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
