# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Evidence encrypted at rest with a key that is not in the database."""

import hashlib
import hmac
import os
import stat
import tempfile
from unittest.mock import patch

from cryptography.fernet import Fernet

from odoo.tests import Form, TransactionCase, new_test_user, tagged
from odoo.tools import SQL, config, mute_logger

from ..models.sms_microfunnel_suppression import KEY_PARAM
from ..tools import encrypted_fields, sms_crypto

NUMBER = "+33612340001"
WORDING = "J'accepte de recevoir les offres SMS d'ACME (4 par mois)."
IP = "203.0.113.201"
AGENT = "Mozilla/5.0 (X11; Linux x86_64) Evidence/1.0"
REPLY = "Oui, rappelez-moi demain matin"
NOTE = "Signed at the Lyon fair, stand 12"
CLEAR_TEXTS = (WORDING, IP, AGENT, REPLY, NOTE, "Lyon", "203.0.113")


def use_keys(*keys):
    """Configure these keys (first encrypts) as the option of Odoo's
    configuration file would."""
    return patch.dict(
        config._runtime_options, {sms_crypto.CONFIG_OPTION: ",".join(keys)}
    )


@tagged("post_install", "-at_install")
class TestEncryptionAtRest(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.fr")
        cls.manager = new_test_user(
            cls.env,
            login="smf_crypto_manager",
            groups="sms_microfunnel.group_sms_funnel_manager,base.group_allow_export",
        )
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Suppression = cls.env["sms.microfunnel.suppression"]

    def make_evidence(self):
        event = self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": NUMBER,
                    "source": "web_form",
                    "wording": WORDING,
                    "ip": IP,
                    "user_agent": AGENT,
                    "raw_text": REPLY,
                    "note": NOTE,
                }
            ]
        )
        inbound = (
            self.env["sms.microfunnel.inbound"]
            .sudo()
            .create(
                {
                    "from_number": NUMBER,
                    "body": REPLY,
                    "provider_message_id": "SM-crypto-1",
                }
            )
        )
        return event.sudo(), inbound

    def raw(self, table, columns, record_id):
        self.env.flush_all()
        [row] = self.env.execute_query(
            SQL(
                "SELECT %s FROM %s WHERE id = %s",
                SQL(", ").join(SQL.identifier(c) for c in columns),
                SQL.identifier(table),
                record_id,
            )
        )
        return row

    def dump(self):
        """Every encrypted column of the database, as a SQL dump shows it."""
        self.env.flush_all()
        values = []
        for model, names in encrypted_fields.encrypted_fields(self.env).items():
            table = self.env[model]._table
            for name in names:
                values += [
                    v
                    for (v,) in self.env.execute_query(
                        SQL(
                            "SELECT %s FROM %s WHERE %s IS NOT NULL",
                            SQL.identifier(name),
                            SQL.identifier(table),
                            SQL.identifier(name),
                        )
                    )
                ]
        return values

    def test_the_database_holds_no_clear_evidence(self):
        event, inbound = self.make_evidence()
        columns = ("wording", "ip", "user_agent", "raw_text", "note")
        stored = self.raw("sms_microfunnel_consent_event", columns, event.id)
        stored += self.raw("sms_microfunnel_inbound", ["body"], inbound.id)
        for value in stored:
            self.assertTrue(value.startswith(sms_crypto.PREFIX), value)
        # written later (an update, not an insert): encrypted as well
        inbound.write({"body": f"{REPLY}, edited"})
        [updated] = self.raw("sms_microfunnel_inbound", ["body"], inbound.id)
        self.assertTrue(updated.startswith(sms_crypto.PREFIX))
        self.assertNotIn("edited", updated)
        self.env.invalidate_all()
        self.assertEqual(inbound.body, f"{REPLY}, edited")
        every = self.dump()
        self.assertGreaterEqual(len(every), 6)
        for value in every:
            self.assertTrue(value.startswith(sms_crypto.PREFIX))
            for text in CLEAR_TEXTS:
                self.assertNotIn(text, value)
        # the IP is searchable through its keyed hash only
        [(ip_hash,)] = self.env.execute_query(
            SQL(
                "SELECT ip_hash FROM sms_microfunnel_consent_event WHERE id = %s",
                event.id,
            )
        )
        self.assertNotIn("203", ip_hash)
        self.assertEqual(ip_hash, self.Suppression._keyed_hash(IP, purpose="ip"))
        # the suppression secret is stored encrypted too
        secret = self.env["ir.config_parameter"].sudo().get_param(KEY_PARAM)
        if not config.get("sms_microfunnel_suppression_key"):
            self.assertTrue(sms_crypto.is_encrypted(secret))

    def test_managers_read_the_evidence_decrypted(self):
        event, inbound = self.make_evidence()
        self.env.invalidate_all()
        as_manager = event.with_user(self.manager).sudo(False)
        [values] = as_manager.read(["wording", "ip", "user_agent", "raw_text", "note"])
        self.assertEqual(
            [values[f] for f in ("wording", "ip", "user_agent", "raw_text", "note")],
            [WORDING, IP, AGENT, REPLY, NOTE],
        )
        with Form(as_manager) as form:
            self.assertEqual(form.wording, WORDING)
            self.assertEqual(form.ip, IP)
        self.assertEqual(inbound.with_user(self.manager).body, REPLY)
        # the proof export: decrypted wording, its recorded hash, verified
        rows = as_manager.export_data(
            ["number", "wording", "wording_sha256", "wording_verified", "ip"]
        )["datas"]
        self.assertEqual(rows[0][1], WORDING)
        self.assertEqual(rows[0][2], hashlib.sha256(WORDING.encode()).hexdigest())
        self.assertEqual(rows[0][3], True)
        self.assertEqual(rows[0][4], IP)

    def test_a_changed_wording_no_longer_verifies(self):
        event, _inbound = self.make_evidence()
        self.assertTrue(event.wording_verified)
        self.env.cr.execute(
            SQL(
                "UPDATE sms_microfunnel_consent_event SET wording = %s WHERE id = %s",
                sms_crypto.encrypt("Another text"),
                event.id,
            )
        )
        self.env.invalidate_all()
        self.assertEqual(event.wording, "Another text")
        self.assertFalse(event.wording_verified)

    def test_encrypted_fields_stay_searchable(self):
        event, inbound = self.make_evidence()
        Inbound = self.env["sms.microfunnel.inbound"].sudo()
        self.assertEqual(Inbound.search([("body", "ilike", "RAPPELEZ")]), inbound)
        self.assertEqual(Inbound.search([("body", "=", REPLY)]), inbound)
        self.assertNotIn(inbound, Inbound.search([("body", "not ilike", "rappelez")]))
        self.assertIn(inbound, Inbound.search([("body", "!=", False)]))
        self.assertNotIn(inbound, Inbound.search([("body", "=", False)]))
        self.assertFalse(Inbound.search([("body", "ilike", "no such words")]))
        self.assertEqual(
            self.Event.sudo().search([("raw_text", "=like", "Oui,%")]), event
        )
        # the opt-in form's rate limit counts requests of one address by hash
        self.assertEqual(
            self.Event.sudo().search_count(
                [("ip_hash", "=", self.Suppression._keyed_hash(IP, purpose="ip"))]
            ),
            1,
        )

    def test_key_rotation(self):
        old_keys = sms_crypto.configured_keys()
        event, inbound = self.make_evidence()
        self.Suppression._suppress([NUMBER])
        hashed = self.Suppression._hash(NUMBER)
        before = self.raw("sms_microfunnel_inbound", ["body"], inbound.id)[0]
        new_key = Fernet.generate_key().decode()
        # 1. the new key first, the old ones still listed: all readable
        with use_keys(new_key, *old_keys):
            self.env.invalidate_all()
            self.assertEqual(inbound.body, REPLY)
            self.assertEqual(self.Suppression._suppressed([NUMBER]), {NUMBER})
            # 2. re-encrypt (the settings button does the same)
            settings = self.env["res.config.settings"].create({})
            self.assertEqual(settings.sms_encryption_key_source, "config")
            settings.action_sms_reencrypt()
        after = self.raw("sms_microfunnel_inbound", ["body"], inbound.id)[0]
        self.assertNotEqual(after, before)
        # 3. the old keys removed: everything still readable, still matching
        with use_keys(new_key):
            self.env.invalidate_all()
            self.assertEqual(inbound.body, REPLY)
            self.assertEqual(
                [event.wording, event.ip, event.user_agent, event.raw_text],
                [WORDING, IP, AGENT, REPLY],
            )
            self.assertTrue(event.wording_verified)
            self.assertEqual(self.Suppression._hash(NUMBER), hashed)
            self.assertEqual(self.Suppression._suppressed([NUMBER]), {NUMBER})
            # a value encrypted with the removed key is unreadable now
            with self.assertRaises(sms_crypto.EncryptionKeyError):
                sms_crypto.decrypt(before, strict=True)
        # and the old keys alone do not open the re-encrypted data
        with (
            use_keys(*old_keys),
            mute_logger("odoo.addons.sms_microfunnel.tools.sms_crypto"),
        ):
            self.env.invalidate_all()
            self.assertEqual(inbound.body, sms_crypto.UNREADABLE)
            with self.assertRaises(sms_crypto.EncryptionKeyError):
                self.Suppression._suppressed([NUMBER])
        self.env.invalidate_all()

    def test_clear_data_of_an_earlier_version(self):
        """Evidence and the suppression secret stored in clear before
        encryption existed: read as is, encrypted in place, hashes match."""
        params = self.env["ir.config_parameter"].sudo()
        params.set_param(KEY_PARAM, "legacy-clear-secret")
        expected = hmac.new(
            b"legacy-clear-secret", NUMBER.encode(), hashlib.sha256
        ).hexdigest()
        with patch.dict(
            config._runtime_options, {"sms_microfunnel_suppression_key": ""}
        ):
            self.assertEqual(self.Suppression._hash(NUMBER), expected)
            stored = params.get_param(KEY_PARAM)
            self.assertTrue(sms_crypto.is_encrypted(stored))
            self.assertNotIn("legacy", stored)
            self.assertEqual(self.Suppression._hash(NUMBER), expected)
        _event, inbound = self.make_evidence()
        self.env.cr.execute(
            SQL(
                "UPDATE sms_microfunnel_inbound SET body = 'old clear text' "
                "WHERE id = %s",
                inbound.id,
            )
        )
        self.env.invalidate_all()
        self.assertEqual(inbound.body, "old clear text")
        self.assertGreaterEqual(encrypted_fields.reencrypt_all(self.env), 1)
        stored = self.raw("sms_microfunnel_inbound", ["body"], inbound.id)[0]
        self.assertTrue(stored.startswith(sms_crypto.PREFIX))
        self.assertEqual(inbound.body, "old clear text")

    def test_key_file_is_created_once_outside_the_database(self):
        with (
            tempfile.TemporaryDirectory() as data_dir,
            patch.dict(
                config._runtime_options,
                {sms_crypto.CONFIG_OPTION: "", "data_dir": data_dir},
            ),
            patch.dict(os.environ),
        ):
            os.environ.pop(sms_crypto.ENVIRONMENT_VARIABLE, None)
            self.assertEqual(sms_crypto.key_source(), "file")
            token = sms_crypto.encrypt("hello")
            path = sms_crypto.key_file_path()
            self.assertTrue(path.startswith(data_dir))
            self.assertNotIn("filestore", path)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path, encoding="ascii") as handle:
                key = handle.read().strip()
            self.assertEqual(Fernet(key.encode()).decrypt(token[8:].encode()), b"hello")
            self.assertEqual(sms_crypto.decrypt(token), "hello")
            self.assertEqual(sms_crypto.configured_keys(), [key])
            settings = self.env["res.config.settings"].create({})
            self.assertEqual(settings.sms_encryption_key_source, "file")
            self.assertEqual(settings.sms_encryption_key_file, path)
            # the environment variable wins over the file
            other = Fernet.generate_key().decode()
            os.environ[sms_crypto.ENVIRONMENT_VARIABLE] = other
            self.assertEqual(sms_crypto.key_source(), "environment")
            self.assertEqual(sms_crypto.configured_keys(), [other])
            self.assertEqual(
                self.env["res.config.settings"].create({}).sms_encryption_key_source,
                "environment",
            )

    def test_settings_flag_the_key_file_as_not_for_production(self):
        arch = self.env["res.config.settings"].get_views([(False, "form")])["views"][
            "form"
        ]["arch"]
        self.assertIn("Not for production", arch)
        self.assertIn("sms_encryption_key_source", arch)

    def test_a_bad_key_is_a_clear_error(self):
        with (
            use_keys("not-a-key"),
            self.assertRaisesRegex(
                sms_crypto.EncryptionKeyError, "not a valid Fernet key"
            ),
        ):
            sms_crypto.encrypt("x")
