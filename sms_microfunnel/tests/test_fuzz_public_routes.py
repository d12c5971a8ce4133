# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Fuzzing of the public pages, the event endpoint and the CSV consent import.

Hostile requests (see ``fuzz_common``) get a clear 4xx or a page that says
what is wrong, never a 500 and never an ERROR in the log; the CSV import
reports a bad row or refuses the file with a user error.
"""

import base64
import contextlib
import json
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from lxml import html

from odoo.exceptions import UserError
from odoo.tests import HttpCase, tagged

from ..models.sms_microfunnel_consent_event import wording_hash
from .fuzz_common import FUZZ_SETTINGS, hostile_text, watch_errors

NUMBER = "+33612345670"
PAGE_WARNINGS = ("odoo.http",)


@tagged("post_install", "-at_install")
class TestFuzzPublicRoutes(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.ref("base.main_company")
        cls.company.write(
            {
                "country_id": cls.env.ref("base.fr").id,
                "sms_funnel_sender_label": "ACME: ",
                "sms_consent_wording": "Offers by SMS. Reply STOP to opt out.",
            }
        )
        cls.partner = cls.env["res.partner"].create(
            {"name": "Fuzz Target", "phone": NUMBER}
        )
        cls.doi_event = cls.env["sms.microfunnel.consent"]._request_doi(
            NUMBER,
            company=cls.company,
            partner=cls.partner,
            source="web_form",
            method="checkbox",
            wording="Offers by SMS.",
        )
        cls.contact_token = cls.env["sms.microfunnel.consent"]._unsubscribe_token(
            NUMBER, cls.company
        )
        cls.funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Fuzzed events", "model_name": "res.partner"}
        )
        cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "Now",
                "message_class": "transactional",
                "body": "Bonjour {{ object.name }}",
            }
        )
        cls.funnel.action_start()
        cls.funnel.action_generate_event_token()
        cls.form_url = f"/sms/optin?company={cls.company.id}"

    def setUp(self):
        super().setUp()
        page = self.url_open(self.form_url)
        self.assertEqual(page.status_code, 200)
        self.csrf = html.fromstring(page.content).xpath(
            "//input[@name='csrf_token']/@value"
        )[0]

    def open(self, url, data=None, **kw):
        response = self.url_open(url, data=data, allow_redirects=False, **kw)
        self.assertLess(response.status_code, 500, (url, data, response.text[:500]))
        return response

    def counts(self):
        self.env.invalidate_all()
        return (
            self.env["sms.microfunnel.consent.event"].search_count([]),
            self.env["sms.sms"].search_count([]),
        )

    # -- the opt-in form ----------------------------------------------------------

    @FUZZ_SETTINGS
    @given(
        name=hostile_text,
        phone=hostile_text,
        consent=st.sampled_from(["", "1", "\x00"]),
        company=st.one_of(st.none(), hostile_text),
        interests=st.lists(hostile_text, max_size=3),
        method=st.sampled_from(["GET", "POST"]),
        same_wording=st.booleans(),
    )
    def test_fuzz_optin_form(
        self, name, phone, consent, company, interests, method, same_wording
    ):
        url = "/sms/optin"
        if company is not None:
            url += "?company=" + quote(company, safe="")
        if method == "GET":
            with watch_errors(PAGE_WARNINGS) as watch:
                self.open(url)
            self.assertFalse(watch.records, watch.messages())
            return
        data = {
            "csrf_token": self.csrf,
            "name": name,
            "phone": phone,
            "consent": consent,
            "wording_sha256": wording_hash(self.company.sms_consent_wording)
            if same_wording
            else "0" * 64,
            "interest_ids": interests,
        }
        with watch_errors(PAGE_WARNINGS) as watch:
            self.open(url, data=data)
        self.assertFalse(watch.records, watch.messages())

    # -- confirmation, unsubscribe and preferences links ---------------------------

    def link_token(self, kind, junk):
        if kind == "valid":
            return self.contact_token
        if kind == "doi":
            return self.doi_event.doi_token
        if kind == "tampered":
            return self.contact_token[:-2] + junk[:4]
        if kind == "forged_payload":
            encoded = base64.urlsafe_b64encode(junk.encode()).decode().rstrip("=")
            return f"{encoded}.{'0' * 32}"
        return junk

    token_kinds = st.sampled_from(
        ["valid", "doi", "tampered", "forged_payload", "junk"]
    )

    @FUZZ_SETTINGS
    @given(kind=token_kinds, junk=hostile_text, method=st.sampled_from(["GET", "POST"]))
    def test_fuzz_confirmation_link(self, kind, junk, method):
        token = self.link_token(kind, junk) or "x"
        url = "/sms/optin/confirm/" + quote(token, safe="")
        data = {"csrf_token": self.csrf} if method == "POST" else None
        with watch_errors(PAGE_WARNINGS) as watch:
            self.open(url, data=data)
        self.assertFalse(watch.records, watch.messages())

    @FUZZ_SETTINGS
    @given(
        kind=token_kinds,
        junk=hostile_text,
        method=st.sampled_from(["GET", "POST"]),
        extra=hostile_text,
    )
    def test_fuzz_unsubscribe_link(self, kind, junk, method, extra):
        token = self.link_token(kind, junk) or "x"
        url = "/sms/unsubscribe/" + quote(token, safe="")
        data = None
        if method == "POST":
            data = {"csrf_token": self.csrf, "reason": extra}
        before = self.counts()
        with watch_errors(PAGE_WARNINGS) as watch:
            response = self.open(url, data=data)
        self.assertFalse(watch.records, watch.messages())
        if kind not in ("valid", "doi") and token != self.contact_token:
            # 404, or Odoo's redirection to the canonical form of an odd path
            self.assertIn(response.status_code, (301, 404), token)
            self.assertEqual(self.counts(), before, "a refused link writes nothing")

    @FUZZ_SETTINGS
    @given(
        kind=token_kinds,
        junk=hostile_text,
        frequency=st.one_of(
            st.sampled_from(["all", "weekly", "monthly"]), hostile_text
        ),
        interests=st.lists(hostile_text, max_size=4),
    )
    def test_fuzz_preferences(self, kind, junk, frequency, interests):
        token = self.link_token(kind, junk) or "x"
        url = "/sms/preferences/" + quote(token, safe="")
        data = {
            "csrf_token": self.csrf,
            "frequency": frequency,
            "interest_ids": interests,
        }
        with watch_errors(PAGE_WARNINGS) as watch:
            response = self.open(url, data=data)
        self.assertFalse(watch.records, watch.messages())
        if kind not in ("valid", "doi") and token != self.contact_token:
            # 404, or Odoo's redirection to the canonical form of an odd path
            self.assertIn(response.status_code, (301, 404), token)

    # -- the event endpoint ----------------------------------------------------------

    json_values = st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            hostile_text,
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(hostile_text, children, max_size=4),
        ),
        max_leaves=12,
    )
    event_keys = st.sampled_from(
        ["phone", "name", "partner_id", "ref", "values", "idempotency_key", "other"]
    )
    raw_bodies = st.one_of(
        st.sampled_from(
            [
                b"",
                b"\x00",
                b'{"phone": 1e309}',
                b'{"phone": NaN}',
                b'{"phone": "\\u0000"}',
                b'{"partner_id": 99999999999999999999}',
                b'{"partner_id": "2147483648"}',
                b"[" * 50000 + b"]" * 50000,
                b'{"values": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001,
                b'{"phone": "' + b"9" * 70000 + b'"}',
                b"\xff\xfe",
            ]
        ),
        st.binary(max_size=200),
    )

    @FUZZ_SETTINGS
    @given(
        payload=st.one_of(
            st.dictionaries(event_keys, json_values, max_size=5),
            json_values,
        ),
        raw=st.one_of(st.none(), raw_bodies),
        auth=st.sampled_from(["valid", "wrong", "none", "junk"]),
        funnel=st.sampled_from(["ours", "other", "huge"]),
        junk=hostile_text,
    )
    def test_fuzz_event_endpoint(self, payload, raw, auth, funnel, junk):
        funnel_id = {
            "ours": self.funnel.id,
            "other": self.funnel.id + 1000,
            "huge": 10**30,
        }[funnel]
        headers = {"Content-Type": "application/json"}
        if auth == "valid":
            headers["Authorization"] = f"Bearer {self.funnel.event_token}"
        elif auth == "wrong":
            headers["Authorization"] = "Bearer " + "0" * 32
        elif auth == "junk":
            header = junk.encode("utf-8", "replace").decode("latin-1")
            headers["Authorization"] = "".join(
                char for char in header if char.isprintable()
            ).strip()
        body = raw if raw is not None else json.dumps(payload).encode()
        with watch_errors(PAGE_WARNINGS) as watch:
            response = self.open(
                f"/sms_microfunnel/event/{funnel_id}",
                data=body,
                headers=headers,
                method="POST",
            )
        self.assertFalse(watch.records, watch.messages())
        if auth != "valid" or funnel != "ours":
            self.assertIn(response.status_code, (401, 404, 413), response.text[:200])

    def test_event_endpoint_limits(self):
        url = f"/sms_microfunnel/event/{self.funnel.id}"
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.funnel.event_token}",
        }
        enrollments = len(self.funnel.enrollment_ids)
        cases = [
            (b'{"phone": "+33611111111", "values": {"x": 1e309}}', 400),
            (b'{"phone": "+33611111111", "name": "A\\u0000B"}', 400),
            (b'{"values": ' + b'{"a": ' * 50000 + b"1" + b"}" * 50001, 413),
            (b'{"values": ' + b'{"a": ' * 20 + b"1" + b"}" * 21, 400),
            (b'{"partner_id": 99999999999999999999}', 400),
            (json.dumps({"phone": "1" * 40}).encode(), 400),
            (b'{"phone": "' + b"1" * 30 * 1024 * 1024 + b'"}', 413),
        ]
        for body, expected in cases:
            response = self.open(url, data=body, headers=headers)
            self.assertEqual(response.status_code, expected, body[:60])
        self.assertEqual(len(self.funnel.enrollment_ids), enrollments)

    # -- the CSV consent import --------------------------------------------------

    csv_cells = st.one_of(hostile_text, st.sampled_from(["+33611223344", "2024-01-05"]))

    @FUZZ_SETTINGS
    @given(
        header=st.lists(
            st.one_of(
                st.sampled_from(
                    ["phone", "name", "consent_date", "source", "wording", "lang"]
                ),
                hostile_text,
            ),
            min_size=1,
            max_size=6,
        ),
        rows=st.lists(st.lists(csv_cells, max_size=7), max_size=4),
        delimiter=st.sampled_from([",", ";"]),
        raw=st.one_of(st.none(), st.binary(max_size=120)),
        batch=st.one_of(st.just("fuzz"), hostile_text),
    )
    def test_fuzz_csv_import(self, header, rows, delimiter, raw, batch):
        if raw is None:
            lines = [delimiter.join(header)] + [delimiter.join(row) for row in rows]
            raw = "\n".join(lines).encode("utf-8", "surrogatepass")
        wizard = self.env["sms.microfunnel.consent.import"].create(
            {
                "file": base64.b64encode(raw),
                "filename": "fuzz.csv",
                "batch_label": batch.replace("\x00", "") or "fuzz",
                "company_id": self.company.id,
            }
        )
        # a refusal is a clear user error: fine, as long as nothing is logged
        with (
            watch_errors() as watch,
            contextlib.suppress(UserError),
            self.env.cr.savepoint(),
        ):
            wizard.action_import()
        self.assertFalse(watch.records, watch.messages())

    def test_csv_import_reports_a_nul_cell(self):
        text = "phone,name\n+33611223344,Ana\x00is\n+33611223355,Inès\n"
        wizard = self.env["sms.microfunnel.consent.import"].create(
            {
                "file": base64.b64encode(text.encode()),
                "filename": "nul.csv",
                "batch_label": "nul",
                "company_id": self.company.id,
            }
        )
        wizard.action_import()
        self.assertEqual(wizard.invalid_count, 1)
        self.assertEqual(wizard.unproven_count, 1)
        self.assertIn("Line 2", wizard.result_summary)
        self.assertIn("control character", wizard.result_summary)
