# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import base64
from datetime import datetime, timedelta

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

FR_NUMBER = "+33612345678"
DE_NUMBER = "+4915123456789"
WORDING = "I agree to receive SMS offers from ACME. Reply STOP to opt out."


def csv_file(text):
    return base64.b64encode(text.encode())


@tagged("post_install", "-at_install")
class ConsentWizardCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.fr")
        cls.company.sms_consent_wording = WORDING
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.user = new_test_user(
            cls.env,
            login="smf_wiz_user",
            groups="sms_microfunnel.group_sms_funnel_user",
        )
        cls.manager = new_test_user(
            cls.env,
            login="smf_wiz_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )
        cls.partner = cls.env["res.partner"].create(
            {
                "name": "Camille Martin",
                "phone": "06 12 34 56 78",
                "country_id": cls.env.ref("base.fr").id,
                "lang": "en_US",
            }
        )

    def state(self, number):
        return self.Consent._get_states([number])[number]


class TestManualConsent(ConsentWizardCase):
    def wizard(self, user=None, **vals):
        Wizard = self.env["sms.microfunnel.consent.record"].with_user(
            user or self.manager
        )
        return Wizard.with_context(
            active_model="res.partner", active_id=self.partner.id
        ).create({"source": "point_of_sale", "method": "verbal", **vals})

    def test_user_cannot_record_a_consent(self):
        with self.assertRaises(AccessError):
            self.wizard(user=self.user)
        # nor through a wizard created by someone else
        wizard = self.wizard()
        with self.assertRaises(AccessError):
            wizard.with_user(self.user).action_record()
        self.assertFalse(self.Event.search([("number", "=", FR_NUMBER)]))

    def test_manager_records_a_confirmed_consent(self):
        wizard = self.wizard(source_ref="shop-paris-12")
        # defaults: the contact's phone, the company's current wording/version
        self.assertEqual(wizard.partner_id, self.partner)
        self.assertEqual(wizard.number, "06 12 34 56 78")
        self.assertEqual(wizard.wording, WORDING)
        self.assertEqual(
            wizard.wording_version, str(self.company.sms_consent_wording_version)
        )
        action = wizard.action_record()
        event = self.Event.browse(action["res_id"])
        self.assertEqual(event.event_type, "confirmed")
        self.assertEqual(event.number, FR_NUMBER)
        self.assertEqual(event.partner_id, self.partner)
        self.assertEqual(event.user_id, self.manager)
        self.assertEqual(event.source, "point_of_sale")
        self.assertEqual(event.source_ref, "shop-paris-12")
        self.assertEqual(event.wording, WORDING)
        self.assertTrue(event.proven)
        self.assertEqual(self.state(FR_NUMBER), "confirmed")

    def test_form_from_the_contact(self):
        Wizard = (
            self.env["sms.microfunnel.consent.record"]
            .with_user(self.manager)
            .with_context(default_partner_id=self.partner.id)
        )
        with Form(Wizard) as form:
            self.assertEqual(form.number, "06 12 34 56 78")
            self.assertEqual(form.wording, WORDING)
            form.event_type = "soft_opt_in"
            self.assertEqual(form.legal_basis, "soft_opt_in")
            form.event_type = "opt_out"
            self.assertEqual(form.legal_basis, "consent")
            self.assertFalse(form.wording)
            form.event_type = "re_opt_in"
            self.assertEqual(form.wording, WORDING)
            form.source = "manual"
        form.record.action_record()
        self.assertEqual(self.state(FR_NUMBER), "confirmed")

    def test_source_is_mandatory(self):
        wizard = self.wizard(source=False)
        with self.assertRaisesRegex(UserError, "Source"):
            wizard.action_record()
        self.assertFalse(self.Event.search([("number", "=", FR_NUMBER)]))

    def test_wording_is_mandatory_for_an_opt_in(self):
        for event_type in ("confirmed", "soft_opt_in", "re_opt_in"):
            wizard = self.wizard(event_type=event_type, source_ref="S00042")
            wizard.wording = "  "
            with self.assertRaisesRegex(UserError, "exact wording"):
                wizard.action_record()
        self.assertFalse(self.Event.search([("number", "=", FR_NUMBER)]))

    def test_opt_out_needs_no_wording_and_blacklists(self):
        wizard = self.wizard(event_type="opt_out", method="written")
        self.assertFalse(wizard.wording)
        wizard.action_record()
        event = self.Event.search([("number", "=", FR_NUMBER)])
        self.assertEqual(event.event_type, "opt_out")
        self.assertEqual(self.state(FR_NUMBER), "withdrawn")
        self.assertTrue(
            self.env["phone.blacklist"].sudo().search([("number", "=", FR_NUMBER)])
        )

    def test_soft_opt_in_refused_for_a_german_number(self):
        wizard = self.wizard(
            event_type="soft_opt_in", number=DE_NUMBER, source_ref="S00042"
        )
        self.assertEqual(wizard.legal_basis, "soft_opt_in")
        with self.assertRaisesRegex(UserError, "not allowed for SMS to DE"):
            wizard.action_record()
        self.assertFalse(self.Event.search([("number", "=", DE_NUMBER)]))
        # an express consent of the same number is fine
        self.wizard(number=DE_NUMBER).action_record()
        self.assertEqual(self.state(DE_NUMBER), "confirmed")

    def test_soft_opt_in_needs_a_sale_reference(self):
        wizard = self.wizard(event_type="soft_opt_in")
        with self.assertRaisesRegex(UserError, "sale or order reference"):
            wizard.action_record()
        wizard.source_ref = "S00042"
        event = self.Event.browse(wizard.action_record()["res_id"])
        self.assertEqual(event.event_type, "soft_opt_in")
        self.assertEqual(event.legal_basis, "soft_opt_in")
        self.assertEqual(event.source_ref, "S00042")
        self.assertEqual(self.state(FR_NUMBER), "confirmed")

    def test_date_cannot_be_in_the_future(self):
        wizard = self.wizard(event_date=fields.Datetime.now() + timedelta(days=1))
        with self.assertRaisesRegex(UserError, "future"):
            wizard.action_record()
        past = datetime(2024, 5, 2, 10, 30)
        event = self.Event.browse(
            self.wizard(event_date=past).action_record()["res_id"]
        )
        self.assertEqual(event.event_date, past)

    def test_invalid_number_is_refused(self):
        with self.assertRaisesRegex(UserError, "not a valid phone number"):
            self.wizard(number="12").action_record()

    def test_evidence_is_attached_to_the_event(self):
        wizard = self.wizard(
            evidence_file=base64.b64encode(b"%PDF-1.4 signed form"),
            evidence_filename="form.pdf",
        )
        event = self.Event.browse(wizard.action_record()["res_id"])
        self.assertEqual(event.attachment_id.name, "form.pdf")
        self.assertEqual(event.attachment_id.raw, b"%PDF-1.4 signed form")
        self.assertEqual(event.attachment_id.res_model, event._name)
        self.assertEqual(event.attachment_id.res_id, event.id)


class TestConsentImport(ConsentWizardCase):
    CSV = (
        "phone,name,email,consent_date,source,wording,wording_version,method\n"
        f"+33611111111,Alice Proven,alice@example.com,2024-03-05,trade fair,"
        f'"{WORDING}",2,checkbox\n'
        "+33622222222,Bob Unproven,,2024-03-05,trade fair,,,\n"
        "12,Carl Invalid,,2024-03-05,trade fair,wording,,\n"
        "+33633333333,Dan Erased,,2024-03-05,trade fair,wording,,\n"
        f'06 44 44 44 44,Eve National,,15/01/2023,paper form,"{WORDING}",,written\n'
        ",,,,,,,\n"
    )

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # the company is in Germany: national numbers need the default country
        cls.company.country_id = cls.env.ref("base.de")
        cls.env["sms.microfunnel.suppression"]._suppress(["+33633333333"])

    def run_import(self, text, user=None, **vals):
        wizard = (
            self.env["sms.microfunnel.consent.import"]
            .with_user(user or self.manager)
            .create(
                {
                    "file": csv_file(text),
                    "filename": "consents.csv",
                    "batch_label": "fair-2024",
                    "country_id": self.env.ref("base.fr").id,
                    **vals,
                }
            )
        )
        wizard.action_import()
        return wizard

    def events(self):
        return self.Event.search([("source_ref", "=", "import:fair-2024")])

    def test_import_rows_with_provenance(self):
        wizard = self.run_import(self.CSV)
        self.assertEqual(wizard.state, "done")
        self.assertEqual(
            (
                wizard.imported_count,
                wizard.unproven_count,
                wizard.invalid_count,
                wizard.suppressed_count,
                wizard.duplicate_count,
            ),
            (2, 1, 1, 1, 0),
        )
        self.assertIn("Line 4: invalid phone number “12”", wizard.result_summary)
        self.assertIn("Line 5: skipped", wizard.result_summary)
        events = self.events()
        self.assertEqual(
            sorted(events.mapped("number")),
            ["+33611111111", "+33622222222", "+33644444444"],
        )
        self.assertEqual(set(events.mapped("event_type")), {"confirmed"})
        self.assertEqual(set(events.mapped("source")), {"import"})
        self.assertEqual(set(events.mapped("user_id")), {self.manager})
        by_number = {e.number: e for e in events}
        alice = by_number["+33611111111"]
        self.assertTrue(alice.proven)
        self.assertEqual(alice.event_date, datetime(2024, 3, 5))
        self.assertEqual(alice.wording, WORDING)
        self.assertEqual(alice.wording_version, "2")
        self.assertEqual(alice.method, "checkbox")
        self.assertIn("trade fair", alice.note)
        self.assertEqual(alice.partner_id.name, "Alice Proven")
        self.assertEqual(alice.partner_id.email, "alice@example.com")
        # a 06 number with France as default country, a dd/mm/yyyy date
        eve = by_number["+33644444444"]
        self.assertTrue(eve.proven)
        self.assertEqual(eve.event_date, datetime(2023, 1, 15))
        self.assertEqual(eve.method, "written")
        self.assertFalse(by_number["+33622222222"].proven)
        states = self.Consent._get_states([*by_number, "+33633333333"])
        self.assertEqual(states["+33611111111"], "confirmed")
        self.assertEqual(states["+33644444444"], "confirmed")
        self.assertEqual(states["+33622222222"], "unproven")
        self.assertEqual(states["+33633333333"], "withdrawn")
        marketable = self.Consent._marketable_numbers(list(by_number))
        self.assertEqual(marketable, {"+33611111111", "+33644444444"})
        # nothing for the invalid or suppressed rows
        self.assertFalse(
            self.env["res.partner"].search(
                [("name", "in", ["Carl Invalid", "Dan Erased"])]
            )
        )

    def test_rows_lacking_date_source_or_wording_are_unproven(self):
        text = (
            "phone;consent_date;source;wording\n"
            "+33611111111;;fair;wording\n"
            "+33622222222;2024-03-05;;wording\n"
            "+33644444444;2024-03-05T09:15:00+02:00;fair;wording\n"
        )
        wizard = self.run_import(text)
        self.assertEqual((wizard.imported_count, wizard.unproven_count), (1, 2))
        by_number = {e.number: e for e in self.events()}
        self.assertFalse(by_number["+33611111111"].proven)
        self.assertFalse(by_number["+33622222222"].proven)
        # an ISO date with an offset is stored in UTC
        self.assertEqual(
            by_number["+33644444444"].event_date, datetime(2024, 3, 5, 7, 15)
        )
        self.assertEqual(self.state("+33611111111"), "unproven")

    def test_reimport_creates_no_duplicates(self):
        self.run_import(self.CSV)
        count = len(self.events())
        partners = self.env["res.partner"].search_count([])
        wizard = self.run_import(self.CSV)
        self.assertEqual(len(self.events()), count)
        self.assertEqual(self.env["res.partner"].search_count([]), partners)
        self.assertEqual(wizard.duplicate_count, 3)
        self.assertEqual((wizard.imported_count, wizard.unproven_count), (0, 0))
        # another batch of the same file is another provenance
        other = self.run_import(self.CSV, batch_label="fair-2024-bis")
        self.assertEqual((other.imported_count, other.unproven_count), (2, 1))

    def test_existing_contacts_are_matched_by_number(self):
        self.run_import(
            "phone,name,consent_date,source,wording\n"
            + (f"+33612345678,Someone Else,2024-03-05,fair,{WORDING}\n")
        )
        event = self.events()
        self.assertEqual(event.partner_id, self.partner)
        self.assertEqual(self.partner.name, "Camille Martin")

    def test_user_cannot_import(self):
        with self.assertRaises(AccessError):
            self.run_import(self.CSV, user=self.user)
        self.assertFalse(self.events())

    def test_bad_files_give_clear_errors(self):
        with self.assertRaisesRegex(UserError, "no 'phone' column"):
            self.run_import("number,name\n+33611111111,Alice\n")
        with self.assertRaisesRegex(UserError, "not a UTF-8"):
            self.env["sms.microfunnel.consent.import"].with_user(self.manager).create(
                {
                    "file": base64.b64encode("phone\n+3361111111é\n".encode("latin-1")),
                    "batch_label": "x",
                }
            ).action_import()
        with self.assertRaisesRegex(UserError, "Name the import batch"):
            self.run_import(self.CSV, batch_label=" ")
        self.assertFalse(self.Event.search([("source", "=", "import")]))

    def test_unreadable_or_future_dates_are_reported(self):
        text = (
            "phone,consent_date,source,wording\n"
            "+33611111111,March 5th,fair,wording\n"
            "+33622222222,2999-01-01,fair,wording\n"
        )
        wizard = self.run_import(text)
        self.assertEqual(wizard.invalid_count, 2)
        self.assertIn("unreadable consent date", wizard.result_summary)
        self.assertIn("in the future", wizard.result_summary)
        self.assertFalse(self.events())

    def test_import_queries_do_not_grow_with_rows(self):
        def make(count, start):
            lines = ["phone,name,consent_date,source,wording"]
            lines += [
                f"+3367{start + i:07d},P{i},2024-03-05,fair,{WORDING}"
                for i in range(count)
            ]
            return "\n".join(lines) + "\n"

        counts = []
        for size, start, label in ((5, 1000, "q1"), (25, 2000, "q2")):
            wizard = (
                self.env["sms.microfunnel.consent.import"]
                .with_user(self.manager)
                .create({"file": csv_file(make(size, start)), "batch_label": label})
            )
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            wizard.action_import()
            counts.append(self.env.cr.sql_log_count - before)
            self.assertEqual(wizard.imported_count, size)
        self.assertLessEqual(counts[1], counts[0] + 5, counts)
