# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo.tests import HttpCase, tagged


@tagged("post_install", "-at_install")
class TestSmsFunnelUi(HttpCase):
    def test_menu_tour_as_manager(self):
        self.start_tour("/odoo", "sms_microfunnel_menu_tour", login="admin")
