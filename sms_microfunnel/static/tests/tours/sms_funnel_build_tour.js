/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";
import {stepUtils} from "@web_tour/tour_utils";

registry.category("web_tour.tours").add("sms_microfunnel_build_funnel_tour", {
    url: "/odoo",
    steps: () => [
        stepUtils.showAppsMenuItem(),
        {
            content: "Open the SMS Funnels app",
            trigger: ".o_app[data-menu-xmlid='sms_microfunnel.menu_sms_funnel_root']",
            run: "click",
        },
        {
            content: "Open the funnels",
            trigger: ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_funnels']",
            run: "click",
        },
        {
            content: "Create a funnel",
            trigger: ".o-kanban-button-new, .o_list_button_add",
            run: "click",
        },
        {
            content: "Name it",
            trigger: ".o_field_widget[name=name] input, .o_field_widget[name=name] textarea",
            run: "edit Tour funnel",
        },
        {
            content: "Add the first step",
            trigger: ".o_field_widget[name=step_ids] .o_field_x2many_list_row_add a",
            run: "click",
        },
        {
            content: "Step name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Offer",
        },
        {
            content: "Step text",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Bonjour, offre du jour. STOP au 36111",
        },
        {
            content: "Message class: transactional (no consent needed in the tour)",
            trigger: ".modal .o_field_widget[name=message_class] input[data-value=transactional]",
            run: "click",
        },
        {
            content: "Save the step",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "The first step is listed",
            trigger: ".o_field_widget[name=step_ids] .o_data_row:contains('Offer')",
        },
        {
            content: "Save the funnel",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Wait until the funnel is saved (it has an id)",
            trigger: ".o_form_view .o_breadcrumb:contains('Tour funnel')",
        },
        {
            content: "Nothing left to save",
            trigger: ".o_form_view:not(:has(.o_form_button_save:visible))",
        },
        {
            content: "Add the second step",
            trigger: ".o_field_widget[name=step_ids] .o_field_x2many_list_row_add a",
            run: "click",
        },
        {
            content: "Step name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Reminder",
        },
        {
            content: "It follows the offer",
            trigger: ".modal .o_field_widget[name=parent_id] input",
            run: "edit Offer",
        },
        {
            content: "Pick the offer",
            trigger: ".ui-autocomplete .dropdown-item:contains('Offer')",
            run: "click",
        },
        {
            content: "Wait after the previous step",
            trigger: ".modal .o_field_widget[name=wait_mode] input[data-value=after_parent]",
            run: "click",
        },
        {
            content: "24 hours later",
            trigger: ".modal .o_field_widget[name=wait_hours] input",
            run: "edit 24",
        },
        {
            content: "Step text",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Dernier rappel. STOP au 36111",
        },
        {
            content: "Message class",
            trigger: ".modal .o_field_widget[name=message_class] input[data-value=transactional]",
            run: "click",
        },
        {
            content: "Save the step",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "Two steps are listed",
            trigger: ".o_field_widget[name=step_ids] .o_data_row:contains('Reminder')",
        },
        {
            content: "Save the funnel with its two steps",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_view:not(:has(.o_form_button_save:visible))",
        },
        {
            content: "Start the funnel",
            trigger: "button[name=action_start]",
            run: "click",
        },
        {
            content: "The funnel is running",
            trigger: ".o_statusbar_status button.o_arrow_button_current:contains('Running')",
        },
    ],
});
