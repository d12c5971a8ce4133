# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send-window policy models: shipped data, editing, conversion to the engine."""

from contextlib import contextmanager
from datetime import date, datetime, timezone

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

from ..tools import send_window
from .shipped_policies import shipped_policies

UTC = timezone.utc
SHIPPED = {
    "FR": "sms_microfunnel.sms_policy_fr",
    "BE": "sms_microfunnel.sms_policy_be",
    "DE": "sms_microfunnel.sms_policy_de",
    "ES": "sms_microfunnel.sms_policy_es",
    "IT": "sms_microfunnel.sms_policy_it",
    "UK": "sms_microfunnel.sms_policy_uk",
    "US": "sms_microfunnel.sms_policy_us",
    "US-FL": "sms_microfunnel.sms_policy_us_fl",
    "US-OK": "sms_microfunnel.sms_policy_us_ok",
    "US-MD": "sms_microfunnel.sms_policy_us_md",
    "US-TX": "sms_microfunnel.sms_policy_us_tx",
    "US-VA": "sms_microfunnel.sms_policy_us_va",
    "US-CT": "sms_microfunnel.sms_policy_us_ct",
    "US-NJ": "sms_microfunnel.sms_policy_us_nj",
    "CA": "sms_microfunnel.sms_policy_ca",
}
# shipped archived: alternatives a company selects
ALTERNATIVES = {
    "FR-AF2M-2026": "sms_microfunnel.sms_policy_fr_af2m_2026",
    "FR-AF2M-2024": "sms_microfunnel.sms_policy_fr_af2m_2024",
}


def utc(*args):
    return datetime(*args, tzinfo=UTC)


@tagged("post_install", "-at_install")
class TestPolicy(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Policy = cls.env["sms.microfunnel.policy"]
        cls.fr = cls.env.ref(SHIPPED["FR"])
        cls.user = new_test_user(
            cls.env,
            login="smf_policy_user",
            groups="sms_microfunnel.group_sms_funnel_user",
        )
        cls.manager = new_test_user(
            cls.env,
            login="smf_policy_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )

    @contextmanager
    def refused(self, pattern):
        """A ValidationError whose message matches ``pattern`` (rolled back)."""
        with self.assertRaises(ValidationError) as caught:
            yield
        self.assertRegex(str(caught.exception), pattern)

    # -- shipped data ---------------------------------------------------------

    def test_shipped_policies_have_source_and_valid_from(self):
        for code, xmlid in SHIPPED.items():
            policy = self.env.ref(xmlid)
            self.assertEqual(policy.code, code)
            self.assertEqual(policy.message_class, "marketing")
            self.assertTrue(policy.active, code)
            self.assertGreater(len(policy.source), 20, code)
            self.assertIsInstance(policy.valid_from, date)
            self.assertFalse(policy.company_id, code)
        us_states = {
            code: self.env.ref(SHIPPED[code]) for code in ("US-FL", "US-OK", "US-MD")
        }
        for code, policy in us_states.items():
            self.assertEqual(policy.country_id.code, "US")
            self.assertEqual(policy.state_id.code, code[3:])
            self.assertEqual((policy.cap_count, policy.cap_hours), (3, 24))
            self.assertEqual(policy.basis, "law")
        self.assertIn("305", us_states["US-FL"]._area_code_list())
        self.assertIn("918", us_states["US-OK"]._area_code_list())
        self.assertIn("410", us_states["US-MD"]._area_code_list())
        self.assertEqual(us_states["US-MD"].valid_from, date(2024, 1, 1))

    def test_france_default_window_and_inactive_options(self):
        fr = self.fr
        self.assertEqual(fr.country_id, self.env.ref("base.fr"))
        self.assertEqual(fr.tz_names, "Europe/Paris")
        active = fr.line_ids.filtered("active")
        self.assertEqual(
            sorted((x.weekday, x.hour_from, x.hour_to) for x in active),
            [(str(d), 8.0, 20.0) for d in range(6)],
        )
        sunday = fr.line_ids.filtered(lambda x: x.weekday == "6")
        self.assertEqual(len(sunday), 1)
        self.assertFalse(sunday.active)
        self.assertEqual((sunday.hour_from, sunday.hour_to), (10.0, 18.0))
        # the af2m 2026 charter is its own (archived) policy, not lines here
        self.assertFalse(fr.line_ids.filtered(lambda x: x.hour_to == 21.5))
        self.assertIn("FR-AF2M-2026", fr.note)
        self.assertEqual(fr.basis, "policy")
        self.assertIn("practice", fr.source_title.lower())
        self.assertEqual(
            fr.window_summary,
            "Mon 08:00–20:00; Tue 08:00–20:00; Wed 08:00–20:00; Thu 08:00–20:00; "
            "Fri 08:00–20:00; Sat 08:00–20:00",
        )
        # 25 December and Alsace-Moselle's 26 December in the preview
        self.assertIn("-12-25  Noël (whole country)", fr.closed_days_preview)
        self.assertIn("-12-26  Saint-Étienne (FR-AM)", fr.closed_days_preview)

    # -- conversion to the engine ---------------------------------------------

    def test_conversion_matches_engine_defaults(self):
        """The records, converted, are the policies the data file describes
        (read without the ORM: line hours, national holiday rules, caps)."""
        from_file = shipped_policies()
        for code, xmlid in {**SHIPPED, **ALTERNATIVES}.items():
            converted = self.env.ref(xmlid)._to_window_policy()
            self.assertIsInstance(converted, send_window.Policy)
            self.assertEqual(
                converted, send_window.policy_from_dict(from_file[code]), code
            )

    def test_regional_holidays_follow_the_recipient_region(self):
        good_friday = utc(2026, 4, 3, 9, 0)  # 11:00 in Paris
        national = self.fr._to_window_policy(regions=("FR",))
        alsace = self.fr._to_window_policy(regions=("FR-AM",))
        self.assertEqual(national.holiday_rules, ("fr",))
        self.assertEqual(alsace.holiday_rules, ("fr", "fr_alsace_moselle"))
        self.assertTrue(send_window.is_allowed(national, good_friday, "Europe/Paris"))
        self.assertFalse(send_window.is_allowed(alsace, good_friday, "Europe/Paris"))
        # Easter Monday (computed per year) is closed everywhere
        easter_monday = utc(2026, 4, 6, 9, 0)
        self.assertFalse(
            send_window.is_allowed(national, easter_monday, "Europe/Paris")
        )
        # Réunion's abolition day only for Réunion
        reunion = self.fr._to_window_policy(regions=("RE",))
        abolition = utc(2026, 12, 21, 6, 0)  # Monday 10:00 in Réunion
        self.assertTrue(send_window.is_allowed(reunion, abolition, "Indian/Reunion"))
        self.assertFalse(
            send_window.is_allowed(reunion, utc(2025, 12, 20, 6, 0), "Indian/Reunion")
        )
        self.assertTrue(
            send_window.is_allowed(national, utc(2025, 12, 20, 9, 0), "Europe/Paris")
        )

    # -- editing --------------------------------------------------------------

    def test_switch_on_sunday_line_is_logged_and_opens_sundays(self):
        sunday_11 = utc(2026, 3, 15, 10, 0)  # Sunday 11:00 in Paris
        self.assertFalse(
            send_window.is_allowed(
                self.fr._to_window_policy(), sunday_11, "Europe/Paris"
            )
        )
        messages = self.fr.message_ids
        sunday = self.fr.line_ids.filtered(lambda x: x.weekday == "6")
        sunday.with_user(self.manager).active = True
        self.assertTrue(
            send_window.is_allowed(
                self.fr._to_window_policy(), sunday_11, "Europe/Paris"
            )
        )
        self.assertIn("Sun 10:00–18:00", self.fr.window_summary)
        logged = self.fr.message_ids - messages
        self.assertEqual(len(logged), 1)
        self.assertIn("Sunday 10:00–18:00", logged.body)
        self.assertIn("switched on", logged.body)
        self.assertEqual(logged.author_id, self.manager.partner_id)

    def test_several_intervals_per_day(self):
        with Form(self.fr.with_user(self.manager)) as form:
            with form.line_ids.edit(0) as monday:
                self.assertEqual(monday.weekday, "0")
                monday.hour_to = 12.0
            with form.line_ids.new() as afternoon:
                afternoon.weekday = "0"
                afternoon.hour_from = 14.0
                afternoon.hour_to = 18.5
        window = self.fr._to_window_policy()
        self.assertEqual(window.intervals[0], ((480, 720), (840, 1110)))
        paris = "Europe/Paris"
        monday = (2026, 3, 16)
        self.assertTrue(send_window.is_allowed(window, utc(*monday, 10, 0), paris))
        self.assertFalse(send_window.is_allowed(window, utc(*monday, 12, 0), paris))
        self.assertEqual(
            send_window.next_allowed(window, utc(*monday, 12, 0), paris),
            utc(*monday, 13, 0),
        )
        self.assertFalse(send_window.is_allowed(window, utc(*monday, 17, 30), paris))

    def test_custom_closed_days(self):
        self.fr.write(
            {
                "holiday_ids": [
                    (0, 0, {"kind": "date", "date": "2026-03-17", "name": "Strike"}),
                    (0, 0, {"kind": "annual", "date": "2000-06-21", "name": "Fête"}),
                    (
                        0,
                        0,
                        {
                            "kind": "annual",
                            "date": "2000-03-18",
                            "name": "Local",
                            "regions": "GP",
                        },
                    ),
                ]
            }
        )
        window = self.fr._to_window_policy(regions=("FR",))
        self.assertIn(date(2026, 3, 17), window.closed_dates)
        self.assertIn(date(2026, 6, 21), window.closed_dates)
        self.assertIn(date(2027, 6, 21), window.closed_dates)
        self.assertNotIn(date(2026, 3, 18), window.closed_dates)
        self.assertIn(
            date(2026, 3, 18), self.fr._to_window_policy(regions=("GP",)).closed_dates
        )
        self.assertEqual(
            send_window.next_allowed(window, utc(2026, 3, 17, 9, 0), "Europe/Paris"),
            utc(2026, 3, 18, 7, 0),
        )

    def test_invalid_data_is_refused_with_a_clear_message(self):
        with self.refused("ends after it starts"):
            self.fr.line_ids[:1].hour_to = 6.0
        with self.refused("from 00:00 to 24:00"):
            self.fr.line_ids[:1].hour_to = 25.0
        with self.refused("both a number of messages"):
            self.fr.cap_count = 3
        with self.refused("area codes belong"):
            self.fr.area_codes = "305"
        with self.refused("not an area code: 30"):
            self.env.ref(SHIPPED["US-FL"]).area_codes = "305, 30"
        with self.refused("unknown time zone"):
            self.fr.tz_names = "Europe/Pariss"
        with self.refused("cannot end before"):
            self.fr.valid_to = "2020-01-01"
        with self.refused("only apply to marketing"):
            self.Policy.create(
                {
                    "name": "FR transactional",
                    "message_class": "transactional",
                    "country_id": self.env.ref("base.fr").id,
                    "source": "test",
                    "cap_count": 2,
                    "cap_hours": 24,
                }
            )
        with self.refused("needs a calendar"):
            self.fr.holiday_ids = [(0, 0, {"kind": "rule"})]
        # nothing was changed by the refused writes
        self.assertEqual(self.fr.line_ids.filtered("active")[:1].hour_to, 20.0)
        self.assertFalse(self.fr.cap_count)

    # -- selection ------------------------------------------------------------

    def test_applicable_respects_validity_and_company_override(self):
        company = self.env.company
        day = date(2026, 3, 16)
        index = self.Policy._applicable("marketing", company, day)
        self.assertEqual(index[("FR", False)], self.fr)
        self.assertEqual(index[("US", "FL")], self.env.ref(SHIPPED["US-FL"]))
        self.assertNotIn(
            ("US", "MD"),
            self.Policy._applicable("marketing", company, date(2023, 12, 31)),
        )
        own = self.fr.copy({"name": "France, ours", "company_id": company.id})
        self.assertEqual(
            self.Policy._applicable("marketing", company, day)[("FR", False)], own
        )
        other = self.env["res.company"].create({"name": "Other SMS Co"})
        self.assertEqual(
            self.Policy._applicable("marketing", other, day)[("FR", False)], self.fr
        )
        own.valid_to = "2026-03-15"
        self.assertEqual(
            self.Policy._applicable("marketing", company, day)[("FR", False)], self.fr
        )
        self.assertFalse(self.Policy._applicable("transactional", company, day))

    def test_users_read_managers_edit(self):
        policy = self.fr.with_user(self.user)
        self.assertTrue(policy.window_summary)
        with self.assertRaises(AccessError):
            policy.write({"name": "Changed"})
        with self.assertRaises(AccessError):
            policy.line_ids[:1].write({"hour_to": 19.0})
        self.fr.with_user(self.manager).write({"name": "France (edited)"})
        self.assertEqual(self.fr.name, "France (edited)")
