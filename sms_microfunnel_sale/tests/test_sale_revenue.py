# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import date, datetime, timedelta

from freezegun import freeze_time

from odoo import Command
from odoo.tests import new_test_user, tagged

from odoo.addons.sms_microfunnel.tests.common import FunnelCase

T0 = datetime(2026, 3, 10, 9, 0)  # Tuesday 10:00 in Paris: first send


@tagged("post_install", "-at_install")
class TestSaleRevenue(FunnelCase):
    """Two funnels, with the orders below (amounts untaxed, company currency
    unless said otherwise).

    Contact funnel "Click offer" (goal: link clicked, 48 h window), sent at T0:

    - Anna clicks (converted). Orders: 100 confirmed at T0+2h (counts); 50
      confirmed at T0+72h (after the window); a 30 quotation (not
      confirmed); a 40 order confirmed then cancelled.
    - Bruno clicks (converted). Orders: 100 in the other currency at a rate of
      0.5 per company unit, confirmed at T0+5h (counts as 200); 70 confirmed
      the day before the first send.
    - Cleo does not click: her 500 order (T0+3h) is no conversion's revenue.

    Revenue 100 + 200 = 300 for 2 conversions out of 3.

    Lead funnel "Lead follow-up" (goal: lead won, 168 h window), sent at T0:

    - Dan's lead (expected 1,000) has an 800 order of its opportunity
      confirmed at T0+4h, and is won at T0+5h: 800 (the order, not the
      estimate).
    - Eve's lead (expected 700) is won at T0+6h without an order: 700.
    - Fay's lead has a 900 order of its opportunity but is not won: nothing.
    - An order of Dan as a customer, not linked to his lead: nothing.

    Revenue 800 + 700 = 1,500 for 2 conversions out of 3.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        fr = cls.env.ref("base.fr").id
        Partner = cls.env["res.partner"]
        cls.cleo, cls.dan, cls.eve, cls.fay = (
            Partner.create({"name": name, "phone": phone, "country_id": fr})
            for name, phone in (
                ("Cleo", "+33655555555"),
                ("Dan", "+33666666666"),
                ("Eve", "+33677777777"),
                ("Fay", "+33688888888"),
            )
        )
        cls.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": p.phone,
                    "partner_id": p.id,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "event_date": datetime(2026, 2, 10, 9, 0),
                }
                for p in (cls.cleo, cls.dan, cls.eve, cls.fay)
            ]
        )
        cls.product = cls.env["product.product"].create(
            {"name": "Diagnostic", "type": "service", "list_price": 1.0}
        )
        company_currency = cls.company.currency_id
        cls.other_currency = cls.env["res.currency"].search(
            [
                ("name", "in", ("EUR", "USD")),
                ("id", "!=", company_currency.id),
                ("active", "in", (True, False)),
            ],
            limit=1,
        )
        cls.other_currency.active = True
        Rate = cls.env["res.currency.rate"]
        for currency, rate in ((company_currency, 1.0), (cls.other_currency, 0.5)):
            Rate.create(
                {
                    "name": date(2026, 1, 1),
                    "rate": rate,
                    "currency_id": currency.id,
                    "company_id": cls.company.id,
                }
            )
        cls.other_pricelist = cls.env["product.pricelist"].create(
            {"name": "Other currency", "currency_id": cls.other_currency.id}
        )
        cls.click_funnel = cls.env["sms.microfunnel.campaign"].create(
            {
                "name": "Click offer",
                "model_name": "res.partner",
                "goal": "link_clicked",
                "attribution_hours": 48,
            }
        )
        cls.click_step = cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.click_funnel.id,
                "name": "Offer",
                "body": "Bonjour, offre de printemps.",
            }
        )
        cls.lead_funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Lead follow-up", "model_name": "crm.lead", "goal": "lead_won"}
        )
        cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.lead_funnel.id,
                "name": "Call",
                "body": "Bonjour, un conseiller vous rappelle.",
            }
        )
        Lead = cls.env["crm.lead"]
        cls.dan_lead, cls.eve_lead, cls.fay_lead = (
            Lead.create(
                {
                    "name": f"{partner.name}'s project",
                    "type": "opportunity",
                    "partner_id": partner.id,
                    "phone": partner.phone,
                    "expected_revenue": expected,
                }
            )
            for partner, expected in (
                (cls.dan, 1000.0),
                (cls.eve, 700.0),
                (cls.fay, 0.0),
            )
        )

    def _order(self, partner, amount, at, lead=None, pricelist=None, confirm=True):
        with freeze_time(at):
            order = self.env["sale.order"].create(
                {
                    "partner_id": partner.id,
                    "opportunity_id": lead.id if lead else False,
                    "pricelist_id": pricelist.id if pricelist else False,
                    "order_line": [
                        Command.create(
                            {
                                "product_id": self.product.id,
                                "product_uom_qty": 1,
                                "price_unit": amount,
                                "tax_ids": [Command.clear()],
                            }
                        )
                    ],
                }
            )
            if confirm:
                order.action_confirm()
        return order

    def _build_dataset(self):
        contacts = self.anna | self.bruno | self.cleo
        leads = self.dan_lead | self.eve_lead | self.fay_lead
        self._order(self.bruno, 70.0, T0 - timedelta(days=1))
        with freeze_time(T0):
            self.click_funnel.action_start()
            self.lead_funnel.action_start()
            self.click_funnel._enroll(contacts)
            self.lead_funnel._enroll(leads)
            self.dispatch()
        with freeze_time(T0 + timedelta(hours=1)):
            for partner in (self.anna, self.bruno):
                self.trace(partner, self.click_step).mailing_trace_id.set_clicked()
        self._order(self.anna, 100.0, T0 + timedelta(hours=2))
        self._order(self.anna, 50.0, T0 + timedelta(hours=72))
        self._order(self.anna, 30.0, T0 + timedelta(hours=2), confirm=False)
        self._order(self.anna, 40.0, T0 + timedelta(hours=2))._action_cancel()
        self._order(
            self.bruno,
            100.0,
            T0 + timedelta(hours=5),
            pricelist=self.other_pricelist,
        )
        self._order(self.cleo, 500.0, T0 + timedelta(hours=3))
        self._order(self.dan, 800.0, T0 + timedelta(hours=4), lead=self.dan_lead)
        self._order(self.dan, 60.0, T0 + timedelta(hours=4))
        self._order(self.fay, 900.0, T0 + timedelta(hours=4), lead=self.fay_lead)
        with freeze_time(T0 + timedelta(hours=5)):
            self.dan_lead.action_set_won()
        with freeze_time(T0 + timedelta(hours=6)):
            self.eve_lead.action_set_won()
        self.env.invalidate_all()

    def _revenue_by_enrolment(self, funnel):
        groups = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "=", funnel.id)],
            ["enrollment_id"],
            ["revenue:sum", "conversion_count:sum"],
        )
        return {
            enrollment.display_target: (revenue, converted)
            for enrollment, revenue, converted in groups
        }

    def test_dataset(self):
        self._build_dataset()
        for funnel in (self.click_funnel, self.lead_funnel):
            traces = funnel.enrollment_ids.trace_ids
            self.assertEqual(len(traces), 3)
            self.assertTrue(all(traces.mapped("queued_at")))
            self.assertEqual(set(traces.mapped("queued_at")), {T0})
        bruno_order = self.env["sale.order"].search(
            [("partner_id", "=", self.bruno.id), ("state", "=", "sale")],
            order="date_order desc",
            limit=1,
        )
        self.assertEqual(bruno_order.currency_id, self.other_currency)
        self.assertEqual(bruno_order.currency_rate, 0.5)
        self.assertEqual(self.dan_lead.expected_revenue, 1000.0)

    def test_contact_funnel_revenue(self):
        self._build_dataset()
        self.assertEqual(
            self._revenue_by_enrolment(self.click_funnel),
            {"Anna": (100.0, 1), "Bruno": (200.0, 1), "Cleo": (0.0, 0)},
        )
        funnel = self.click_funnel
        self.assertAlmostEqual(funnel.report_revenue, 300.0)
        self.assertEqual(funnel.report_conversion_rate, round(200 / 3, 1))

    def test_lead_funnel_revenue(self):
        self._build_dataset()
        self.assertEqual(
            self._revenue_by_enrolment(self.lead_funnel),
            {
                "Dan's project": (800.0, 1),
                "Eve's project": (700.0, 1),
                "Fay's project": (0.0, 0),
            },
        )
        self.assertAlmostEqual(self.lead_funnel.report_revenue, 1500.0)

    def test_window_follows_the_funnel(self):
        self._build_dataset()
        # no limit: Anna's order at T0+72h counts too
        self.click_funnel.attribution_hours = 0
        self.env.invalidate_all()
        self.assertAlmostEqual(self.click_funnel.report_revenue, 350.0)
        # 1 h: the conversions (clicks at T0+1h) stay, the orders do not
        self.click_funnel.attribution_hours = 1
        self.env.invalidate_all()
        self.assertEqual(self.click_funnel.report_conversion_rate, round(200 / 3, 1))
        self.assertAlmostEqual(self.click_funnel.report_revenue, 0.0)

    def test_cost_per_acquisition_and_roi(self):
        self._build_dataset()
        manager = new_test_user(
            self.env,
            login="sale_revenue_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )
        funnel = self.click_funnel.with_user(manager)
        cost = funnel.report_cost
        self.assertGreater(cost, 0, "the French price list prices the SMS")
        self.assertAlmostEqual(funnel.report_cost_per_acquisition, cost / 2)
        self.assertEqual(funnel.report_roi, round((300.0 - cost) / cost * 100, 1))
        lead_funnel = self.lead_funnel.with_user(manager)
        lead_cost = lead_funnel.report_cost
        self.assertEqual(
            lead_funnel.report_roi, round((1500.0 - lead_cost) / lead_cost * 100, 1)
        )
