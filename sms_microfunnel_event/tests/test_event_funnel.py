# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime

from freezegun import freeze_time

from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

# the webinar: Thursday 2026-03-12, 18:00-19:00 in Paris (17:00-18:00 UTC)
BEGIN = datetime(2026, 3, 12, 17, 0)
END = datetime(2026, 3, 12, 18, 0)


@tagged("post_install", "-at_install")
class TestEventFunnel(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.organizer = cls.env["res.users"].create(
            {"name": "Olga Organizer", "login": "olga_organizer"}
        )
        cls.event = cls.env["event.event"].create(
            {
                "name": "Webinar SMS",
                "date_begin": BEGIN,
                "date_end": END,
                "date_tz": "Europe/Paris",
                "user_id": cls.organizer.id,
            }
        )
        cls.journey = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Webinar journey", "model_name": "event.registration"}
        )
        Field = cls.env["ir.model.fields"]
        Step = cls.env["sms.microfunnel.step"]
        cls.reminder = Step.create(
            {
                "campaign_id": cls.journey.id,
                "name": "24 h before",
                "wait_mode": "before_date",
                "date_field_id": Field._get(
                    "event.registration", "event_begin_date"
                ).id,
                "wait_hours": 24,
                "message_class": "transactional",
                "body": "Rappel : {{ object.event_id.name }} demain à 18 h.",
            }
        )
        cls.thanks = Step.create(
            {
                "campaign_id": cls.journey.id,
                "name": "1 h after",
                "wait_mode": "after_date",
                "date_field_id": Field._get("event.registration", "event_end_date").id,
                "wait_hours": 1,
                "message_class": "transactional",
                "body": "Merci d'avoir participé au webinar !",
            }
        )
        cls.event.sms_microfunnel_ids = cls.journey

    def register(self, **values):
        return self.env["event.registration"].create(
            {
                "event_id": self.event.id,
                "name": "Léa",
                "phone": "+33611223344",
                "email": "lea@example.com",
                **values,
            }
        )

    def traces(self, registration, step):
        return self.env["sms.microfunnel.trace"].search(
            [
                ("enrollment_id.res_model", "=", "event.registration"),
                ("enrollment_id.res_id", "=", registration.id),
                ("step_id", "=", step.id),
            ]
        )

    def test_webinar_journey_on_registrations_uses_the_event_date(self):
        self.assertIn(
            "event.registration",
            dict(self.journey._fields["model_name"]._description_selection(self.env)),
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.journey.action_start()
            registration = self.register()
        enrollment = self.journey.enrollment_ids
        self.assertEqual(enrollment.res_model, "event.registration")
        self.assertEqual(enrollment.res_id, registration.id)
        self.assertEqual(enrollment.number, "+33611223344")
        self.assertEqual(
            self.traces(registration, self.reminder).due_at, BEGIN.replace(day=11)
        )
        self.assertEqual(
            self.traces(registration, self.thanks).due_at, datetime(2026, 3, 12, 19, 0)
        )
        with freeze_time("2026-03-11 17:00:30"):
            self.dispatch()
        self.assertEqual(self.traces(registration, self.reminder).state, "queued")
        self.assertEqual(self.traces(registration, self.thanks).state, "scheduled")
        sms = self.env["sms.sms"].sudo().search([("number", "=", "+33611223344")])
        self.assertIn("Rappel : Webinar SMS demain", sms.body)
        with freeze_time("2026-03-12 19:00:30"):
            self.dispatch()
        self.assertEqual(self.traces(registration, self.thanks).state, "queued")

    def test_dry_run_on_a_registration(self):
        registration = self.register()
        wizard = self.env["sms.microfunnel.simulate"].create(
            {
                "campaign_id": self.journey.id,
                "record_ref": f"event.registration,{registration.id}",
                "start_at": TUESDAY_10H_PARIS,
            }
        )
        wizard.action_simulate()
        self.assertEqual(
            wizard.line_ids.mapped("step_name"), ["24 h before", "1 h after"]
        )
        self.assertEqual(wizard.line_ids[0].send_at, BEGIN.replace(day=11))
        self.assertIn("Rappel : Webinar SMS demain", wizard.line_ids[0].text)
        self.assertFalse(self.journey.enrollment_ids, "a dry-run enrolls nobody")
        wizard.record_ref = f"res.partner,{self.env.user.partner_id.id}"
        with self.assertRaises(UserError):
            wizard.action_simulate()

    def test_moving_the_event_moves_the_pending_steps(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.journey.action_start()
            registration = self.register()
            self.event.write(
                {
                    "date_begin": datetime(2026, 3, 19, 17, 0),
                    "date_end": datetime(2026, 3, 19, 18, 0),
                }
            )
        self.assertEqual(
            self.traces(registration, self.reminder).due_at,
            datetime(2026, 3, 18, 17, 0),
        )
        self.assertEqual(
            self.traces(registration, self.thanks).due_at, datetime(2026, 3, 19, 19, 0)
        )

    def test_only_confirmed_registrations_and_cancellation_exits(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.journey.action_start()
            draft = self.register(state="draft", phone="+33611223355")
            self.assertFalse(self.journey.enrollment_ids, "not confirmed yet")
            draft.action_confirm()
            enrollment = self.journey.enrollment_ids
            self.assertEqual(enrollment.res_id, draft.id)
            draft.action_cancel()
        self.assertEqual(enrollment.state, "exited")
        self.assertEqual(enrollment.exit_reason, "registration_canceled")
        self.assertEqual(set(enrollment.trace_ids.mapped("cancel_reason")), {"exited"})

    def test_email_and_activity_steps_on_registrations(self):
        template = self.env["mail.template"].create(
            {
                "name": "Webinar access",
                "model_id": self.env["ir.model"]._get_id("event.registration"),
                "subject": "Your access to {{ object.event_id.name }}",
                "email_from": "events@example.com",
                "body_html": '<p>Hello <t t-out="object.name"/></p>',
            }
        )
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Access", "model_name": "event.registration"}
        )
        Step = self.env["sms.microfunnel.step"]
        email = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Access link",
                "step_type": "email",
                "mail_template_id": template.id,
            }
        )
        call = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Welcome call",
                "step_type": "activity",
                "activity_type_id": self.env.ref("mail.mail_activity_data_call").id,
            }
        )
        partners = self.env["res.partner"].search_count([])
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            registration = self.register()
            funnel._enroll(registration)
            self.dispatch()
        email_trace = self.traces(registration, email)
        self.assertEqual(email_trace.state, "queued")
        self.assertEqual(email_trace.email, "lea@example.com")
        self.assertEqual(email_trace.body, "Your access to Webinar SMS")
        mail = (
            self.env["mail.mail"]
            .sudo()
            .search([("mailing_id", "=", email.mailing_id.id)])
        )
        self.assertIn("lea@example.com", mail.email_to)
        self.assertEqual(
            self.env["res.partner"].search_count([]),
            partners,
            "like a mailing, no contact is created for an attendee",
        )
        activity = self.traces(registration, call).activity_id
        self.assertEqual(activity.res_model, "event.registration")
        self.assertEqual(activity.user_id, self.organizer, "the event's responsible")
