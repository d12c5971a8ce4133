# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, new_test_user, tagged

OUR_MODULES = ("sms_microfunnel", "sms_microfunnel_twilio")


@tagged("post_install", "-at_install")
class TestSmsFunnelSecurity(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.group_user = cls.env.ref("sms_microfunnel.group_sms_funnel_user")
        cls.group_manager = cls.env.ref("sms_microfunnel.group_sms_funnel_manager")
        cls.funnel_user = new_test_user(
            cls.env, login="smf_user", groups="sms_microfunnel.group_sms_funnel_user"
        )
        cls.funnel_manager = new_test_user(
            cls.env,
            login="smf_manager",
            groups="sms_microfunnel.group_sms_funnel_manager",
        )
        cls.employee = new_test_user(
            cls.env, login="smf_employee", groups="base.group_user"
        )

    def _menu_xmlids(self, user):
        menus = self.env["ir.ui.menu"].with_user(user).load_menus(debug=False)
        return {menu.get("xmlid") for menu in menus.values() if isinstance(menu, dict)}

    def test_groups_are_privilege_based(self):
        privilege = self.env.ref("sms_microfunnel.res_groups_privilege_sms_funnel")
        self.assertEqual(self.group_user.privilege_id, privilege)
        self.assertEqual(self.group_manager.privilege_id, privilege)
        self.assertEqual(
            privilege.category_id, self.env.ref("base.module_category_marketing")
        )
        self.assertIn(self.group_user, self.group_manager.all_implied_ids)
        self.assertIn(self.env.ref("base.group_user"), self.group_user.all_implied_ids)

    def test_administrator_is_manager(self):
        self.assertTrue(
            self.env.ref("base.user_admin").has_group(
                "sms_microfunnel.group_sms_funnel_manager"
            )
        )

    def test_every_model_has_access_rules(self):
        """Each model our addons define is covered by at least one access rule."""
        models = (
            self.env["ir.model"]
            .search([])
            .filtered(
                lambda m: (
                    set(m.modules.replace(" ", "").split(",")) & set(OUR_MODULES)
                    and not self.env[m.model]._abstract
                    and not self.env[m.model]._transient
                )
            )
        )
        for model in models:
            # models our addons only extend are covered by their own module
            if set(model.modules.replace(" ", "").split(",")) - set(OUR_MODULES):
                continue
            self.assertTrue(model.access_ids, f"{model.model} has no access rule")

    def test_menu_visibility_per_group(self):
        root = "sms_microfunnel.menu_sms_funnel_root"
        config = "sms_microfunnel.menu_sms_funnel_configuration"
        blacklist = "sms_microfunnel.menu_sms_funnel_blacklist"
        self.assertNotIn(root, self._menu_xmlids(self.employee))
        user_menus = self._menu_xmlids(self.funnel_user)
        self.assertIn(root, user_menus)
        self.assertNotIn(config, user_menus)
        manager_menus = self._menu_xmlids(self.funnel_manager)
        self.assertIn(config, manager_menus)
        self.assertIn(blacklist, manager_menus)

    def test_blacklist_access(self):
        blacklist = self.env["phone.blacklist"]
        with self.assertRaises(AccessError):
            blacklist.with_user(self.funnel_user).search([])
        entry = blacklist.with_user(self.funnel_manager).create(
            {"number": "+33612345678"}
        )
        self.assertEqual(entry.number, "+33612345678")
        with self.assertRaises(AccessError):
            entry.with_user(self.funnel_manager).unlink()

    def test_sms_template_access(self):
        template_vals = {
            "name": "Webinar reminder",
            "body": "Webinar tomorrow",
            "model_id": self.env.ref("base.model_res_partner").id,
        }
        with self.assertRaises(AccessError):
            self.env["sms.template"].with_user(self.funnel_user).create(template_vals)
        template = (
            self.env["sms.template"]
            .with_user(self.funnel_manager)
            .create(template_vals)
        )
        self.assertTrue(template.with_user(self.funnel_user).read(["body"]))
