# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Each compliance fact has one resolver, and every caller gets the same
answer from it: the recipient's zone (gate, send-time slots, local send hour,
date-relative steps), the consent state (records' field and its search), a
step's due date (scheduler and dry-run) and the contact of a number."""

from datetime import datetime

from freezegun import freeze_time

from odoo.tests import tagged

from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

# Saturday 2026-03-14 11:00 in Paris: the French marketing window is closed
# on Sunday, opens again on Monday at 08:00 (07:00 UTC)
SATURDAY_11H_PARIS = datetime(2026, 3, 14, 10, 0)


@tagged("post_install", "-at_install")
class TestSingleResolvers(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # a French mobile number, no zone of its own, a Réunion address: the
        # postcode puts the recipient in Indian/Reunion (UTC+4), while the
        # number alone says Paris and the company is in Paris too
        cls.number = "+33699999999"
        cls.lead = cls.env["crm.lead"].create(
            {
                "name": "Réunion lead",
                "phone": cls.number,
                "country_id": cls.env.ref("base.fr").id,
                "zip": "97400",
                "date_deadline": "2026-03-20",
            }
        )
        cls.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": cls.number,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "event_date": datetime(2026, 1, 5, 9, 0),
                }
            ]
        )

    # -- the recipient's zone --------------------------------------------------

    def test_postcode_zone_is_the_gates_for_every_caller(self):
        gate = self.env["sms.microfunnel.gate"]
        with freeze_time(TUESDAY_10H_PARIS):
            decision = gate._evaluate_one(self.lead, "marketing", self.company)
        self.assertEqual(decision["tz"], "Indian/Reunion")

        # the enrolment's scheduling: a date alone means 09:00 in that zone
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Deadline", "model_name": "crm.lead"}
        )
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "On the day",
                "wait_mode": "after_date",
                "wait_hours": 0,
                "date_field_id": self.env["ir.model.fields"]
                ._get("crm.lead", "date_deadline")
                .id,
                "body": "C'est aujourd'hui.",
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            trace = funnel._enroll(self.lead).trace_ids
        self.assertEqual(trace.due_at, datetime(2026, 3, 20, 5, 0), "09:00 UTC+4")
        # the dry-run computes the same date with the same zone
        with freeze_time(TUESDAY_10H_PARIS):
            (line,) = funnel._simulate(self.lead)
        self.assertEqual(line["due_at"], trace.due_at)

        # the send-time view: a trace queued without a recorded zone is read
        # on the recipient's clock (Friday 09:00 in Réunion, 06:00 in Paris)
        trace.write({"queued_at": datetime(2026, 3, 20, 5, 0), "send_tz": False})
        self.assertEqual((trace.send_weekday, trace.send_hour), ("4", "09"))

        # send-time slots: a decision without a zone (no policy applied) is
        # narrowed in the gate's zone too
        narrowed = self.env["sms.microfunnel.send.time"]._apply_to_decision(
            step,
            self.lead,
            {"key": 0, "action": "allow", "number": self.number},
            self.company,
            datetime(2026, 3, 20, 5, 0),
        )
        self.assertEqual(narrowed["slot_tz"], "Indian/Reunion")

        # all of them ask the one resolver
        with freeze_time(TUESDAY_10H_PARIS):
            zones = gate._target_zones(
                [("lead", "crm.lead", self.lead.id, self.number)], self.company
            )
        self.assertEqual(zones, {"lead": "Indian/Reunion"})

    def test_policy_zone_without_a_number_zone(self):
        """A number the number tables give no zone gets the zones of its
        country's policy: the gate's decision and the send-time slots agree
        (the phone library alone would say Europe/Luxembourg)."""
        lu = self.env.ref("base.lu")
        self.env["sms.microfunnel.policy"].create(
            {
                "name": "Luxembourg, marketing",
                "message_class": "marketing",
                "country_id": lu.id,
                "source": "our policy",
                "valid_from": "2026-01-01",
                "tz_names": "Europe/Brussels",
                "line_ids": [
                    (0, 0, {"weekday": str(d), "hour_from": 8, "hour_to": 20})
                    for d in range(7)
                ],
            }
        )
        number = "+352621123456"
        partner = self.env["res.partner"].create(
            {"name": "Luxembourg", "phone": number, "country_id": lu.id}
        )
        self.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": number,
                    "partner_id": partner.id,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "event_date": datetime(2026, 1, 5, 9, 0),
                }
            ]
        )
        gate = self.env["sms.microfunnel.gate"]
        with freeze_time(TUESDAY_10H_PARIS):
            decision = gate._evaluate_one(partner, "marketing", self.company)
        self.assertEqual(decision["tz"], "Europe/Brussels")
        narrowed = self.env["sms.microfunnel.send.time"]._apply_to_decision(
            self.offer,
            partner,
            {"key": 0, "action": "allow", "number": number},
            self.company,
            datetime(2026, 3, 10, 9, 0),
        )
        self.assertEqual(narrowed["slot_tz"], "Europe/Brussels")

    # -- the consent state -----------------------------------------------------

    def test_consent_search_honours_the_suppression_list(self):
        """A number erased at the contact's request, brought back by a new
        contact (an import, a form): the field says ``withdrawn`` and so does
        its search (which once read the stored statuses alone and said
        ``none``)."""
        Partner = self.env["res.partner"]
        number = "+33688888888"
        self.env["sms.microfunnel.suppression"]._suppress([number])
        returning = Partner.create({"name": "Returning", "phone": number})
        self.assertEqual(returning.sms_consent_state, "withdrawn")
        self.assertIn(
            returning, Partner.search([("sms_consent_state", "=", "withdrawn")])
        )
        self.assertNotIn(
            returning, Partner.search([("sms_consent_state", "=", "none")])
        )
        self.assertNotIn(
            returning, Partner.search([("sms_consent_state", "!=", "withdrawn")])
        )
        # the others keep their state, a contact without a number has none
        confirmed = Partner.search([("sms_consent_state", "=", "confirmed")])
        self.assertIn(self.anna, confirmed)
        self.assertIn(
            self.opted_out, Partner.search([("sms_consent_state", "=", "withdrawn")])
        )
        self.assertIn(
            self.no_consent, Partner.search([("sms_consent_state", "=", "none")])
        )
        nobody = Partner.create({"name": "No number"})
        self.assertIn(nobody, Partner.search([("sms_consent_state", "=", "none")]))
        self.assertNotIn(nobody, Partner.search([("sms_consent_state", "!=", "none")]))
        self.assertIn(
            nobody, Partner.search([("sms_consent_state", "not in", ["confirmed"])])
        )

    # -- the due date of a step --------------------------------------------------

    def test_dry_run_and_scheduler_agree_on_waits_and_the_window(self):
        Step = self.env["sms.microfunnel.step"]
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Waits", "model_name": "res.partner"}
        )
        first = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "A day after enrolment",
                "wait_mode": "after_enrollment",
                "wait_value": 1,
                "wait_unit": "days",
                "body": "Premier message.",
            }
        )
        Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Two days after enrolment",
                "parent_id": first.id,
                "wait_mode": "after_enrollment",
                "wait_value": 2,
                "wait_unit": "days",
                "body": "Deuxième message.",
            }
        )
        Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Three hours later",
                "parent_id": first.id,
                "wait_mode": "after_parent",
                "wait_value": 3,
                "wait_unit": "hours",
                "body": "Troisième message.",
            }
        )
        with freeze_time(SATURDAY_11H_PARIS):
            lines = {line["step_name"]: line for line in funnel._simulate(self.anna)}
            funnel.action_start()
            funnel._enroll(self.anna)
        first_trace = funnel.enrollment_ids.trace_ids
        # due on Sunday 11:00 Paris; the window defers it to Monday 08:00
        self.assertEqual(first_trace.due_at, datetime(2026, 3, 15, 10, 0))
        self.assertEqual(lines["A day after enrolment"]["due_at"], first_trace.due_at)
        self.assertEqual(
            lines["A day after enrolment"]["send_at"], datetime(2026, 3, 16, 7, 0)
        )
        with freeze_time(first_trace.due_at):
            self.dispatch()
        self.assertEqual(first_trace.state, "deferred")
        self.assertEqual(first_trace.due_at, lines["A day after enrolment"]["send_at"])
        with freeze_time(first_trace.due_at):
            self.dispatch()
        self.assertEqual(first_trace.state, "queued")
        children = funnel.enrollment_ids.trace_ids - first_trace
        self.assertEqual(len(children), 2)
        for child in children:
            self.assertEqual(
                child.due_at, lines[child.step_id.name]["due_at"], child.step_id.name
            )
        # two days after the enrolment (not after the first message) ...
        self.assertEqual(
            lines["Two days after enrolment"]["due_at"], datetime(2026, 3, 16, 10, 0)
        )
        # ... and three hours after the first message went
        self.assertEqual(
            lines["Three hours later"]["due_at"], datetime(2026, 3, 16, 10, 0)
        )

    # -- the contact of a number -------------------------------------------------

    def test_contact_of_a_number_in_the_company(self):
        Consent = self.env["sms.microfunnel.consent"]
        other_company = self.env["res.company"].create({"name": "Other"})
        elsewhere = self.env["res.partner"].create(
            {
                "name": "Elsewhere",
                "phone": "+33677777777",
                "company_id": other_company.id,
            }
        )
        shared = self.env["res.partner"].create(
            {"name": "Shared", "phone": "+33677777777"}
        )
        found = Consent._contacts_by_number(
            ["+33677777777", self.anna.phone, "+33600000000", False], self.company
        )
        self.assertEqual(found["+33677777777"], shared)
        self.assertNotIn(elsewhere, found["+33677777777"])
        self.assertEqual(found[self.anna.phone], self.anna)
        self.assertNotIn("+33600000000", found)
        leads = Consent._contacts_by_number([self.number], self.company, "crm.lead")
        self.assertEqual(leads[self.number], self.lead)
        # one query for any number of numbers
        with self.assertQueryCount(1):
            Consent._contacts_by_number(
                [f"+336{n:08d}" for n in range(500)], self.company
            )
