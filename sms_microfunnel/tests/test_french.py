# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""French first: service SMS and public pages in the contact's language."""

import itertools

from odoo.tests import HttpCase, TransactionCase, tagged

from odoo.addons.sms_microfunnel.models.res_company import phone_language
from odoo.addons.sms_microfunnel.tests.common import load_french

FRENCH_NUMBER = "+33612345611"
US_NUMBER = "+12025550143"


@tagged("post_install", "-at_install")
class TestServiceTextsLanguage(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        load_french(cls.env)
        cls.company = cls.env.company
        cls.company.write(
            {
                "sms_funnel_sender_label": "ACME",
                "phone": "+33 1 84 88 00 00",
            }
        )
        cls.company.partner_id.lang = "en_US"
        cls.Inbound = cls.env["sms.microfunnel.inbound"]
        cls._sids = itertools.count(1)
        cls.french = cls.env["res.partner"].create(
            {"name": "Camille Martin", "phone": FRENCH_NUMBER, "lang": "fr_FR"}
        )
        cls.english = cls.env["res.partner"].create(
            {"name": "Jane Doe", "phone": "+33612345612", "lang": "en_US"}
        )

    def receive(self, body, number):
        return self.Inbound._process_inbound(
            from_number=number,
            to_number="+33700000001",
            body=body,
            provider_message_id=f"SMfr{next(self._sids)}",
            company=self.company,
        )

    def reply_to(self, number):
        return self.env["sms.sms"].search([("number", "=", number)], order="id").body

    def test_shipped_texts_follow_the_contact_language(self):
        self.receive("STOP", FRENCH_NUMBER)
        self.receive("STOP", "+33612345612")
        french = self.reply_to(FRENCH_NUMBER)
        english = self.reply_to("+33612345612")
        self.assertEqual(
            french,
            "ACME : vous êtes désinscrit(e) et ne recevrez plus de messages "
            "commerciaux. Répondez START pour vous réinscrire.",
        )
        self.assertEqual(
            english,
            "ACME: you are unsubscribed and will receive no more marketing "
            "messages. Reply START to subscribe again.",
        )

    def test_help_reply_names_the_sender_a_contact_and_stop(self):
        self.receive("AIDE", FRENCH_NUMBER)
        body = self.reply_to(FRENCH_NUMBER)
        self.assertTrue(body.startswith("ACME : "), body)
        self.assertIn("+33 1 84 88 00 00", body)
        self.assertIn("STOP", body)
        self.assertNotIn("Reply", body)

    def test_without_a_contact_the_number_country_decides(self):
        self.assertEqual(phone_language("+33612345699"), "fr")
        self.assertEqual(phone_language("+262692123456"), "fr")  # La Réunion
        self.assertEqual(phone_language(US_NUMBER), "en")
        self.assertIsNone(phone_language("+32470123456"))  # Belgium: several
        self.assertIsNone(phone_language("not a number"))
        company = self.company
        self.assertEqual(company._sms_lang(number="+33612345699"), "fr_FR")
        self.assertEqual(company._sms_lang(number=US_NUMBER), "en_US")
        # multilingual country: the company's language
        self.assertEqual(company._sms_lang(number="+32470123456"), "en_US")
        company.partner_id.lang = "fr_FR"
        self.assertEqual(company._sms_lang(number="+32470123456"), "fr_FR")
        # the contact's own language wins over the number and the hint
        self.assertEqual(
            company._sms_lang(partner=self.english, number="+33612345699"), "en_US"
        )
        self.assertEqual(
            company._sms_lang(number="+33612345699", language="en"), "en_US"
        )
        # a language that is not installed is skipped
        self.assertEqual(
            company._sms_lang(number="+49151123456", language="de"), "fr_FR"
        )

    def test_unknown_french_number_gets_french_help(self):
        self.receive("HELP", "+33612345698")
        body = self.reply_to("+33612345698")
        # the keyword is English: the hint of the reply's language comes first
        self.assertTrue(body.startswith("ACME: marketing messages"), body)
        self.receive("Bonjour", "+33612345697")
        self.assertFalse(self.reply_to("+33612345697"))
        doi = self.env["sms.microfunnel.consent"]._request_doi(
            "+33612345697", company=self.company, source="web_form", wording="x"
        )
        self.assertTrue(doi)
        self.assertTrue(
            self.reply_to("+33612345697").startswith(
                "ACME : répondez OUI pour confirmer"
            )
        )

    def test_company_text_serves_the_language_it_is_typed_in(self):
        self.company.with_context(
            lang="fr_FR"
        ).sms_text_stop = (
            "{company} : c'est noté, plus de SMS. START pour revenir. STOP au 36111."
        )
        self.receive("STOP", FRENCH_NUMBER)
        self.receive("STOP", "+33612345612")
        self.assertEqual(
            self.reply_to(FRENCH_NUMBER),
            "ACME : c'est noté, plus de SMS. START pour revenir. STOP au 36111.",
        )
        # Odoo also stored that text as the source value, but it is French:
        # English contacts keep the shipped English text
        self.assertTrue(
            self.reply_to("+33612345612").startswith("ACME: you are unsubscribed")
        )
        self.company.with_context(
            lang="en_US"
        ).sms_text_stop = "{company}: done, no more texts. Reply START to come back."
        english = self.env["res.partner"].create(
            {"name": "John Roe", "phone": "+33612345613", "lang": "en_US"}
        )
        self.receive("STOP", english.phone)
        self.assertEqual(
            self.reply_to("+33612345613"),
            "ACME: done, no more texts. Reply START to come back.",
        )
        self.receive("ARRET", "+33612345614")  # unknown French number: French
        self.assertEqual(
            self.reply_to("+33612345614"),
            "ACME : c'est noté, plus de SMS. START pour revenir. STOP au 36111.",
        )

    def test_every_shipped_text_is_translated_and_compliant(self):
        company = self.company
        for key in ("doi_request", "doi_confirmed", "stop", "start", "help"):
            for lang in ("en_US", "fr_FR"):
                text = company._sms_service_text(key, lang=lang, link="https://x.fr/c")
                self.assertTrue(text.startswith("ACME"), (key, lang, text))
                self.assertNotIn("{", text)
                if key != "stop":
                    self.assertIn("STOP", text, (key, lang))
            self.assertNotEqual(
                company._sms_service_text(key, lang="en_US", link="l"),
                company._sms_service_text(key, lang="fr_FR", link="l"),
                key,
            )

    def test_labels_built_in_code_are_translated(self):
        policy = self.env.ref("sms_microfunnel.sms_policy_fr")
        monday = policy.line_ids.filtered(lambda x: x.weekday == "0")[:1]
        self.assertTrue(
            monday.with_context(lang="fr_FR").display_name.startswith("Lundi")
        )
        self.assertTrue(
            monday.with_context(lang="en_US").display_name.startswith("Monday")
        )
        self.assertIn("Lun ", policy.with_context(lang="fr_FR").window_summary)


@tagged("post_install", "-at_install")
class TestFrenchPages(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        load_french(cls.env)
        cls.company = cls.env.ref("base.main_company")
        cls.company.sms_funnel_sender_label = "ACME"
        cls.company.partner_id.lang = "en_US"
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.Event = cls.env["sms.microfunnel.consent.event"]

    def subscribed(self, number, lang):
        partner = self.env["res.partner"].create(
            {"name": f"Contact {number}", "phone": number, "lang": lang}
        )
        self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": number,
                    "partner_id": partner.id,
                    "source": "manual",
                    "wording": "Agreed at the counter.",
                }
            ]
        )
        url = self.Consent._unsubscribe_url(number, self.company)
        return url[url.index("/sms/unsubscribe/") :]

    def test_unsubscribe_page_in_the_contact_language(self):
        french = self.url_open(self.subscribed("+33612345621", "fr_FR"))
        self.assertEqual(french.status_code, 200)
        self.assertIn('lang="fr-FR"', french.text)
        self.assertIn("désinscri", french.text)
        english = self.url_open(self.subscribed("+33612345622", "en_US"))
        self.assertIn('lang="en-US"', english.text)
        self.assertNotIn("désinscri", english.text)

    def test_the_visitor_browser_language_wins(self):
        path = self.subscribed("+33612345623", "en_US")
        page = self.url_open(path, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
        self.assertEqual(page.status_code, 200)
        self.assertIn('lang="fr-FR"', page.text)

    def test_consent_form_in_the_browser_language(self):
        url = f"/sms/optin?company={self.company.id}"
        french = self.url_open(url, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
        self.assertIn('lang="fr-FR"', french.text)
        self.assertIn("Recevez nos SMS", french.text)
        self.opener.cookies.clear()  # a new visitor, without the language cookie
        english = self.url_open(url, headers={"Accept-Language": "en-US"})
        self.assertIn("Receive our text messages", english.text)

    def test_confirmation_page_in_the_language_of_the_opt_in(self):
        request = self.Consent._request_doi(
            "+33612345624",
            company=self.company,
            source="web_form",
            wording="J'accepte.",
            lang="fr_FR",
        )
        page = self.url_open(f"/sms/optin/confirm/{request.doi_token}")
        self.assertEqual(page.status_code, 200)
        self.assertIn("Confirmez votre inscription", page.text)
        sms = self.env["sms.sms"].search([("number", "=", "+33612345624")])
        self.assertTrue(sms.body.startswith("ACME : répondez OUI"), sms.body)

    def test_french_interface_tour(self):
        self.env.ref("base.user_admin").lang = "fr_FR"
        self.start_tour("/odoo", "sms_microfunnel_french_ui", login="admin")


@tagged("post_install", "-at_install")
class TestMarketingLanguage(TransactionCase):
    def test_lead_without_language_reads_its_number_country(self):
        load_french(self.env)
        company = self.env.company
        company.partner_id.lang = "en_US"
        company.sms_funnel_sender_label = "ACME"
        company.with_context(lang="en_US").sms_funnel_optout_mention = "Reply STOP"
        company.with_context(lang="fr_FR").sms_funnel_optout_mention = "STOP au 36111"
        rules = self.env["sms.microfunnel.message.rules"]
        french = self.env["crm.lead"].create(
            {"name": "Diagnostic", "phone": "+33612345631"}
        )
        american = self.env["crm.lead"].create(
            {"name": "Diagnostic", "phone": "+12025550171"}
        )
        self.assertFalse(french.lang_id or french.partner_id)
        text = rules._compose("Offre du jour.", record=french, company=company)["text"]
        self.assertTrue(text.endswith("STOP au 36111"), text)
        text = rules._compose("Deal of the day.", record=american, company=company)[
            "text"
        ]
        self.assertTrue(text.endswith("Reply STOP"), text)
