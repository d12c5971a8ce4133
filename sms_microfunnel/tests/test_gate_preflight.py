# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The compliance gate (allow / defer / block) and the pre-flight report."""

from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.exceptions import UserError
from odoo.tests import Form, new_test_user

from odoo.addons.sms_microfunnel.tests.common import MONDAY_14, GateCase


class TestGate(GateCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        p = cls.partner
        cls.ok = p("Ok", "06 12 00 00 01", "confirmed")
        cls.no_number = p("No number")
        cls.invalid = p("Invalid", "12345")
        cls.duplicate = p("Duplicate", "+33 6 12 00 00 01")
        cls.opted_out = p("Opted out", "06 12 00 00 02", ("confirmed", "opt_out"))
        cls.pending = p("Pending", "06 12 00 00 03", "requested")
        cls.unproven = p("Unproven", "06 12 00 00 04", "unproven")
        cls.none = p("None", "06 12 00 00 05")
        cls.expired = p("Expired", "06 12 00 00 06", ("requested", "expired"))
        cls.noumea = p("Nouméa", "+687 75 12 34", "confirmed")
        cls.miami = p("Miami", "+1 305 212 3456", "confirmed", country_id=cls.us.id)
        cls.sent("+13052123456", 20, 10, 1)

    @freeze_time(MONDAY_14)
    def test_every_reason_in_one_batch(self):
        audience = (
            self.ok
            | self.no_number
            | self.invalid
            | self.duplicate
            | self.opted_out
            | self.pending
            | self.unproven
            | self.none
            | self.expired
            | self.noumea
            | self.miami
        )
        decisions = self.Gate._evaluate(audience, "marketing", self.company)
        self.assertEqual([d["res_id"] for d in decisions], audience.ids)
        got = {d["res_id"]: self.outcome(d) for d in decisions}
        self.assertEqual(
            got,
            {
                self.ok.id: ("allow", False, False),
                self.no_number.id: ("block", "no_number", False),
                self.invalid.id: ("block", "invalid_number", False),
                self.duplicate.id: ("block", "duplicate", False),
                self.opted_out.id: ("block", "opted_out", False),
                self.pending.id: ("block", "pending_doi", False),
                self.unproven.id: ("block", "unproven_consent", False),
                self.none.id: ("block", "no_consent", False),
                self.expired.id: ("block", "no_consent", False),
                # Tuesday 08:00 in Nouméa (UTC+11)
                self.noumea.id: ("defer", "window_closed", datetime(2026, 3, 16, 21)),
                # the oldest of 3 SMS in 24 h leaves the window 24 h after it
                self.miami.id: ("defer", "frequency_cap", datetime(2026, 3, 16, 18)),
            },
        )
        ok = decisions[0]
        self.assertEqual(ok["number"], "+33612000001")
        self.assertEqual(ok["tz"], "Europe/Paris")
        self.assertEqual(ok["policy"], "FR")
        self.assertEqual(ok["window_closes"], datetime(2026, 3, 16, 19))
        self.assertEqual(decisions[-2]["tz"], "Pacific/Noumea")
        self.assertEqual(decisions[-1]["policy"], "US & US-FL")

    def test_blacklist_and_erasure_block_marketing(self):
        listed = self.partner("Listed", "06 12 00 00 10", "confirmed")
        erased = self.partner("Erased", "06 12 00 00 11", "confirmed")
        self.env["phone.blacklist"].sudo()._add(["+33612000010"])
        self.env["sms.microfunnel.suppression"]._suppress(["+33612000011"])
        decisions = self.decide(listed | erased)
        self.assertEqual([d["reason"] for d in decisions], ["opted_out", "opted_out"])

    def test_scope_opt_out_blocks_only_that_scope(self):
        scope = "sms.microfunnel.campaign,999"
        self.consent("+33612000001", "opt_out", partner=self.ok, scope=scope)
        self.assertEqual(self.decide(self.ok)[0]["action"], "allow")
        blocked = self.decide(self.ok, scope=scope)[0]
        self.assertEqual((blocked["action"], blocked["reason"]), ("block", "opted_out"))

    def test_numbers_are_accepted_and_sanitised(self):
        decisions = self.decide(["06 12 00 00 01", "", "abc", "+33612000001"])
        self.assertEqual(
            [(d["key"], d["number"], d["action"], d["reason"]) for d in decisions],
            [
                ("06 12 00 00 01", "+33612000001", "allow", False),
                (False, False, "block", "no_number"),
                ("abc", False, "block", "invalid_number"),
                ("+33612000001", "+33612000001", "block", "duplicate"),
            ],
        )
        one = self.Gate._evaluate_one(self.ok, "marketing", self.company, MONDAY_14)
        self.assertEqual(one["action"], "allow")

    # -- windows --------------------------------------------------------------

    def test_closed_evening_sunday_and_holiday_defer_to_the_next_opening(self):
        saturday_2030_paris = datetime(2026, 3, 21, 19, 30)
        decision = self.decide(self.ok, when=saturday_2030_paris)[0]
        # no Sunday: Monday 08:00 Paris
        self.assertEqual(
            self.outcome(decision),
            ("defer", "window_closed", datetime(2026, 3, 23, 7)),
        )
        easter_monday = datetime(2026, 4, 6, 10)  # 12:00 in Paris (CEST)
        decision = self.decide(self.ok, when=easter_monday)[0]
        self.assertEqual(
            self.outcome(decision), ("defer", "window_closed", datetime(2026, 4, 7, 6))
        )
        # switching on the shipped Sunday line opens Sundays 10:00-18:00
        self.env.ref("sms_microfunnel.sms_policy_fr").line_ids.filtered(
            lambda x: x.weekday == "6"
        ).active = True
        decision = self.decide(self.ok, when=saturday_2030_paris)[0]
        self.assertEqual(decision["until"], datetime(2026, 3, 22, 9))

    def test_transactional_is_not_windowed_and_ignores_consent(self):
        sunday = datetime(2026, 3, 15, 10)
        audience = self.ok | self.opted_out | self.none | self.invalid
        marketing = self.decide(audience, when=sunday)
        self.assertEqual(
            [self.outcome(d)[:2] for d in marketing],
            [
                ("defer", "window_closed"),
                ("block", "opted_out"),
                ("block", "no_consent"),
                ("block", "invalid_number"),
            ],
        )
        transactional = self.decide(audience, "transactional", when=sunday)
        self.assertEqual(
            [self.outcome(d) for d in transactional],
            [
                ("allow", False, False),
                ("allow", False, False),
                ("allow", False, False),
                ("block", "invalid_number", False),
            ],
        )
        # ... unless a transactional policy says so
        self.env["sms.microfunnel.policy"].create(
            {
                "name": "France, transactional (weekdays)",
                "message_class": "transactional",
                "country_id": self.fr.id,
                "source": "our policy",
                "valid_from": "2026-01-01",
                "line_ids": [
                    (0, 0, {"weekday": str(d), "hour_from": 9, "hour_to": 18})
                    for d in range(5)
                ],
            }
        )
        decision = self.decide(self.ok, "transactional", when=sunday)[0]
        self.assertEqual(
            self.outcome(decision), ("defer", "window_closed", datetime(2026, 3, 16, 8))
        )

    # -- time zones -----------------------------------------------------------

    def test_partner_tz_comes_first(self):
        evening = datetime(2026, 3, 16, 20, 30)  # 21:30 Paris, 16:30 New York
        decision = self.decide(self.ok, when=evening)[0]
        self.assertEqual(
            self.outcome(decision), ("defer", "window_closed", datetime(2026, 3, 17, 7))
        )
        self.ok.tz = "America/New_York"
        decision = self.decide(self.ok, when=evening)[0]
        self.assertEqual(
            (decision["action"], decision["tz"]), ("allow", "America/New_York")
        )

    def test_overseas_numbers_and_addresses_are_not_on_paris_time(self):
        mayotte = self.partner("Mayotte", "+262 639 01 23 45", "confirmed")
        reunion_or_mayotte = self.partner("Réunion?", "+262 692 12 34 56", "confirmed")
        by_address = self.partner(
            "Saint-Denis",
            "+33 6 12 00 00 20",
            "confirmed",
            zip="97400",
            country_id=self.env.ref("base.re").id,
        )
        when = datetime(2026, 3, 16, 16, 30)  # 17:30 Paris, 19:30 Mayotte, 20:30 RE
        decisions = self.decide(
            self.ok | mayotte | reunion_or_mayotte | by_address, when=when
        )
        self.assertEqual(decisions[0]["action"], "allow")
        self.assertEqual(decisions[1]["action"], "allow")
        self.assertEqual(decisions[1]["tz_names"], ("Indian/Mayotte",))
        # ambiguous +262: closed in Réunion, so deferred until open in both
        self.assertEqual(
            self.outcome(decisions[2]),
            ("defer", "window_closed", datetime(2026, 3, 17, 5)),
        )
        self.assertEqual(decisions[2]["tz_names"], ("Indian/Reunion", "Indian/Mayotte"))
        # a French mobile with a Réunion address: the address zone
        self.assertEqual(
            self.outcome(decisions[3]),
            ("defer", "window_closed", datetime(2026, 3, 17, 4)),
        )
        self.assertEqual(decisions[3]["tz"], "Indian/Reunion")

    def test_us_takes_the_strictest_of_area_code_and_address_state(self):
        evening = datetime(2026, 3, 17, 0, 30)  # Monday 20:30 in New York
        new_yorker = self.partner(
            "NY", "+1 212 212 3456", "confirmed", country_id=self.us.id
        )
        decision = self.decide(new_yorker, when=evening)[0]
        self.assertEqual((decision["action"], decision["policy"]), ("allow", "US"))
        self.assertEqual(decision["tz"], "America/New_York")
        # federal window (21:00) but Florida address: 20:00
        new_yorker.state_id = self.florida
        decision = self.decide(new_yorker, when=evening)[0]
        self.assertEqual(
            self.outcome(decision),
            ("defer", "window_closed", datetime(2026, 3, 17, 12)),
        )
        self.assertEqual(decision["policy"], "US & US-FL")
        # Florida area code with a New York address: still Florida's rules
        floridian = self.partner(
            "FL", "+1 305 212 9999", "confirmed", country_id=self.us.id
        )
        floridian.state_id = self.new_york
        decision = self.decide(floridian, when=evening)[0]
        self.assertEqual(decision["reason"], "window_closed")
        self.assertEqual(decision["policy"], "US & US-FL")

    def test_country_without_policy_falls_back_to_the_company_country(self):
        tokyo = self.partner("Tokyo", "+81 90 1234 5678", "confirmed", country_id=False)
        decision = self.decide(tokyo)[0]  # 23:00 in Tokyo
        self.assertEqual(decision["policy"], "FR")
        self.assertEqual(decision["tz"], "Asia/Tokyo")
        self.assertEqual(
            self.outcome(decision),
            ("defer", "window_closed", datetime(2026, 3, 16, 23)),
        )

    # -- caps -----------------------------------------------------------------

    def test_cap_counts_real_traces_in_the_rolling_window(self):
        number = "+13052129999"
        floridian = self.partner("FL", number, "confirmed", country_id=self.us.id)
        self.sent(number, 25, 20, 10)  # the 25 h old one is out of the window
        self.sent(number, 1, status="error")  # failed: not counted
        self.sent("+13052120000", 2)  # another number
        self.assertEqual(self.decide(floridian)[0]["action"], "allow")
        self.sent(number, 3)
        decision = self.decide(floridian)[0]
        self.assertEqual(
            self.outcome(decision),
            ("defer", "frequency_cap", datetime(2026, 3, 16, 18)),
        )
        # an hour after the oldest counted message left, the cap allows again
        self.assertEqual(
            self.decide(floridian, when=datetime(2026, 3, 16, 18))[0]["action"], "allow"
        )
        recent = self.Gate._recent_marketing_sends(
            [number], MONDAY_14 - timedelta(hours=24)
        )
        self.assertEqual(len(recent[number]), 3)

    def test_closed_window_and_cap_together(self):
        evening = datetime(2026, 3, 17, 0, 30)  # Monday 20:30 in Miami
        number = "+13052128888"
        floridian = self.partner("FL", number, "confirmed", country_id=self.us.id)
        self.sent(number, 3, 2, 1, now=evening)
        decision = self.decide(floridian, when=evening)[0]
        # the window opens at 08:00 (12:00 UTC) but the cap only at 21:30 UTC
        self.assertEqual(
            self.outcome(decision),
            ("defer", "window_closed", datetime(2026, 3, 17, 21, 30)),
        )

    def test_cap_ignores_transactional_and_uncapped_countries(self):
        self.sent("+33612000001", 3, 2, 1)
        self.assertEqual(self.decide(self.ok)[0]["action"], "allow")
        self.assertEqual(self.decide(self.miami, "transactional")[0]["action"], "allow")

    # -- cost -----------------------------------------------------------------

    def test_queries_do_not_grow_with_the_batch(self):
        partners = self.env["res.partner"]
        kinds = ("confirmed", None, "requested", "opt_out_", "fl")
        for i in range(50):
            kind = kinds[i % len(kinds)]
            if kind == "fl":
                partner = self.partner(
                    f"FL {i}", f"+1 305 213 {i:04d}", "confirmed", country_id=self.us.id
                )
                self.sent(partner.phone_sanitized, 5, 4, 3)
            elif kind == "opt_out_":
                partner = self.partner(
                    f"P {i}", f"06 13 00 {i:02d} 00", ("confirmed", "opt_out")
                )
            else:
                partner = self.partner(f"P {i}", f"06 13 00 {i:02d} 00", kind)
            partners |= partner
        self.decide(partners)  # warm the registry caches

        def count(records):
            self.env.invalidate_all()
            self.env.flush_all()
            before = self.env.cr.sql_log_count
            decisions = self.decide(records)
            return self.env.cr.sql_log_count - before, decisions

        small, decisions_small = count(partners[:10])
        large, decisions_large = count(partners)
        self.assertEqual(small, large)
        self.assertEqual(
            {d["action"] for d in decisions_large}, {"allow", "block", "defer"}
        )
        self.assertEqual(len(decisions_small), 10)
        for records in (partners[:10], partners):
            self.env.invalidate_all()
            with self.assertQueryCount(large):
                self.decide(records)


class TestPreflight(GateCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        p = cls.partner
        cls.partners = {
            "allow": p("Ok", "06 12 00 00 01", "confirmed"),
            "no_number": p("No number"),
            "invalid_number": p("Invalid", "12345"),
            "duplicate": p("Duplicate", "+33612000001"),
            "opted_out": p("Opted out", "06 12 00 00 02", ("confirmed", "opt_out")),
            "pending_doi": p("Pending", "06 12 00 00 03", "requested"),
            "unproven_consent": p("Unproven", "06 12 00 00 04", "unproven"),
            "no_consent": p("None", "06 12 00 00 05"),
            "window_closed": p("Nouméa", "+687 75 12 34", "confirmed"),
            "frequency_cap": p(
                "Miami", "+1 305 212 3456", "confirmed", country_id=cls.us.id
            ),
        }
        cls.partners["allow_2"] = p("Ok too", "06 12 00 00 07", "confirmed")
        cls.sent("+13052123456", 20, 10, 1)
        cls.user = new_test_user(
            cls.env,
            login="smf_preflight_user",
            groups="sms_microfunnel.group_sms_funnel_user,sales_team.group_sale_salesman",
        )

    def wizard(self, res_model, records, **vals):
        return (
            self.env["sms.microfunnel.preflight"]
            .with_user(self.user)
            .create(
                {
                    "res_model": res_model,
                    "domain": repr([("id", "in", records.ids)]),
                    "check_at": MONDAY_14,
                    **vals,
                }
            )
        )

    def lines(self, wizard):
        return {(line.action, line.reason or False): line for line in wizard.line_ids}

    def test_partner_audience_counts_and_drill_down(self):
        audience = self.env["res.partner"].union(*self.partners.values())
        wizard = self.wizard("res.partner", audience)
        wizard.action_check()
        self.assertEqual(wizard.state, "done")
        self.assertEqual(wizard.checked_at, MONDAY_14)
        self.assertEqual(
            (
                wizard.total_count,
                wizard.allow_count,
                wizard.defer_count,
                wizard.block_count,
            ),
            (11, 2, 2, 7),
        )
        lines = self.lines(wizard)
        expected = {
            ("allow", False): ["allow", "allow_2"],
            ("defer", "window_closed"): ["window_closed"],
            ("defer", "frequency_cap"): ["frequency_cap"],
        }
        for reason in (
            "no_number",
            "invalid_number",
            "duplicate",
            "opted_out",
            "pending_doi",
            "unproven_consent",
            "no_consent",
        ):
            expected[("block", reason)] = [reason]
        self.assertEqual(set(lines), set(expected))
        for key, names in expected.items():
            ids = sorted(self.partners[name].id for name in names)
            self.assertEqual(lines[key].count, len(ids), key)
            action = lines[key].action_open_records()
            self.assertEqual(action["res_model"], "res.partner")
            self.assertEqual(action["domain"], [("id", "in", ids)], key)
            # the drill-down domain finds exactly those records
            self.assertEqual(
                sorted(self.env["res.partner"].search(action["domain"]).ids), ids
            )
        window = lines[("defer", "window_closed")]
        self.assertEqual(window.until_min, datetime(2026, 3, 16, 21))
        self.assertEqual(window.until_typical, datetime(2026, 3, 16, 21))
        self.assertEqual(wizard.next_opening, datetime(2026, 3, 16, 18))
        blocked = wizard.with_context(outcome="block").action_open_outcome()
        self.assertEqual(len(blocked["domain"][0][2]), 7)
        self.assertNotIn(self.partners["allow"].id, blocked["domain"][0][2])

    def test_lead_audience(self):
        Lead = self.env["crm.lead"].with_context(default_user_id=False)
        leads = Lead.create(
            [
                {
                    "name": "Lead ok",
                    "phone": "06 12 00 00 01",
                    "country_id": self.fr.id,
                },
                {
                    "name": "Lead none",
                    "phone": "06 12 00 00 05",
                    "country_id": self.fr.id,
                },
                {
                    "name": "Lead out",
                    "phone": "06 12 00 00 02",
                    "country_id": self.fr.id,
                },
                {"name": "Lead no phone", "country_id": self.fr.id},
                {
                    "name": "Lead twin",
                    "phone": "+33612000001",
                    "country_id": self.fr.id,
                },
                {"name": "Lead bad", "phone": "999", "country_id": self.fr.id},
                {
                    "name": "Lead Nouméa",
                    "phone": "+687 75 12 34",
                    "country_id": self.env.ref("base.nc").id,
                },
            ]
        )
        wizard = self.wizard("crm.lead", leads)
        wizard.action_check()
        lines = self.lines(wizard)
        self.assertEqual(
            {key: line.count for key, line in lines.items()},
            {
                ("allow", False): 1,
                ("defer", "window_closed"): 1,
                ("block", "no_number"): 1,
                ("block", "invalid_number"): 1,
                ("block", "duplicate"): 1,
                ("block", "opted_out"): 1,
                ("block", "no_consent"): 1,
            },
        )
        action = lines[("block", "duplicate")].action_open_records()
        self.assertEqual(action["res_model"], "crm.lead")
        self.assertEqual(Lead.search(action["domain"]).name, "Lead twin")
        transactional = self.wizard("crm.lead", leads, message_class="transactional")
        transactional.action_check()
        self.assertEqual((transactional.allow_count, transactional.block_count), (4, 3))

    def test_opened_from_a_selection_and_bad_filter(self):
        selected = self.partners["allow"] | self.partners["no_consent"]
        context = {"active_model": "res.partner", "active_ids": selected.ids}
        form = Form(
            self.env["sms.microfunnel.preflight"]
            .with_user(self.user)
            .with_context(**context)
        )
        self.assertEqual(form.res_model, "res.partner")
        self.assertEqual(form.domain, repr([("id", "in", selected.ids)]))
        wizard = form.save()
        with freeze_time(MONDAY_14):
            wizard.action_check()
        self.assertEqual((wizard.allow_count, wizard.block_count), (1, 1))
        self.assertFalse(wizard.check_at)  # "now" stays "now" for the next check
        self.assertEqual(wizard.checked_at, MONDAY_14)
        wizard.domain = "[('id', 'in', ["
        with self.assertRaises(UserError) as caught:
            wizard.action_check()
        self.assertIn("not a valid domain", str(caught.exception))
        self.assertEqual(wizard.allow_count, 1)  # the last report is kept
