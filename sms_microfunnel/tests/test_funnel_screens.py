# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What the marketer reads on the screens around the funnels: labels, units,
currency, ratios without a denominator, languages, spellings."""

from freezegun import freeze_time
from lxml import etree, html

from odoo.tests import HttpCase, TransactionCase, tagged

from odoo.addons.sms_microfunnel.tests.common import (
    TUESDAY_10H_PARIS,
    FunnelCase,
    load_french,
)

SCREEN_MODELS = (
    "sms.microfunnel.campaign",
    "sms.microfunnel.step",
    "sms.microfunnel.enrollment",
    "sms.microfunnel.trace",
    "sms.microfunnel.inbound",
    "sms.microfunnel.consent.event",
    "sms.microfunnel.simulate",
    "sms.microfunnel.simulate.line",
    "sms.microfunnel.preflight",
    "sms.microfunnel.launch",
    "sms.microfunnel.report",
)


@tagged("post_install", "-at_install")
class TestScreenLabels(TransactionCase):
    def test_datetimes_are_not_labelled_utc(self):
        """The web client shows datetimes in the user's zone: a label saying
        UTC would be wrong."""
        for model in SCREEN_MODELS:
            for name, field in self.env[model].fields_get().items():
                if field["type"] == "datetime":
                    with self.subTest(model=model, field=name):
                        self.assertNotIn("UTC", field["string"])

    def test_one_spelling_enroll_and_funnel(self):
        for model in SCREEN_MODELS:
            for name, field in self.env[model].fields_get().items():
                texts = [field["string"], field.get("help") or ""]
                texts += [label for _key, label in field.get("selection") or []]
                for text in texts:
                    with self.subTest(model=model, field=name, text=text):
                        self.assertNotRegex(text, r"(?i)\benrol(ment|ments|s)?\b")
                        if field.get("relation") == "sms.microfunnel.campaign":
                            self.assertNotIn("Campaign", text)
        menus = self.env["ir.ui.menu"].search(
            [
                (
                    "id",
                    "child_of",
                    self.env.ref("sms_microfunnel.menu_sms_funnel_root").id,
                )
            ]
        )
        self.assertIn("Enrollments", menus.mapped("name"))

    def test_graph_opens_on_the_pivot_figures(self):
        Report = self.env["sms.microfunnel.report"]
        views = Report.get_views([(False, "pivot"), (False, "graph")])["views"]
        pivot = etree.fromstring(views["pivot"]["arch"])
        graph = etree.fromstring(views["graph"]["arch"])
        rows = [f.get("name") for f in pivot.iter("field") if f.get("type") == "row"]
        measure = next(
            f.get("name") for f in pivot.iter("field") if f.get("type") == "measure"
        )
        self.assertEqual(
            [f.get("name") for f in graph.iter("field") if not f.get("type")], rows
        )
        self.assertEqual(
            [f.get("name") for f in graph.iter("field") if f.get("type") == "measure"],
            [measure],
        )

    def test_consent_event_language_is_named(self):
        load_french(self.env)
        event = self.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": "+33612349876",
                    "source": "web_form",
                    "wording": "J'accepte.",
                    "lang": "fr_FR",
                }
            ]
        )
        self.assertIn("Fran", event.lang_name)
        self.assertNotIn("fr_FR", event.lang_name)


@tagged("post_install", "-at_install")
class TestFunnelFigures(FunnelCase):
    def test_preflight_names_the_funnel_scope(self):
        action = self.funnel.action_preflight()
        wizard = (
            self.env["sms.microfunnel.preflight"]
            .with_context(**action["context"])
            .create({})
        )
        self.assertEqual(wizard.scope_display, "SMS Funnel: Diagnostic offer")

    def test_performance_in_company_currency_and_no_ratio_without_denominator(self):
        company = self.funnel.company_id
        eur = self.env.ref("base.EUR")
        usd = self.env.ref("base.USD")
        if company.currency_id == eur:
            company.currency_id = usd  # the prices below are in euros
        eur.active = usd.active = True
        self.env["res.currency.rate"].search(
            [("currency_id", "in", (eur | usd).ids)]
        ).unlink()
        self.env["res.currency.rate"].create(
            {"currency_id": eur.id, "rate": 0.5, "name": "2026-01-01"}
        )
        self.env["sms.microfunnel.price"].search(
            [("country_id", "=", self.env.ref("base.fr").id)]
        ).write({"currency_id": eur.id, "price": 0.1})
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        self.env.flush_all()
        trace = self.trace(self.anna, self.offer)
        self.assertAlmostEqual(trace.cost, 0.1 * trace.segments)
        self.funnel.invalidate_recordset()
        # 1 EUR = 2 USD (EUR rate 0.5 against the company currency)
        self.assertAlmostEqual(self.funnel.report_cost, 2 * trace.cost, places=4)
        self.assertEqual(self.funnel.report_conversion_count, 0)
        # the form shows "—" for the cost per acquisition while nobody converted
        arch = self.env["sms.microfunnel.campaign"].get_views([(False, "form")])[
            "views"
        ]["form"]["arch"]
        tree = etree.fromstring(arch)
        cpa = tree.xpath("//div[hasclass('o_sms_funnel_cpa')]")[0]
        self.assertEqual(
            cpa.xpath(".//span[hasclass('o_sms_funnel_no_ratio')]")[0].get("invisible"),
            "report_conversion_count",
        )
        self.assertEqual(
            cpa.xpath(".//field[@name='report_cost_per_acquisition']")[0].get(
                "invisible"
            ),
            "not report_conversion_count",
        )


@tagged("post_install", "-at_install")
class TestFrenchScreens(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        load_french(cls.env)

    def test_inbound_notes_in_the_team_language(self):
        company = self.env.company
        company.partner_id.lang = "fr_FR"
        company.country_id = self.env.ref("base.fr")
        partner = self.env["res.partner"].create(
            {"name": "Léa", "phone": "+33612340077", "lang": "en_US"}
        )
        inbound = self.env["sms.microfunnel.inbound"]._process_inbound(
            "+33612340077", "+33757000000", "STOP", "SM" + "7" * 32
        )
        self.assertEqual(inbound.classification, "opt_out")
        self.assertNotIn("opted out", inbound.action_taken.lower())
        note = partner.message_ids[:1].body
        self.assertIn("SMS reçu de", note)

    def test_policy_names_and_price_notes_in_french(self):
        french = self.env(context={"lang": "fr_FR"})
        policy = french.ref("sms_microfunnel.sms_policy_be")
        english = policy.with_context(lang="en_US").name
        self.assertNotEqual(policy.name, english, "policy names are translated")
        price = french["sms.microfunnel.price"].search([("note", "!=", False)], limit=1)
        self.assertTrue(price.note.startswith("Estimation"), price.note)

    def test_dry_run_outcomes_in_french(self):
        line = (
            self.env["sms.microfunnel.simulate.line"]
            .with_context(lang="fr_FR")
            .create({"step_name": "Offre", "outcome": "block", "reason": "no_consent"})
        )
        self.assertEqual(line.outcome_code, "block")
        self.assertNotEqual(line.outcome, "Blocked")
        self.assertNotEqual(line.reason, "No consent")


@tagged("post_install", "-at_install")
class TestUnsubscribePage(HttpCase):
    def test_no_interest_invitation_without_interests(self):
        company = self.env.ref("base.main_company")
        company.country_id = self.env.ref("base.fr")
        self.env["sms.microfunnel.interest"].search([]).active = False
        self.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": "+33612340088",
                    "source": "web_form",
                    "wording": "J'accepte.",
                }
            ]
        )
        url = self.env["sms.microfunnel.consent"]._unsubscribe_url(
            "+33612340088", company
        )
        page = self.url_open(url[url.index("/sms/unsubscribe/") :])
        self.assertEqual(page.status_code, 200)
        tree = html.fromstring(page.content)
        self.assertNotIn("pick your interests", page.text)
        self.assertFalse(tree.xpath("//input[@name='interest_ids']"))
        self.assertTrue(tree.xpath("//*[hasclass('o_sms_preferences_fewer')]"))


@tagged("post_install", "-at_install")
class TestDemoData(TransactionCase):
    def test_demo_under_the_demo_company_and_marketable(self):
        """The demo funnels belong to the demo company (renamed “Horizon
        Formation” by setup/run) and reach its consenting contacts only, not
        the company's own partner, other companies or users."""
        funnel = self.env.ref("sms_microfunnel.demo_funnel_cart", False)
        if not funnel:
            self.skipTest("installed without demo data")
        company = self.env.ref("base.main_company")
        self.assertEqual(funnel.company_id, company)
        camille = self.env.ref("sms_microfunnel.demo_partner_camille")
        audience = funnel._audience()
        self.assertIn(camille, audience)
        self.assertNotIn(company.partner_id, audience)
        self.assertFalse(audience.filtered("is_company"), "no company")
        self.assertFalse(audience.user_ids, "no user of the database")
        # a funnel created the way setup/run creates its welcome funnel
        welcome = self.env["sms.microfunnel.campaign"].create(
            {"name": "Bienvenue", "model_name": "res.partner"}
        )
        self.assertEqual(welcome._audience(), audience)
