# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Shared test bases of the addon: a running funnel with its contacts
(``FunnelCase``), the compliance gate (``GateCase``), erasure and retention
(``ErasureCase``), the French translations (``load_french``), and dispatch
jobs run at once on their own connections (``run_dispatch_jobs``)."""

import threading
from contextlib import contextmanager
from datetime import datetime, timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import SUPERUSER_ID, api
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools import SQL

# Tuesday 2026-03-10 10:00 in Paris (CET, UTC+1)
TUESDAY_10H_PARIS = "2026-03-10 09:00:00"
# Sunday 2026-03-15 11:00 in Paris: marketing window closed until Monday 08:00
SUNDAY_11H_PARIS = "2026-03-15 10:00:00"


class FunnelCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.write(
            {
                "country_id": cls.env.ref("base.fr").id,
                "sms_funnel_sender_label": "ACME: ",
                "sms_funnel_optout_mention": "STOP au 36111",
                "sms_funnel_max_segments": 3,
            }
        )
        cls.company.partner_id.tz = "Europe/Paris"
        fr = cls.env.ref("base.fr").id
        Partner = cls.env["res.partner"]
        cls.anna = Partner.create(
            {
                "name": "Anna",
                "phone": "+33611111111",
                "country_id": fr,
                "tz": "Europe/Paris",
            }
        )
        cls.bruno = Partner.create(
            {
                "name": "Bruno",
                "phone": "+33622222222",
                "country_id": fr,
                "tz": "Europe/Paris",
            }
        )
        cls.no_consent = Partner.create(
            {"name": "Chloé", "phone": "+33633333333", "country_id": fr}
        )
        cls.opted_out = Partner.create(
            {"name": "David", "phone": "+33644444444", "country_id": fr}
        )
        Event = cls.env["sms.microfunnel.consent.event"]
        Event._record(
            [
                {
                    "event_type": "confirmed",
                    "number": p.phone,
                    "partner_id": p.id,
                    "source": "web_form",
                    "wording": "J'accepte de recevoir des SMS.",
                    "event_date": datetime(2026, 1, 5, 9, 0),
                }
                for p in (cls.anna, cls.bruno, cls.opted_out)
            ]
        )
        Event._record(
            [
                {
                    "event_type": "opt_out",
                    "number": cls.opted_out.phone,
                    "partner_id": cls.opted_out.id,
                    "source": "keyword_sms",
                    "event_date": datetime(2026, 2, 1, 9, 0),
                }
            ]
        )
        # every contact (the default audience is the marketable ones): the
        # tests enrol who they need
        cls.funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Diagnostic offer", "model_name": "res.partner", "domain": "[]"}
        )
        cls.offer = cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "Offer",
                "body": "Bonjour {{ object.name or 'client' }}, diagnostic "
                "offert cette semaine.",
            }
        )
        cls.reminder = cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "Reminder",
                "parent_id": cls.offer.id,
                "wait_mode": "after_parent",
                "wait_hours": 24,
                "condition": "not_clicked",
                "body": "Dernier rappel : diagnostic offert.",
            }
        )
        cls.thanks = cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "Thanks",
                "parent_id": cls.offer.id,
                "wait_mode": "after_parent",
                "wait_hours": 1,
                "condition": "clicked",
                "message_class": "transactional",
                "body": "Merci, un conseiller vous appelle.",
            }
        )
        cls.cron = cls.env.ref("sms_microfunnel.ir_cron_sms_funnel_dispatch")

    def dispatch(self):
        with self.enter_registry_test_mode():
            self.cron.method_direct_trigger()
        self.env.invalidate_all()

    def start_and_dispatch(self, partners):
        """Start the funnel, enrol ``partners`` and run the dispatcher once."""
        self.funnel.action_start()
        self.funnel._enroll(partners)
        self.dispatch()

    def trace(self, partner, step):
        return self.env["sms.microfunnel.trace"].search(
            [("enrollment_id.res_id", "=", partner.id), ("step_id", "=", step.id)]
        )

    def outgoing(self, partner):
        return self.env["sms.sms"].sudo().search([("number", "=", partner.phone)])

    def second_funnel_after_the_first(self):
        """Anna enrolled in the funnel, then in a second funnel of one step,
        both dispatched on a Tuesday morning in Paris; returns the second
        funnel's trace."""
        second = self.env["sms.microfunnel.campaign"].create(
            {"name": "Second funnel", "model_name": "res.partner"}
        )
        self.env["sms.microfunnel.step"].create(
            {"campaign_id": second.id, "name": "Other offer", "body": "Autre offre."}
        )
        with freeze_time(TUESDAY_10H_PARIS):
            self.funnel.action_start()
            second.action_start()
            self.funnel._enroll(self.anna)
            self.dispatch()
            second._enroll(self.anna)
            self.dispatch()
        return self.env["sms.microfunnel.trace"].search(
            [("campaign_id", "=", second.id)]
        )


# Monday 16 March 2026, 14:00 UTC: 15:00 in Paris, 10:00 in New York (EDT since
# 8 March), 01:00 on Tuesday in Nouméa.
MONDAY_14 = datetime(2026, 3, 16, 14, 0)
# what the contacts of the gate tests agreed to (the company named)
GATE_WORDING = "I agree to receive SMS offers from ACME. Reply STOP to opt out."


@tagged("post_install", "-at_install")
class GateCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Gate = cls.env["sms.microfunnel.gate"]
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.fr")
        cls.company.partner_id.tz = "Europe/Paris"
        cls.fr = cls.env.ref("base.fr")
        cls.us = cls.env.ref("base.us")
        cls.florida = cls.env.ref("base.state_us_10")
        cls.new_york = cls.env.ref("base.state_us_27")

    @classmethod
    def partner(cls, name, phone=False, consent=None, **vals):
        vals.setdefault("country_id", cls.fr.id)
        partner = cls.env["res.partner"].create(
            {"name": name, "phone": phone, "tz": False, **vals}
        )
        if consent:
            events = (consent,) if isinstance(consent, str) else consent
            cls.consent(partner.phone_sanitized, *events, partner=partner)
        return partner

    @classmethod
    def consent(cls, number, *events, partner=None, scope=False):
        for event_type in events:
            vals = {
                "event_type": event_type,
                "number": number,
                "partner_id": partner and partner.id,
                "source": "manual",
                "wording": GATE_WORDING,
                "scope": scope,
            }
            if event_type == "unproven":
                vals.update(event_type="confirmed", source="import", wording=False)
            cls.Event._record([vals])

    @classmethod
    def sent(cls, number, *ages_in_hours, status="sent", now=MONDAY_14):
        """Marketing SMS traces (Odoo mass SMS) sent ``ages`` hours before ``now``."""
        return cls.env["mailing.trace"].create(
            [
                {
                    "trace_type": "sms",
                    "model": "res.partner",
                    "res_id": 1,
                    "sms_number": number,
                    "trace_status": status,
                    "sent_datetime": now - timedelta(hours=age),
                }
                for age in ages_in_hours
            ]
        )

    def decide(self, records, message_class="marketing", when=MONDAY_14, **kw):
        return self.Gate._evaluate(records, message_class, self.company, when, **kw)

    def outcome(self, decision):
        return decision["action"], decision["reason"], decision["until"]


# the contact and wording of the erasure and retention tests
NUMBER = "+33612345678"
WORDING = "I agree to receive SMS offers. Reply STOP to opt out."
PIXEL = (
    b"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
    b"nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


@tagged("post_install", "-at_install")
class ErasureCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.company.country_id = cls.env.ref("base.fr")
        cls.Event = cls.env["sms.microfunnel.consent.event"]
        cls.Consent = cls.env["sms.microfunnel.consent"]
        cls.Suppression = cls.env["sms.microfunnel.suppression"]
        cls.user = new_test_user(
            cls.env,
            login="smf_erase_user",
            groups="sms_microfunnel.group_sms_funnel_user",
        )
        cls.manager = new_test_user(
            cls.env,
            login="smf_erase_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )

    @classmethod
    def make_prospect(cls, name, number, **vals):
        return cls.env["res.partner"].create(
            {
                "name": name,
                "phone": number,
                "email": f"{name.split()[0].lower()}@example.com",
                "street": "12 rue de la Paix",
                "city": "Paris",
                "zip": "75002",
                "function": "Buyer",
                "comment": "Met at the fair",
                "country_id": cls.env.ref("base.fr").id,
                "image_1920": PIXEL,
                **vals,
            }
        )

    def record(self, partner, event_type="confirmed", number=None, **vals):
        return self.Event._record(
            [
                {
                    "event_type": event_type,
                    "number": number or partner.phone_sanitized,
                    "partner_id": partner.id,
                    "source": "web_form",
                    "source_ref": "https://example.com/form",
                    "wording": WORDING,
                    "ip": "203.0.113.7",
                    **vals,
                }
            ]
        )

    def erase(self, partners, user=None):
        wizard = (
            self.env["sms.microfunnel.contact.erase"]
            .with_user(user or self.manager)
            .with_context(active_model="res.partner", active_ids=partners.ids)
            .create({})
        )
        return wizard.action_erase()


def load_french(env):
    env["res.lang"]._activate_lang("fr_FR")
    env["ir.module.module"]._load_module_terms(
        ["sms_microfunnel", "sms_microfunnel_twilio"], ["fr_FR"], overwrite=True
    )


def remove_committed_funnel(env, funnel_id, partner_ids, numbers):
    """What a test that commits (threads with their own cursors) leaves
    behind: its SMS, the funnel with its SMS mailings, their traces and link
    trackers, the consent ledger of its numbers and its contacts."""
    env["sms.sms"].search([("number", "in", numbers)]).unlink()
    funnel = env["sms.microfunnel.campaign"].browse(funnel_id)
    # the traces and enrolments first, each in a statement of its own: in
    # one delete of the funnel, its cascades may set a trace's funnel to NULL
    # after deleting its enrolment, and PostgreSQL then checks that enrolment
    # (the cascades run in the order of their triggers' names, which differs
    # from one database to the next)
    env["sms.microfunnel.trace"].search([("campaign_id", "=", funnel_id)]).unlink()
    env["sms.microfunnel.enrollment"].search([("campaign_id", "=", funnel_id)]).unlink()
    sources = funnel.step_ids.mailing_id.source_id
    env["link.tracker"].search([("source_id", "in", sources.ids)]).unlink()
    funnel.step_ids.mailing_id.unlink()  # with their mailing traces
    funnel.unlink()
    env["sms.microfunnel.consent.event"].search(
        [("number", "in", numbers)]
    ).with_context(sms_consent_erasure=True).unlink()
    env["sms.microfunnel.consent"].search([("number", "in", numbers)]).unlink()
    env["res.partner"].browse(partner_ids).unlink()


def run_dispatch_jobs(registry, count, batch_size, when):
    """Run ``count`` dispatch jobs at once, each on its own connection and
    committing as Odoo's cron threads do (the first one the main job, the
    others its workers, chunks of ``batch_size`` + their index), at the frozen
    time ``when``.  Returns the errors they raised."""
    barrier = threading.Barrier(count)
    errors = []

    def job(index):
        try:
            with registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                barrier.wait(timeout=10)
                env["sms.microfunnel.trace"]._cron_dispatch(
                    batch_size=batch_size + index, worker=index or False
                )
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)

    with freeze_time(when):
        threads = [threading.Thread(target=job, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    return errors


def confirm_consent(env, partners, wording="J'accepte de recevoir des SMS.", **vals):
    """A confirmed web-form consent of each of ``partners`` for their phone
    (``vals``: more values of the events, e.g. ``event_date``)."""
    return env["sms.microfunnel.consent.event"]._record(
        [
            {
                "event_type": "confirmed",
                "number": partner.phone,
                "partner_id": partner.id,
                "source": "web_form",
                "wording": wording,
                **vals,
            }
            for partner in partners
        ]
    )


@contextmanager
def recorded_queries(env):
    """The queries run through ``env.execute_query`` meanwhile (a list)."""
    queries = []
    Env = type(env)
    original = Env.execute_query

    def recording(env, query):
        queries.append(query)
        return original(env, query)

    with patch.object(Env, "execute_query", recording):
        yield queries


def rows_read(env, query):
    """{table alias: rows} the plan of ``query`` read from each table (the
    rows it kept and those its filters removed, in every loop)."""
    env.cr.execute(SQL("EXPLAIN (ANALYZE, FORMAT JSON) %s", query))
    read, nodes = {}, [env.cr.fetchone()[0][0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if "Relation Name" in node:
            scanned = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            read.setdefault(node["Alias"], 0)
            read[node["Alias"]] += scanned * node["Actual Loops"]
        nodes += node.get("Plans", [])
    return read
