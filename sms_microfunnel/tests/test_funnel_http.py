# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json

from odoo.tests import HttpCase, tagged


@tagged("post_install", "-at_install")
class TestFunnelEventEndpoint(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.company.country_id = cls.env.ref("base.fr")
        cls.funnel = cls.env["sms.microfunnel.campaign"].create(
            {"name": "Cart waiting", "model_name": "res.partner"}
        )
        cls.env["sms.microfunnel.step"].create(
            {
                "campaign_id": cls.funnel.id,
                "name": "2 h after",
                "wait_hours": 2,
                "message_class": "transactional",
                "body": "Votre panier vous attend : {{ object.name }}",
            }
        )
        cls.funnel.action_start()
        cls.funnel.action_generate_event_token()
        cls.url = f"/sms_microfunnel/event/{cls.funnel.id}"

    def post(self, payload, token=None, raw=None):
        token = self.funnel.event_token if token is None else token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(payload)
        return self.url_open(self.url, data=data, headers=headers)

    def test_authentication(self):
        self.assertEqual(
            self.post({"phone": "+33611111111"}, token="wrong").status_code, 401
        )
        self.assertEqual(
            self.post({"phone": "+33611111111"}, token="").status_code, 401
        )
        self.assertFalse(self.funnel.enrollment_ids)

    def test_validation_errors_are_clear_json(self):
        bad_json = self.post(None, raw="{not json")
        self.assertEqual(bad_json.status_code, 400)
        self.assertEqual(bad_json.json()["error"], "invalid_json")
        not_object = self.post(["+33611111111"])
        self.assertEqual(not_object.status_code, 400)
        bad_phone = self.post({"phone": "12"})
        self.assertEqual(bad_phone.status_code, 422)
        self.assertIn("not a valid phone number", bad_phone.json()["detail"])
        nothing = self.post({"values": {"cart": "x"}})
        self.assertEqual(nothing.status_code, 422)
        self.assertFalse(self.funnel.enrollment_ids)

    def test_enrols_once_per_idempotency_key(self):
        payload = {
            "phone": "06 12 34 56 78",
            "name": "Inès",
            "values": {"cart_url": "https://shop.example.com/cart/42"},
            "idempotency_key": "cart-42",
        }
        first = self.post(payload)
        self.assertEqual(first.status_code, 201, first.text)
        enrollment = self.env["sms.microfunnel.enrollment"].browse(
            first.json()["enrollment_id"]
        )
        self.assertEqual(enrollment.number, "+33612345678")
        self.assertEqual(
            enrollment.values["cart_url"], "https://shop.example.com/cart/42"
        )
        self.assertEqual(len(enrollment.trace_ids), 1)
        again = self.post(payload)
        self.assertEqual(again.status_code, 200)
        self.assertTrue(again.json()["duplicate"])
        self.assertEqual(len(self.funnel.enrollment_ids), 1)

    def test_paused_funnel_refuses_events(self):
        self.funnel.action_pause()
        response = self.post({"phone": "+33611111111"})
        self.assertEqual(response.status_code, 409)
