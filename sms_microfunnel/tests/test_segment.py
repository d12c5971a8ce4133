# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime

from freezegun import freeze_time

from odoo.exceptions import ValidationError
from odoo.tests import HttpCase, TransactionCase, tagged

from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

WORDING = "J'accepte de recevoir des SMS."


def record_events(env, vals_list):
    return env["sms.microfunnel.consent.event"]._record(
        [{"source": "web_form", "wording": WORDING, **vals} for vals in vals_list]
    )


@tagged("post_install", "-at_install")
class TestSegmentCounts(TransactionCase):
    """A fixture with every consent state, and the segment counts over it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.fr")
        cls.other_company = cls.env["res.company"].create(
            {"name": "Other Co", "country_id": cls.env.ref("base.fr").id}
        )
        cls.tag = cls.env["res.partner.category"].create({"name": "Segment fixture"})
        cls.leadership, cls.cpf = cls.env["sms.microfunnel.interest"].create(
            [{"name": "Leadership"}, {"name": "CPF"}]
        )
        cls.partners = {}
        numbers = {
            "confirmed": "+33612340001",
            "unproven": "+33612340002",
            "pending": "+33612340003",
            "withdrawn": "+33612340004",
            "expired": "+33612340005",
            "none": "+33612340006",
            "blacklisted": "+33612340007",
            "other_company": "+33612340008",
            "no_phone": False,
            "invalid": "12",
        }
        for key, number in numbers.items():
            cls.partners[key] = cls.env["res.partner"].create(
                {
                    "name": f"Fixture {key}",
                    "phone": number,
                    "country_id": cls.env.ref("base.fr").id,
                    "category_id": [(6, 0, cls.tag.ids)],
                }
            )
        p = cls.partners
        record_events(
            cls.env,
            [
                {"event_type": "confirmed", "number": p["confirmed"].phone},
                {"event_type": "requested", "number": p["pending"].phone},
                {"event_type": "confirmed", "number": p["withdrawn"].phone},
                {"event_type": "requested", "number": p["expired"].phone},
                {"event_type": "confirmed", "number": p["blacklisted"].phone},
                {
                    "event_type": "confirmed",
                    "number": p["other_company"].phone,
                    "company_id": cls.other_company.id,
                },
            ],
        )
        # an import without wording: kept, but unproven
        cls.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": p["unproven"].phone,
                    "source": "import",
                }
            ]
        )
        record_events(
            cls.env,
            [
                {"event_type": "opt_out", "number": p["withdrawn"].phone},
                {
                    "event_type": "expired",
                    "number": p["expired"].phone,
                    "source": "system",
                },
            ],
        )
        cls.env["phone.blacklist"].sudo()._add([p["blacklisted"].phone])
        p["confirmed"].sms_microfunnel_interest_ids = cls.leadership
        p["pending"].sms_microfunnel_interest_ids = cls.leadership | cls.cpf
        p["none"].sms_microfunnel_interest_ids = cls.cpf
        cls.Segment = cls.env["sms.microfunnel.segment"]

    def segment(self, **vals):
        return self.Segment.create(
            {
                "name": "Fixture",
                "domain": repr([("category_id", "in", self.tag.ids)]),
                **vals,
            }
        )

    def counts(self, segment):
        segment.invalidate_recordset()
        return {
            "total": segment.total_count,
            "valid": segment.valid_count,
            "marketable": segment.marketable_count,
            "pending": segment.pending_count,
        }

    def test_fixture_has_every_state(self):
        states = {
            key: partner.sms_consent_state for key, partner in self.partners.items()
        }
        self.assertEqual(
            states,
            {
                "confirmed": "confirmed",
                "unproven": "unproven",
                "pending": "pending",
                "withdrawn": "withdrawn",
                "expired": "expired",
                "none": "none",
                "blacklisted": "withdrawn",
                "other_company": "none",
                "no_phone": "none",
                "invalid": "none",
            },
        )

    def test_counts_over_every_consent_state(self):
        segment = self.segment()
        self.assertEqual(
            self.counts(segment),
            # 10 members, 8 sanitisable numbers, only the proven confirmed one
            # may be texted here (not the other company's), one opt-in pending
            {"total": 10, "valid": 8, "marketable": 1, "pending": 1},
        )
        self.assertEqual(
            segment._members(),
            self.env["res.partner"].union(*self.partners.values()),
        )
        # the counts agree with the compliance gate
        decisions = self.env["sms.microfunnel.gate"]._evaluate(
            segment._members(), "marketing", self.company
        )
        self.assertEqual(
            sum(1 for d in decisions if d["action"] != "block"),
            segment.marketable_count,
        )
        self.assertEqual(
            sum(1 for d in decisions if d["reason"] == "pending_doi"),
            segment.pending_count,
        )

    def test_counts_follow_consent_changes(self):
        segment = self.segment()
        record_events(
            self.env,
            [{"event_type": "confirmed", "number": self.partners["pending"].phone}],
        )
        self.assertEqual(
            self.counts(segment),
            {"total": 10, "valid": 8, "marketable": 2, "pending": 0},
        )

    def test_counts_take_a_constant_number_of_queries(self):
        segment = self.segment()
        self.counts(segment)  # warm caches
        self.env.flush_all()
        before = self.env.cr.sql_log_count
        self.counts(segment)
        small = self.env.cr.sql_log_count - before
        self.env["res.partner"].create(
            [
                {
                    "name": f"Bulk {i}",
                    "phone": f"+3361299{i:04d}",
                    "category_id": [(6, 0, self.tag.ids)],
                }
                for i in range(60)
            ]
        )
        self.env.flush_all()
        before = self.env.cr.sql_log_count
        counts = self.counts(segment)
        large = self.env.cr.sql_log_count - before
        self.assertEqual(counts["total"], 70)
        self.assertEqual(counts["valid"], 68)
        self.assertEqual(large, small, "counting is set-based")
        self.assertLessEqual(large, 4)

    def test_interests_static_members_and_static_only(self):
        p = self.partners
        self.assertEqual((self.leadership | self.cpf).mapped("partner_count"), [2, 2])
        segment = self.segment(interest_ids=[(6, 0, self.leadership.ids)])
        self.assertEqual(segment._members(), p["confirmed"] | p["pending"])
        self.assertEqual(
            self.counts(segment),
            {"total": 2, "valid": 2, "marketable": 1, "pending": 1},
        )
        outsider = self.env["res.partner"].create(
            {"name": "Static", "phone": "+33612349999"}
        )
        segment.partner_ids = outsider
        self.assertEqual(segment._members(), p["confirmed"] | p["pending"] | outsider)
        segment.write({"is_dynamic": False, "interest_ids": [(5,)]})
        self.assertEqual(segment._members(), outsider)
        self.assertEqual(self.counts(segment)["total"], 1)
        # the interest filter alone, without the domain
        segment.interest_ids = self.cpf
        self.assertEqual(segment._members(), p["pending"] | p["none"] | outsider)

    def test_lead_segment_uses_the_contact_interests(self):
        p = self.partners
        Lead = self.env["crm.lead"]
        leads = Lead.create(
            [
                {"name": "Lead A", "partner_id": p["confirmed"].id},
                {"name": "Lead B", "phone": "+33612340003"},
                {"name": "Lead C", "phone": "+33612347777"},
            ]
        )
        segment = self.Segment.create(
            {
                "name": "Leads",
                "model_name": "crm.lead",
                "domain": repr([("id", "in", leads.ids)]),
            }
        )
        self.assertEqual(
            self.counts(segment),
            {"total": 3, "valid": 3, "marketable": 1, "pending": 1},
        )
        segment.interest_ids = self.leadership
        self.assertEqual(segment._members(), leads[0])
        with self.assertRaises(ValidationError):
            segment.partner_ids = p["none"]

    def test_drill_down_matches_the_counts(self):
        segment = self.segment()
        for view, expected in (
            ("valid", 8),
            ("marketable", 1),
            ("pending", 1),
            (None, 10),
        ):
            action = segment.with_context(segment_view=view).action_view_members()
            found = self.env[action["res_model"]].search(action["domain"])
            self.assertEqual(len(found), expected, view)

    def test_other_company_segment_counts_its_own_consents(self):
        segment = self.segment(company_id=self.other_company.id)
        counts = self.counts(segment.with_company(self.other_company))
        self.assertEqual(counts["marketable"], 1)
        self.assertEqual(counts["pending"], 0)


@tagged("post_install", "-at_install")
class TestSegmentInFunnels(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.segment = cls.env["sms.microfunnel.segment"].create(
            {
                "name": "Anna and Chloé",
                "is_dynamic": False,
                "partner_ids": [(6, 0, (cls.anna | cls.no_consent).ids)],
            }
        )
        cls.funnel.segment_id = cls.segment

    def test_segment_is_the_funnel_audience(self):
        self.assertEqual(self.funnel._audience(), self.anna | self.no_consent)
        self.funnel.domain = repr([("name", "=", "Anna")])
        self.assertEqual(self.funnel._audience(), self.anna)
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            self.funnel.action_enroll_audience()
        enrollment = self.funnel.enrollment_ids
        self.assertEqual(enrollment.res_id, self.anna.id)
        self.assertEqual(enrollment.segment_id, self.segment)

    def test_event_enrolment_of_a_non_member_has_no_segment(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            member = self.funnel._enroll(self.anna)
            outsider = self.funnel._enroll(self.bruno)
        self.assertEqual(member.segment_id, self.segment)
        self.assertFalse(outsider.segment_id)

    def test_segment_must_target_the_funnel_records(self):
        leads = self.env["sms.microfunnel.segment"].create(
            {"name": "Leads", "model_name": "crm.lead"}
        )
        with self.assertRaises(ValidationError):
            self.funnel.segment_id = leads

    def test_preflight_filters_on_the_segment(self):
        action = self.funnel.action_preflight()
        self.assertEqual(action["context"]["default_segment_id"], self.segment.id)
        wizard = (
            self.env["sms.microfunnel.preflight"]
            .with_context(**action["context"])
            .create({})
        )
        with freeze_time(TUESDAY_10H_PARIS):
            wizard.action_check()
        self.assertEqual(wizard.total_count, 2)
        self.assertEqual(wizard.allow_count, 1)
        self.assertEqual(
            wizard.line_ids.filtered(lambda line: line.action == "block").reason,
            "no_consent",
        )
        # from the segment itself
        context = self.segment.action_preflight()["context"]
        wizard = (
            self.env["sms.microfunnel.preflight"].with_context(**context).create({})
        )
        with freeze_time(TUESDAY_10H_PARIS):
            wizard.action_check()
        self.assertEqual(wizard.total_count, 2)

    def test_rates_per_segment_in_the_report(self):
        vip = self.env["sms.microfunnel.segment"].create(
            {
                "name": "Bruno",
                "partner_ids": [(6, 0, self.bruno.ids)],
                "is_dynamic": False,
            }
        )
        other = self.env["sms.microfunnel.campaign"].create(
            {"name": "VIP", "model_name": "res.partner", "segment_id": vip.id}
        )
        self.env["sms.microfunnel.step"].create(
            {"campaign_id": other.id, "name": "Hello", "body": "Bonjour VIP."}
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            other.action_start()
            self.funnel.action_enroll_audience()  # Anna and Chloé
            other.action_enroll_audience()  # Bruno
            self.dispatch()
        traces = self.env["sms.microfunnel.trace"].search(
            [("campaign_id", "in", (self.funnel | other).ids), ("state", "=", "queued")]
        )
        self.assertEqual(len(traces), 2, "Anna and Bruno (Chloé has no consent)")
        traces.mailing_trace_id.sms_tracker_ids._action_update_from_sms_state(
            "sent"
        )  # delivered
        self.trace(self.anna, self.offer)._set_clicked()
        self.env.flush_all()
        rows = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "in", (self.funnel | other).ids)],
            ["segment_id"],
            ["recipient_count:sum", "delivered_count:sum", "click_rate:avg"],
        )
        by_segment = {segment: values for segment, *values in rows}
        self.assertEqual(by_segment[self.segment], [1, 1, 100.0])
        self.assertEqual(by_segment[vip], [1, 1, 0.0])


@tagged("post_install", "-at_install")
class TestSegmentTour(HttpCase):
    def test_segment_tour(self):
        interest = self.env["sms.microfunnel.interest"].create(
            {"name": "Tour Leadership"}
        )
        fr = self.env.ref("base.fr").id
        self.env.company.country_id = fr
        Partner = self.env["res.partner"]
        subscribed, unknown = Partner.create(
            [
                {"name": "Tour Subscribed", "phone": "+33612348801", "country_id": fr},
                {"name": "Tour Unknown", "phone": "+33612348802", "country_id": fr},
            ]
        )
        (subscribed | unknown).sms_microfunnel_interest_ids = interest
        record_events(
            self.env,
            [
                {
                    "event_type": "confirmed",
                    "number": subscribed.phone,
                    "event_date": datetime(2026, 1, 5, 9, 0),
                }
            ],
        )
        self.start_tour(
            "/odoo/action-sms_microfunnel.sms_segment_action",
            "sms_microfunnel_segment_tour",
            login="admin",
        )
        segment = self.env["sms.microfunnel.segment"].search(
            [("name", "=", "Tour segment")]
        )
        self.assertEqual(segment.interest_ids, interest)
        self.assertEqual(segment.total_count, 2)
        self.assertEqual(segment.marketable_count, 1)
