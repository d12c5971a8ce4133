# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime, timedelta

from freezegun import freeze_time
from lxml import html

from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

NUMBER = "+33612345678"


@tagged("post_install", "-at_install")
class TestPreferencePages(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.ref("base.main_company")
        cls.company.write(
            {
                "country_id": cls.env.ref("base.fr").id,
                "sms_consent_wording": "I agree to receive offers from ACME by SMS.",
            }
        )
        cls.other_company = cls.env["res.company"].create({"name": "Other Co"})
        Interest = cls.env["sms.microfunnel.interest"]
        cls.leadership, cls.reconversion, cls.cpf = Interest.create(
            [
                {"name": "Leadership", "sequence": 1},
                {"name": "Reconversion", "sequence": 2},
                {"name": "CPF", "sequence": 3},
            ]
        )
        cls.archived = Interest.create({"name": "Old topic", "active": False})
        cls.foreign = Interest.create(
            {"name": "Foreign topic", "company_id": cls.other_company.id}
        )
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.form_url = f"/sms/optin?company={cls.company.id}"

    # -- helpers ----------------------------------------------------------------

    def tree(self, response):
        self.assertEqual(response.status_code, 200, response.text[:500])
        return html.fromstring(response.content)

    def hidden_values(self, tree, form_class):
        return {
            node.get("name"): node.get("value") or ""
            for node in tree.xpath(
                f"//form[contains(@class, '{form_class}')]//input[@type='hidden']"
            )
        }

    def post(self, url, values):
        response = self.url_open(url, data=values)
        self.env.invalidate_all()
        return response

    def checked(self, tree, name):
        return {
            node.get("value")
            for node in tree.xpath(f"//input[@name='{name}'][@checked]")
        }

    def status(self, number=NUMBER):
        return self.Consent.search(
            [("number", "=", number), ("company_id", "=", self.company.id)]
        )

    def subscribed_contact(self):
        partner = self.env["res.partner"].create(
            {"name": "Camille Martin", "phone": NUMBER}
        )
        self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": NUMBER,
                    "partner_id": partner.id,
                    "source": "manual",
                    "wording": "Agreed at the counter.",
                }
            ]
        )
        return partner

    def page_path(self, number=NUMBER):
        url = self.Consent._unsubscribe_url(number, self.company)
        return url[url.index("/sms/unsubscribe/") :]

    # -- the opt-in form --------------------------------------------------------

    def test_optin_form_offers_the_company_interests(self):
        tree = self.tree(self.url_open(self.form_url))
        boxes = tree.xpath("//form//input[@name='interest_ids']")
        self.assertEqual(
            [box.get("value") for box in boxes],
            [str(i.id) for i in (self.leadership, self.reconversion, self.cpf)],
        )
        self.assertEqual(
            [label.text for label in tree.xpath("//fieldset//label")],
            ["Leadership", "Reconversion", "CPF"],
        )
        self.assertFalse(self.checked(tree, "interest_ids"), "never pre-ticked")
        # a company without interest choices shows no such question
        (self.leadership | self.reconversion | self.cpf).action_archive()
        tree = self.tree(self.url_open(self.form_url))
        self.assertFalse(tree.xpath("//*[contains(@class, 'o_sms_optin_interests')]"))

    def test_interests_captured_at_optin_and_confirmation(self):
        values = self.hidden_values(
            self.tree(self.url_open(self.form_url)), "o_sms_optin_form"
        )
        values.update(
            name="Camille Martin",
            phone="06 12 34 56 78",
            interest_ids=[
                str(self.leadership.id),
                str(self.cpf.id),
                str(self.foreign.id),  # not offered here: ignored
                str(self.archived.id),  # archived: ignored
                "abc",
            ],
        )
        # a mistake: the form comes back with the interests still ticked
        tree = self.tree(self.url_open(self.form_url, data=values))
        self.assertEqual(
            self.checked(tree, "interest_ids"),
            {str(self.leadership.id), str(self.cpf.id)},
        )
        self.assertFalse(self.Event.search([("number", "=", NUMBER)]))

        values["consent"] = "1"
        self.post(self.form_url, values)
        request_event = self.Event.search([("number", "=", NUMBER)])
        self.assertEqual(request_event.event_type, "requested")
        self.assertEqual(request_event.interest_ids, self.leadership | self.cpf)
        self.assertEqual(request_event.interest_names, "Leadership, CPF")
        partner = request_event.partner_id
        self.assertFalse(
            partner.sms_microfunnel_interest_ids,
            "nothing reaches the contact before the number is confirmed",
        )

        link = f"/sms/optin/confirm/{request_event.doi_token}"
        values = self.hidden_values(
            self.tree(self.url_open(link)), "o_sms_optin_confirm_form"
        )
        self.post(link, values)
        confirmed = self.Event.search(
            [("number", "=", NUMBER), ("event_type", "=", "confirmed")]
        )
        self.assertTrue(confirmed)
        self.assertEqual(confirmed.interest_names, "Leadership, CPF")
        self.assertEqual(
            partner.sms_microfunnel_interest_ids, self.leadership | self.cpf
        )

    def test_yes_reply_confirmation_gives_the_interests_too(self):
        partner = self.env["res.partner"].create(
            {"name": "Camille", "phone": NUMBER, "sms_microfunnel_interest_ids": []}
        )
        self.Consent._request_doi(
            NUMBER,
            company=self.company,
            partner=partner,
            source="web_form",
            wording="I agree.",
            interest_ids=[(6, 0, self.reconversion.ids)],
            interest_names="Reconversion",
        )
        self.Consent._confirm_doi(self.company, number=NUMBER, method="keyword")
        self.assertEqual(partner.sms_microfunnel_interest_ids, self.reconversion)

    # -- the preferences page ------------------------------------------------------

    def test_preferences_page_changes_interests_and_frequency(self):
        partner = self.subscribed_contact()
        partner.sms_microfunnel_interest_ids = self.leadership | self.foreign
        path = self.page_path()
        tree = self.tree(self.url_open(path))
        # the one-click opt-out is still there, and the preferences next to it
        self.assertTrue(
            tree.xpath("//form[contains(@class, 'o_sms_unsubscribe_form')]")
        )
        self.assertEqual(self.checked(tree, "interest_ids"), {str(self.leadership.id)})
        self.assertEqual(
            [n.get("value") for n in tree.xpath("//input[@name='frequency']")],
            ["all", "weekly", "monthly"],
        )
        self.assertEqual(self.checked(tree, "frequency"), {"all"})
        self.assertNotIn("Foreign topic", tree.text_content())
        self.assertNotIn(NUMBER, html.tostring(tree, encoding="unicode"))

        form = tree.xpath("//form[contains(@class, 'o_sms_preferences_form')]")[0]
        action = form.get("action")
        self.assertTrue(action.startswith("/sms/preferences/"))
        values = self.hidden_values(tree, "o_sms_preferences_form")
        values.update(interest_ids=[str(self.cpf.id)], frequency="weekly")
        response = self.post(action, values)
        self.assertEqual(response.status_code, 200)
        self.assertIn("saved=1", response.url)
        tree = self.tree(response)
        self.assertTrue(tree.xpath("//*[contains(@class, 'o_sms_preferences_saved')]"))
        self.assertEqual(self.checked(tree, "interest_ids"), {str(self.cpf.id)})
        self.assertEqual(self.checked(tree, "frequency"), {"weekly"})

        self.assertEqual(
            partner.sms_microfunnel_interest_ids,
            self.cpf | self.foreign,
            "the other company's interests are kept",
        )
        self.assertEqual(self.status().frequency, "weekly")
        self.assertEqual(partner.sms_microfunnel_frequency, "weekly")
        self.assertEqual(
            self.env["res.partner"].search(
                [("sms_microfunnel_frequency", "in", ["weekly"])]
            ),
            partner,
        )
        self.assertEqual(self.status().state, "confirmed", "still subscribed")
        self.assertIn("preferences link", partner.message_ids[:1].body)
        self.assertFalse(self.Event.search([("event_type", "=", "opt_out")]))

        # the full opt-out stays one click away
        values = self.hidden_values(tree, "o_sms_unsubscribe_form")
        response = self.post(path, values)
        self.assertIn("You are unsubscribed", response.text)
        self.assertEqual(self.status().state, "withdrawn")

        # preferences of an unsubscribed number are not changed any more
        values = self.hidden_values(tree, "o_sms_preferences_form")
        values.update(interest_ids=[str(self.leadership.id)], frequency="monthly")
        response = self.post(action, values)
        self.assertIn("You are unsubscribed", response.text)
        self.assertEqual(self.status().frequency, "weekly")
        self.assertEqual(partner.sms_microfunnel_interest_ids, self.cpf | self.foreign)

    def test_preferences_refuse_forged_tokens_and_missing_csrf(self):
        partner = self.subscribed_contact()
        partner.sms_microfunnel_interest_ids = self.leadership
        tree = self.tree(self.url_open(self.page_path()))
        values = self.hidden_values(tree, "o_sms_preferences_form")
        values.update(interest_ids=[str(self.cpf.id)], frequency="weekly")
        token = self.page_path().rsplit("/", 1)[1]
        _payload, signature = token.split(".")
        other = self.Consent._unsubscribe_token("+33612345600", self.company)
        with mute_logger("odoo.http"):
            for bad in ("garbage", f"{other.split('.')[0]}.{signature}", "x" * 300):
                with self.subTest(token=bad[:20]):
                    response = self.url_open(f"/sms/preferences/{bad}", data=values)
                    self.assertEqual(response.status_code, 404)
            no_csrf = dict(values, csrf_token="")
            response = self.url_open(f"/sms/preferences/{token}", data=no_csrf)
            self.assertEqual(response.status_code, 400)
        # an unknown frequency is ignored
        values["frequency"] = "daily"
        self.post(f"/sms/preferences/{token}", values)
        self.assertEqual(self.status().frequency, "all")
        self.assertEqual(partner.sms_microfunnel_interest_ids, self.cpf)


@tagged("post_install", "-at_install")
class TestFrequencyPreference(FunnelCase):
    """A frequency preference is a personal cap the gate enforces."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.Consent.search([("number", "=", cls.anna.phone)]).frequency = "weekly"
        Funnel = cls.env["sms.microfunnel.campaign"]
        Step = cls.env["sms.microfunnel.step"]
        cls.first, cls.second = Funnel.create(
            [
                {"name": "First", "model_name": "res.partner"},
                {"name": "Second", "model_name": "res.partner"},
            ]
        )
        Step.create(
            [
                {"campaign_id": cls.first.id, "name": "A", "body": "Offre A."},
                {"campaign_id": cls.second.id, "name": "B", "body": "Offre B."},
            ]
        )

    def funnel_trace(self, funnel, partner):
        return self.env["sms.microfunnel.trace"].search(
            [("campaign_id", "=", funnel.id), ("enrollment_id.res_id", "=", partner.id)]
        )

    def test_weekly_preference_is_enforced_at_dispatch(self):
        tuesday = datetime.fromisoformat(TUESDAY_10H_PARIS)
        with freeze_time(tuesday):
            (self.first | self.second).action_start()
            self.first._enroll(self.anna | self.bruno)
            self.dispatch()
        self.assertEqual(self.funnel_trace(self.first, self.anna).state, "queued")
        sent_at = self.funnel_trace(self.first, self.anna).queued_at

        with freeze_time(tuesday + timedelta(days=2)):
            self.second._enroll(self.anna | self.bruno)
            self.dispatch()
        # Bruno has no preference: the policy allows a second message
        self.assertEqual(self.funnel_trace(self.second, self.bruno).state, "queued")
        anna = self.funnel_trace(self.second, self.anna)
        self.assertRecordValues(
            anna,
            [
                {
                    "state": "deferred",
                    "defer_reason": "frequency_cap",
                    "due_at": sent_at + timedelta(days=7),
                }
            ],
        )
        self.assertFalse(
            self.outgoing(self.anna).filtered(lambda s: "Offre B" in s.body)
        )

        with freeze_time(sent_at + timedelta(days=7, minutes=1)):
            self.dispatch()
        self.assertEqual(anna.state, "queued")

    def test_preference_in_the_gate_and_preflight(self):
        Trace = self.env["sms.microfunnel.trace"]
        tuesday = datetime.fromisoformat(TUESDAY_10H_PARIS)
        with freeze_time(tuesday):
            self.first.action_start()
            self.first._enroll(self.anna | self.bruno)
            self.dispatch()
        self.assertEqual(len(Trace.search([("campaign_id", "=", self.first.id)])), 2)
        gate = self.env["sms.microfunnel.gate"]
        later = tuesday + timedelta(days=1)
        decisions = gate._evaluate(self.anna | self.bruno, "marketing", when_utc=later)
        self.assertEqual(
            [(d["action"], d["reason"]) for d in decisions],
            [("defer", "frequency_cap"), ("allow", False)],
        )
        self.assertEqual(decisions[0]["until"], tuesday + timedelta(days=7))
        # transactional messages are not capped by a marketing preference
        self.assertEqual(
            gate._evaluate_one(self.anna, "transactional", when_utc=later)["action"],
            "allow",
        )
        # monthly: a month, not a week
        self.Consent.search([("number", "=", self.anna.phone)]).frequency = "monthly"
        decision = gate._evaluate_one(
            self.anna, "marketing", when_utc=tuesday + timedelta(days=8)
        )
        self.assertEqual(decision["reason"], "frequency_cap")
        self.assertEqual(decision["until"], tuesday + timedelta(days=30))
        wizard = self.env["sms.microfunnel.preflight"].create(
            {
                "domain": repr([("id", "in", (self.anna | self.bruno).ids)]),
                "check_at": later,
            }
        )
        wizard.action_check()
        self.assertEqual(wizard.defer_count, 1)
        self.assertEqual(wizard.line_ids.filtered("until_min").reason, "frequency_cap")

    def test_preference_without_any_send_window_policy(self):
        """No policy for the number's country: only the personal cap applies."""
        self.company.country_id = self.env.ref("base.jp")
        partner = self.env["res.partner"].create(
            {"name": "Kenji", "phone": "+819012345678"}
        )
        self.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": partner.phone,
                    "partner_id": partner.id,
                    "source": "web_form",
                    "wording": "OK",
                }
            ]
        )
        number = partner.phone_sanitized
        self.Consent.search([("number", "=", number)]).frequency = "weekly"
        sent = datetime(2026, 3, 9, 23, 0)
        self.env["mailing.trace"].create(
            {
                "trace_type": "sms",
                "model": "res.partner",
                "res_id": partner.id,
                "sms_number": number,
                "trace_status": "sent",
                "sent_datetime": sent,
            }
        )
        gate = self.env["sms.microfunnel.gate"]
        decision = gate._evaluate_one(
            number, "marketing", when_utc=sent + timedelta(days=1)
        )
        self.assertEqual(
            (decision["action"], decision["reason"], decision["until"]),
            ("defer", "frequency_cap", sent + timedelta(days=7)),
        )
        decision = gate._evaluate_one(
            number, "marketing", when_utc=sent + timedelta(days=7, seconds=1)
        )
        self.assertEqual(decision["action"], "allow")
