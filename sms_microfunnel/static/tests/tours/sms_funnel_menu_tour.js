/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";
import {stepUtils} from "@web_tour/tour_utils";

registry.category("web_tour.tours").add("sms_microfunnel_menu_tour", {
    url: "/odoo",
    steps: () => [
        stepUtils.showAppsMenuItem(),
        {
            content: "Open the SMS Funnels app",
            trigger: ".o_app[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_root']",
            run: "click",
        },
        {
            content: "The app opens on its SMS templates",
            trigger: ".o_main_navbar .o_menu_brand:contains('SMS Funnels')",
        },
        {
            content: "Open the Configuration menu",
            trigger:
                ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_configuration']",
            run: "click",
        },
        {
            content: "Open the settings",
            trigger:
                ".dropdown-item[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_settings']",
            run: "click",
        },
        {
            content: "The SMS Funnels settings are shown",
            trigger:
                ".app_settings_block[data-key='sms_microfunnel'] #sms_funnel_max_segments",
        },
    ],
});
