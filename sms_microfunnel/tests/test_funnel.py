# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from datetime import datetime
from unittest.mock import patch

from freezegun import freeze_time

from odoo.tests import tagged

from odoo.addons.base.models import ir_cron
from odoo.addons.sms_microfunnel.models import (
    sms_microfunnel_campaign,
    sms_microfunnel_enrollment,
)
from odoo.addons.sms_microfunnel.tests.common import (
    SUNDAY_11H_PARIS,
    TUESDAY_10H_PARIS,
    FunnelCase,
)


@tagged("post_install", "-at_install")
class TestFunnelDispatch(FunnelCase):
    def test_enrol_once_per_record(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            first = self.funnel._enroll(self.anna | self.bruno)
            again = self.funnel._enroll(self.anna)
        self.assertEqual(len(first), 2)
        self.assertFalse(again, "one enrollment per funnel and record")
        self.assertEqual(len(first.trace_ids), 2, "only root steps are scheduled")
        self.assertEqual(set(first.trace_ids.mapped("state")), {"scheduled"})

    def test_send_in_window_and_cancel_reasons(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna | self.no_consent | self.opted_out)
        sent = self.trace(self.anna, self.offer)
        self.assertEqual(sent.state, "queued")
        sms = self.outgoing(self.anna)
        self.assertEqual(len(sms), 1)
        self.assertIn("Bonjour Anna", sms.body)
        self.assertIn("STOP au 36111", sms.body)
        self.assertEqual(sms.body, sent.body)
        tracker = self.env["sms.tracker"].sudo().search([("sms_uuid", "=", sms.uuid)])
        self.assertTrue(sent.mailing_trace_id)
        self.assertEqual(tracker.mailing_trace_id, sent.mailing_trace_id)
        self.assertEqual(
            self.trace(self.no_consent, self.offer).cancel_reason, "no_consent"
        )
        self.assertEqual(
            self.trace(self.opted_out, self.offer).cancel_reason, "opted_out"
        )
        self.assertFalse(self.outgoing(self.no_consent) | self.outgoing(self.opted_out))
        # both branches are scheduled 1 h and 24 h after the offer
        self.assertEqual(
            self.trace(self.anna, self.reminder).due_at, datetime(2026, 3, 11, 9, 0)
        )
        self.assertEqual(
            self.trace(self.anna, self.thanks).due_at, datetime(2026, 3, 10, 10, 0)
        )

    def test_first_queued_message_carries_the_enrolment(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            self.funnel._enroll(self.anna)
        offer = self.trace(self.anna, self.offer)
        self.assertFalse(offer.first_attempt, "nothing queued yet")
        with freeze_time(TUESDAY_10H_PARIS):
            self.dispatch()
        self.assertTrue(offer.first_attempt)
        with freeze_time("2026-03-11 09:00:30"):
            self.dispatch()
        reminder = self.trace(self.anna, self.reminder)
        self.assertEqual(reminder.state, "queued")
        self.assertFalse(reminder.first_attempt)
        self.assertTrue(offer.first_attempt)
        # the analysis counts Anna once, on her first message
        rows = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "=", self.funnel.id)],
            ["trace_id"],
            ["recipient_count:sum"],
        )
        counts = dict(rows)
        self.assertEqual(counts.pop(offer), 1)
        self.assertEqual(counts.pop(reminder), 0)
        self.assertFalse(any(counts.values()))

    def test_window_closed_defers_then_resumes(self):
        with freeze_time(SUNDAY_11H_PARIS):
            self.start_and_dispatch(self.anna)
            trace = self.trace(self.anna, self.offer)
            self.assertEqual(trace.state, "deferred")
            self.assertEqual(trace.defer_reason, "window_closed")
            # Monday 08:00 in Paris
            self.assertEqual(trace.due_at, datetime(2026, 3, 16, 7, 0))
            self.assertFalse(self.outgoing(self.anna))
            trigger = self.env["ir.cron.trigger"].search(
                [("cron_id", "=", self.cron.id), ("call_at", "=", trace.due_at)]
            )
            self.assertTrue(trigger, "the dispatcher wakes itself at the opening")
        with freeze_time("2026-03-16 07:00:30"):
            self.dispatch()
        self.assertEqual(self.trace(self.anna, self.offer).state, "queued")
        self.assertEqual(len(self.outgoing(self.anna)), 1)

    def test_branches_clicked_and_not_clicked(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna | self.bruno)
        offer_anna = self.trace(self.anna, self.offer)
        offer_anna.mailing_trace_id.set_clicked()
        self.assertTrue(offer_anna.clicked_at)
        with freeze_time("2026-03-11 09:30:00"):
            self.dispatch()
        self.assertEqual(self.trace(self.anna, self.thanks).state, "queued")
        self.assertEqual(
            self.trace(self.anna, self.reminder).cancel_reason, "condition_not_met"
        )
        self.assertEqual(self.trace(self.bruno, self.reminder).state, "queued")
        self.assertEqual(
            self.trace(self.bruno, self.thanks).cancel_reason, "condition_not_met"
        )

    def test_delivery_reports_are_monotonic(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        tracker = (
            self.env["sms.tracker"]
            .sudo()
            .search([("mailing_trace_id", "=", trace.mailing_trace_id.id)])
        )
        tracker._action_update_from_sms_state("pending")
        self.assertEqual(trace.state, "sent")
        tracker._action_update_from_sms_state("sent")
        self.assertEqual(trace.state, "delivered")
        tracker._action_update_from_sms_state("pending")
        tracker._action_update_from_sms_state("error", failure_type="sms_server")
        self.assertEqual(trace.state, "delivered", "a late report never moves it back")

    def test_bounce_is_classified(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        trace = self.trace(self.anna, self.offer)
        trace.mailing_trace_id.sms_tracker_ids._action_update_from_sms_state(
            "error", failure_type="sms_number_format"
        )
        self.assertEqual(trace.state, "bounced")

    def test_reply_stop_exits_the_funnel(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            enrollment = self.funnel._enroll(self.anna)
            self.dispatch()
            # the provider took the SMS, then the contact answers STOP
            self.env["sms.sms"].sudo().search(
                [("number", "=", self.anna.phone)]
            )._update_sms_state_and_trackers("pending")
            self.env["sms.microfunnel.inbound"]._process_inbound(
                self.anna.phone, "36111", "STOP", "SM-reply-1", provider="test"
            )
        self.assertEqual(enrollment.state, "exited")
        self.assertIn(enrollment.exit_reason, ("replied_stop", "opted_out"))
        pending = enrollment.trace_ids.filtered(lambda t: t.step_id != self.offer)
        self.assertEqual(set(pending.mapped("cancel_reason")), {"exited"})
        self.assertTrue(self.trace(self.anna, self.offer).replied_at)

    def test_reply_yes_converts_when_it_is_the_goal(self):
        self.funnel.goal = "replied_yes"
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            enrollment = self.funnel._enroll(self.anna)
            self.dispatch()
            self.env["sms.microfunnel.inbound"]._process_inbound(
                self.anna.phone, "36111", "Oui", "SM-reply-2", provider="test"
            )
        self.assertEqual(enrollment.state, "converted")
        self.assertTrue(enrollment.converted_at)

    def test_paused_funnel_sends_nothing(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            self.funnel._enroll(self.anna)
            self.funnel.action_pause()
            self.dispatch()
        self.assertEqual(self.trace(self.anna, self.offer).state, "scheduled")
        self.assertFalse(self.outgoing(self.anna))

    def test_crash_between_queueing_and_commit_sends_once(self):
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            self.funnel._enroll(self.anna)
            Trace = self.env.registry["sms.microfunnel.trace"]
            original = Trace._schedule_children

            def crash(self_):
                raise RuntimeError("worker killed after queueing")

            with (
                patch.object(Trace, "_schedule_children", crash),
                self.assertRaises(RuntimeError),
                self.env.cr.savepoint(),
            ):
                trace = self.trace(self.anna, self.offer)
                trace._dispatch(trace, datetime(2026, 3, 10, 9, 0))
            self.env.invalidate_all()
            self.assertEqual(self.trace(self.anna, self.offer).state, "scheduled")
            self.assertFalse(self.outgoing(self.anna), "rolled back with the batch")
            self.assertIs(Trace._schedule_children, original)
            self.dispatch()
        self.assertEqual(len(self.outgoing(self.anna)), 1)
        self.assertEqual(self.trace(self.anna, self.offer).state, "queued")

    def test_ab_split(self):
        self.offer.write(
            {
                "variant_ids": [
                    (0, 0, {"name": "A", "body": "Offre A", "split_percent": 50}),
                    (0, 0, {"name": "B", "body": "Offre B", "split_percent": 50}),
                ]
            }
        )
        partners = self.env["res.partner"].create(
            [{"name": f"P{i}", "phone": f"+3361000000{i}"} for i in range(4)]
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            enrollments = self.funnel._enroll(partners)
        names = sorted(trace.variant_id.name for trace in enrollments.trace_ids)
        self.assertEqual(names, ["A", "A", "B", "B"])
        self.offer.winner_variant_id = self.offer.variant_ids[1]
        with freeze_time(TUESDAY_10H_PARIS):
            late = self.funnel._enroll(self.anna)
        self.assertEqual(late.trace_ids.variant_id.name, "B", "the winner takes over")

    def test_date_relative_step(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Webinar", "model_name": "crm.lead"}
        )
        deadline = self.env["ir.model.fields"]._get("crm.lead", "date_deadline")
        step = self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "24 h before",
                "wait_mode": "before_date",
                "wait_hours": 24,
                "date_field_id": deadline.id,
                "message_class": "transactional",
                "body": "Rappel : webinaire demain.",
            }
        )
        lead = self.env["crm.lead"].create(
            {
                "name": "Webinar lead",
                "phone": self.anna.phone,
                "date_deadline": "2026-03-20",
            }
        )
        undated = self.env["crm.lead"].create(
            {"name": "No date", "phone": "+33655555555"}
        )
        with freeze_time(TUESDAY_10H_PARIS):
            funnel.action_start()
            enrollments = funnel._enroll(lead | undated)
        traces = enrollments.trace_ids
        dated = traces.filtered(lambda t: t.enrollment_id.res_id == lead.id)
        self.assertEqual(dated.step_id, step)
        # the date means 09:00 in Paris (UTC+1 in March), 24 h before
        self.assertEqual(dated.due_at, datetime(2026, 3, 19, 8, 0))
        self.assertEqual(
            (traces - dated).cancel_reason, "no_date", "no date: canceled with a reason"
        )

    def test_lead_stage_automation_enrols(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Qualified leads", "model_name": "crm.lead"}
        )
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "Hello",
                "body": "Bonjour !",
                "message_class": "transactional",
            }
        )
        funnel.action_start()
        stage = self.env["crm.stage"].create({"name": "Qualified (SMS)"})
        model = self.env["ir.model"]._get("crm.lead")
        action = self.env["ir.actions.server"].create(
            {
                "name": "Enroll in SMS funnel",
                "model_id": model.id,
                "state": "sms_funnel",
                "sms_funnel_id": funnel.id,
            }
        )
        self.env["base.automation"].create(
            {
                "name": "Stage → SMS funnel",
                "model_id": model.id,
                "trigger": "on_stage_set",
                "trg_field_ref": stage.id,
                "action_server_ids": [(4, action.id)],
            }
        )
        lead = self.env["crm.lead"].create({"name": "Lead", "phone": self.anna.phone})
        self.assertFalse(funnel.enrollment_ids)
        lead.stage_id = stage
        self.assertEqual(funnel.enrollment_ids.res_id, lead.id)

    def test_dry_run(self):
        with freeze_time(SUNDAY_11H_PARIS):
            lines = self.funnel._simulate(self.anna)
        by_step = {line["step_name"]: line for line in lines}
        self.assertEqual(by_step["Offer"]["outcome"], "defer")
        self.assertEqual(by_step["Offer"]["send_at"], datetime(2026, 3, 16, 7, 0))
        self.assertIn("08:00", by_step["Offer"]["local_time"])
        self.assertIn("Bonjour Anna", by_step["Offer"]["text"])
        self.assertGreaterEqual(by_step["Offer"]["segments"], 1)
        self.assertEqual(by_step["Reminder"]["due_at"], datetime(2026, 3, 17, 7, 0))
        self.assertFalse(self.env["sms.microfunnel.trace"].search_count([]))
        self.assertFalse(self.outgoing(self.anna), "a dry-run sends nothing")

    def test_funnel_sends_count_towards_the_frequency_cap(self):
        policy = self.env.ref("sms_microfunnel.sms_policy_fr")
        policy.write({"cap_count": 1, "cap_hours": 24})
        capped = self.second_funnel_after_the_first()
        self.assertEqual(capped.state, "deferred")
        self.assertEqual(capped.defer_reason, "frequency_cap")
        self.assertEqual(
            capped.due_at, datetime(2026, 3, 11, 9, 0), "24 h after the first"
        )
        self.assertEqual(len(self.outgoing(self.anna)), 1)

    def test_a_funnel_sms_counts_once_towards_the_frequency_cap(self):
        """A funnel SMS has its funnel trace and its SMS mailing trace: the cap
        counts the message, not both records."""
        policy = self.env.ref("sms_microfunnel.sms_policy_fr")
        policy.write({"cap_count": 2, "cap_hours": 24})
        second = self.second_funnel_after_the_first()
        self.assertEqual(second.state, "queued", second.defer_reason)
        self.assertEqual(len(self.outgoing(self.anna)), 2)

    def test_lead_goals_convert_and_exit(self):
        won_stage = self.env["crm.stage"].search([("is_won", "=", True)], limit=1)
        qualified = self.env["crm.stage"].create({"name": "Qualified (goal)"})
        by_stage = self.env["sms.microfunnel.campaign"].create(
            {
                "name": "Stage goal",
                "model_name": "crm.lead",
                "goal": "stage_reached",
                "goal_stage_id": qualified.id,
            }
        )
        by_win = self.env["sms.microfunnel.campaign"].create(
            {"name": "Won goal", "model_name": "crm.lead", "goal": "lead_won"}
        )
        for funnel in by_stage | by_win:
            self.env["sms.microfunnel.step"].create(
                {
                    "campaign_id": funnel.id,
                    "name": "Hi",
                    "body": "Bonjour",
                    "message_class": "transactional",
                    "wait_hours": 48,
                }
            )
        lead = self.env["crm.lead"].create(
            {"name": "Goal lead", "phone": self.anna.phone}
        )
        with freeze_time(TUESDAY_10H_PARIS):
            (by_stage | by_win).action_start()
            stage_enrollment = by_stage._enroll(lead)
            win_enrollment = by_win._enroll(lead)
            lead.stage_id = qualified
            self.assertEqual(stage_enrollment.state, "converted")
            self.assertEqual(win_enrollment.state, "active")
            self.assertEqual(
                stage_enrollment.trace_ids.cancel_reason,
                "exited",
                "a converted contact gets no more steps",
            )
            lead.stage_id = won_stage
            self.assertEqual(win_enrollment.state, "converted")

    def test_conversion_outside_the_attribution_window_does_not_count(self):
        self.funnel.write({"goal": "replied_yes", "attribution_hours": 24})
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            enrollment = self.funnel._enroll(self.anna)
        with freeze_time("2026-03-12 09:00:00"):
            enrollment._mark_converted()
        self.assertEqual(enrollment.state, "active")
        self.assertFalse(enrollment.converted_at)

    def test_ab_winner_by_click_rate_after_the_delay(self):
        self.offer.write(
            {
                "ab_winner_mode": "click_rate",
                "ab_decision_hours": 24,
                "variant_ids": [
                    (0, 0, {"name": "A", "body": "Offre A", "split_percent": 50}),
                    (0, 0, {"name": "B", "body": "Offre B", "split_percent": 50}),
                ],
            }
        )
        Event = self.env["sms.microfunnel.consent.event"]
        partners = self.env["res.partner"].create(
            [
                {"name": f"AB{i}", "phone": f"+3361200000{i}", "tz": "Europe/Paris"}
                for i in range(4)
            ]
        )
        Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": p.phone,
                    "source": "manual",
                    "wording": "OK",
                    "event_date": datetime(2026, 1, 5),
                }
                for p in partners
            ]
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(partners)
        traces = self.env["sms.microfunnel.trace"].search(
            [("step_id", "=", self.offer.id)]
        )
        clicked_b = traces.filtered(lambda t: t.variant_id.name == "B")[:1]
        clicked_b.mailing_trace_id.set_clicked()
        with freeze_time("2026-03-10 20:00:00"):
            self.dispatch()
        self.assertFalse(self.offer.winner_variant_id, "too early to decide")
        with freeze_time("2026-03-11 09:30:00"):
            self.dispatch()
        self.assertEqual(self.offer.winner_variant_id.name, "B")

    def test_scheduled_enrolment_of_the_audience(self):
        self.funnel.write(
            {
                "domain": f"[('id', 'in', {[self.anna.id, self.bruno.id]})]",
                "enroll_at": "2026-03-10 09:30:00",
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            self.dispatch()
            self.assertFalse(self.funnel.enrollment_ids)
        with freeze_time("2026-03-10 09:31:00"):
            self.dispatch()
        self.assertEqual(len(self.funnel.enrollment_ids), 2)
        self.assertTrue(self.funnel.audience_enrolled_at)
        self.assertEqual(len(self.outgoing(self.anna)), 1, "sent in the same run")

    def test_scheduled_enrolment_commits_chunks_and_resumes(self):
        """The dispatch job enrolls an audience chunk by chunk, committed:
        a run whose time is up stops between two chunks, and the next run
        goes on with the records not in yet, none enrolled twice."""
        audience = self.anna | self.bruno | self.no_consent | self.opted_out
        self.funnel.write(
            {
                "domain": f"[('id', 'in', {audience.ids})]",
                "enroll_at": "2026-03-10 08:00:00",
            }
        )
        enrolled, finished = [], []
        with (
            freeze_time(TUESDAY_10H_PARIS),
            patch.object(sms_microfunnel_enrollment, "ENROL_CHUNK", 1),
            # every run of a job has no time left after its first commit
            patch.object(ir_cron, "MIN_TIME_PER_JOB", 0),
            patch.object(ir_cron, "MIN_RUNS_PER_JOB", 1),
        ):
            self.funnel.action_start()
            for _run in range(4):
                self.dispatch()
                enrolled.append(len(self.funnel.enrollment_ids))
                finished.append(bool(self.funnel.audience_enrolled_at))
        self.assertEqual(enrolled, [1, 2, 3, 4])
        self.assertEqual(finished, [False, False, False, True])
        self.assertEqual(
            sorted(self.funnel.enrollment_ids.mapped("res_id")), sorted(audience.ids)
        )
        for partner in audience:
            self.assertEqual(len(self.trace(partner, self.offer)), 1)
        self.assertEqual(len(self.outgoing(self.anna)), 1)

    def test_enrolling_a_large_audience_is_left_to_the_dispatch_job(self):
        self.funnel.domain = f"[('id', 'in', {(self.anna | self.bruno).ids})]"
        with (
            freeze_time(TUESDAY_10H_PARIS),
            patch.object(sms_microfunnel_campaign, "ENROL_NOW_MAX", 1),
        ):
            self.funnel.action_start()
            action = self.funnel.action_enroll_audience()
            self.assertIn("in the background", action["params"]["message"])
            self.assertFalse(self.funnel.enrollment_ids, "not while the user waits")
            self.assertEqual(self.funnel.enroll_at, datetime(2026, 3, 10, 9, 0))
            self.dispatch()
        self.assertEqual(len(self.funnel.enrollment_ids), 2)
        self.assertTrue(self.funnel.audience_enrolled_at)
        self.assertEqual(len(self.outgoing(self.anna)), 1)
        # an audience of at most ENROL_NOW_MAX records is enrolled at once
        self.funnel.domain = f"[('id', 'in', {(self.anna | self.no_consent).ids})]"
        with freeze_time(TUESDAY_10H_PARIS):
            action = self.funnel.action_enroll_audience()
        self.assertIn("1 records enrolled", action["params"]["message"])
        self.assertEqual(len(self.funnel.enrollment_ids), 3)

    def test_send_test_and_timeline(self):
        wizard = self.env["sms.microfunnel.send.test"].create(
            {
                "campaign_id": self.funnel.id,
                "step_id": self.offer.id,
                "number": "06 99 88 77 66",
            }
        )
        wizard.action_send()
        test_sms = self.env["sms.sms"].sudo().search([("number", "=", "+33699887766")])
        self.assertEqual(len(test_sms), 1)
        self.assertIn("STOP au 36111", test_sms.body)
        self.assertFalse(self.env["sms.microfunnel.trace"].search_count([]))
        with freeze_time(TUESDAY_10H_PARIS):
            self.start_and_dispatch(self.anna)
        self.anna.invalidate_recordset()
        self.assertEqual(self.anna.sms_funnel_trace_count, 3)
        action = self.anna.action_view_sms_funnel_timeline()
        self.assertEqual(
            self.env["sms.microfunnel.trace"].search_count(action["domain"]), 3
        )

    def test_preflight_from_the_funnel(self):
        self.funnel.domain = f"[('id', 'in', {[self.anna.id, self.no_consent.id]})]"
        action = self.funnel.action_preflight()
        wizard = (
            self.env["sms.microfunnel.preflight"]
            .with_context(**action["context"])
            .create({})
        )
        self.assertEqual(wizard.res_model, "res.partner")
        self.assertEqual(wizard.scope, f"sms.microfunnel.campaign,{self.funnel.id}")

    def test_dry_run_of_a_date_relative_step(self):
        funnel = self.env["sms.microfunnel.campaign"].create(
            {"name": "Webinar dry-run", "model_name": "crm.lead"}
        )
        self.env["sms.microfunnel.step"].create(
            {
                "campaign_id": funnel.id,
                "name": "24 h before",
                "wait_mode": "before_date",
                "wait_hours": 24,
                "date_field_id": self.env["ir.model.fields"]
                ._get("crm.lead", "date_deadline")
                .id,
                "message_class": "transactional",
                "body": "Rappel : webinaire demain.",
            }
        )
        lead = self.env["crm.lead"].create(
            {
                "name": "Dry-run lead",
                "phone": self.anna.phone,
                "date_deadline": "2026-03-20",
            }
        )
        with freeze_time(TUESDAY_10H_PARIS):
            (line,) = funnel._simulate(lead)
        self.assertEqual(line["due_at"], datetime(2026, 3, 19, 8, 0))
        self.assertEqual(line["outcome"], "allow")
