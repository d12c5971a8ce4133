# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import hashlib
from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import SQL

from odoo.addons.sms_microfunnel.tests.common import recorded_queries, rows_read

NUMBER = "+33612345678"


@tagged("post_install", "-at_install")
class TestConsentCore(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.fr")
        cls.partner = cls.env["res.partner"].create(
            {
                "name": "Camille Martin",
                "phone": "06 12 34 56 78",
                "country_id": cls.env.ref("base.fr").id,
            }
        )
        cls.user = new_test_user(
            cls.env,
            login="smf_consent_user",
            groups="sms_microfunnel.group_sms_funnel_user",
        )
        cls.manager = new_test_user(
            cls.env,
            login="smf_consent_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )

    def record(self, event_type, number=NUMBER, **vals):
        vals.setdefault("source", "manual")
        vals.setdefault("wording", "I agree to receive SMS offers.")
        return self.Event._record(
            [
                {
                    "event_type": event_type,
                    "number": number,
                    "partner_id": self.partner.id,
                    **vals,
                }
            ]
        )

    def state(self, number=NUMBER, **kw):
        return self.Consent._get_states([number], **kw)[number]

    # -- the ledger -----------------------------------------------------------

    def test_event_stores_proof_and_normalises_number(self):
        event = self.record(
            "confirmed",
            number="06 12 34 56 78",
            method="verbal",
            wording_version="3",
            lang="fr_FR",
        )
        self.assertEqual(event.number, NUMBER)
        self.assertEqual(
            event.wording_sha256,
            hashlib.sha256(b"I agree to receive SMS offers.").hexdigest(),
        )
        self.assertEqual(event.user_id, self.env.user)
        self.assertTrue(event.proven)
        self.assertEqual(self.state(), "confirmed")
        self.partner.invalidate_recordset()
        self.assertEqual(self.partner.sms_consent_state, "confirmed")

    def test_malformed_number_is_refused_and_nothing_is_written(self):
        count = self.Event.search_count([])
        with self.assertRaisesRegex(UserError, "not a valid phone number"):
            self.Event._record(
                [
                    {"event_type": "confirmed", "number": "06 12", "source": "manual"},
                ]
            )
        self.assertEqual(self.Event.search_count([]), count)

    def test_events_cannot_be_edited_or_deleted(self):
        event = self.record("confirmed")
        for env_user in (self.manager, self.env.ref("base.user_admin")):
            with self.assertRaises(UserError):
                event.with_user(env_user).write({"wording": "changed"})
            with self.assertRaises(UserError):
                event.with_user(env_user).unlink()
        # even the superuser needs the erasure path
        with self.assertRaises(UserError):
            event.sudo().write({"wording": "changed"})
        with self.assertRaises(UserError):
            event.sudo().unlink()
        self.assertEqual(event.wording, "I agree to receive SMS offers.")

    def test_users_see_statuses_managers_see_proofs(self):
        self.record("confirmed")
        with self.assertRaises(AccessError):
            self.Event.with_user(self.user).search([])
        with self.assertRaises(AccessError):
            self.Event.with_user(self.user).create(
                {"event_type": "opt_out", "number": NUMBER, "source": "manual"}
            )
        self.assertEqual(
            self.Consent.with_user(self.user).search([("number", "=", NUMBER)]).state,
            "confirmed",
        )
        self.assertEqual(
            self.Event.with_user(self.manager).search_count([("number", "=", NUMBER)]),
            1,
        )
        with self.assertRaises(AccessError):
            self.Event.with_user(self.manager).create(
                {"event_type": "opt_out", "number": NUMBER, "source": "manual"}
            )
        employee = new_test_user(
            self.env, login="smf_employee2", groups="base.group_user"
        )
        with self.assertRaises(AccessError):
            self.Consent.with_user(employee).search([])

    # -- derived status --------------------------------------------------------

    def test_latest_event_wins_and_late_old_events_do_not(self):
        now = datetime(2026, 3, 10, 9, 0)
        self.record("confirmed", event_date=now)
        self.record("opt_out", event_date=now + timedelta(hours=1))
        self.assertEqual(self.state(), "withdrawn")
        # an older opt-in recorded afterwards (e.g. a late import) changes nothing
        self.env["phone.blacklist"].sudo()._remove([NUMBER])
        self.record("confirmed", event_date=now - timedelta(days=5))
        status = self.Consent.search([("number", "=", NUMBER)])
        self.assertEqual(status.state, "withdrawn")
        self.record("re_opt_in", event_date=now + timedelta(hours=2))
        self.assertEqual(self.state(), "confirmed")

    def test_unproven_consent_is_not_marketable(self):
        self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": NUMBER,
                    "source": "import",
                    "wording": False,
                }
            ]
        )
        self.assertEqual(self.state(), "unproven")
        self.assertFalse(self.Consent._marketable_numbers([NUMBER]))

    def test_blacklist_always_wins(self):
        self.record("confirmed")
        self.assertEqual(self.Consent._marketable_numbers([NUMBER]), {NUMBER})
        self.env["phone.blacklist"].sudo().add(NUMBER)
        self.assertEqual(self.state(), "withdrawn")
        self.assertFalse(self.Consent._marketable_numbers([NUMBER]))
        self.partner.invalidate_recordset()
        self.assertEqual(self.partner.sms_consent_state, "withdrawn")
        Partner = self.env["res.partner"]
        self.assertIn(
            self.partner, Partner.search([("sms_consent_state", "in", ["withdrawn"])])
        )
        self.assertNotIn(
            self.partner, Partner.search([("sms_consent_state", "in", ["confirmed"])])
        )

    def test_opt_out_blacklists_and_re_opt_in_unblacklists(self):
        self.record("confirmed")
        queued = (
            self.env["sms.sms"]
            .sudo()
            .create({"number": NUMBER, "body": "Offre -20 %", "state": "outgoing"})
        )
        self.record("opt_out", wording=False)
        blacklist = self.env["phone.blacklist"].sudo()
        self.assertTrue(blacklist.search([("number", "=", NUMBER)]))
        self.assertEqual(queued.state, "canceled", "queued SMS never go out after STOP")
        self.assertEqual(queued.failure_type, "sms_optout")
        self.record("re_opt_in", method="keyword", source="keyword_sms")
        self.assertFalse(blacklist.search([("number", "=", NUMBER)]))
        self.assertEqual(self.state(), "confirmed")

    def test_scoped_opt_out_does_not_touch_the_global_list(self):
        self.record("confirmed")
        self.record("opt_out", scope="sms.microfunnel.campaign,1")
        self.assertFalse(
            self.env["phone.blacklist"].sudo().search([("number", "=", NUMBER)])
        )
        self.assertEqual(self.state(), "confirmed")
        self.assertEqual(self.state(scope="sms.microfunnel.campaign,1"), "withdrawn")
        self.assertFalse(
            self.Consent._marketable_numbers(
                [NUMBER], scope="sms.microfunnel.campaign,1"
            )
        )

    def test_partner_and_lead_filters(self):
        other = self.env["res.partner"].create(
            {"name": "No consent", "phone": "+33699887766"}
        )
        self.record("confirmed")
        Partner = self.env["res.partner"]
        confirmed = Partner.search([("sms_consent_state", "in", ["confirmed"])])
        self.assertIn(self.partner, confirmed)
        self.assertNotIn(other, confirmed)
        self.assertIn(other, Partner.search([("sms_consent_state", "in", ["none"])]))
        lead = self.env["crm.lead"].create(
            {"name": "Diagnostic", "phone": "+33 6 12 34 56 78"}
        )
        self.assertEqual(lead.sms_consent_state, "confirmed")
        self.assertIn(
            lead,
            self.env["crm.lead"].search([("sms_consent_state", "in", ["confirmed"])]),
        )

    def test_statuses_are_per_company(self):
        other_company = self.env["res.company"].create({"name": "Other SMS Co"})
        self.record("confirmed")
        self.assertEqual(self.state(company=other_company), "none")
        self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": NUMBER,
                    "source": "manual",
                    "wording": "Autre",
                    "company_id": other_company.id,
                }
            ]
        )
        # a user of the first company only sees its own proofs and statuses
        self.assertEqual(
            self.Event.with_user(self.manager).search_count([("number", "=", NUMBER)]),
            1,
        )
        self.assertEqual(
            self.Consent.with_user(self.user).search_count([("number", "=", NUMBER)]), 1
        )

    def test_suppressed_numbers_cannot_opt_in(self):
        self.env["sms.microfunnel.suppression"]._suppress([NUMBER])
        with self.assertRaisesRegex(UserError, "suppressed"):
            self.record("confirmed")
        self.assertEqual(self.state(), "withdrawn")
        # an opt-out is always accepted
        self.assertTrue(self.record("opt_out"))

    def test_suppression_keeps_only_a_keyed_hash(self):
        entry = self.env["sms.microfunnel.suppression"]._suppress([NUMBER])
        self.assertNotIn("612345678", entry.number_hash)
        self.assertNotEqual(
            entry.number_hash, hashlib.sha256(NUMBER.encode()).hexdigest()
        )
        self.assertFalse(self.env["sms.microfunnel.suppression"]._suppress([NUMBER]))

    def test_wording_version_increments_on_change(self):
        version = self.company.sms_consent_wording_version
        self.company.sms_consent_wording = (
            "New wording, 4 SMS per month. STOP to opt out."
        )
        self.assertEqual(self.company.sms_consent_wording_version, version + 1)
        self.company.sms_consent_wording = (
            "New wording, 4 SMS per month. STOP to opt out."
        )
        self.assertEqual(self.company.sms_consent_wording_version, version + 1)

    # -- double opt-in -----------------------------------------------------------

    def _outgoing(self):
        return self.env["sms.sms"].sudo().search([("number", "=", NUMBER)])

    def test_doi_request_confirm_and_no_marketing_while_pending(self):
        request = self.Consent._request_doi(
            "06 12 34 56 78",
            partner=self.partner,
            wording="I agree",
            source="web_form",
            method="checkbox",
            ip="203.0.113.9",
        )
        self.assertEqual(self.state(), "pending")
        self.assertFalse(self.Consent._marketable_numbers([NUMBER]))
        sms = self._outgoing()
        self.assertEqual(len(sms), 1)
        self.assertIn(f"/sms/optin/confirm/{request.sudo().doi_token}", sms.body)
        self.assertFalse(self.Consent._confirm_doi(self.company, token="forged-token"))
        self.assertEqual(self.state(), "pending")
        confirmed = self.Consent._confirm_doi(
            self.company,
            number=NUMBER,
            method="keyword",
            source="keyword_sms",
            raw_text="OUI",
        )
        self.assertEqual(confirmed.event_type, "confirmed")
        self.assertEqual(confirmed.wording, "I agree")
        self.assertEqual(self.state(), "confirmed")
        self.assertEqual(len(self._outgoing()), 2, "one opt-in confirmation SMS")
        # a second confirmation finds nothing pending
        self.assertFalse(self.Consent._confirm_doi(self.company, number=NUMBER))

    def test_expiry_cron_with_frozen_time(self):
        self.company.sms_doi_expiry_hours = 48
        with freeze_time("2026-05-04 10:00:00"):
            self.Consent._request_doi(
                NUMBER, partner=self.partner, wording="I agree", source="web_form"
            )
        cron = self.env.ref("sms_microfunnel.ir_cron_sms_consent_expire")
        with self.enter_registry_test_mode():
            with freeze_time("2026-05-06 09:59:00"):
                cron.method_direct_trigger()
                self.env.invalidate_all()
                self.assertEqual(self.state(), "pending")
            with freeze_time("2026-05-06 10:01:00"):
                cron.method_direct_trigger()
                self.env.invalidate_all()
                self.assertEqual(self.state(), "expired")
        expired = self.Event.search(
            [("number", "=", NUMBER), ("event_type", "=", "expired")]
        )
        self.assertEqual(len(expired), 1)
        self.assertEqual(expired.source, "system")
        # too late to confirm
        self.assertFalse(self.Consent._confirm_doi(self.company, number=NUMBER))

    # -- unsubscribe links ---------------------------------------------------------

    def test_unsubscribe_token_roundtrip_and_forgery(self):
        token = self.Consent._unsubscribe_token(NUMBER, self.company)
        self.assertEqual(
            self.Consent._decode_unsubscribe_token(token), (self.company, NUMBER)
        )
        forged = token.replace(token[-4:], "0000" if token[-4:] != "0000" else "1111")
        self.assertEqual(self.Consent._decode_unsubscribe_token(forged), (None, None))
        self.assertEqual(self.Consent._decode_unsubscribe_token("x.y.z"), (None, None))
        self.assertTrue(
            self.Consent._unsubscribe_url(NUMBER, self.company).endswith(token)
        )


@tagged("post_install", "-at_install")
class TestConsentStatesLookup(TransactionCase):
    """The states of a list of numbers read the rows of those numbers only,
    however many consents the company has (a dispatch chunk's cost must not
    grow with the table)."""

    def test_listed_numbers_read_their_rows_only(self):
        company = self.env.company
        cr = self.env.cr
        cr.execute(
            SQL(
                """
                INSERT INTO sms_microfunnel_consent
                       (company_id, number, purpose, state, frequency)
                SELECT %s, '+3361' || lpad(i::text, 7, '0'), 'marketing',
                       CASE WHEN i %% 3 = 0 THEN 'confirmed' ELSE 'withdrawn' END,
                       'all'
                  FROM generate_series(1, 3000) AS i
                """,
                company.id,
            )
        )
        cr.execute("ANALYZE sms_microfunnel_consent")
        Consent = self.env["sms.microfunnel.consent"]
        numbers = [f"+3361{i:07d}" for i in range(1, 601)] + ["+33619999999"]
        listed = Consent._states_sql(
            SQL("SELECT unnest(%s::varchar[])", numbers),
            company,
            number_list=numbers,
        )
        # at most one row per number (EXPLAIN rounds the rows per loop)
        self.assertLessEqual(rows_read(self.env, listed)["c"], len(numbers))
        # the same states as a lookup over the whole table
        unlisted = Consent._states_sql(
            SQL("SELECT unnest(%s::varchar[])", numbers), company
        )
        states = dict(self.env.execute_query(listed))
        self.assertEqual(states, dict(self.env.execute_query(unlisted)))
        self.assertEqual(states["+33610000003"], "confirmed")
        self.assertEqual(states["+33610000001"], "withdrawn")
        self.assertEqual(states["+33619999999"], "none")
        # the caps of the few numbers that asked for fewer messages are read
        # from their own index, not from every consent
        cr.execute(
            "UPDATE sms_microfunnel_consent SET frequency = 'weekly' "
            "WHERE number IN ('+33610000002', '+33610000003')"
        )
        with recorded_queries(self.env) as queries:
            caps = Consent._frequency_caps(numbers, company)
        self.assertEqual(set(caps), {"+33610000002", "+33610000003"})
        read = rows_read(self.env, queries[-1])
        self.assertLessEqual(read["sms_microfunnel_consent"], 2)
        self.assertEqual(
            Consent._get_states(numbers[:4], company),
            {
                "+33610000001": "withdrawn",
                "+33610000002": "withdrawn",
                "+33610000003": "confirmed",
                "+33610000004": "withdrawn",
            },
        )
