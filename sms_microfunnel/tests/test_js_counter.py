# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Browser side of the message rules: the JS encoding port and the counter."""

from odoo.tests import HttpCase, no_retry, tagged

from odoo.addons.web.tests.test_js import unit_test_error_checker


def hoot_job_id(name):
    """Hoot's id of a suite or test (``HOOTCommon._generate_hash`` in web)."""
    value = 0
    for char in name:
        value = ((value << 5) - value + ord(char)) & 0xFFFFFFFF
    return f"{value:08x}"


@tagged("post_install", "-at_install")
class TestSmsCounterJs(HttpCase):
    def test_hoot_job_id_matches_odoo(self):
        # the values asserted by web/tests/test_js.py
        self.assertEqual(hoot_job_id("@web/core"), "e39ce9ba")
        self.assertEqual(hoot_job_id("@web/core/autocomplete"), "69a6561d")

    @no_retry
    def test_encoding_vectors_in_browser(self):
        """The JS port of sms_encoding.py passes the shared vectors (hoot)."""
        suite = hoot_job_id("@sms_microfunnel")
        self.browser_js(
            f"/web/tests?headless&loglevel=2&preset=desktop&timeout=15000&id={suite}",
            "",
            "",
            login="admin",
            timeout=900,
            success_signal="[HOOT] Test suite succeeded",
            error_checker=unit_test_error_checker,
        )

    def test_counter_tour(self):
        """Typing in a template body updates the counter live: GSM-7 with a
        euro sign, UCS-2 and one more segment with a curly apostrophe."""
        company = self.env.ref("base.user_admin").company_id
        company.write(
            {
                "sms_funnel_sender_label": "ACME: ",
                "sms_funnel_optout_mention": "STOP au 36111",
                "sms_funnel_max_segments": 3,
            }
        )
        template = self.env["sms.template"].create(
            {
                "name": "Counter tour",
                "model_id": self.env["ir.model"]._get_id("res.partner"),
                "sms_funnel_message_class": "marketing",
                "body": "Bonjour, votre panier vous attend.",
            }
        )
        self.start_tour(
            f"/odoo/action-sms.sms_template_action/{template.id}",
            "sms_microfunnel_counter_tour",
            login="admin",
        )
        self.assertEqual(
            template.body,
            "Bonjour, votre panier vous attend.",
            "the tour discarded its changes",
        )
