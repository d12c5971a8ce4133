# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Erasure is complete: after it, no text column of any table of the database
holds the person's number (in any format), e-mail address or name."""

from freezegun import freeze_time

from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import SQL

NAME = "Zephyrine Quenouille"
SURNAME = "Quenouille"
EMAIL = "zephyrine.quenouille@example.org"
NUMBER = "+33647291583"
NATIONAL = "06 47 29 15 83"
# the number's digits with an optional separator between each: E.164,
# national, spaced, dotted or dashed forms all match, hashes do not
NUMBER_REGEX = "[ .-]?".join("647291583")
TUESDAY_10H_PARIS = "2026-03-10 09:00:00"


def scan(env, regex=NUMBER_REGEX, words=(SURNAME, EMAIL, "zephyrine.q")):
    """[(table, column)] of every text, varchar and jsonb column of every table
    holding the number (any format) or one of the words."""
    env.flush_all()
    columns = env.execute_query(
        SQL(
            """
            SELECT c.table_name, c.column_name
              FROM information_schema.columns c
              JOIN information_schema.tables t
                ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema()
               AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'character varying', 'jsonb', 'json')
          ORDER BY 1, 2
            """
        )
    )
    by_table = {}
    for table, column in columns:
        by_table.setdefault(table, []).append(column)
    found = []
    for table, names in by_table.items():
        checks = [
            SQL(
                "bool_or(%s::text ~ %s OR %s::text ILIKE ANY(%s))",
                SQL.identifier(name),
                regex,
                SQL.identifier(name),
                [f"%{w}%" for w in words],
            )
            for name in names
        ]
        [row] = env.execute_query(
            SQL("SELECT %s FROM %s", SQL(", ").join(checks), SQL.identifier(table))
        )
        found += [(table, name) for name, hit in zip(names, row, strict=True) if hit]
    return found


@tagged("post_install", "-at_install")
class TestCompleteErasure(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        fr = cls.env.ref("base.fr")
        cls.company.write(
            {
                "country_id": fr.id,
                "sms_funnel_sender_label": "ACME: ",
                "sms_funnel_optout_mention": "STOP au 36111",
            }
        )
        cls.company.partner_id.tz = "Europe/Paris"
        cls.manager = new_test_user(
            cls.env,
            login="smf_complete_erase_manager",
            groups="sms_microfunnel.group_sms_funnel_manager,sales_team.group_sale_salesman",
        )
        cls.other = cls.env["res.partner"].create(
            {"name": "Other Person", "phone": "+33611119999", "country_id": fr.id}
        )
        cls.env["sms.microfunnel.consent.event"]._record(
            [
                {
                    "event_type": "confirmed",
                    "number": "+33611119999",
                    "partner_id": cls.other.id,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "ip": "192.0.2.44",
                }
            ]
        )
        cls.funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Diagnostic offer", "model_name": "res.partner"}
        )
        cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "Offer",
                "body": "Bonjour {{ object.name or 'client' }}, diagnostic "
                "offert cette semaine : https://example.com/offer",
            }
        )
        cls.cron = cls.env.ref("sms_microfunnel.ir_cron_sms_funnel_dispatch")

    def dispatch(self):
        with self.enter_registry_test_mode():
            self.cron.method_direct_trigger()
        self.env.invalidate_all()

    def inbound(self, text, message_id):
        return self.env["sms.microfunnel.inbound"]._process_inbound(
            NATIONAL, "36111", text, message_id, provider="test", company=self.company
        )

    def live_the_life_of_a_contact(self):
        """Everything the app and Odoo record about one person."""
        env = self.env
        partner = env["res.partner"].create(
            {
                "name": NAME,
                "phone": NATIONAL,
                "email": EMAIL,
                "country_id": env.ref("base.fr").id,
                "tz": "Europe/Paris",
                "street": "3 rue des Lilas",
            }
        )
        lead = env["crm.lead"].create(
            {
                "name": f"{NAME}'s project",
                "partner_id": self.other.id,
                "user_id": self.manager.id,
                "type": "opportunity",
                "description": f"<p>Call {NAME} on {NATIONAL}</p>",
            }
        )
        env.cr.precommit.run()
        lead.write({"partner_id": partner.id})  # tracked: the name is logged
        lead.write({"email_from": EMAIL, "phone": "06.47.29.15.83"})
        with freeze_time("2026-01-05 09:00:00"):
            env["sms.microfunnel.consent"]._request_doi(
                NATIONAL,
                partner=partner,
                company=self.company,
                wording="J'accepte de recevoir des SMS.",
                source="web_form",
                method="checkbox",
                ip="203.0.113.77",
                user_agent="Mozilla/5.0 (test)",
            )
            self.inbound("OUI", "SM-zq-1")
        partner.message_post(body=f"Called {NAME} at {NATIONAL}, {EMAIL}")
        partner._message_sms(f"Bonjour {NAME}, votre devis est prêt.")
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            self.funnel._enroll(partner | self.other)
            self.dispatch()
            env["sms.sms"].sudo().search(
                [("number", "in", [NUMBER, self.other.phone_sanitized])]
            )._update_sms_state_and_trackers("sent")
        with freeze_time("2026-03-10 10:00:00"):
            self.inbound(f"Oui, c'est {NAME}, rappelez-moi au {NATIONAL}", "SM-zq-2")
        with freeze_time("2026-03-10 11:00:00"):
            self.inbound("STOP", "SM-zq-3")
        # an e-mail marketing trace with a click, and an address opt-out
        mailing = env["mailing.mailing"].create(
            {
                "subject": "Spring",
                "mailing_model_id": env.ref("base.model_res_partner").id,
            }
        )
        trace = env["mailing.trace"].create(
            {
                "model": "res.partner",
                "res_id": partner.id,
                "mass_mailing_id": mailing.id,
                "email": EMAIL,
                "trace_type": "mail",
            }
        )
        link = env["link.tracker"].create({"url": "https://example.com/spring"})
        env["link.tracker.click"].create(
            {"link_id": link.id, "mailing_trace_id": trace.id, "ip": "198.51.100.9"}
        )
        env["mail.blacklist"]._add(EMAIL)
        # an e-mail still in the outbox, and one to her and someone else
        env["mail.mail"].create(
            {"email_to": EMAIL, "subject": "Spring offer", "body_html": "<p>Hi</p>"}
        )
        self.shared_mail = env["mail.mail"].create(
            {
                "recipient_ids": [(6, 0, (partner | self.other).ids)],
                "subject": "Team update",
                "body_html": "<p>News</p>",
            }
        )
        env.cr.precommit.run()  # mail tracking values are written at commit
        return partner, lead

    def report_figures(self):
        self.env.flush_all()
        funnel = self.env["sms.microfunnel.report"]._read_group(
            [("campaign_id", "=", self.funnel.id)],
            [],
            [
                "recipient_count:sum",
                "sent_count:sum",
                "replied_count:sum",
                "optout_count:sum",
                "segments:sum",
                "__count",
            ],
        )
        cohorts = self.env["sms.microfunnel.cohort.report"]._read_group(
            [("company_id", "=", self.company.id)],
            ["cohort_month:month", "status"],
            ["contact_count:sum"],
        )
        return funnel, sorted(cohorts, key=str)

    def test_nothing_personal_is_left(self):
        partner, lead = self.live_the_life_of_a_contact()
        # the life above left the data everywhere the erasure must look
        before = dict.fromkeys(scan(self.env))
        for table in (
            "res_partner",
            "crm_lead",
            "phone_blacklist",
            "sms_microfunnel_enrollment",
            "sms_microfunnel_trace",
            "sms_microfunnel_inbound",
            "sms_sms",
            "mail_message",
            "mail_tracking_value",
            "mail_activity",
            "mail_notification",
            "mailing_trace",
            "mail_blacklist",
            "mail_mail",
        ):
            self.assertIn(table, {t for t, _c in before}, table)
        # encrypted at rest even before the erasure
        for column in (
            ("sms_microfunnel_trace", "reply_text"),
            ("sms_microfunnel_inbound", "body"),
            ("sms_microfunnel_consent_event", "raw_text"),
        ):
            self.assertNotIn(column, before)
        self.assertIn(("sms_microfunnel_inbound", "from_number"), before)
        figures = self.report_figures()
        self.assertEqual(figures[0][0][0], 2, "two recipients")
        self.assertEqual(figures[0][0][2], 1, "one reply")
        self.assertEqual(figures[0][0][3], 1, "one opt-out")
        clicks = self.env["link.tracker.click"].search([("ip", "=", "198.51.100.9")])
        self.assertTrue(clicks)

        wizard = (
            self.env["sms.microfunnel.contact.erase"]
            .with_user(self.manager)
            .create({"partner_ids": [(6, 0, partner.ids)]})
        )
        wizard.action_erase()

        self.assertEqual(scan(self.env), [])
        # the suppression list keeps the keyed hash, and still matches
        Suppression = self.env["sms.microfunnel.suppression"]
        self.assertEqual(Suppression._suppressed([NUMBER]), {NUMBER})
        self.assertEqual(
            self.env["sms.microfunnel.consent"]._get_states([NUMBER])[NUMBER],
            "withdrawn",
        )
        self.assertFalse(
            self.env["phone.blacklist"]
            .with_context(active_test=False)
            .search([("number", "=", NUMBER)])
        )
        # the reports count the same
        self.assertEqual(self.report_figures(), figures)
        # the other person is untouched
        self.assertEqual(self.other.phone_sanitized, "+33611119999")
        other = self.env["sms.microfunnel.enrollment"].search(
            [("partner_id", "=", self.other.id)]
        )
        self.assertEqual(other.number, "+33611119999")
        self.assertIn("Other Person", other.trace_ids.body)
        self.assertFalse(clicks.ip)
        self.assertEqual(self.shared_mail.recipient_ids, self.other)
        # what stays is countable, not personal
        enrollment = self.env["sms.microfunnel.enrollment"].search(
            [("partner_id", "=", partner.id)]
        )
        self.assertEqual(enrollment.number, Suppression._hash(NUMBER))
        self.assertEqual(enrollment.trace_ids.number, Suppression._hash(NUMBER))
        self.assertTrue(enrollment.trace_ids.replied_at)
        self.assertFalse(enrollment.trace_ids.reply_text)
        self.assertEqual(lead.name, "Erased contact's project")
        self.assertEqual(
            self.env["sms.microfunnel.inbound"].search_count(
                [("provider_message_id", "like", "SM-zq-")]
            ),
            3,
        )

    def test_scan_finds_every_format(self):
        """The scan itself sees the number however it is written."""
        partner = self.env["res.partner"].create({"name": "x"})
        for text in (NUMBER, NATIONAL, "06.47.29.15.83", "647291583", "0647-291583"):
            partner.comment = text
            self.assertIn(("res_partner", "comment"), scan(self.env), text)
        partner.comment = "64729  1583"  # two separators in a row: not the number
        self.assertNotIn(("res_partner", "comment"), scan(self.env))
        partner.comment = f"<p>{EMAIL.upper()}</p>"
        self.assertIn(("res_partner", "comment"), scan(self.env))
