# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import hashlib
from datetime import timedelta

from lxml import html

from odoo import fields
from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

NUMBER = "+33612345678"
TOUR_NUMBER = "+33612345699"


@tagged("post_install", "-at_install")
class TestConsentPages(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.company = cls.env.ref("base.main_company")
        cls.company.write(
            {
                "country_id": cls.env.ref("base.fr").id,
                "sms_funnel_sender_label": "ACME: ",
                "sms_consent_wording": "I agree to receive offers from ACME by SMS "
                "(2 per month). Reply STOP to opt out.",
            }
        )
        cls.form_url = f"/sms/optin?company={cls.company.id}"

    # -- helpers --------------------------------------------------------------

    def events(self, number=NUMBER, **domain):
        return self.Event.search(
            [("number", "=", number)] + [(k, "=", v) for k, v in domain.items()]
        )

    def sms(self, number=NUMBER):
        return self.env["sms.sms"].search([("number", "=", number)], order="id")

    def state(self, number=NUMBER):
        return self.Consent._get_states([number], company=self.company)[number]

    def form_values(self, response):
        """The form's fields as the browser would post them (hidden ones included)."""
        self.assertEqual(response.status_code, 200, response.text[:500])
        tree = html.fromstring(response.content)
        return {
            node.get("name"): node.get("value") or ""
            for node in tree.xpath("//form[@method='post']//input[@type='hidden']")
        }

    def submit(self, url=None, consent=True, **fields_):
        values = self.form_values(self.url_open(url or self.form_url))
        values.update(name="Camille Martin", phone="06 12 34 56 78")
        if consent:
            values["consent"] = "1"
        values.update(fields_)
        return self.url_open(url or self.form_url, data=values)

    def outcome(self, response, css_class):
        tree = html.fromstring(response.content)
        nodes = tree.xpath(f"//*[contains(@class, '{css_class}')]")
        self.assertTrue(nodes, f"{css_class} not in the page")
        return nodes[0].get("data-outcome")

    def post_page_form(self, url):
        """GET a page, then POST its form (with the page's CSRF token)."""
        return self.url_open(url, data=self.form_values(self.url_open(url)))

    # -- the double opt-in form ---------------------------------------------------

    def test_form_shows_unticked_box_with_current_wording(self):
        response = self.url_open(self.form_url)
        self.assertEqual(response.status_code, 200)
        tree = html.fromstring(response.content)
        box = tree.xpath("//input[@name='consent']")[0]
        self.assertEqual(box.get("type"), "checkbox")
        self.assertIsNone(box.get("checked"))
        label = tree.xpath("//label[@for='sms_optin_consent']")[0]
        self.assertEqual(label.text_content(), self.company.sms_consent_wording)
        self.assertIn(
            f"version {self.company.sms_consent_wording_version}",
            response.text,
        )

    def test_optin_then_confirmation_through_the_link(self):
        response = self.submit()
        self.assertEqual(self.outcome(response, "o_sms_optin_done"), "requested")
        self.assertIn("YES", response.text)

        request_event = self.events()
        self.assertEqual(len(request_event), 1)
        wording = self.company.sms_consent_wording
        self.assertRecordValues(
            request_event,
            [
                {
                    "event_type": "requested",
                    "source": "web_form",
                    "method": "checkbox",
                    "company_id": self.company.id,
                    "wording": wording,
                    "wording_sha256": hashlib.sha256(wording.encode()).hexdigest(),
                    "wording_version": str(self.company.sms_consent_wording_version),
                    "lang": "en_US",
                    "ip": "127.0.0.1",
                }
            ],
        )
        self.assertTrue(request_event.user_agent)
        self.assertIn(f"/sms/optin?company={self.company.id}", request_event.source_ref)
        self.assertEqual(request_event.partner_id.name, "Camille Martin")
        self.assertEqual(request_event.partner_id.phone_sanitized, NUMBER)
        self.assertEqual(self.state(), "pending")

        link = f"/sms/optin/confirm/{request_event.doi_token}"
        doi_sms = self.sms()
        self.assertEqual(len(doi_sms), 1)
        self.assertEqual(doi_sms.state, "outgoing")
        self.assertIn(link, doi_sms.body)

        # opening the link (as a link scanner would) confirms nothing
        page = self.url_open(link)
        self.assertEqual(page.status_code, 200)
        self.assertTrue(html.fromstring(page.content).xpath("//form[@method='post']"))
        self.assertEqual(self.state(), "pending")
        self.assertEqual(len(self.events()), 1)

        values = self.form_values(page)
        response = self.url_open(
            link, data=values, headers={"User-Agent": "Mozilla/5.0 (Phone)"}
        )
        self.assertEqual(
            self.outcome(response, "o_sms_optin_confirm_done"), "confirmed_now"
        )
        confirmed = self.events(event_type="confirmed")
        self.assertRecordValues(
            confirmed,
            [
                {
                    "source": "web_form",
                    "method": "link_click",
                    "wording": wording,
                    "wording_sha256": request_event.wording_sha256,
                    "wording_version": request_event.wording_version,
                    "ip": "127.0.0.1",
                    "user_agent": "Mozilla/5.0 (Phone)",
                    "partner_id": request_event.partner_id.id,
                    "proven": True,
                }
            ],
        )
        self.assertEqual(self.state(), "confirmed")
        sms = self.sms()
        self.assertEqual(len(sms), 2)
        self.assertIn("subscribed", sms[1].body)
        self.assertEqual(sms[1].state, "outgoing")

        # a second click changes nothing
        response = self.url_open(link, data=values)
        self.assertEqual(
            self.outcome(response, "o_sms_optin_confirm_done"), "confirmed"
        )
        self.assertEqual(len(self.events()), 2)
        self.assertEqual(len(self.sms()), 2)

    def test_existing_contact_is_reused(self):
        partner = self.env["res.partner"].create(
            {"name": "Known Contact", "phone": "+33 6 12 34 56 78"}
        )
        self.submit(name="Someone Else")
        self.assertEqual(self.events().partner_id, partner)
        self.assertEqual(partner.name, "Known Contact")
        self.assertFalse(
            self.env["res.partner"].search([("name", "=", "Someone Else")])
        )

    def test_invalid_submissions_record_nothing(self):
        partners = self.env["res.partner"].search_count([])
        web_events = self.Event.search_count([("source", "=", "web_form")])
        cases = [
            ({"consent": False}, "consent", "Tick the box"),
            ({"phone": "06 12"}, "phone", "not a valid phone number"),
            ({"phone": "  "}, "phone", "enter your mobile number"),
            ({"phone": "hello"}, "phone", "not a valid phone number"),
            ({"name": ""}, "name", "enter your name"),
        ]
        for values, field, message in cases:
            with self.subTest(field=field, values=values):
                consent = values.pop("consent", True)
                response = self.submit(consent=consent, **values)
                self.assertEqual(response.status_code, 200)
                self.assertIn(message, response.text)
                self.assertIn("Nothing was recorded", response.text)
                tree = html.fromstring(response.content)
                # the form comes back, box unticked, typed values kept
                self.assertTrue(tree.xpath("//input[@name='consent'][not(@checked)]"))
                self.assertTrue(tree.xpath(f"//input[@name='{field}']"))
        self.assertEqual(
            self.Event.search_count([("source", "=", "web_form")]), web_events
        )
        self.assertFalse(self.sms())
        self.assertEqual(self.env["res.partner"].search_count([]), partners)

    def test_changed_wording_must_be_agreed_again(self):
        values = self.form_values(self.url_open(self.form_url))
        self.company.sms_consent_wording = "A new text, 4 SMS per month."
        values.update(name="Camille Martin", phone="06 12 34 56 78", consent="1")
        response = self.url_open(self.form_url, data=values)
        self.assertIn("consent text has just been updated", response.text)
        self.assertIn("A new text, 4 SMS per month.", response.text)
        self.assertFalse(self.events())
        self.assertFalse(self.sms())

    def test_post_without_csrf_token_is_refused(self):
        with mute_logger("odoo.http"):
            response = self.url_open(
                self.form_url,
                data={
                    "name": "Camille Martin",
                    "phone": "06 12 34 56 78",
                    "consent": "1",
                    "company": str(self.company.id),
                },
            )
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self.events())
        self.assertFalse(self.sms())

    def test_unknown_company_is_not_found(self):
        for company in ("999999", "abc"):
            with self.subTest(company=company):
                response = self.url_open(f"/sms/optin?company={company}")
                self.assertEqual(response.status_code, 404)

    def test_rate_limit_per_ip(self):
        # requests older than the one-hour window do not count
        for index in range(5):
            self.Event._record(
                [
                    {
                        "event_type": "requested",
                        "number": f"+3361000000{index}",
                        "source": "web_form",
                        "ip": "127.0.0.1",
                        "wording": "old",
                        "event_date": fields.Datetime.now() - timedelta(minutes=61),
                    }
                ]
            )
        for index in range(5):
            response = self.submit(phone=f"06 11 11 11 1{index}")
            self.assertEqual(self.outcome(response, "o_sms_optin_done"), "requested")
        response = self.submit()
        self.assertEqual(response.status_code, 429)
        self.assertIn("Too many requests", response.text)
        self.assertEqual(response.headers.get("Retry-After"), "3600")
        self.assertFalse(self.events())
        self.assertFalse(self.sms())
        self.assertEqual(
            self.Event.search_count(
                [("ip", "=", "127.0.0.1"), ("event_type", "=", "requested")]
            ),
            10,
        )

    def test_blacklisted_and_suppressed_numbers_get_nothing(self):
        blacklisted, suppressed = "+33612345601", "+33612345602"
        self.env["phone.blacklist"].sudo()._add([blacklisted])
        self.env["sms.microfunnel.suppression"]._suppress([suppressed])
        for number, phone in (
            (blacklisted, "06 12 34 56 01"),
            (suppressed, "0612345602"),
        ):
            with self.subTest(number=number):
                response = self.submit(phone=phone)
                self.assertEqual(response.status_code, 200)
                self.assertTrue(
                    html.fromstring(response.content).xpath(
                        "//*[contains(@class, 'o_sms_optin_blocked')]"
                    )
                )
                self.assertIn("START", response.text)
                self.assertFalse(self.events(number))
                self.assertFalse(self.sms(number))
                self.assertEqual(self.state(number), "withdrawn")

    def test_one_request_per_pending_opt_in(self):
        self.submit()
        response = self.submit()
        self.assertEqual(self.outcome(response, "o_sms_optin_done"), "already_pending")
        self.assertEqual(len(self.events()), 1)
        self.assertEqual(len(self.sms()), 1)

    def test_already_confirmed_number_is_not_asked_again(self):
        self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": NUMBER,
                    "source": "manual",
                    "wording": "Agreed at the counter.",
                }
            ]
        )
        response = self.submit()
        self.assertEqual(
            self.outcome(response, "o_sms_optin_done"), "already_confirmed"
        )
        self.assertEqual(len(self.events()), 1)
        self.assertEqual(self.state(), "confirmed")
        self.assertFalse(self.sms())

    def test_form_in_the_visitor_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        self.company.with_context(
            lang="fr_FR"
        ).sms_consent_wording = (
            "J'accepte de recevoir les offres d'ACME par SMS. STOP pour arrêter."
        )
        version = self.company.sms_consent_wording_version
        url = f"/fr/sms/optin?company={self.company.id}"
        response = self.url_open(url)
        self.assertIn("J&#39;accepte de recevoir", response.text)
        self.assertIn('lang="fr-FR"', response.text)
        self.submit(url=url)
        self.assertRecordValues(
            self.events(),
            [
                {
                    "lang": "fr_FR",
                    "wording": "J'accepte de recevoir les offres d'ACME par SMS. "
                    "STOP pour arrêter.",
                    "wording_version": str(version),
                }
            ],
        )

    # -- the confirmation link ------------------------------------------------------

    def test_unknown_confirmation_token(self):
        self.submit()
        for token in ("unknown-token", "x" * 300):
            with self.subTest(token=token[:20]):
                link = f"/sms/optin/confirm/{token}"
                response = self.url_open(link)
                self.assertEqual(response.status_code, 404)
                self.assertEqual(
                    self.outcome(response, "o_sms_optin_confirm_done"), "unknown"
                )
        self.assertEqual(self.state(), "pending")
        self.assertEqual(len(self.events()), 1)

    def test_expired_confirmation_link_writes_nothing(self):
        event = self.Consent._request_doi(
            NUMBER,
            company=self.company,
            source="web_form",
            wording="I agree.",
            event_date=fields.Datetime.now() - timedelta(hours=49),
        )
        link = f"/sms/optin/confirm/{event.doi_token}"
        response = self.url_open(link)
        self.assertEqual(self.outcome(response, "o_sms_optin_confirm_done"), "expired")
        # nothing on the page confirms (the layout's own buttons, if any, are
        # not the page's)
        self.assertFalse(
            html.fromstring(response.content).xpath(
                "//form[contains(@class, 'o_sms_optin_confirm_form')]"
                " | //*[contains(@class, 'o_sms_consent_page')]//button"
            )
        )
        # the expiry job has not run yet: the request is still "pending"
        self.assertEqual(self.state(), "pending")
        self.assertEqual(len(self.events()), 1)
        self.assertEqual(len(self.sms()), 1)

    def test_confirmation_link_after_opt_out(self):
        self.submit()
        token = self.events().doi_token
        self.Event._record(
            [{"event_type": "opt_out", "number": NUMBER, "source": "keyword_sms"}]
        )
        response = self.url_open(f"/sms/optin/confirm/{token}")
        self.assertEqual(
            self.outcome(response, "o_sms_optin_confirm_done"), "withdrawn"
        )
        self.assertEqual(len(self.events()), 2)
        self.assertEqual(self.state(), "withdrawn")

    # -- the unsubscribe link ---------------------------------------------------------

    def test_unsubscribe_records_one_opt_out(self):
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
        url = self.Consent._unsubscribe_url(NUMBER, self.company)
        path = url[url.index("/sms/unsubscribe/") :]
        page = self.url_open(path)
        self.assertEqual(page.status_code, 200)
        self.assertIn("+33 ••••••• 78", page.text)
        self.assertNotIn(NUMBER, page.text)
        self.assertIn(self.company.name, page.text)
        self.assertTrue(
            html.fromstring(page.content).xpath(
                "//*[@id='sms_unsubscribe_preferences']"
            )
        )
        self.assertEqual(self.state(), "confirmed")

        values = self.form_values(page)
        response = self.url_open(path, data=values)
        self.assertEqual(response.status_code, 200)
        self.assertIn("You are unsubscribed", response.text)
        opt_out = self.events(event_type="opt_out")
        self.assertRecordValues(
            opt_out,
            [
                {
                    "source": "unsubscribe_link",
                    "method": "link_click",
                    "ip": "127.0.0.1",
                    "partner_id": partner.id,
                    "company_id": self.company.id,
                }
            ],
        )
        self.assertTrue(opt_out.user_agent)
        self.assertIn("/sms/unsubscribe/", opt_out.source_ref)
        self.assertTrue(
            self.env["phone.blacklist"].sudo().search([("number", "=", NUMBER)])
        )
        self.assertEqual(self.state(), "withdrawn")
        stop_sms = self.sms()
        self.assertEqual(len(stop_sms), 1)
        self.assertIn("unsubscribed", stop_sms.body)

        # posting again (double click, reload) records nothing more
        response = self.url_open(path, data=values)
        self.assertIn("You are unsubscribed", response.text)
        self.assertEqual(len(self.events(event_type="opt_out")), 1)
        self.assertEqual(len(self.sms()), 1)

    def test_forged_unsubscribe_tokens_are_not_found(self):
        token = self.Consent._unsubscribe_token(NUMBER, self.company)
        other = self.Consent._unsubscribe_token("+33612345600", self.company)
        payload, signature = token.split(".")
        forged = [
            "garbage",
            f"{payload}.{'0' * len(signature)}",
            f"{other.split('.')[0]}.{signature}",
            f"{payload}",
            "x" * 300,
        ]
        # a valid page, for a real CSRF token
        values = self.form_values(self.url_open(f"/sms/unsubscribe/{token}"))
        for bad in forged:
            with self.subTest(token=bad[:30]):
                self.assertEqual(
                    self.url_open(f"/sms/unsubscribe/{bad}").status_code, 404
                )
                self.assertEqual(
                    self.url_open(f"/sms/unsubscribe/{bad}", data=values).status_code,
                    404,
                )
        self.assertFalse(self.Event.search([("event_type", "=", "opt_out")]))
        self.assertFalse(
            self.env["phone.blacklist"]
            .sudo()
            .search([("number", "in", [NUMBER, "+33612345600"])])
        )

    # -- in a browser -----------------------------------------------------------------

    def test_consent_form_tour(self):
        self.start_tour("/sms/optin", "sms_microfunnel_consent_form_tour")
        event = self.events(TOUR_NUMBER)
        self.assertRecordValues(
            event,
            [
                {
                    "event_type": "requested",
                    "source": "web_form",
                    "method": "checkbox",
                    "company_id": self.company.id,
                    "wording": self.company.sms_consent_wording,
                }
            ],
        )
        self.assertEqual(event.partner_id.name, "Tour Visitor")
        self.assertIn("Chrome", event.user_agent)
        self.assertEqual(self.state(TOUR_NUMBER), "pending")
        self.assertEqual(len(self.sms(TOUR_NUMBER)), 1)
