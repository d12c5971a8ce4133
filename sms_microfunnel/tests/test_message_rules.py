# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Message rules: final text, encoding, segments, suggestions, cost, blocking."""

from psycopg2 import IntegrityError

from odoo.exceptions import ValidationError
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from odoo.addons.link_tracker.tests.common import MockLinkTracker
from odoo.addons.sms_microfunnel.tools import sms_encoding


@tagged("post_install", "-at_install")
class TestMessageRules(MockLinkTracker, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.rules = cls.env["sms.microfunnel.message.rules"]
        cls.fr = cls.env.ref("base.fr")
        cls.eur = cls.env.ref("base.EUR")
        cls.company = cls.env["res.company"].create(
            {
                "name": "ACME Rules",
                "country_id": cls.fr.id,
                "sms_funnel_sender_label": "ACME: ",
                "sms_funnel_optout_mention": "STOP au 36111",
                "sms_funnel_max_segments": 3,
            }
        )
        cls.partner = cls.env["res.partner"].create(
            {"name": "Elodie", "phone": "+33612345678", "country_id": cls.fr.id}
        )
        cls.number = "+33612345678"

    def compose(self, body, **kwargs):
        kwargs.setdefault("company", self.company)
        kwargs.setdefault("record", self.partner)
        kwargs.setdefault("number", self.number)
        return self.rules._compose(body, **kwargs)

    def assert_counted_like_the_sent_sms(self, result):
        """The estimate equals the analysis of the SMS as really sent (short
        links with their ``/s/<sms id>`` recipient suffix)."""
        mailing = self.env["mailing.mailing"].create(
            {
                "subject": "Estimate",
                "mailing_type": "sms",
                "body_plaintext": result["text"],
                "mailing_model_id": self.env["ir.model"]._get_id("res.partner"),
            }
        )
        sms = (
            self.env["sms.sms"]
            .sudo()
            .create(
                {
                    "number": self.number,
                    "body": result["text"],
                    "mailing_id": mailing.id,
                }
            )
        )
        # Odoo's SMS mailing rewriter: ``/s/<sms id>`` after each short link
        sms.body = sms._update_body_short_links()[sms.id]
        sent = sms_encoding.analyze(sms.body)
        self.assertEqual(
            (result["units"], result["segments"], result["encoding"]),
            (sent["units"], sent["segments"], sent["encoding"]),
        )
        return sms

    # -- placeholders, sender, opt-out ------------------------------------------

    def test_placeholders_rendered_with_fallbacks(self):
        result = self.compose("Bonjour {{ object.name or 'client' }}, -10 % ce soir.")
        self.assertEqual(
            result["text"], "ACME: Bonjour Elodie, -10 % ce soir.\nSTOP au 36111"
        )
        lead = self.env["crm.lead"].create({"name": "Website lead"})
        for body in (
            "Bonjour {{ object.contact_name or 'client' }}, -10 % ce soir.",
            "Bonjour {{ object.contact_name ||| client}}, -10 % ce soir.",
        ):
            result = self.compose(body, record=lead)
            self.assertEqual(
                result["text"], "ACME: Bonjour client, -10 % ce soir.\nSTOP au 36111"
            )
        # extra values of the triggering event are available as ``values``
        result = self.compose(
            "Votre panier de {{ values.get('amount') or '?' }} EUR vous attend.",
            values={"amount": 42},
        )
        self.assertIn("Votre panier de 42 EUR vous attend.", result["text"])

    def test_sender_prefix_and_optout_mention_added_once(self):
        result = self.compose("Soldes ce week-end.")
        self.assertEqual(result["text"], "ACME: Soldes ce week-end.\nSTOP au 36111")
        self.assertTrue(result["sender_added"])
        self.assertTrue(result["optout_added"])
        self.assertEqual(result["units"], len(result["text"]))
        self.assertEqual(result["encoding"], "GSM-7")
        self.assertFalse(result["blocked"])

        already = "Acme : soldes ce week-end. stop  AU 36111"
        result = self.compose(already)
        self.assertEqual(result["text"], already)
        self.assertFalse(result["sender_added"])
        self.assertFalse(result["optout_added"])

    def test_sender_label_without_colon(self):
        self.company.sms_funnel_sender_label = "ACME"
        result = self.compose("Soldes.")
        self.assertEqual(result["text"], "ACME: Soldes.\nSTOP au 36111")
        self.company.sms_funnel_sender_label = "YourCompany : "
        result = self.compose("Soldes.")
        self.assertEqual(result["text"], "YourCompany : Soldes.\nSTOP au 36111")

    def test_transactional_messages_get_no_optout_footer(self):
        result = self.compose(
            "Votre rendez-vous est confirmé demain à 9h.",
            message_class="transactional",
        )
        self.assertEqual(
            result["text"], "ACME: Votre rendez-vous est confirmé demain à 9h."
        )
        self.assertEqual(result["optout_mode"], "none")
        self.assertFalse(result["optout_added"])
        self.assertFalse(result["blocked"])
        # even when the company has no opt-out mention at all
        self.company.sms_funnel_optout_mention = False
        result = self.compose("Votre code : 1234", message_class="transactional")
        self.assertFalse(result["blocked"])

    def test_unsubscribe_link_mode_counts_the_real_short_url(self):
        self.company.sms_funnel_optout_mention = "STOP SMS : {link}"
        result = self.compose("Soldes ce week-end.")
        self.assertEqual(result["optout_mode"], "link")
        url = self.env["sms.microfunnel.consent"]._unsubscribe_url(
            self.number, self.company
        )
        tracker = self.env["link.tracker"].search([("url", "=", url)])
        self.assertEqual(len(tracker), 1, "the unsubscribe link is tracked")
        self.assertEqual(result["link_tracker_ids"], tracker.ids)
        self.assertEqual(
            result["text"],
            f"ACME: Soldes ce week-end.\nSTOP SMS : {tracker.short_url}",
        )
        self.assertNotIn("/sms/unsubscribe/", result["text"])
        self.assertGreater(result["units"], len(result["text"]))
        sms = self.assert_counted_like_the_sent_sms(result)
        self.assertIn(f"{tracker.short_url}/s/{sms.id}", sms.body)
        # the same recipient keeps the same short link
        again = self.compose("Autre offre.")
        self.assertEqual(again["link_tracker_ids"], tracker.ids)

    def test_stop_mention_versus_unsubscribe_link_mode(self):
        mention = self.compose("Soldes.")
        self.assertEqual(mention["optout_mode"], "mention")
        self.assertFalse(mention["link_tracker_ids"])
        self.assertTrue(mention["text"].endswith("\nSTOP au 36111"))

        link = self.compose("Soldes.", optout_mode="link")
        self.assertEqual(link["optout_mode"], "link")
        tracker = self.env["link.tracker"].browse(link["link_tracker_ids"])
        self.assertTrue(link["text"].endswith(f"\nSTOP SMS: {tracker.short_url}"))
        self.assertGreater(link["units"], mention["units"])
        self.assert_counted_like_the_sent_sms(link)

        # without a number the link is estimated, nothing is created
        count = self.env["link.tracker"].search_count([])
        estimate = self.compose("Soldes.", optout_mode="link", number=None)
        self.assertTrue(estimate["estimated"])
        self.assertEqual(self.env["link.tracker"].search_count([]), count)
        self.assertIn("STOP SMS: http", estimate["text"])

    def test_tracked_link_is_shortened(self):
        campaign = self.env["utm.campaign"].create({"name": "Spring sale"})
        result = self.compose(
            "Profitez-en : https://shop.example.com/spring?ref=sms",
            link_tracker_vals={"campaign_id": campaign.id},
        )
        tracker = self.env["link.tracker"].search(
            [("url", "=", "https://shop.example.com/spring?ref=sms")]
        )
        self.assertEqual(len(tracker), 1)
        self.assertEqual(tracker.campaign_id, campaign)
        self.assertEqual(
            tracker.medium_id, self.env.ref("mass_mailing_sms.utm_medium_sms")
        )
        self.assertIn(tracker.short_url, result["text"])
        self.assertNotIn("shop.example.com", result["text"])
        self.assertEqual(result["link_tracker_ids"], tracker.ids)
        self.assert_counted_like_the_sent_sms(result)
        plain = self.compose(
            "Profitez-en : https://shop.example.com/spring?ref=sms",
            shorten_links=False,
        )
        self.assertIn("https://shop.example.com/spring?ref=sms", plain["text"])

    # -- encoding and suggestions -----------------------------------------------------

    def test_footer_or_placeholder_value_switches_the_encoding(self):
        body = "Soldes ce week-end."
        self.assertEqual(self.compose(body)["encoding"], "GSM-7")

        self.company.sms_funnel_optout_mention = "STOP au 36111 – gratuit"
        result = self.compose(body)
        self.assertEqual(result["encoding"], "UCS-2")
        self.assertEqual(result["ucs2_chars"], ["–"])
        self.assertEqual(result["suggestions"], {"–": "-"})

        self.company.sms_funnel_optout_mention = "STOP au 36111"
        self.partner.name = "L’Atelier"
        result = self.compose("Bonjour {{ object.name }} !")
        self.assertEqual(result["encoding"], "UCS-2")
        self.assertEqual(result["ucs2_chars"], ["’"])
        self.assertEqual(result["units"], len(result["text"]))

    def test_suggestions_for_french_typography(self):
        result = self.compose("« C’est prêt\u00a0! » Passez vite.")
        self.assertEqual(result["encoding"], "UCS-2")
        self.assertEqual(
            result["suggestions"],
            {"«": '"', "’": "'", "ê": "e", "\u00a0": " ", "»": '"'},
        )
        fixed = self.compose("« C’est prêt\u00a0! » Passez vite.", transliterate=True)
        self.assertEqual(fixed["encoding"], "GSM-7")
        self.assertIn('" C\'est pret ! " Passez vite.', fixed["text"])
        self.assertFalse(fixed["suggestions"])

    def test_units_left_in_the_last_segment(self):
        result = self.compose("Soldes ce week-end.")
        self.assertEqual(result["units_left"], 160 - result["units"])
        result = self.compose("x" * 150)
        self.assertEqual(result["segments"], 2)
        self.assertEqual(result["units_left"], 153 * 2 - result["units"])

    # -- cost ----------------------------------------------------------------

    def test_cost_is_segments_times_the_country_price(self):
        Price = self.env["sms.microfunnel.price"]
        fr_price = self.env.ref("sms_microfunnel.sms_price_fr")
        result = self.compose("x" * 200)
        self.assertEqual(result["segments"], 2)
        self.assertEqual(result["country_code"], "FR")
        self.assertEqual(result["price_id"], fr_price.id)
        self.assertAlmostEqual(result["cost"], 2 * fr_price.price)
        self.assertEqual(result["currency_id"], fr_price.currency_id.id)

        # a company price wins over the shared one
        own = Price.create(
            {
                "country_id": self.fr.id,
                "price": 0.05,
                "currency_id": self.eur.id,
                "company_id": self.company.id,
            }
        )
        result = self.compose("x" * 200)
        self.assertEqual(result["price_id"], own.id)
        self.assertAlmostEqual(result["cost"], 0.1)

        # a country without a price uses the fallback line
        fallback = self.env.ref("sms_microfunnel.sms_price_other")
        result = self.compose("Hello", number="+81312345678")
        self.assertEqual(result["country_code"], "JP")
        self.assertEqual(result["price_id"], fallback.id)
        self.assertAlmostEqual(result["cost"], result["segments"] * fallback.price)

        # no price at all: no cost, said so
        Price.search([("country_id", "=", False)]).action_archive()
        result = self.compose("Hello", number="+81312345678")
        self.assertFalse(result["price_id"])
        self.assertEqual(result["cost"], 0.0)
        self.assertFalse(result["currency_id"])

    def test_one_active_price_per_country_and_company(self):
        Price = self.env["sms.microfunnel.price"]
        vals = {"country_id": self.fr.id, "price": 0.2, "currency_id": self.eur.id}
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            Price.create(vals)
        # another company may have its own, an archived line does not count
        Price.create(dict(vals, company_id=self.company.id))
        self.env.ref("sms_microfunnel.sms_price_fr").action_archive()
        self.env.flush_all()
        Price.create(vals)
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            Price.create(dict(vals, country_id=False))

    def test_shipped_prices(self):
        for code in ("fr", "be", "de", "es", "it", "gb", "us", "ca"):
            price = self.env.ref(f"sms_microfunnel.sms_price_{code}")
            self.assertEqual(price.country_id.code, code.upper())
            self.assertGreater(price.price, 0)
            self.assertFalse(price.company_id)

    # -- blocking ----------------------------------------------------------------

    def test_max_segments_blocks_with_a_clear_reason(self):
        self.company.sms_funnel_max_segments = 1
        result = self.compose("C’est " + "x" * 80)
        self.assertEqual(result["segments"], 2)
        self.assertTrue(result["blocked"])
        self.assertEqual(result["blocked_reason"], "too_long")
        self.assertIn("2 SMS segments", result["blocked_message"])
        self.assertIn("at most 1", result["blocked_message"])
        self.assertIn("’", result["blocked_message"])
        self.assertFalse(self.compose("x" * 80)["blocked"])
        # a caller may pass its own (stricter or looser) maximum
        self.assertFalse(self.compose("C’est " + "x" * 80, max_segments=2)["blocked"])

    def test_marketing_without_optout_or_sender_is_blocked(self):
        self.company.sms_funnel_optout_mention = False
        result = self.compose("Soldes ce week-end.")
        self.assertTrue(result["blocked"])
        self.assertEqual(result["blocked_reason"], "no_optout")
        self.assertIn("opt out", result["blocked_message"])
        # an opt-out instruction written in the body is enough
        result = self.compose("Soldes ce week-end. Reply STOP to opt out")
        self.assertFalse(result["blocked"])

        self.company.write(
            {"sms_funnel_sender_label": False, "sms_funnel_optout_mention": "STOP"}
        )
        result = self.compose("Soldes ce week-end.")
        self.assertEqual(result["blocked_reason"], "no_sender")
        # naming the company in the text identifies the sender
        self.assertFalse(self.compose("ACME Rules : soldes ce week-end.")["blocked"])

    def test_empty_body_is_blocked(self):
        result = self.compose("   ")
        self.assertEqual(result["text"], "")
        self.assertEqual(result["blocked_reason"], "empty")

    # -- activation checks ---------------------------------------------------------

    def test_check_marketing_content(self):
        self.assertTrue(
            self.rules._check_marketing_content("Soldes.", company=self.company)
        )
        self.company.sms_funnel_optout_mention = False
        with self.assertRaisesRegex(ValidationError, "opt out"):
            self.rules._check_marketing_content("Soldes.", company=self.company)
        self.assertTrue(
            self.rules._check_marketing_content("Soldes. STOP au 36111", self.company)
        )
        self.company.sms_funnel_sender_label = False
        with self.assertRaisesRegex(ValidationError, "identify its sender"):
            self.rules._check_marketing_content(
                "Soldes. STOP au 36111", company=self.company
            )
        # lower-case "stop" in copy is not an opt-out instruction
        with self.assertRaisesRegex(ValidationError, "opt out"):
            self.rules._check_marketing_content(
                "ACME Rules: don't stop shopping!", company=self.company
            )

    def test_marketing_template_constraint(self):
        Template = self.env["sms.template"].with_company(self.company)
        model_id = self.env["ir.model"]._get_id("res.partner")
        template = Template.create(
            {
                "name": "Spring sale",
                "model_id": model_id,
                "body": "Soldes ce week-end !",
                "sms_funnel_message_class": "marketing",
            }
        )
        self.company.sms_funnel_optout_mention = False
        with self.assertRaisesRegex(ValidationError, "opt out"):
            template.body = "Nouvelles soldes !"
        template.body = "Nouvelles soldes ! STOP au 36111"

        self.company.sms_funnel_sender_label = False
        with self.assertRaisesRegex(ValidationError, "identify its sender"):
            Template.create(
                {
                    "name": "No sender",
                    "model_id": model_id,
                    "body": "Soldes ! STOP au 36111",
                    "sms_funnel_message_class": "marketing",
                }
            )
        transactional = Template.create(
            {
                "name": "Reminder",
                "model_id": model_id,
                "body": "Rendez-vous demain à 9h.",
            }
        )
        self.assertEqual(transactional.sms_funnel_message_class, "transactional")
        with self.assertRaisesRegex(ValidationError, "identify its sender"):
            transactional.sms_funnel_message_class = "marketing"

    def test_template_compose(self):
        template = (
            self.env["sms.template"]
            .with_company(self.company)
            .create(
                {
                    "name": "Offer",
                    "model_id": self.env["ir.model"]._get_id("res.partner"),
                    "body": "Bonjour {{ object.name }}, -20 % ce soir.",
                    "sms_funnel_message_class": "marketing",
                }
            )
        )
        result = template._sms_funnel_compose(
            self.partner, company=self.company, number=self.number
        )
        self.assertEqual(
            result["text"], "ACME: Bonjour Elodie, -20 % ce soir.\nSTOP au 36111"
        )
        template.sms_funnel_message_class = "transactional"
        result = template._sms_funnel_compose(self.partner, company=self.company)
        self.assertEqual(result["text"], "ACME: Bonjour Elodie, -20 % ce soir.")

    def test_counter_context_for_the_browser(self):
        context = self.rules.with_company(self.company).get_counter_context()
        marketing = context["classes"]["marketing"]
        self.assertEqual(marketing["prefix"], "ACME: ")
        self.assertEqual(marketing["sender_name"], "ACME")
        self.assertEqual(marketing["footer"], "STOP au 36111")
        self.assertEqual(context["classes"]["transactional"]["footer"], "")
        self.assertEqual(context["max_segments"], 3)
        self.assertTrue(context["recipient_suffix"].startswith("/s/"))
        self.assertTrue(
            context["link_placeholder"].startswith(context["short_url_host"])
        )
