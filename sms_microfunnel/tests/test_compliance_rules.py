# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The 2025-2026 rules at their edges, with frozen time, and the proof that
names the deciding rule (compliance book ``docs/compliance.md``)."""

from datetime import date, datetime
from unittest.mock import patch

from freezegun import freeze_time

from odoo import Command
from odoo.tests import tagged

from odoo.addons.sms_microfunnel.tests.common import (
    SUNDAY_11H_PARIS,
    ErasureCase,
    FunnelCase,
    GateCase,
)

# Sunday 15 March 2026 in Texas (CDT, UTC-5): 11:59 and 12:00
TX_SUNDAY_1159 = datetime(2026, 3, 15, 16, 59)
TX_SUNDAY_1200 = datetime(2026, 3, 15, 17, 0)
# Tuesday 17 March 2026 in Paris (CET, UTC+1): 21:29 and 21:30
PARIS_2129 = datetime(2026, 3, 17, 20, 29)
PARIS_2130 = datetime(2026, 3, 17, 20, 30)


@tagged("post_install", "-at_install")
class TestComplianceRules(GateCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Rule = cls.env["sms.microfunnel.rule"]
        cls.Policy = cls.env["sms.microfunnel.policy"]

    # -- Texas SB 140 ----------------------------------------------------------

    def test_texas_sunday_1159_deferred_1200_allowed(self):
        texan = self.partner(
            "Tex",
            "+1 512 212 3456",
            "confirmed",
            country_id=self.us.id,
            tz="America/Chicago",
        )
        decision = self.decide(texan, when=TX_SUNDAY_1159)[0]
        self.assertEqual(
            self.outcome(decision), ("defer", "window_closed", TX_SUNDAY_1200)
        )
        self.assertEqual(decision["rule"], "US-TX")
        self.assertIn("Texas SB 140", decision["rule_source"])
        self.assertIn("§301.051", decision["rule_source"])
        decision = self.decide(texan, when=TX_SUNDAY_1200)[0]
        self.assertEqual(decision["action"], "allow")
        self.assertEqual(decision["policy"], "US & US-TX")
        self.assertEqual(decision["rule"], "US & US-TX")
        # Saturday: 09:00, not the federal 08:00
        saturday_0859 = datetime(2026, 3, 14, 13, 59)
        decision = self.decide(texan, when=saturday_0859)[0]
        self.assertEqual(decision["reason"], "window_closed")
        self.assertEqual(decision["until"], datetime(2026, 3, 14, 14, 0))

    def test_preflight_names_the_deciding_rule_with_its_source(self):
        texan = self.partner(
            "Tex",
            "+1 512 212 3457",
            "confirmed",
            country_id=self.us.id,
            tz="America/Chicago",
        )
        paris = self.partner("Paris", "06 12 00 00 51", "confirmed")
        wizard = self.env["sms.microfunnel.preflight"].create(
            {
                "res_model": "res.partner",
                "domain": repr([("id", "in", (texan | paris).ids)]),
                "check_at": TX_SUNDAY_1159,
                "company_id": self.company.id,
            }
        )
        wizard.action_check()
        lines = {(x.action, x.rule): x for x in wizard.line_ids}
        self.assertIn(("defer", "US-TX"), lines)
        self.assertIn("capitol.texas.gov", lines["defer", "US-TX"].rule_source)
        # Sunday in Paris: the French default is closed on Sundays
        self.assertIn(("defer", "FR"), lines)
        self.assertIn("practice", lines["defer", "FR"].rule_source.lower())

    # -- af2m 2026 -------------------------------------------------------------

    def test_af2m_2026_is_selectable_2129_allowed_2130_deferred(self):
        paris = self.partner("Paris", "06 12 00 00 41", "confirmed")
        default = self.env.ref("sms_microfunnel.sms_policy_fr")
        af2m = self.env.ref("sms_microfunnel.sms_policy_fr_af2m_2026")
        self.assertFalse(af2m.active)
        self.assertEqual(default.basis, "policy")
        self.assertIn("practice", default.name)
        # the default: 20:00
        decision = self.decide(paris, when=PARIS_2129)[0]
        self.assertEqual((decision["action"], decision["rule"]), ("defer", "FR"))
        af2m.action_select()
        self.assertTrue(af2m.active)
        self.assertFalse(default.active)
        self.assertIn("Replaced by", default.message_ids[0].body)
        decision = self.decide(paris, when=PARIS_2129)[0]
        self.assertEqual(
            (decision["action"], decision["rule"]), ("allow", "FR-AF2M-2026")
        )
        self.assertIn("af2m.org", decision["rule_source"])
        decision = self.decide(paris, when=PARIS_2130)[0]
        self.assertEqual(
            self.outcome(decision),
            ("defer", "window_closed", datetime(2026, 3, 18, 7, 0)),
        )
        self.assertEqual(decision["rule"], "FR-AF2M-2026")
        # back to the default
        default.action_select()
        self.assertFalse(af2m.active)
        self.assertEqual(self.decide(paris, when=PARIS_2129)[0]["action"], "defer")

    # -- Virginia: consent lifts the hours --------------------------------------

    def test_virginia_hours_are_lifted_by_consent(self):
        virginian = self.partner(
            "Va",
            "+1 703 212 3456",
            "confirmed",
            country_id=self.us.id,
            tz="America/New_York",
        )
        evening = datetime(2026, 3, 17, 0, 30)  # Monday 20:30 in Virginia
        decision = self.decide(virginian, when=evening)[0]
        self.assertEqual((decision["action"], decision["policy"]), ("allow", "US"))
        late = datetime(2026, 3, 17, 1, 0)  # 21:00: the federal rule defers
        decision = self.decide(virginian, when=late)[0]
        self.assertEqual((decision["action"], decision["rule"]), ("defer", "US"))
        self.assertTrue(
            self.env.ref("sms_microfunnel.sms_policy_us_va").consent_lifts_window
        )

    # -- caps: per subject or global ---------------------------------------------

    def _mailing(self, name):
        return self.env["mailing.mailing"].create(
            {"subject": name, "mailing_type": "sms", "body_plaintext": name}
        )

    def test_cap_per_subject_vs_global(self):
        number = "+13052127777"
        floridian = self.partner("FL", number, "confirmed", country_id=self.us.id)
        spring, autumn = self._mailing("Spring"), self._mailing("Autumn")
        traces = self.sent(number, 3, 2, 1)
        traces.write({"mass_mailing_id": spring.id})
        florida = self.env.ref("sms_microfunnel.sms_policy_us_fl")
        self.assertEqual(florida.cap_scope, "global")  # the stricter default
        spring_scope = f"mailing.mailing,{spring.id}"
        autumn_scope = f"mailing.mailing,{autumn.id}"
        for scope in (spring_scope, autumn_scope, False):
            decision = self.decide(floridian, scope=scope)[0]
            self.assertEqual(decision["reason"], "frequency_cap", scope)
            self.assertEqual(decision["rule"], "US-FL")
        florida.cap_scope = "subject"
        self.assertIn("same subject", florida.window_summary)
        decision = self.decide(floridian, scope=autumn_scope)[0]
        self.assertEqual(decision["action"], "allow")
        decision = self.decide(floridian, scope=spring_scope)[0]
        self.assertEqual(
            self.outcome(decision),
            # the oldest leaves the 24 h at 07:00 in Miami; the window opens at 08:00
            ("defer", "frequency_cap", datetime(2026, 3, 17, 12)),
        )
        self.assertEqual(decision["rule"], "US-FL")
        # without a subject every message counts
        self.assertEqual(self.decide(floridian)[0]["reason"], "frequency_cap")

    # -- upcoming rules ----------------------------------------------------------

    def test_upcoming_policy_applies_by_itself_on_its_date(self):
        kansas_state = self.env["res.country.state"].search(
            [("country_id", "=", self.us.id), ("code", "=", "KS")]
        )
        policy = self.Policy.create(
            {
                "name": "Kansas (test)",
                "code": "US-KS-TEST",
                "country_id": self.us.id,
                "state_id": kansas_state.id,
                "area_codes": "316",
                "basis": "law",
                "source": "A future state law, for the test.",
                "source_title": "Test Act",
                "valid_from": date(2026, 4, 1),
                "line_ids": [
                    Command.create({"weekday": str(d), "hour_from": 10, "hour_to": 18})
                    for d in range(7)
                ],
            }
        )
        with freeze_time("2026-03-31 12:00:00"):
            policy.invalidate_recordset(["rule_state"])
            self.assertEqual(policy.rule_state, "upcoming")
            self.assertIn(policy, self.Policy.search([("rule_state", "=", "upcoming")]))
        kansan = self.partner(
            "Ks",
            "+1 316 212 3456",
            "confirmed",
            country_id=self.us.id,
            tz="America/Chicago",
        )
        # 09:00 in Wichita (CDT) the day before and on the day
        before = self.decide(kansan, when=datetime(2026, 3, 31, 14, 0))[0]
        self.assertEqual((before["action"], before["policy"]), ("allow", "US"))
        on_the_day = self.decide(kansan, when=datetime(2026, 4, 1, 14, 0))[0]
        self.assertEqual(
            self.outcome(on_the_day),
            ("defer", "window_closed", datetime(2026, 4, 1, 15, 0)),
        )
        self.assertEqual(on_the_day["rule"], "US-KS-TEST")
        with freeze_time("2026-04-01 12:00:00"):
            policy.invalidate_recordset(["rule_state"])
            self.assertEqual(policy.rule_state, "in_force")

    def test_revoke_all_switches_on_31_january_2027(self):
        number = "+13052126666"
        customer = self.partner(
            "Revoker",
            number,
            ("confirmed", "opt_out"),
            country_id=self.us.id,
            tz="America/New_York",
        )
        rule = self.Rule.search([("code", "=", "US-FCC-REVOKE-ALL")])
        self.assertEqual(rule.valid_from, date(2027, 1, 31))
        self.assertTrue(self.company.sms_revoke_all)  # on by default
        day_before = datetime(2027, 1, 30, 17, 0)
        on_the_day = datetime(2027, 1, 31, 17, 0)
        with freeze_time(day_before):
            rule.invalidate_recordset(["rule_state"])
            self.assertEqual(rule.rule_state, "upcoming")
        decision = self.decide(customer, "transactional", when=day_before)[0]
        self.assertEqual(decision["action"], "allow")
        decision = self.decide(customer, "transactional", when=on_the_day)[0]
        self.assertEqual(
            (decision["action"], decision["reason"], decision["rule"]),
            ("block", "opted_out", "US-FCC-REVOKE-ALL"),
        )
        self.assertIn("64.1200(a)(10)", decision["rule_source"])
        # a funnel-level opt-out stops the company's other funnels too
        other = self.partner(
            "Other", "+13052126665", "confirmed", country_id=self.us.id
        )
        self.consent("+13052126665", "opt_out", partner=other, scope="funnel,1")
        decision = self.decide(other, when=on_the_day, scope="funnel,2")[0]
        self.assertEqual(
            (decision["action"], decision["rule"]), ("block", "US-FCC-REVOKE-ALL")
        )
        # the company may keep the narrower scope
        self.company.sms_revoke_all = False
        decision = self.decide(customer, "transactional", when=on_the_day)[0]
        self.assertEqual(decision["action"], "allow")
        # a French number is not concerned
        self.company.sms_revoke_all = True
        french = self.partner("Fr", "06 12 00 00 61", ("confirmed", "opt_out"))
        decision = self.decide(french, "transactional", when=on_the_day)[0]
        self.assertEqual(decision["action"], "allow")

    # -- CASL -------------------------------------------------------------------

    def test_casl_message_must_tell_how_to_reach_the_sender(self):
        company = self.company
        company.write(
            {
                "sms_funnel_sender_label": "ACME:",
                "sms_funnel_optout_mention": "Reply STOP to opt out",
                "phone": "+33 1 23 45 67 89",
                "website": "https://acme.example",
            }
        )
        rules = self.env["sms.microfunnel.message.rules"]
        toronto = "+14162123456"
        composed = rules._compose("Sale today", company=company, number=toronto)
        self.assertEqual(composed["blocked_reason"], "no_contact")
        self.assertIn("CASL", composed["blocked_message"])
        for body in (
            "Sale today, call +33 1 23 45 67 89",
            "Sale: https://acme.example/s",
        ):
            composed = rules._compose(body, company=company, number=toronto)
            self.assertFalse(composed["blocked"], body)
        # not Canadian: only the sender and the opt-out are required
        composed = rules._compose("Sale today", company=company, number="+33612000071")
        self.assertFalse(composed["blocked"])
        rule = self.Rule.search([("code", "=", "CA-CASL-IDENTIFICATION")])
        self.assertEqual(rule.kind, "identification")

    # -- the data itself ----------------------------------------------------------

    def test_every_shipped_rule_is_sourced_and_dated(self):
        Policy = self.Policy.with_context(active_test=False)
        policies = Policy.search([("company_id", "=", False)])
        rules = self.Rule.search([])
        self.assertGreater(len(policies) + len(rules), 20)
        for rule in [*policies, *rules]:
            self.assertTrue(rule.code, rule.name)
            self.assertTrue(rule.source_title, rule.code)
            self.assertTrue(rule.source_url, rule.code)
            self.assertTrue(rule.valid_from, rule.code)
            self.assertTrue(rule.source_label.startswith(rule.code + ":"))


@tagged("post_install", "-at_install")
class TestVirginiaOptOutRetention(ErasureCase):
    """Rule US-VA-OPTOUT-RETENTION: a Virginia opt-out is kept 10 years."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.company"].search([]).write(
            {"sms_retention_years": 3, "sms_retention_auto_erase": True}
        )
        us = cls.env.ref("base.us").id
        cls.virginian = cls.make_prospect("Vera Va", "+17032123456", country_id=us)
        cls.floridian = cls.make_prospect("Fred Fl", "+13052123456", country_id=us)
        cls.still_in = cls.make_prospect("Val Va", "+17032129999", country_id=us)

    def setUp(self):
        super().setUp()
        with freeze_time("2026-02-02 10:00:00"):
            for partner in (self.virginian, self.floridian, self.still_in):
                self.record(partner)
                if partner != self.still_in:
                    self.record(partner, event_type="opt_out")

    def run_cron(self, at):
        cron_class = type(self.env["ir.cron"])
        with (
            freeze_time(at),
            patch.object(cron_class, "_commit_progress", return_value=float("inf")),
        ):
            self.env["res.partner"]._cron_sms_retention()
        self.env.invalidate_all()

    def stale(self, at):
        with freeze_time(at):
            stale, _auto = self.env["res.partner"]._sms_retention_find_stale()
        return stale

    def test_virginia_opt_out_is_erased_only_after_ten_years(self):
        after_4_years = self.stale("2030-02-03 10:00:00")
        self.assertIn(self.floridian, after_4_years)
        # no opt-out: the company's 3 years apply to a Virginia number too
        self.assertIn(self.still_in, after_4_years)
        self.assertNotIn(self.virginian, after_4_years)
        self.assertNotIn(self.virginian, self.stale("2036-02-02 09:59:00"))
        self.assertIn(self.virginian, self.stale("2036-02-02 10:01:00"))
        self.run_cron("2036-02-01 04:00:00")
        self.assertTrue(self.virginian.active)
        self.assertEqual(self.virginian.phone, "+17032123456")
        self.run_cron("2036-02-03 04:00:00")
        self.assertFalse(self.virginian.active)
        self.assertFalse(self.virginian.phone)
        # the erased number stays suppressed (keyed hash)
        self.assertTrue(self.Suppression._suppressed(["+17032123456"]))


@tagged("post_install", "-at_install")
class TestFunnelProof(FunnelCase):
    """Each funnel message keeps the rule that decided it."""

    def test_trace_records_the_deciding_rule(self):
        with freeze_time(SUNDAY_11H_PARIS):
            self.start_and_dispatch(self.anna)
            trace = self.trace(self.anna, self.offer)
            self.assertEqual(trace.state, "deferred")
            self.assertEqual(trace.decision_rule, "FR")
            self.assertIn("practice", trace.decision_source.lower())
        with freeze_time("2026-03-16 07:00:30"):
            self.dispatch()
        trace = self.trace(self.anna, self.offer)
        self.assertEqual(trace.state, "queued")
        self.assertEqual(trace.decision_rule, "FR")

    def test_subject_cap_counts_the_same_funnel_only(self):
        policy = self.env.ref("sms_microfunnel.sms_policy_fr")
        policy.write({"cap_count": 1, "cap_hours": 24, "cap_scope": "subject"})
        other = self.second_funnel_after_the_first()
        self.assertEqual(other.state, "queued", "another subject: not capped")
        self.assertEqual(len(self.outgoing(self.anna)), 2)
