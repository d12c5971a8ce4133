/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";
import {stepUtils} from "@web_tour/tour_utils";

registry.category("web_tour.tours").add("sms_microfunnel_reporting_tour", {
    url: "/odoo",
    steps: () => [
        stepUtils.showAppsMenuItem(),
        {
            content: "Open the SMS Funnels app",
            trigger: ".o_app[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_root']",
            run: "click",
        },
        {
            content: "Open the funnels dashboard",
            trigger: ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_funnels']",
            run: "click",
        },
        {
            content: "The dashboard card of the funnel shows its rates",
            trigger: ".o_kanban_record:contains('Tour metrics funnel'):contains('%')",
        },
        {
            content: "Open the reporting menu",
            trigger: ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_reporting']",
            run: "click",
        },
        {
            content: "Open the funnel analysis",
            trigger: ".dropdown-item[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_report']",
            run: "click",
        },
        {
            content: "Switch to the pivot view",
            trigger: ".o_switch_view.o_pivot",
            run: "click",
        },
        {
            content: "The pivot shows the funnel's figures",
            trigger: ".o_pivot table .o_pivot_cell_value",
        },
    ],
});
