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
            trigger:
                ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_funnels']",
            run: "click",
        },
        {
            content: "The dashboard card of the funnel shows its rates",
            trigger: ".o_kanban_record:contains('Tour metrics funnel'):contains('%')",
        },
        {
            content: "Open the funnel",
            trigger: ".o_kanban_record:contains('Tour metrics funnel')",
            run: "click",
        },
        {
            content: "Open its performance tab",
            trigger: ".o_notebook .nav-link[name='performance']",
            run: "click",
        },
        {
            content: "The form shows the funnel's rates",
            trigger: ".o_field_widget[name='report_deliverability']:contains('100.0')",
        },
        {
            content: "The funnel by step draws the step with its recipient",
            trigger:
                ".o_sms_funnel_step:contains('Info') .o_sms_funnel_recipients .o_sms_funnel_count:contains('1')",
        },
        {
            content: "and its delivered message",
            trigger:
                ".o_sms_funnel_step:contains('Info') .o_sms_funnel_delivered:contains('100.0 %')",
        },
        {
            content: "Open the reporting menu",
            trigger:
                ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_reporting']",
            run: "click",
        },
        {
            content: "Open the funnel analysis",
            trigger:
                ".dropdown-item[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_report']",
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
