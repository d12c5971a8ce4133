/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";
import {stepUtils} from "@web_tour/tour_utils";

registry.category("web_tour.tours").add("sms_microfunnel_email_step_tour", {
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
            trigger:
                ".o_main_navbar [data-menu-xmlid='sms_microfunnel.menu_sms_funnel_funnels']",
            run: "click",
        },
        {
            content: "Create a funnel",
            trigger: ".o-kanban-button-new, .o_list_button_add",
            run: "click",
        },
        {
            content: "Name it",
            trigger:
                ".o_field_widget[name=name] input, .o_field_widget[name=name] textarea",
            run: "edit Webinar journey",
        },
        {
            content: "Save the funnel (its target, contacts, filters the templates)",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_view:not(:has(.o_form_button_save:visible))",
        },
        {
            content: "Add a step",
            trigger: ".o_field_widget[name=step_ids] .o_sms_funnel_builder_add_root",
            run: "click",
        },
        {
            content: "Step name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Invitation",
        },
        {
            content: "It is an email",
            trigger: ".modal .o_field_widget[name=step_type] input[data-value=email]",
            run: "click",
        },
        {
            content: "The SMS text is gone, the email template is asked for",
            trigger:
                ".modal:not(:has(.o_field_widget[name=body])) .o_field_widget[name=mail_template_id] input",
            run: "edit Webinar",
        },
        {
            content: "Pick the webinar invitation",
            trigger: ".ui-autocomplete .dropdown-item:contains('Webinar invitation')",
            run: "click",
        },
        {
            content: "Save the step",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "The email step is listed with its channel",
            trigger:
                ".o_field_widget[name=step_ids] .o_sms_funnel_builder_card:contains('Invitation'):contains('Email')",
        },
        {
            content: "Save the funnel",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved with its email step",
            trigger: ".o_form_view:not(:has(.o_form_button_save:visible))",
        },
    ],
});
