/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";
import {stepUtils} from "@web_tour/tour_utils";

// An administrator whose interface is in French finds the app, its menus,
// its views and its settings in French.
registry.category("web_tour.tours").add("sms_microfunnel_french_ui", {
    url: "/odoo",
    steps: () => [
        stepUtils.showAppsMenuItem(),
        {
            content: "The app is listed under its French name",
            trigger:
                ".o_app[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_root']:contains('Parcours SMS')",
            run: "click",
        },
        {
            content: "French top menus",
            trigger:
                ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_enrollments']:contains('Inscriptions')",
        },
        {
            content: "Open the funnels",
            trigger:
                ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_funnels']:contains('Parcours')",
            run: "click",
        },
        {
            content: "The funnels action is titled in French",
            trigger: ".o_breadcrumb:contains('Parcours SMS')",
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
                ".dropdown-item[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_settings']:contains('Paramètres')",
            run: "click",
        },
        {
            content: "Settings labels are French",
            trigger:
                ".app_settings_block[data-key='sms_microfunnel'] #sms_funnel_max_segments:contains('Segments maximum')",
        },
        {
            content: "The service messages are explained in French",
            trigger:
                ".app_settings_block[data-key='sms_microfunnel']:contains('SMS de demande de double consentement')",
        },
    ],
});
