# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
import json

from odoo.tests import BaseCase, tagged
from odoo.tools.misc import file_open

from odoo.addons.sms_microfunnel.tools import sms_encoding


@tagged("post_install", "-at_install")
class TestSmsEncodingInOdoo(BaseCase):
    """The engine is importable from the addon and agrees with the shared vectors."""

    def test_shared_vectors(self):
        with file_open("sms_microfunnel/static/tests/sms_encoding_vectors.json") as f:
            vectors = json.load(f)
        self.assertGreater(len(vectors), 20)
        for vector in vectors:
            with self.subTest(vector.get("name")):
                result = sms_encoding.analyze(vector["text"])
                self.assertEqual(
                    result,
                    {
                        key: vector[key]
                        for key in ("encoding", "units", "segments", "ucs2_chars")
                    },
                )

    def test_footer_cost_counts_in_the_whole_message_encoding(self):
        body = "Votre panier vous attend !"
        footer = "\nSTOP au 36111"
        self.assertEqual(sms_encoding.analyze(body + footer)["encoding"], "GSM-7")
        # one curly apostrophe switches the whole message, footer included, to UCS-2
        curly = sms_encoding.analyze("Aujourd’hui seulement" + footer)
        self.assertEqual(curly["encoding"], "UCS-2")
        self.assertEqual(curly["ucs2_chars"], ["’"])
        self.assertEqual(curly["units"], len("Aujourd’hui seulement" + footer))
