# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import itertools
from datetime import datetime
from unittest.mock import patch
from zoneinfo import ZoneInfo

from freezegun import freeze_time

from odoo.exceptions import AccessError, ConcurrencyError
from odoo.tests import TransactionCase, new_test_user, tagged

from odoo.addons.sms_microfunnel.models.sms_microfunnel_inbound import (
    PROCESS_CRON,
    SmsMicrofunnelInbound,
)
from odoo.addons.sms_microfunnel.tools import sms_keywords

OUR_NUMBER = "+33700000001"
CONTACT_NUMBER = object()  # receive(): the test contact's number
EXPECTED_CLASSIFICATION = {
    "opt_out": "opt_out",
    "opt_in": "opt_in",
    "help": "help",
    # a YES with nothing pending and no keyword opt-out is a plain reply
    "confirm": "reply",
}


@tagged("post_install", "-at_install")
class TestInboundSms(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Inbound = cls.env["sms.microfunnel.inbound"]
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.company = cls.env.company
        cls.company.write(
            {
                "country_id": cls.env.ref("base.fr").id,
                "phone": "+33 1 84 88 00 00",
                "sms_funnel_sender_label": "ACME",
            }
        )
        cls.salesperson = new_test_user(
            cls.env,
            login="smf_inbound_sales",
            name="Sam Sales",
            groups="sales_team.group_sale_salesman",
        )
        cls.user = new_test_user(
            cls.env,
            login="smf_inbound_user",
            groups="sms_microfunnel.group_sms_funnel_user",
        )
        cls.manager = new_test_user(
            cls.env,
            login="smf_inbound_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )
        cls.employee = new_test_user(
            cls.env, login="smf_inbound_employee", groups="base.group_user"
        )
        cls.partner = cls.env["res.partner"].create(
            {
                "name": "Camille Martin",
                "phone": "06 12 34 56 01",
                "country_id": cls.env.ref("base.fr").id,
                "lang": "en_US",
                "user_id": cls.salesperson.id,
            }
        )
        cls.number = "+33612345601"
        cls._numbers = (f"+3367{n:07d}" for n in itertools.count(1))
        cls._sids = (f"SM{n:032d}" for n in itertools.count(1))

    # -- helpers ----------------------------------------------------------------

    def new_number(self):
        return next(self._numbers)

    def receive(self, body, number=CONTACT_NUMBER, sid=None, **kw):
        return self.Inbound._process_inbound(
            self.number if number is CONTACT_NUMBER else number,
            OUR_NUMBER,
            body,
            sid or next(self._sids),
            **kw,
        )

    def sms_to(self, number):
        return self.env["sms.sms"].sudo().search([("number", "=", number)])

    def events(self, number, event_type=None):
        domain = [("number", "=", number)]
        if event_type:
            domain.append(("event_type", "=", event_type))
        return self.Event.sudo().search(domain)

    def blacklisted(self, number):
        return bool(
            self.env["phone.blacklist"].sudo().search([("number", "=", number)])
        )

    def state(self, number):
        return self.Consent._get_states([number])[number]

    def grant(self, number, partner=None):
        """A proven marketing consent for ``number``."""
        return self.Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": number,
                    "partner_id": partner.id if partner else False,
                    "source": "web_form",
                    "method": "checkbox",
                    "wording": "I agree to receive SMS offers from ACME.",
                    "wording_version": "1",
                }
            ]
        )

    # -- keywords -----------------------------------------------------------------

    def test_every_keyword_of_every_language(self):
        """Each word of the keyword table, as sent and in capitals, is acted on."""
        for lang, table in sms_keywords.KEYWORDS.items():
            for action, words in table.items():
                for word, variant in itertools.product(
                    sorted(words), ("as_is", "upper", "joined")
                ):
                    if variant == "joined" and " " not in word:
                        continue
                    body = {
                        "as_is": word,
                        "upper": word.upper(),
                        "joined": word.replace(" ", "").upper(),
                    }[variant]
                    with self.subTest(lang=lang, action=action, body=body):
                        number = self.new_number()
                        inbound = self.receive(body, number=number)
                        self.assertEqual(inbound.keyword_action, action)
                        self.assertEqual(
                            inbound.classification, EXPECTED_CLASSIFICATION[action]
                        )
                        self.assertIn(
                            inbound.language,
                            {
                                code
                                for code, tbl in sms_keywords.KEYWORDS.items()
                                if word in tbl[action]
                            },
                        )
                        sms = self.sms_to(number)
                        if action == "opt_out":
                            self.assertTrue(self.blacklisted(number))
                            self.assertEqual(len(self.events(number, "opt_out")), 1)
                            self.assertEqual(len(sms), 1)
                        elif action == "help":
                            self.assertEqual(len(sms), 1)
                            self.assertFalse(self.events(number))
                        else:
                            # nothing to restore and nothing pending: no consent
                            self.assertFalse(self.events(number))
                            self.assertFalse(sms)

    def test_normalisation_variants_opt_out(self):
        for body in (
            "  Stop. ",
            "arrêt",
            "ARRET",
            "ARRÊTE",
            "stop 🙏",
            "ＳＴＯＰ",
            "\u00a0STOP\u200b",
            "Stop all",
            "opt-out",
            "Désabonner",
            "STOP merci",
        ):
            with self.subTest(body=body):
                number = self.new_number()
                inbound = self.receive(body, number=number)
                self.assertEqual(inbound.classification, "opt_out")
                self.assertEqual(inbound.body, body, "the raw body is kept unchanged")
                self.assertTrue(self.blacklisted(number))
                self.assertEqual(len(self.sms_to(number)), 1)

    def test_words_containing_a_keyword_are_replies(self):
        for body in ("stopover in Paris?", "nonstop", "I can't stop smiling"):
            with self.subTest(body=body):
                number = self.new_number()
                inbound = self.receive(body, number=number)
                self.assertEqual(inbound.classification, "reply")
                self.assertFalse(self.blacklisted(number))
                self.assertFalse(self.events(number))

    def test_free_text_opt_out_french_and_english_reply_in_that_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        self.company.with_context(
            lang="fr_FR"
        ).sms_text_stop = (
            "{company} : vous êtes désinscrit. Répondez START pour revenir."
        )
        french = self.new_number()
        inbound = self.receive("Merci de ne plus m'envoyer de SMS", number=french)
        self.assertEqual(inbound.classification, "opt_out")
        self.assertEqual(inbound.language, "fr")
        self.assertTrue(self.blacklisted(french))
        self.assertEqual(
            self.sms_to(french).body,
            "ACME : vous êtes désinscrit. Répondez START pour revenir.",
        )
        english = self.new_number()
        inbound = self.receive("Please stop texting me", number=english)
        self.assertEqual(inbound.classification, "opt_out")
        self.assertEqual(inbound.language, "en")
        self.assertTrue(self.blacklisted(english))
        self.assertIn("you are unsubscribed", self.sms_to(english).body)

    def test_contact_language_wins_over_keyword_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        self.company.with_context(lang="fr_FR").sms_text_help = "{company} : aide."
        self.partner.lang = "fr_FR"
        inbound = self.receive("HELP")
        self.assertEqual(inbound.language, "en")
        self.assertEqual(self.sms_to(self.number).body, "ACME : aide.")

    # -- idempotency -------------------------------------------------------------

    def test_duplicate_provider_message_is_processed_once(self):
        first = self.receive("STOP", sid="SMdup")
        second = self.receive("STOP", sid="SMdup")
        self.assertEqual(second, first)
        self.assertEqual(
            self.Inbound.search_count([("provider_message_id", "=", "SMdup")]), 1
        )
        self.assertEqual(len(self.events(self.number)), 1)
        self.assertEqual(len(self.sms_to(self.number)), 1)
        # the same id from another provider is another message
        other = self.receive("HELP", sid="SMdup", provider="other")
        self.assertNotEqual(other, first)

    def test_concurrent_duplicate_returns_the_existing_row(self):
        """The pre-check misses a row inserted meanwhile: the unique index wins."""
        first = self.receive("STOP", sid="SMrace")
        real = SmsMicrofunnelInbound._find_received
        calls = []

        def miss_once(model, provider, message_id):
            calls.append(message_id)
            if len(calls) == 1:
                return model.browse()
            return real(model, provider, message_id)

        with patch.object(SmsMicrofunnelInbound, "_find_received", miss_once):
            again = self.receive("STOP", sid="SMrace")
        self.assertEqual(len(calls), 2, "the unique index was hit")
        self.assertEqual(again, first)
        self.assertEqual(len(self.events(self.number)), 1)
        self.assertEqual(len(self.sms_to(self.number)), 1)

    def test_concurrent_duplicate_not_yet_visible_asks_for_a_retry(self):
        self.receive("STOP", sid="SMretry")
        count = self.Inbound.search_count([])
        with (
            patch.object(
                SmsMicrofunnelInbound,
                "_find_received",
                lambda model, provider, message_id: model.browse(),
            ),
            self.assertRaises(ConcurrencyError),
        ):
            self.receive("STOP", sid="SMretry")
        self.assertEqual(self.Inbound.search_count([]), count)
        self.assertEqual(len(self.sms_to(self.number)), 1)

    # -- stored by a webhook, processed by the inbound job -----------------------

    def store(self, body, received_at, sid):
        vals = self.Inbound._received_vals(
            self.number, OUR_NUMBER, body, sid, received_at=received_at
        )
        return self.Inbound.browse(self.Inbound._store_received(vals))

    def run_job(self):
        IrCron = type(self.env["ir.cron"])
        with patch.object(IrCron, "_commit_progress", lambda *a, **kw: 1.0):
            self.Inbound._cron_process_received(batch_size=2)
        self.env.invalidate_all()

    def test_job_processes_stored_messages_in_arrival_order(self):
        self.grant(self.number, self.partner)
        # stored out of order: the job follows the time Twilio received them
        later = self.store("START", datetime(2026, 3, 2, 9, 0, 5), "SMjob2")
        first = self.store("STOP", datetime(2026, 3, 2, 9, 0, 0), "SMjob1")
        third = self.store("Bonjour ?", datetime(2026, 3, 2, 9, 0, 9), "SMjob3")
        self.assertFalse(self.store("STOP", datetime(2026, 3, 2, 9), "SMjob1"))
        self.assertEqual((first | later | third).mapped("processed"), [False] * 3)
        self.assertEqual(self.state(self.number), "confirmed")
        self.run_job()
        self.assertEqual((first | later | third).mapped("processed"), [True] * 3)
        self.assertEqual(first.classification, "opt_out")
        self.assertEqual(later.classification, "opt_in")
        self.assertEqual(third.classification, "reply")
        self.assertEqual(first.partner_id, self.partner)
        # STOP then START, as sent: subscribed again (the other order would
        # have left the number opted out)
        self.assertEqual(self.state(self.number), "confirmed")
        self.assertEqual(len(self.events(self.number, "opt_out")), 1)
        self.assertEqual(len(self.events(self.number, "re_opt_in")), 1)
        self.run_job()  # nothing left to do: nothing done twice
        self.assertEqual(len(self.events(self.number, "opt_out")), 1)
        self.assertEqual(len(self.sms_to(self.number)), 2, "STOP and START replies")

    def test_a_burst_of_stored_messages_wakes_the_job_once(self):
        """Each wake-up (NOTIFY) opens a connection to the ``postgres``
        database: a message stored while the job's trigger is already due adds
        neither a trigger nor a wake-up; once the job ran (its due triggers
        cleared), the next message wakes it again."""
        cron = self.env.ref(PROCESS_CRON)
        Trigger = self.env["ir.cron.trigger"].sudo()
        Trigger.search([("cron_id", "=", cron.id)]).unlink()
        self.env.cr.postcommit.clear()

        def wake_ups():
            return sum(
                getattr(func, "__name__", "") == "_notifydb"
                for func in self.env.cr.postcommit._funcs
            )

        for index in range(3):
            self.assertTrue(self.store("Bonjour", None, f"SMburst{index}"))
        self.assertEqual(wake_ups(), 1)
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), 1)
        # the job ran: its due triggers are gone
        Trigger.search([("cron_id", "=", cron.id)]).unlink()
        self.assertTrue(self.store("Bonjour", None, "SMburst3"))
        self.assertEqual(wake_ups(), 2)
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), 1)

    # -- STOP ------------------------------------------------------------------

    def test_stop_blacklists_records_event_and_confirms_once(self):
        self.grant(self.number, self.partner)
        inbound = self.receive("STOP", sid="SMstop1")
        self.assertEqual(inbound.classification, "opt_out")
        self.assertEqual(inbound.from_number, self.number)
        self.assertEqual(inbound.partner_id, self.partner)
        self.assertTrue(self.blacklisted(self.number))
        self.assertEqual(self.state(self.number), "withdrawn")
        event = inbound.sudo().consent_event_id
        self.assertEqual(event, self.events(self.number, "opt_out"))
        self.assertRecordValues(
            event,
            [
                {
                    "source": "keyword_sms",
                    "method": "keyword",
                    "provider_message_id": "SMstop1",
                    "raw_text": "STOP",
                    "source_ref": OUR_NUMBER,
                    "partner_id": self.partner.id,
                }
            ],
        )
        sms = self.sms_to(self.number)
        self.assertEqual(len(sms), 1)
        self.assertEqual(sms.state, "outgoing")
        self.assertEqual(sms.partner_id, self.partner)
        self.assertEqual(inbound.sudo().reply_sms_id, sms)
        self.assertIn("ACME: you are unsubscribed", sms.body)
        self.assertIn("recorded", inbound.action_taken)
        # the message and what was done are on the contact's chatter
        note = self.partner.message_ids.filtered(
            lambda m: "SMS received from" in (m.body or "")
        )
        self.assertEqual(len(note), 1)
        self.assertIn("STOP", note.body)
        self.assertIn("Opted out", note.body)

    def test_second_stop_is_logged_without_second_confirmation(self):
        self.receive("STOP")
        second = self.receive("stop please")
        self.assertEqual(second.classification, "opt_out")
        self.assertEqual(len(self.events(self.number, "opt_out")), 2)
        self.assertEqual(len(self.sms_to(self.number)), 1)
        self.assertFalse(second.sudo().reply_sms_id)
        self.assertIn("already opted out", second.action_taken)

    def test_provider_replied_sends_nothing(self):
        inbound = self.receive("STOP", provider="twilio", provider_replied=True)
        self.assertTrue(self.blacklisted(self.number))
        self.assertTrue(inbound.provider_replied)
        self.assertFalse(self.sms_to(self.number))
        other = self.new_number()
        self.receive("HELP", number=other, provider="twilio", provider_replied=True)
        self.assertFalse(self.sms_to(other))

    def test_unknown_sender_stop_is_still_blacklisted(self):
        number = self.new_number()
        inbound = self.receive("STOP", number=number)
        self.assertFalse(inbound.partner_id)
        self.assertFalse(inbound.lead_id)
        self.assertTrue(self.blacklisted(number))
        self.assertEqual(len(self.events(number, "opt_out")), 1)
        self.assertEqual(len(self.sms_to(number)), 1)

    # -- START / YES -------------------------------------------------------------

    def test_start_after_stop_unblacklists_and_confirms(self):
        consent = self.grant(self.number, self.partner)
        self.receive("STOP")
        inbound = self.receive("START")
        self.assertEqual(inbound.classification, "opt_in")
        self.assertFalse(self.blacklisted(self.number))
        event = inbound.sudo().consent_event_id
        self.assertEqual(event.event_type, "re_opt_in")
        self.assertEqual(event.wording, consent.wording)
        self.assertTrue(event.proven)
        self.assertEqual(self.state(self.number), "confirmed")
        sms = self.sms_to(self.number).sorted("id")
        self.assertEqual(len(sms), 2)
        self.assertIn("subscribed again", sms[-1].body)

    def test_start_from_suppressed_number_is_refused(self):
        self.receive("STOP")
        self.env["sms.microfunnel.suppression"]._suppress([self.number])
        inbound = self.receive("UNSTOP")
        self.assertEqual(inbound.classification, "opt_in")
        self.assertIn("refused", inbound.action_taken)
        self.assertFalse(self.events(self.number, "re_opt_in"))
        self.assertTrue(self.blacklisted(self.number))
        self.assertEqual(len(self.sms_to(self.number)), 1, "only the STOP reply")

    def test_yes_with_pending_double_opt_in_confirms_it(self):
        self.Consent._request_doi(
            self.number,
            company=self.company,
            partner=self.partner,
            source="web_form",
            method="checkbox",
            wording="I agree to receive SMS offers from ACME.",
        )
        self.assertEqual(self.state(self.number), "pending")
        inbound = self.receive("Yes!", sid="SMyes")
        self.assertEqual(inbound.classification, "confirm")
        event = inbound.sudo().consent_event_id
        self.assertRecordValues(
            event,
            [
                {
                    "event_type": "confirmed",
                    "method": "keyword",
                    "source": "keyword_sms",
                    "provider_message_id": "SMyes",
                    "raw_text": "Yes!",
                }
            ],
        )
        self.assertEqual(self.state(self.number), "confirmed")
        reply = self.sms_to(self.number).sorted("id")[-1]
        self.assertEqual(inbound.sudo().reply_sms_id, reply)
        self.assertIn("you are subscribed", reply.body)

    def test_oui_after_keyword_opt_out_is_a_re_opt_in(self):
        self.grant(self.number, self.partner)
        self.receive("ARRET")
        inbound = self.receive("OUI")
        self.assertEqual(inbound.keyword_action, "confirm")
        self.assertEqual(inbound.classification, "opt_in")
        self.assertEqual(inbound.sudo().consent_event_id.event_type, "re_opt_in")
        self.assertFalse(self.blacklisted(self.number))
        self.assertEqual(self.state(self.number), "confirmed")

    def test_yes_with_nothing_pending_is_a_reply_for_the_salesperson(self):
        number = self.new_number()
        lead = self.env["crm.lead"].create(
            {
                "name": "Webinar seat",
                "phone": number,
                "user_id": self.salesperson.id,
            }
        )
        inbound = self.receive("YES", number=number)
        self.assertEqual(inbound.classification, "reply")
        self.assertEqual(inbound.keyword_action, "confirm")
        self.assertEqual(inbound.lead_id, lead)
        self.assertFalse(self.events(number))
        self.assertFalse(self.sms_to(number))
        activity = lead.activity_ids
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, self.salesperson)
        self.assertEqual(
            activity.activity_type_id, self.env.ref("mail.mail_activity_data_todo")
        )
        self.assertIn("YES", str(activity.note))
        self.assertTrue(
            lead.message_ids.filtered(lambda m: "YES" in (m.body or "")),
            "the reply is on the lead's chatter",
        )

    def test_free_text_reply_goes_to_the_contact_salesperson(self):
        inbound = self.receive("What time is the webinar?")
        self.assertEqual(inbound.classification, "reply")
        self.assertFalse(inbound.needs_review)
        activity = self.partner.activity_ids
        self.assertEqual(activity.user_id, self.salesperson)
        self.assertIn("What time is the webinar?", str(activity.note))
        # without a salesperson: logged, no activity
        self.partner.user_id = False
        self.receive("Thanks!")
        self.assertEqual(len(self.partner.activity_ids), 1)

    def test_ambiguous_stop_is_flagged_for_review(self):
        inbound = self.receive("stop, what time is the webinar?")
        self.assertEqual(inbound.classification, "reply")
        self.assertTrue(inbound.needs_review)
        self.assertFalse(self.blacklisted(self.number))

    # -- HELP ----------------------------------------------------------------

    def test_help_replies_with_company_contact_and_changes_no_consent(self):
        inbound = self.receive("aide")
        self.assertEqual(inbound.classification, "help")
        sms = self.sms_to(self.number)
        self.assertEqual(len(sms), 1)
        self.assertIn(self.company.phone, sms.body)
        self.assertEqual(inbound.reply_body, sms.body)
        self.assertFalse(self.events(self.number))
        self.assertFalse(self.blacklisted(self.number))

    def test_help_from_opted_out_number_gets_no_reply(self):
        self.receive("STOP")
        inbound = self.receive("HELP")
        self.assertEqual(inbound.classification, "help")
        self.assertEqual(len(self.sms_to(self.number)), 1, "only the STOP reply")

    # -- bad input ---------------------------------------------------------------

    def test_malformed_sender_is_stored_without_action(self):
        for raw in ("not-a-number", "12", "", None):
            with self.subTest(raw=raw):
                count = self.Event.search_count([])
                inbound = self.receive("STOP", number=raw)
                self.assertTrue(inbound)
                self.assertFalse(inbound.from_number)
                self.assertEqual(inbound.from_number_raw, raw or False)
                self.assertEqual(inbound.classification, "opt_out")
                self.assertEqual(inbound.body, "STOP")
                self.assertIn("not a valid phone number", inbound.action_taken)
                self.assertEqual(self.Event.search_count([]), count)

    def test_nul_characters_do_not_lose_the_message(self):
        inbound = self.receive("STOP\x00", number="+33612345601\x00")
        self.assertEqual(inbound.body, "STOP\ufffd")
        self.assertEqual(inbound.classification, "opt_out")
        self.assertTrue(self.blacklisted(self.number))

    def test_empty_body(self):
        inbound = self.receive("", sid="SMempty")
        self.assertEqual(inbound.classification, "none")
        self.assertFalse(self.sms_to(self.number))

    def test_received_at_is_stored_in_utc(self):
        paris = datetime(2025, 6, 2, 10, 30, tzinfo=ZoneInfo("Europe/Paris"))
        inbound = self.receive("hello", received_at=paris)
        self.assertEqual(inbound.received_at, datetime(2025, 6, 2, 8, 30))
        inbound = self.receive("hello", received_at="2025-06-02T10:30:00+02:00")
        self.assertEqual(inbound.received_at, datetime(2025, 6, 2, 8, 30))
        with freeze_time("2025-07-01 12:00:00"):
            inbound = self.receive("hello")
        self.assertEqual(inbound.received_at, datetime(2025, 7, 1, 12, 0))

    # -- matching -------------------------------------------------------------------

    def test_contact_matched_by_sanitized_number_within_the_company(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        self.env["res.partner"].create(
            {
                "name": "Other company contact",
                "phone": self.number,
                "company_id": other_company.id,
            }
        )
        inbound = self.receive("hello")
        self.assertEqual(inbound.partner_id, self.partner)
        newer = self.env["res.partner"].create(
            {"name": "Camille (new card)", "phone": "+33 6 12 34 56 01"}
        )
        inbound = self.receive("hello again")
        self.assertEqual(inbound.partner_id, newer)

    # -- access rights ---------------------------------------------------------------

    def test_access_rights(self):
        inbound = self.receive("STOP")
        as_user = inbound.with_user(self.user)
        self.assertEqual(as_user.body, "STOP")
        self.assertIn(inbound, self.Inbound.with_user(self.user).search([]))
        with self.assertRaises(AccessError):
            as_user.write({"body": "changed"})
        with self.assertRaises(AccessError):
            self.Inbound.with_user(self.user).create({"body": "x"})
        with self.assertRaises(AccessError):
            as_user.unlink()
        # the proof of consent is for managers only
        with self.assertRaises(AccessError):
            as_user.read(["consent_event_id"])
        as_manager = inbound.with_user(self.manager)
        self.assertEqual(
            as_manager.consent_event_id.sudo(), inbound.sudo().consent_event_id
        )
        with self.assertRaises(AccessError):
            as_manager.write({"body": "changed"})
        with self.assertRaises(AccessError):
            inbound.with_user(self.employee).read(["body"])
        self.assertEqual(inbound.body, "STOP")

    def test_inbound_menu_for_users(self):
        menus = self.env["ir.ui.menu"].with_user(self.user).load_menus(debug=False)
        xmlids = {m.get("xmlid") for m in menus.values() if isinstance(m, dict)}
        self.assertIn("sms_microfunnel.sms_microfunnel_inbound_menu", xmlids)
