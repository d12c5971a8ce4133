# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Funnel builder and safe launch: default audience, Start / Enroll
confirmation with pre-flight figures, step tree on unsaved funnels, waits in
minutes/hours/days, live step figures, phone preview, dry-run labels."""

from unittest.mock import patch

from freezegun import freeze_time

from odoo import Command
from odoo.tests import Form, HttpCase, TransactionCase, tagged

from odoo.addons.sms_microfunnel.tests.common import (
    SUNDAY_11H_PARIS,
    TUESDAY_10H_PARIS,
    FunnelCase,
    confirm_consent,
    load_french,
)
from odoo.addons.sms_microfunnel.wizard import sms_microfunnel_launch


@tagged("post_install", "-at_install")
class TestFunnelLaunch(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.user.tz = "Europe/Paris"
        cls.four = cls.anna | cls.bruno | cls.no_consent | cls.opted_out
        cls.funnel.domain = repr([("id", "in", cls.four.ids)])

    def test_new_funnel_targets_marketable_records(self):
        Campaign = self.env["sms.microfunnel.campaign"]
        with Form(Campaign) as form:
            form.name = "Spring offer"
        funnel = form.record
        audience = funnel._audience()
        self.assertIn(self.anna, audience)
        self.assertIn(self.bruno, audience)
        self.assertNotIn(self.no_consent, audience, "no consent")
        self.assertNotIn(self.opted_out, audience, "opted out")
        company = self.env["res.partner"].create(
            {"name": "Big Corp", "is_company": True, "phone": "+33655555555"}
        )
        self.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": company.phone,
                    "partner_id": company.id,
                    "source": "web_form",
                    "wording": "J'accepte.",
                }
            ]
        )
        self.assertNotIn(company, funnel._audience(), "never a company")
        self.assertNotIn(self.env.user.partner_id, funnel._audience(), "never a user")
        # changing the target gives that target's marketable records
        with Form(funnel) as form:
            form.model_name = "crm.lead"
        self.assertIn("sms_consent_state", funnel.domain)
        self.assertNotIn("is_company", funnel.domain)
        # funnels created by code too, for their own target
        leads = Campaign.create({"name": "API", "model_name": "crm.lead"})
        self.assertEqual(leads.domain, repr(Campaign._marketable_domain("crm.lead")))
        self.assertEqual(Campaign.create({"name": "All", "domain": "[]"}).domain, "[]")

    def test_start_confirms_with_preflight_figures(self):
        with freeze_time(SUNDAY_11H_PARIS):
            action = self.funnel.with_context(launch_mode="start").action_open_launch()
            self.assertEqual(self.funnel.state, "draft", "nothing starts before OK")
            wizard = self.env[action["res_model"]].browse(action["res_id"])
            self.assertEqual(
                (wizard.total_count, wizard.allow_count, wizard.defer_count),
                (4, 0, 2),
            )
            self.assertEqual(wizard.block_count, 2)
            self.assertTrue(
                wizard.summary.startswith("4 selected: 0 now, 2 on Mon 08:00"),
                wizard.summary,
            )
            self.assertIn("2 blocked — 1 ", wizard.summary)
            self.assertIn("no consent", wizard.summary)
            self.assertIn("The 2 blocked records are not enrolled.", wizard.next_steps)
            result = wizard.action_confirm()
        self.assertEqual(self.funnel.state, "running")
        self.assertEqual(
            result["params"]["next"]["type"], "ir.actions.act_window_close"
        )
        self.funnel.invalidate_recordset()
        self.assertEqual(
            set(self.funnel.enrollment_ids.mapped("res_id")),
            set((self.anna | self.bruno).ids),
            "blocked records are left out",
        )
        self.assertEqual(self.funnel.enrollment_count, 2)
        self.assertIn("2 records enrolled", self.funnel.message_ids[0].body)

    def test_start_without_enrolling_says_what_comes_next(self):
        action = self.funnel.with_context(launch_mode="start").action_open_launch()
        wizard = self.env[action["res_model"]].browse(action["res_id"])
        wizard.enroll_now = False
        self.assertIn("Enroll audience", wizard.next_steps)
        wizard.action_confirm()
        self.assertEqual(self.funnel.state, "running")
        self.assertFalse(self.funnel.enrollment_ids)

    def test_enroll_keeps_blocked_only_on_request_and_in_progress_counts(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            action = self.funnel.with_context(launch_mode="enroll").action_open_launch()
            wizard = self.env[action["res_model"]].browse(action["res_id"])
            self.assertEqual((wizard.allow_count, wizard.block_count), (2, 2))
            wizard.keep_blocked = True
            wizard.action_confirm()
            self.assertEqual(len(self.funnel.enrollment_ids), 4)
            self.dispatch()
        self.funnel.invalidate_recordset()
        # the two blocked enrollments had their only message cancelled: they are
        # no longer "in progress" although still active
        self.assertEqual(
            len(self.funnel.enrollment_ids.filtered(lambda e: e.state == "active")), 4
        )
        self.assertEqual(self.funnel.active_enrollment_count, 2)
        stats = self.funnel.step_stats[str(self.offer.id)]
        self.assertEqual(stats["scheduled"], 2, "queued for Anna and Bruno")
        self.assertEqual(stats["cancelled"], 2)
        self.assertIn(stats["top_reason"], ("No consent", "Opted out"))
        reminder = self.funnel.step_stats[str(self.reminder.id)]
        self.assertEqual(reminder["scheduled"], 2)

    def test_large_audience_enrolled_in_the_background_without_the_blocked(self):
        """Above ENROL_NOW_MAX records the confirmation leaves the enrolment
        to the dispatch job; the blocked records stay out unless asked."""
        with (
            freeze_time(TUESDAY_10H_PARIS),
            patch.object(sms_microfunnel_launch, "ENROL_NOW_MAX", 1),
        ):
            action = self.funnel.with_context(launch_mode="start").action_open_launch()
            wizard = self.env[action["res_model"]].browse(action["res_id"])
            result = wizard.action_confirm()
            message = result["params"]["message"]
            self.assertIn("2 records are being enrolled in the background", message)
            self.assertIn("2 blocked left out", message)
            self.assertEqual(self.funnel.state, "running")
            self.assertFalse(self.funnel.enrollment_ids, "not while the user waits")
            self.assertTrue(self.funnel.enroll_skip_blocked)
            self.dispatch()
            self.funnel.invalidate_recordset()
            self.assertEqual(
                set(self.funnel.enrollment_ids.mapped("res_id")),
                set((self.anna | self.bruno).ids),
            )
            self.assertTrue(self.funnel.audience_enrolled_at)
            self.assertFalse(self.funnel.enroll_skip_blocked)
            self.assertEqual(len(self.outgoing(self.anna)), 1)
            # asked to: the blocked records too (their messages cancelled
            # with the reason)
            action = self.funnel.with_context(launch_mode="enroll").action_open_launch()
            wizard = self.env[action["res_model"]].browse(action["res_id"])
            wizard.keep_blocked = True
            wizard.action_confirm()
            self.assertFalse(self.funnel.enroll_skip_blocked)
            self.dispatch()
        self.funnel.invalidate_recordset()
        self.assertEqual(len(self.funnel.enrollment_ids), 4)
        self.assertEqual(
            self.trace(self.no_consent, self.offer).cancel_reason, "no_consent"
        )

    def test_enroll_on_empty_audience_is_refused(self):
        self.funnel.action_start()
        self.funnel.domain = "[('id', '=', 0)]"
        with self.assertRaisesRegex(Exception, "audience of this funnel is empty"):
            self.funnel.with_context(launch_mode="enroll").action_open_launch()


@tagged("post_install", "-at_install")
class TestFunnelBuilder(FunnelCase):
    def test_tree_built_on_an_unsaved_funnel(self):
        """The client sends the steps of a new funnel in one save, a child
        naming its parent by key (possibly before the parent)."""
        funnel = self.env["sms.microfunnel.campaign"].create(
            {
                "name": "Built in one pass",
                "step_ids": [
                    Command.create(
                        {
                            "name": "Last call",
                            "builder_key": "k3",
                            "parent_key": "k2",
                            "wait_mode": "after_parent",
                            "wait_value": 2,
                            "wait_unit": "days",
                            "body": "Dernier jour !",
                        }
                    ),
                    Command.create(
                        {
                            "name": "Reminder",
                            "builder_key": "k2",
                            "parent_key": "k1",
                            "condition": "not_clicked",
                            "wait_mode": "after_parent",
                            "wait_value": 24,
                            "wait_unit": "hours",
                            "body": "Rappel",
                        }
                    ),
                    Command.create(
                        {"name": "Offer", "builder_key": "k1", "body": "Offre"}
                    ),
                ],
            }
        )
        steps = {step.name: step for step in funnel.step_ids}
        self.assertFalse(steps["Offer"].parent_id)
        self.assertEqual(steps["Reminder"].parent_id, steps["Offer"])
        self.assertEqual(steps["Last call"].parent_id, steps["Reminder"])
        self.assertEqual(steps["Reminder"].wait_hours, 24)
        self.assertEqual(steps["Last call"].wait_hours, 48)
        # a step added later under a saved step, named by key
        funnel.write(
            {
                "step_ids": [
                    Command.create(
                        {
                            "name": "Thanks",
                            "parent_key": "k1",
                            "condition": "clicked",
                            "wait_mode": "after_parent",
                            "wait_value": 30,
                            "wait_unit": "minutes",
                            "body": "Merci",
                        }
                    )
                ]
            }
        )
        thanks = funnel.step_ids.filtered(lambda s: s.name == "Thanks")
        self.assertEqual(thanks.parent_id, steps["Offer"])
        self.assertEqual(thanks.wait_hours, 0.5)

    def test_waits_in_hours_show_in_the_largest_unit(self):
        self.assertEqual(
            (self.reminder.wait_value, self.reminder.wait_unit), (1, "days")
        )
        self.assertEqual((self.thanks.wait_value, self.thanks.wait_unit), (1, "hours"))
        self.thanks.wait_hours = 0.25
        self.assertEqual(
            (self.thanks.wait_value, self.thanks.wait_unit), (15, "minutes")
        )
        self.assertEqual(self.thanks.parent_key, self.offer.builder_key)

    def test_phone_preview_composes_without_creating_links(self):
        self.offer.body = (
            "Bonjour {{ object.name or 'client' }}, voir https://example.com/offre"
        )
        self.offer.preview_ref = f"res.partner,{self.anna.id}"
        trackers = self.env["link.tracker"].search_count([])
        preview = self.offer.preview
        self.assertTrue(preview["text"].startswith("ACME: Bonjour Anna, voir "))
        self.assertNotIn("example.com", preview["text"], "shown as its short link")
        self.assertIn("STOP au 36111", preview["text"])
        self.assertEqual(preview["encoding"], "GSM-7")
        self.assertEqual(preview["segments"], 1)
        self.assertEqual(self.env["link.tracker"].search_count([]), trackers)

    def test_dry_run_labels_and_title(self):
        wizard = self.env["sms.microfunnel.simulate"].create(
            {"campaign_id": self.funnel.id, "partner_id": self.no_consent.id}
        )
        with freeze_time(SUNDAY_11H_PARIS):
            action = wizard.action_simulate()
        self.assertEqual(action["name"], "Dry-run")
        offer = wizard.line_ids.filtered(lambda x: x.step_name == "Offer")
        self.assertEqual((offer.outcome, offer.reason), ("Blocked", "No consent"))
        reminder = wizard.line_ids.filtered(lambda x: x.step_name == "Reminder")
        self.assertEqual(reminder.condition, "Did not click the previous step")

    def test_send_test_starts_on_the_first_step_and_notifies(self):
        action = self.funnel.action_open_send_test()
        wizard = (
            self.env["sms.microfunnel.send.test"]
            .with_context(**action["context"])
            .create({"number": "06 99 88 77 66"})
        )
        self.assertEqual(wizard.step_id, self.offer)
        result = wizard.action_send()
        self.assertEqual(result["tag"], "display_notification")
        self.assertIn("+33699887766", result["params"]["message"])


@tagged("post_install", "-at_install")
class TestMarketerTours(HttpCase):
    """In Chromium, as a marketer walks: build a 3-step funnel on a new record
    in one pass, preview, pre-flight, start with confirmation, then see the
    figures on the canvas after a dispatch; in English and in French."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        company = cls.env.company
        company.write(
            {
                "country_id": cls.env.ref("base.fr").id,
                "sms_funnel_sender_label": "ACME: ",
                "sms_funnel_optout_mention": "STOP au 36111",
            }
        )
        Campaign = cls.env["sms.microfunnel.campaign"]
        Partner = cls.env["res.partner"]
        # only this test's contacts are marketable
        Partner.search(Campaign._marketable_domain("res.partner")).action_archive()
        fr = cls.env.ref("base.fr").id
        cls.contacts = Partner.create(
            [
                {
                    "name": name,
                    "phone": phone,
                    "country_id": fr,
                    "tz": "Europe/Paris",
                }
                for name, phone in (
                    ("Alice Tour", "+33611110001"),
                    ("Bastien Tour", "+33611110002"),
                    ("Céline Sans Accord", "+33611110003"),
                )
            ]
        )
        confirm_consent(cls.env, cls.contacts[:2])

    def walk(self, tour, name):
        self.start_tour("/odoo", tour, login="admin")
        funnel = self.env["sms.microfunnel.campaign"].search([("name", "=", name)])
        self.assertEqual(funnel.state, "running")
        steps = {step.name: step for step in funnel.step_ids}
        self.assertEqual(set(steps), {"Offer", "Reminder", "Last call"})
        self.assertFalse(steps["Offer"].parent_id)
        self.assertEqual(steps["Reminder"].parent_id, steps["Offer"])
        self.assertEqual(steps["Reminder"].condition, "not_clicked")
        self.assertEqual(steps["Reminder"].wait_hours, 24)
        self.assertEqual(steps["Last call"].parent_id, steps["Reminder"])
        self.assertEqual(
            set(funnel.enrollment_ids.mapped("res_id")),
            set(self.contacts[:2].ids),
            "the contact without consent is neither in the audience nor enrolled",
        )
        self.env.ref(
            "sms_microfunnel.ir_cron_sms_funnel_dispatch"
        ).method_direct_trigger()
        self.start_tour(
            f"/odoo/action-sms_microfunnel.action_sms_funnel/{funnel.id}",
            "sms_microfunnel_builder_counts_tour",
            login="admin",
        )

    def test_marketer_builds_and_starts_a_funnel(self):
        self.walk("sms_microfunnel_marketer_tour", "Tour funnel")

    def test_marketer_builds_and_starts_a_funnel_in_french(self):
        load_french(self.env)
        self.env.ref("base.user_admin").lang = "fr_FR"
        self.walk("sms_microfunnel_marketer_tour_fr", "Parcours visite")


@tagged("post_install", "-at_install")
class TestConsentWording(TransactionCase):
    def test_wording_names_the_company_in_each_language(self):
        load_french(self.env)
        company = self.env["res.company"].create({"name": "Atelier Horizon"})
        self.assertIn("{company}", company.sms_consent_wording)
        self.assertTrue(company.sms_consent_wording_warning)
        english = company.with_context(lang="en_US")._sms_consent_wording_text()
        french = company.with_context(lang="fr_FR")._sms_consent_wording_text()
        self.assertIn("from Atelier Horizon at this number", english)
        self.assertTrue(french.startswith("J'accepte de recevoir"), french)
        self.assertIn("de Atelier Horizon", french)
        # the form's wizard records the same text
        settings = self.env["res.config.settings"].with_company(company).create({})
        self.assertTrue(settings.sms_consent_wording_warning)
        company.sms_consent_wording = (
            "J'accepte les SMS d'Atelier Horizon. STOP au 36111."
        )
        self.assertFalse(company.sms_consent_wording_warning)
        self.assertEqual(
            company.with_context(lang="fr_FR")._sms_consent_wording_text(),
            "J'accepte les SMS d'Atelier Horizon. STOP au 36111.",
        )
        company.sms_consent_wording = "I agree to SMS from YourCompany."
        self.assertTrue(company.sms_consent_wording_warning, "the demo name")
