# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Multichannel funnel steps: email, salesperson activity, CRM update, and the
missed-call entry points."""

import json
import re
from datetime import date, datetime

from freezegun import freeze_time

from odoo.exceptions import UserError, ValidationError
from odoo.tests import HttpCase, tagged

from odoo.addons.mail.tests.common import MockEmail
from odoo.addons.sms_microfunnel.tests.common import TUESDAY_10H_PARIS, FunnelCase

# Tuesday 10:30 and 11:05 in Paris
TUESDAY_10H30_PARIS = "2026-03-10 09:30:00"
TUESDAY_12H05_PARIS = "2026-03-10 11:05:00"
# 48 h after the email: Thursday 10:00 in Paris
THURSDAY_10H_PARIS = "2026-03-12 09:00:00"
OUR_NUMBER = "+33700000001"


class ChannelCase(FunnelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.anna.email = "anna@example.com"
        cls.bruno.email = "bruno@example.com"
        Partner = cls.env["res.partner"]
        fr = cls.env.ref("base.fr").id
        cls.eva = Partner.create(
            {
                "name": "Eva",
                "phone": "+33655555555",
                "email": "eva@example.com",
                "country_id": fr,
                "tz": "Europe/Paris",
            }
        )
        cls.blocked = Partner.create(
            {
                "name": "Bastien",
                "phone": "+33666666666",
                "email": "bastien@example.com",
                "country_id": fr,
            }
        )
        cls.no_email = Partner.create(
            {"name": "Nadia", "phone": "+33677777777", "country_id": fr}
        )
        cls.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": p.phone,
                    "partner_id": p.id,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "event_date": datetime(2026, 1, 5, 9, 0),
                }
                for p in (cls.eva, cls.blocked, cls.no_email)
            ]
        )
        cls.env["mail.blacklist"].sudo()._add("bastien@example.com")
        cls.template = cls.env["mail.template"].create(
            {
                "name": "Training invitation",
                "model_id": cls.env["ir.model"]._get_id("res.partner"),
                "subject": "{{ object.name }}, our sales training",
                "email_from": "training@example.com",
                "body_html": (
                    '<p>Hello <t t-out="object.name"/>,</p>'
                    '<p><a href="https://www.example.com/training">Sign up</a></p>'
                    '<p><a href="/unsubscribe_from_list">Unsubscribe</a></p>'
                ),
            }
        )
        cls.salesperson = cls.env["res.users"].create(
            {
                "name": "Sam Seller",
                "login": "sam_seller",
                "email": "sam@example.com",
                "tz": "Europe/Paris",
                "group_ids": [
                    (4, cls.env.ref("sales_team.group_sale_salesman").id),
                ],
            }
        )

    def email_journey(self):
        """The brief's journey: a training email, then 48 h later an SMS to
        those who opened it without converting (goal: a click on the link)."""
        funnel = self.env["sms.microfunnel.campaign"].create(
            {
                "name": "Sales training",
                "model_name": "res.partner",
                "goal": "link_clicked",
                "attribution_hours": 0,
            }
        )
        Step = self.env["sms.microfunnel.step"]
        email = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Invitation",
                "step_type": "email",
                "mail_template_id": self.template.id,
            }
        )
        sms = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Nudge the openers",
                "parent_id": email.id,
                "wait_mode": "after_parent",
                "wait_hours": 48,
                "condition": "opened",
                "body": "Bonjour {{ object.name }}, la formation commence bientôt.",
            }
        )
        return funnel, email, sms

    def funnel_trace(self, record, step):
        return self.env["sms.microfunnel.trace"].search(
            [
                ("enrollment_id.res_model", "=", record._name),
                ("enrollment_id.res_id", "in", record.ids),
                ("step_id", "=", step.id),
            ]
        )


@tagged("post_install", "-at_install")
class TestEmailThenSms(ChannelCase, HttpCase, MockEmail):
    def dispatch(self):
        # HttpCase is already in registry test mode
        self.cron.method_direct_trigger()
        self.env.invalidate_all()

    def test_email_then_sms_to_openers_who_did_not_convert(self):
        funnel, email_step, sms_step = self.email_journey()
        audience = self.anna | self.bruno | self.eva | self.blocked | self.no_email
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(audience)
            with self.mock_mail_gateway():
                self.dispatch()
                self.assertFalse(self._mails, "emails go through the mail queue")
        # every step not executed says why
        self.assertEqual(
            self.funnel_trace(self.blocked, email_step).cancel_reason,
            "email_blacklisted",
        )
        self.assertEqual(
            self.funnel_trace(self.no_email, email_step).cancel_reason, "no_email"
        )
        queued = {p: self.funnel_trace(p, email_step) for p in audience[:3]}
        self.assertEqual({t.state for t in queued.values()}, {"queued"})
        self.assertEqual(queued[self.anna].email, "anna@example.com")
        self.assertEqual(queued[self.anna].body, "Anna, our sales training")
        mailing = email_step.mailing_id
        self.assertTrue(mailing, "the step's statistics live in a mailing")
        self.assertEqual(
            set(mailing.mailing_trace_ids.mapped("trace_status")),
            {"outgoing", "cancel"},
        )
        self.assertFalse(
            self.env["sms.sms"].sudo().search([("number", "=", self.anna.phone)]),
            "no SMS before the email step's children are due",
        )

        # the real mail queue sends them, with tracking
        outgoing = (
            self.env["mail.mail"].sudo().search([("mailing_id", "=", mailing.id)])
        )
        self.assertEqual(set(outgoing.mapped("state")), {"outgoing"})
        with self.mock_mail_gateway():
            self.env["mail.mail"].sudo().process_email_queue(email_ids=outgoing.ids)
            self.env.invalidate_all()
            sent = {m["email_to"][0]: m for m in self._mails}
        self.assertEqual(len(self._mails), 3)
        self.assertEqual(
            {t.state for t in queued.values()}, {"sent"}, "the mailing reports sends"
        )
        anna_body = next(body for to, body in _bodies(sent) if "anna@" in to)
        bruno_body = next(body for to, body in _bodies(sent) if "bruno@" in to)
        pixel = re.search(r"/mail/track/\d+/\w+/blank\.gif", anna_body)
        self.assertTrue(pixel, anna_body)
        click = re.search(r"/r/\w+/m/\d+", anna_body)
        self.assertTrue(click, anna_body)
        self.assertNotIn("https://www.example.com/training", anna_body)
        self.assertRegex(anna_body, rf"/mailing/{mailing.id}/\w*unsubscribe\?")

        # Anna opens and clicks (the goal), Bruno only opens, Eva does nothing
        self.assertEqual(self.url_open(pixel[0]).status_code, 200)
        response = self.url_open(click[0], allow_redirects=False)
        self.assertIn(response.status_code, (301, 302))
        bruno_pixel = re.search(r"/mail/track/\d+/\w+/blank\.gif", bruno_body)[0]
        self.assertEqual(self.url_open(bruno_pixel).status_code, 200)
        self.env.invalidate_all()
        self.assertTrue(queued[self.anna].opened_at)
        self.assertTrue(queued[self.anna].clicked_at)
        self.assertEqual(queued[self.anna].state, "delivered")
        self.assertEqual(queued[self.anna].enrollment_id.state, "converted")
        self.assertTrue(queued[self.bruno].opened_at)
        self.assertFalse(queued[self.bruno].clicked_at)
        self.assertFalse(queued[self.eva].opened_at)
        self.assertEqual(
            queued[self.anna].mailing_trace_id.trace_status,
            "open",
            "Odoo's own mailing statistics see the open",
        )

        # 48 h later: the SMS goes to Bruno only
        with freeze_time(THURSDAY_10H_PARIS):
            self.dispatch()
        self.assertEqual(self.funnel_trace(self.bruno, sms_step).state, "queued")
        self.assertEqual(
            self.funnel_trace(self.eva, sms_step).cancel_reason, "condition_not_met"
        )
        self.assertEqual(self.funnel_trace(self.anna, sms_step).cancel_reason, "exited")
        self.assertFalse(
            self.funnel_trace(self.blocked, sms_step)
            | self.funnel_trace(self.no_email, sms_step),
            "a step that did not run has no follow-up",
        )
        sms = self.env["sms.sms"].sudo().search([("number", "like", "+336")])
        self.assertEqual(sms.mapped("number"), [self.bruno.phone_sanitized])
        self.assertIn("Bonjour Bruno", sms.body)

    def test_missed_call_http_event_creates_and_enrols_the_lead(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Missed calls", "model_name": "crm.lead"}
        )
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Callback slot",
                "message_class": "transactional",
                "body": "Désolés d'avoir manqué votre appel : un créneau de rappel ?",
            }
        )
        funnel.action_start()
        funnel.action_generate_event_token()
        known = self.env["crm.lead"].create(
            {"name": "Known caller", "phone": "+33688888888"}
        )

        def post(payload):
            return self.url_open(
                f"/sms_microfunnel/event/{funnel.id}",
                data=json.dumps(payload),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {funnel.event_token}",
                },
            )

        unknown = post(
            {
                "phone": "06 99 99 99 99",
                "name": "Inès",
                "values": {"call_at": "2026-03-10T09:12:00Z"},
                "idempotency_key": "call-1",
            }
        )
        self.assertEqual(unknown.status_code, 201, unknown.text)
        enrollment = self.env["sms.microfunnel.enrollment"].browse(
            unknown.json()["enrollment_id"]
        )
        lead = self.env["crm.lead"].browse(enrollment.res_id)
        self.assertEqual(enrollment.res_model, "crm.lead")
        self.assertEqual(lead.phone_sanitized, "+33699999999")
        self.assertEqual(lead.contact_name, "Inès")
        self.assertEqual(enrollment.number, "+33699999999")
        again = post({"phone": "+33688888888", "idempotency_key": "call-2"})
        self.assertEqual(again.status_code, 201, again.text)
        self.assertEqual(
            self.env["sms.microfunnel.enrollment"]
            .browse(again.json()["enrollment_id"])
            .res_id,
            known.id,
            "a known caller's lead is enrolled, not duplicated",
        )


def _bodies(sent):
    for email_to, mail in sent.items():
        yield email_to, mail["body"]


@tagged("post_install", "-at_install")
class TestActivityAndCrmSteps(ChannelCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Stage = cls.env["crm.stage"]
        cls.stage_new = Stage.create({"name": "Fresh", "sequence": 1})
        cls.stage_qualified = Stage.create({"name": "Qualified (SMS)", "sequence": 2})
        cls.stage_won = Stage.create({"name": "Signed", "sequence": 9, "is_won": True})
        cls.tag_hot = cls.env["crm.tag"].create({"name": "Hot"})
        cls.tag_cold = cls.env["crm.tag"].create({"name": "Cold"})
        Lead = cls.env["crm.lead"]
        cls.leads = Lead.create(
            [
                {
                    "name": name,
                    "type": "opportunity",
                    "phone": phone,
                    "country_id": cls.env.ref("base.fr").id,
                    "user_id": cls.salesperson.id,
                    "stage_id": cls.stage_new.id,
                    "tag_ids": [(4, cls.tag_cold.id)],
                }
                for name, phone in (
                    ("Lead A", "+33610000001"),
                    ("Lead B", "+33610000002"),
                    ("Lead C", "+33610000003"),
                )
            ]
        )

    def qualification_funnel(self):
        """SMS that qualifies interest; reply YES → stage Qualified + call
        activity for the salesperson; if the call is still not done a day
        later, an SMS."""
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Qualify before calling", "model_name": "crm.lead"}
        )
        Step = self.env["sms.microfunnel.step"]
        ask = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Interested?",
                "message_class": "transactional",
                "body": "Un diagnostic vous intéresse ? Répondez OUI.",
            }
        )
        common = {
            "campaign_id": funnel.id,
            "parent_id": ask.id,
            "wait_mode": "after_parent",
            "wait_hours": 2,
            "condition": "replied_keyword",
            "condition_keyword": "OUI, YES",
        }
        qualify = Step.create(
            dict(
                common,
                name="Qualified",
                step_type="crm_update",
                crm_stage_id=self.stage_qualified.id,
                crm_tag_add_ids=[(4, self.tag_hot.id)],
                crm_tag_remove_ids=[(4, self.tag_cold.id)],
            )
        )
        call = Step.create(
            dict(
                common,
                name="Call them",
                step_type="activity",
                activity_type_id=self.env.ref("mail.mail_activity_data_call").id,
                activity_summary="Call back: interested by SMS",
                activity_note="{{ object.name }} a répondu : "
                "{{ values.get('last_reply') }}",
                activity_delay_days=1,
            )
        )
        chase = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Missed you",
                "parent_id": call.id,
                "wait_mode": "after_parent",
                "wait_hours": 26,
                "condition": "activity_not_done",
                "message_class": "transactional",
                "body": "Nous avons essayé de vous joindre : quand vous rappeler ?",
            }
        )
        return funnel, ask, qualify, call, chase

    def reply(self, number, body, sid):
        return self.env["sms.microfunnel.inbound"]._process_inbound(
            number, OUR_NUMBER, body, sid
        )

    def test_reply_yes_moves_the_lead_and_creates_a_call_activity(self):
        funnel, ask, qualify, call, chase = self.qualification_funnel()
        lead_a, lead_b, lead_c = self.leads
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(self.leads)
            self.dispatch()
        self.assertEqual(
            set(self.funnel_trace(self.leads, ask).mapped("state")), {"queued"}
        )
        with freeze_time(TUESDAY_10H30_PARIS):
            self.reply(lead_a.phone, "oui", "SMreplyA")
            self.reply(lead_b.phone, "Yes", "SMreplyB")
            self.env.invalidate_all()
        with freeze_time(TUESDAY_12H05_PARIS):
            self.dispatch()
        for lead in lead_a | lead_b:
            self.assertEqual(lead.stage_id, self.stage_qualified)
            self.assertEqual(lead.tag_ids, self.tag_hot)
            self.assertEqual(self.funnel_trace(lead, qualify).state, "done")
            call_trace = self.funnel_trace(lead, call)
            self.assertEqual(call_trace.state, "done")
            activity = call_trace.activity_id
            self.assertEqual(activity.res_model, "crm.lead")
            self.assertEqual(activity.res_id, lead.id)
            self.assertEqual(activity.user_id, self.salesperson)
            self.assertEqual(activity.activity_type_id.name, "Call")
            self.assertEqual(activity.summary, "Call back: interested by SMS")
            self.assertEqual(activity.date_deadline, date(2026, 3, 11))
        note = str(activity_of(self, lead_a, call).note)
        self.assertIn("Lead A a répondu : oui", note)
        self.assertRegex(note, r"<blockquote[^>]*>oui</blockquote>", "reply quoted")
        self.assertEqual(lead_c.stage_id, self.stage_new, "no reply, no update")
        self.assertEqual(
            self.funnel_trace(lead_c, qualify).cancel_reason, "condition_not_met"
        )
        self.assertEqual(
            self.funnel_trace(lead_c, call).cancel_reason, "condition_not_met"
        )

        # the salesperson calls lead A the next morning, not lead B
        with freeze_time("2026-03-11 08:00:00"):
            activity_of(self, lead_a, call).with_user(self.salesperson).action_feedback(
                feedback="Rendez-vous pris"
            )
        self.assertTrue(self.funnel_trace(lead_a, call).activity_done_at)
        with freeze_time("2026-03-11 13:10:00"):
            self.dispatch()
        self.assertEqual(
            self.funnel_trace(lead_a, chase).cancel_reason, "condition_not_met"
        )
        self.assertEqual(self.funnel_trace(lead_b, chase).state, "queued")
        self.assertEqual(
            self.env["sms.sms"].sudo().search([("body", "like", "essayé")]).number,
            lead_b.phone_sanitized,
        )

    def test_crm_update_marks_won_and_reaches_the_goal(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Close the deal", "model_name": "crm.lead", "goal": "lead_won"}
        )
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Won",
                "step_type": "crm_update",
                "crm_outcome": "won",
            }
        )
        lead = self.leads[0]
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            enrollment = funnel._enroll(lead)
            self.dispatch()
        self.assertEqual(lead.won_status, "won")
        self.assertEqual(enrollment.trace_ids.state, "done")
        self.assertEqual(enrollment.state, "converted")

    def test_crm_update_marks_lost_with_a_reason(self):
        reason = self.env["crm.lost.reason"].create({"name": "No answer to SMS"})
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Clean up", "model_name": "crm.lead"}
        )
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Lost",
                "step_type": "crm_update",
                "crm_outcome": "lost",
                "crm_lost_reason_id": reason.id,
                "crm_tag_remove_ids": [(4, self.tag_cold.id)],
            }
        )
        lead = self.leads[2]
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(lead)
            self.dispatch()
        self.assertFalse(lead.active)
        self.assertEqual(lead.lost_reason_id, reason)
        self.assertFalse(lead.tag_ids)

    def test_activity_for_a_team_goes_to_the_least_loaded_member(self):
        busy = self.salesperson
        free = self.env["res.users"].create(
            {
                "name": "Free Seller",
                "login": "free_seller",
                "group_ids": [(4, self.env.ref("sales_team.group_sale_salesman").id)],
            }
        )
        team = self.env["crm.team"].create(
            {"name": "Callers", "member_ids": [(6, 0, (busy | free).ids)]}
        )
        self.env["mail.activity"].create(
            {
                "res_model_id": self.env["ir.model"]._get_id("crm.lead"),
                "res_id": self.leads[2].id,
                "user_id": busy.id,
                "activity_type_id": self.env.ref("mail.mail_activity_data_todo").id,
            }
        )
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Team call", "model_name": "crm.lead"}
        )
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Call",
                "step_type": "activity",
                "activity_type_id": self.env.ref("mail.mail_activity_data_call").id,
                "activity_assign": "team",
                "activity_team_id": team.id,
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(self.leads[0])
            self.dispatch()
        trace = self.funnel_trace(self.leads[0], step)
        self.assertEqual(trace.activity_id.user_id, free)
        self.assertEqual(trace.activity_user_id, free)

    def test_team_activities_of_one_batch_are_spread(self):
        """Activities assigned in one dispatch count as open activities."""
        busy = self.salesperson
        free = self.env["res.users"].create(
            {
                "name": "Free Seller",
                "login": "free_seller_batch",
                "group_ids": [(4, self.env.ref("sales_team.group_sale_salesman").id)],
            }
        )
        team = self.env["crm.team"].create(
            {"name": "Callers", "member_ids": [(6, 0, (busy | free).ids)]}
        )
        self.env["mail.activity"].create(
            {
                "res_model_id": self.env["ir.model"]._get_id("crm.lead"),
                "res_id": self.leads[2].id,
                "user_id": busy.id,
                "activity_type_id": self.env.ref("mail.mail_activity_data_todo").id,
            }
        )
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Team call", "model_name": "crm.lead"}
        )
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Call",
                "step_type": "activity",
                "activity_type_id": self.env.ref("mail.mail_activity_data_call").id,
                "activity_assign": "team",
                "activity_team_id": team.id,
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(self.leads[:3])
            self.dispatch()
        assigned = [
            self.funnel_trace(lead, step).activity_user_id for lead in self.leads[:3]
        ]
        # free (0) → free; then 1 each: the first member → busy; then free
        self.assertEqual(
            sorted(u.id for u in assigned), sorted([free.id, free.id, busy.id])
        )

    def test_missed_call_activity_enrols_in_the_callback_funnel(self):
        missed = self.env.ref("sms_microfunnel.mail_activity_type_call_missed")
        callback = self.env["sms.microfunnel.campaign"].create(
            {
                "name": "Callback",
                "model_name": "res.partner",
                "entry_activity_type_id": missed.id,
            }
        )
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": callback.id,
                "name": "Callback slot",
                "message_class": "transactional",
                "body": "Nous avons manqué votre appel. Rappel demain 10 h ?",
            }
        )
        lead = self.leads[0]
        lead.partner_id = self.anna
        with freeze_time(TUESDAY_10H_PARIS):
            callback.action_start()
            # a plain call done does not enroll
            lead.activity_schedule(
                "mail.mail_activity_data_call", user_id=self.salesperson.id
            ).action_feedback(feedback="OK")
            self.assertFalse(callback.enrollment_ids)
            lead.activity_schedule(
                "sms_microfunnel.mail_activity_type_call_missed",
                user_id=self.salesperson.id,
            ).with_user(self.salesperson).action_feedback(feedback="Messagerie")
            self.dispatch()
        enrollment = callback.enrollment_ids
        self.assertEqual(enrollment.res_id, self.anna.id, "the lead's contact")
        self.assertEqual(enrollment.values["feedback"], "Messagerie")
        self.assertEqual(enrollment.trace_ids.state, "queued")
        # callback funnels can target the leads themselves
        callback.action_stop()
        lead_callback = callback.copy(
            {"name": "Lead callback", "model_name": "crm.lead"}
        )
        lead_callback.action_start()
        lead.activity_schedule(
            "sms_microfunnel.mail_activity_type_call_missed",
            user_id=self.salesperson.id,
        ).action_done()
        self.assertEqual(lead_callback.enrollment_ids.res_id, lead.id)


def activity_of(case, lead, step):
    return case.funnel_trace(lead, step).activity_id


@tagged("post_install", "-at_install")
class TestChannelConfiguration(ChannelCase):
    def test_steps_are_checked_before_the_funnel_starts(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Incomplete", "model_name": "res.partner"}
        )
        Step = self.env["sms.microfunnel.step"]
        email = Step.create(
            {"campaign_id": funnel.id, "name": "Email", "step_type": "email"}
        )
        with self.assertRaisesRegex(UserError, "needs an email template"):
            funnel.action_start()
        email.mail_template_id = self.template
        crm = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Stage",
                "step_type": "crm_update",
                "crm_outcome": "won",
            }
        )
        with self.assertRaisesRegex(UserError, "CRM updates need a funnel on leads"):
            funnel.action_start()
        crm.unlink()
        sms = Step.create(
            {"campaign_id": funnel.id, "name": "SMS", "body": "Bonjour !"}
        )
        with self.assertRaisesRegex(ValidationError, "email conditions"):
            Step.create(
                {
                    "campaign_id": funnel.id,
                    "name": "After the SMS",
                    "parent_id": sms.id,
                    "wait_mode": "after_parent",
                    "condition": "opened",
                    "body": "x",
                }
            )
        with self.assertRaisesRegex(ValidationError, "made for the funnel's target"):
            lead_template = self.template.copy(
                {"model_id": self.env["ir.model"]._get_id("crm.lead")}
            )
            email.mail_template_id = lead_template
        funnel.action_start()
        self.assertEqual(funnel.state, "running")

    def test_target_models_are_the_phone_threads(self):
        models = dict(
            self.env["sms.microfunnel.campaign"]
            ._fields["model_name"]
            ._description_selection(self.env)
        )
        self.assertIn("res.partner", models)
        self.assertIn("crm.lead", models)
        self.assertNotIn("res.users", models, "no phone thread")
        self.assertNotIn("sms.microfunnel.trace", models)

    def test_dry_run_shows_the_email_step(self):
        funnel, _email_step, _sms_step = self.email_journey()
        lines = funnel._simulate(self.anna, datetime(2026, 3, 10, 9, 0))
        self.assertEqual(lines[0]["step_name"], "Invitation")
        self.assertEqual(lines[0]["outcome"], "allow")
        self.assertIn("Anna, our sales training", lines[0]["text"])
        self.assertEqual(lines[1]["step_name"], "Nudge the openers")
        self.assertEqual(lines[1]["due_at"], datetime(2026, 3, 12, 9, 0))
        blocked = funnel._simulate(self.blocked, datetime(2026, 3, 10, 9, 0))
        self.assertEqual(blocked[0]["reason"], "email_blacklisted")

    def test_email_delivery_reports_reach_the_funnel(self):
        funnel, email_step, _sms_step = self.email_journey()
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(self.anna | self.bruno)
            self.dispatch()
        anna = self.funnel_trace(self.anna, email_step)
        bruno = self.funnel_trace(self.bruno, email_step)
        anna.mailing_trace_id.set_sent()
        self.assertEqual(anna.state, "sent")
        anna.mailing_trace_id.set_bounced(bounce_message="550 unknown user")
        self.assertEqual(anna.state, "bounced")
        bruno.mailing_trace_id.set_failed(failure_type="mail_smtp")
        self.assertEqual(bruno.state, "failed")
        self.assertEqual(bruno.failure_type, "mail_smtp")
        anna.mailing_trace_id.set_sent()
        self.assertEqual(anna.state, "bounced", "a state never moves back")

    def test_email_replies_are_not_sms_replies(self):
        """An inbound SMS answers the last funnel SMS, not a later email."""
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Mixed", "model_name": "res.partner"}
        )
        Step = self.env["sms.microfunnel.step"]
        sms = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "SMS",
                "message_class": "transactional",
                "body": "Bonjour, une question ?",
            }
        )
        email = Step.create(
            {
                "campaign_id": funnel.id,
                "name": "Email",
                "step_type": "email",
                "mail_template_id": self.template.id,
                "parent_id": sms.id,
                "wait_mode": "after_parent",
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            funnel._enroll(self.anna)
            self.dispatch()
            self.dispatch()
        self.assertEqual(self.funnel_trace(self.anna, email).state, "queued")
        with freeze_time(TUESDAY_10H30_PARIS):
            self.env["sms.microfunnel.inbound"]._process_inbound(
                self.anna.phone, OUR_NUMBER, "Oui", "SMmixed"
            )
        self.env.invalidate_all()
        self.assertEqual(self.funnel_trace(self.anna, sms).reply_text, "Oui")
        self.assertFalse(self.funnel_trace(self.anna, email).replied_at)


@tagged("post_install", "-at_install")
class TestEmailStepTour(HttpCase):
    def test_add_an_email_step_to_a_funnel(self):
        template = self.env["mail.template"].create(
            {
                "name": "Webinar invitation",
                "model_id": self.env["ir.model"]._get_id("res.partner"),
                "subject": "Our webinar",
                "body_html": "<p>Join us!</p>",
            }
        )
        self.start_tour("/odoo", "sms_microfunnel_email_step_tour", login="admin")
        funnel = self.env["sms.microfunnel.campaign"].search(
            [("name", "=", "Webinar journey")]
        )
        self.assertEqual(len(funnel), 1)
        step = funnel.step_ids
        self.assertEqual(step.name, "Invitation")
        self.assertEqual(step.step_type, "email")
        self.assertEqual(step.mail_template_id, template)
