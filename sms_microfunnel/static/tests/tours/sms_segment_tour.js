/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("sms_microfunnel_segment_tour", {
    url: "/odoo/action-sms_microfunnel.sms_segment_action",
    steps: () => [
        {
            content: "Create a segment",
            trigger: ".o_list_button_add",
            run: "click",
        },
        {
            content: "Name it",
            trigger: ".o_field_widget[name=name] input",
            run: "edit Tour segment",
        },
        {
            content: "Target the contacts who chose an interest",
            trigger: ".o_field_widget[name=interest_ids] input",
            run: "edit Tour Lead",
        },
        {
            content: "Pick the interest",
            trigger: ".ui-autocomplete .dropdown-item:contains('Tour Leadership')",
            run: "click",
        },
        {
            content: "The interest is chosen",
            trigger:
                ".o_field_widget[name=interest_ids] .o_tag:contains('Tour Leadership')",
        },
        {
            content: "The live count shows both members",
            trigger: ".o_sms_segment_total .o_stat_value:text(2)",
        },
        {
            content: "Both have a valid number",
            trigger: ".o_sms_segment_valid .o_stat_value:text(2)",
        },
        {
            content: "One of them may be texted now",
            trigger: ".o_sms_segment_marketable .o_stat_value:text(1)",
        },
        {
            content: "No opt-in is pending",
            trigger: ".o_sms_segment_pending .o_stat_value:text(0)",
        },
        {
            content: "Save the segment",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_view:not(:has(.o_form_button_save:visible))",
        },
        {
            content: "The counts are still shown once saved",
            trigger: ".o_sms_segment_marketable .o_stat_value:text(1)",
        },
    ],
});
