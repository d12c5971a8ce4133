# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import base64
from ast import literal_eval
from unittest.mock import patch

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, new_test_user, tagged

from odoo.addons.sms_microfunnel.tests.common import NUMBER, WORDING, ErasureCase


class TestErasure(ErasureCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner = cls.make_prospect("Camille Martin", "06 12 34 56 78")
        cls.lead = cls.env["crm.lead"].create(
            {
                "name": "Camille's project",
                "partner_id": cls.partner.id,
                "contact_name": "Camille Martin",
                "email_from": "camille@example.com",
                "phone": "06 12 34 56 78",
            }
        )

    def setUp(self):
        super().setUp()
        self.event = self.record(self.partner)
        self.sms = self.env["sms.sms"].create(
            [
                {
                    "number": NUMBER,
                    "body": "Camille, our offer!",
                    "partner_id": self.partner.id,
                    "state": "outgoing",
                },
                {"number": NUMBER, "body": "Sent already", "state": "sent"},
            ]
        )
        self.partner.message_post(body="Called Camille at 06 12 34 56 78")

    def test_user_cannot_erase(self):
        with self.assertRaises(AccessError):
            self.erase(self.partner, user=self.user)
        self.assertTrue(self.partner.active)
        self.assertEqual(self.partner.name, "Camille Martin")

    def test_erasure_anonymises_and_suppresses(self):
        self.assertEqual(self.Consent._get_states([NUMBER])[NUMBER], "confirmed")
        self.erase(self.partner)
        partner = self.partner.with_context(active_test=False)
        self.assertFalse(partner.active)
        self.assertEqual(partner.name, f"Erased contact #{partner.id}")
        for fname in (
            "email",
            "phone",
            "street",
            "city",
            "zip",
            "function",
            "comment",
            "image_1920",
        ):
            self.assertFalse(partner[fname], fname)
        self.assertFalse(partner.phone_sanitized)
        # the number stays suppressed, as a keyed hash only
        self.assertEqual(self.Suppression._suppressed([NUMBER]), {NUMBER})
        suppression = self.Suppression.sudo().search(
            [("number_hash", "=", self.Suppression._hash(NUMBER))]
        )
        self.assertEqual(suppression.reason, "erasure")
        # the proof is anonymised: number replaced by its hash, personal data gone
        event = self.event.sudo()
        self.assertTrue(event.anonymized)
        self.assertEqual(event.number, self.Suppression._hash(NUMBER))
        self.assertFalse(event.partner_id)
        self.assertFalse(event.ip)
        self.assertFalse(event.source_ref)
        self.assertEqual(event.event_type, "confirmed")
        self.assertFalse(self.Consent.sudo().search([("number", "=", NUMBER)]))
        self.assertEqual(self.Consent._get_states([NUMBER])[NUMBER], "withdrawn")
        # queued SMS canceled, sent ones untouched
        self.assertEqual(self.sms.mapped("state"), ["canceled", "sent"])
        # leads keep the opportunity, not the person
        self.assertFalse(self.lead.contact_name)
        self.assertFalse(self.lead.email_from)
        self.assertFalse(self.lead.phone)
        self.assertFalse(self.lead.partner_id)
        # the chatter keeps one non-personal note
        messages = self.env["mail.message"].search(
            [("model", "=", "res.partner"), ("res_id", "=", partner.id)]
        )
        self.assertEqual(len(messages), 1)
        self.assertIn("Contact erased", messages.body)
        for personal in ("Camille", "06 12", NUMBER, "example.com"):
            self.assertNotIn(personal, messages.body)

    def test_erased_number_stays_suppressed(self):
        self.erase(self.partner)
        # a later import of the same number is skipped
        wizard = (
            self.env["sms.microfunnel.consent.import"]
            .with_user(self.manager)
            .create(
                {
                    "file": base64.b64encode(
                        "phone,name,consent_date,source,wording\n"
                        f"{NUMBER},Camille Martin,2024-03-05,fair,{WORDING}\n".encode()
                    ),
                    "batch_label": "after-erasure",
                }
            )
        )
        wizard.action_import()
        self.assertEqual((wizard.suppressed_count, wizard.imported_count), (1, 0))
        self.assertFalse(self.Event.sudo().search([("number", "=", NUMBER)]))
        self.assertFalse(
            self.env["res.partner"].search([("phone_sanitized", "=", NUMBER)])
        )
        # a double opt-in request (web form) is refused, and no SMS is queued
        with self.assertRaisesRegex(UserError, "stay suppressed"):
            self.Consent._request_doi(NUMBER, company=self.company, wording=WORDING)
        self.assertFalse(
            self.env["sms.sms"].search(
                [("number", "=", NUMBER), ("state", "=", "outgoing")]
            )
        )
        # a manual opt-in neither
        record = (
            self.env["sms.microfunnel.consent.record"]
            .with_user(self.manager)
            .create({"number": NUMBER, "source": "manual", "wording": WORDING})
        )
        with self.assertRaisesRegex(UserError, "stay suppressed"):
            record.action_record()

    def test_inbound_messages_are_emptied(self):
        inbound = (
            self.env["sms.microfunnel.inbound"]
            .sudo()
            .create(
                {
                    "from_number": NUMBER,
                    "from_number_raw": "06 12 34 56 78",
                    "body": "Hello, this is Camille",
                    "partner_id": self.partner.id,
                    "provider_message_id": "SM-erasure-1",
                }
            )
        )
        self.erase(self.partner)
        self.assertFalse(inbound.from_number)
        self.assertFalse(inbound.from_number_raw)
        self.assertFalse(inbound.body)
        self.assertFalse(inbound.partner_id)
        self.assertEqual(inbound.provider_message_id, "SM-erasure-1")

    def test_form_button_context(self):
        Wizard = (
            self.env["sms.microfunnel.contact.erase"]
            .with_user(self.manager)
            .with_context(default_partner_ids=[self.partner.id])
        )
        with Form(Wizard) as form:
            self.assertEqual(form.partner_count, 1)
        form.record.action_erase()
        self.assertFalse(self.partner.active)

    def test_users_cannot_be_erased(self):
        with self.assertRaisesRegex(UserError, "users of this database"):
            self.erase(self.manager.partner_id)


@tagged("post_install", "-at_install")
class TestRetention(ErasureCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.sms_retention_years = 3
        cls.company.sms_retention_auto_erase = False
        # the database's other companies (demo data) would erase: the shared
        # test contacts follow this company's choice
        cls.env["res.company"].search([("id", "!=", cls.company.id)]).write(
            {"sms_retention_years": 3, "sms_retention_auto_erase": True}
        )
        cls.old = cls.make_prospect("Olga Old", "+33611111111")
        cls.recent = cls.make_prospect("Rita Recent", "+33622222222")
        cls.customer = cls.make_prospect("Carl Customer", "+33633333333")
        cls.no_consent = cls.make_prospect("Nina Nothing", "+33644444444")
        won_stage = cls.env["crm.stage"].search([("is_won", "=", True)], limit=1)
        cls.env["crm.lead"].create(
            {
                "name": "Carl's order",
                "partner_id": cls.customer.id,
                "type": "opportunity",
                "stage_id": won_stage.id,
                "probability": 100,
            }
        )

    def setUp(self):
        super().setUp()
        with freeze_time("2030-01-10 09:00:00"):
            self.record(self.old)
            self.record(self.recent)
            self.record(self.customer)
        with freeze_time("2032-06-01 09:00:00"):
            # the recent prospect interacted again; an expiry is not theirs
            self.record(self.recent, event_type="opt_out")
            self.record(self.old, event_type="expired", wording=False)

    def run_cron(self, at="2033-03-01 04:00:00", progress=float("inf")):
        cron_class = type(self.env["ir.cron"])
        with (
            freeze_time(at),
            patch.object(
                cron_class, "_commit_progress", return_value=progress
            ) as commit,
        ):
            self.env["res.partner"]._cron_sms_retention(batch_size=1)
        self.env.invalidate_all()
        return commit

    def test_cron_is_daily_on_partners(self):
        cron = self.env.ref("sms_microfunnel.ir_cron_sms_retention")
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "days"))
        self.assertEqual(cron.model_id.model, "res.partner")

    def test_stale_prospects_are_listed(self):
        commit = self.run_cron()
        self.assertTrue(self.old.sms_retention_stale)
        self.assertFalse(self.recent.sms_retention_stale)
        self.assertFalse(self.customer.sms_retention_stale)
        self.assertFalse(self.no_consent.sms_retention_stale)
        # listed only: nothing erased
        self.assertTrue(self.old.active)
        self.assertEqual(self.old.name, "Olga Old")
        self.assertFalse(self.Suppression._suppressed(["+33611111111"]))
        self.assertEqual(commit.call_args.kwargs["remaining"], 0)
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "sms_microfunnel.action_sms_retention_stale"
        )
        stale = self.env["res.partner"].search(literal_eval(action["domain"]))
        self.assertIn(self.old, stale)
        self.assertNotIn(self.recent, stale)
        # before the period is over, nobody is stale; the flag is cleared
        self.run_cron(at="2032-12-01 04:00:00")
        self.assertFalse(self.old.sms_retention_stale)

    def test_an_inbound_sms_counts_as_an_interaction(self):
        self.env["sms.microfunnel.inbound"].sudo().create(
            {
                "from_number": "+33611111111",
                "body": "Any news?",
                "received_at": "2032-09-01 10:00:00",
            }
        )
        self.run_cron()
        self.assertFalse(self.old.sms_retention_stale)

    def test_stale_prospects_are_erased_when_asked(self):
        self.company.sms_retention_auto_erase = True
        self.run_cron()
        old = self.old.with_context(active_test=False)
        self.assertFalse(old.active)
        self.assertEqual(old.name, f"Erased contact #{old.id}")
        self.assertFalse(old.sms_retention_stale)
        self.assertEqual(
            self.Suppression._suppressed(["+33611111111"]), {"+33611111111"}
        )
        suppression = self.Suppression.sudo().search(
            [("number_hash", "=", self.Suppression._hash("+33611111111"))]
        )
        self.assertEqual(suppression.reason, "retention")
        self.assertFalse(self.Event.sudo().search([("number", "=", "+33611111111")]))
        for partner in (self.recent, self.customer, self.no_consent):
            self.assertTrue(partner.active)
            self.assertTrue(partner.phone_sanitized)

    def test_shared_contacts_are_erased_only_when_every_company_asks(self):
        self.company.sms_retention_auto_erase = True
        cautious = self.env["res.company"].create(
            {"name": "Cautious Co", "sms_retention_auto_erase": False}
        )
        self.run_cron()
        self.assertTrue(self.old.with_context(active_test=False).active)
        self.assertEqual(self.old.phone_sanitized, "+33611111111")
        cautious.sms_retention_auto_erase = True
        self.run_cron()
        self.assertFalse(self.old.with_context(active_test=False).active)

    def test_users_are_never_prospects(self):
        self.company.sms_retention_auto_erase = True
        former = new_test_user(self.env, login="smf_former_employee")
        former.partner_id.phone = "+33666666666"
        with freeze_time("2029-05-01 09:00:00"):
            self.record(former.partner_id)
        former.active = False
        self.run_cron()
        self.assertTrue(former.partner_id.active)
        self.assertEqual(former.partner_id.phone_sanitized, "+33666666666")
        self.assertFalse(self.old.with_context(active_test=False).active)

    def test_erasure_is_batched_and_stops_when_time_is_up(self):
        self.company.sms_retention_auto_erase = True
        second = self.make_prospect("Otto Older", "+33655555555")
        with freeze_time("2029-05-01 09:00:00"):
            self.record(second)
        with freeze_time("2033-03-01 04:00:00"):
            stale, to_erase = self.env["res.partner"]._sms_retention_find_stale()
        self.assertEqual(stale, to_erase)
        self.assertIn(self.old, to_erase)
        self.assertIn(second, to_erase)
        self.assertNotIn(self.recent, to_erase)
        commit = self.run_cron(progress=0)
        to_erase = to_erase.with_context(active_test=False)
        erased = to_erase.filtered(lambda p: not p.active)
        # one batch of one contact, then the time budget is over
        self.assertEqual(len(erased), 1)
        self.assertEqual(erased.name, f"Erased contact #{erased.id}")
        left = to_erase - erased
        self.assertTrue(all(left.mapped("sms_retention_stale")))
        self.assertEqual(commit.call_args.kwargs["remaining"], len(left))
        # the next run finishes the work
        self.run_cron()
        self.assertFalse(any(left.mapped("active")))
