/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";
import {stepUtils} from "@web_tour/tour_utils";

/** The node (card, its actions and its children) of the step named `name`. */
function node(name) {
    return `.o_sms_funnel_builder_node[data-node-name='${name}']`;
}

/**
 * A marketer builds a 3-step funnel on a new record in one pass (offer →
 * 24 h → reminder to the non-clickers → last call), checks the phone
 * preview, runs the pre-flight and starts the funnel through its
 * confirmation. `texts` holds the words the interface must show, so the same
 * walk runs in English and in French.
 */
function marketerSteps(texts) {
    return [
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
            run: `edit ${texts.funnel}`,
        },
        {
            content: "The builder invites to add the first step",
            trigger: `.o_sms_funnel_builder_add_root:contains('${texts.addStep}')`,
            run: "click",
        },
        {
            content: "Offer: name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Offer",
        },
        {
            content: "Offer: text with a link",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Offre -20 % cette semaine : https://example.com/offre",
        },
        {
            content: "Insert the recipient's name from the field picker",
            trigger: ".modal .o_sms_funnel_placeholder_picker select",
            run: "select name",
        },
        {
            content: "Leave the text (the preview is composed by the server)",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "click",
        },
        {
            content: "The phone shows the final text: sender, short link, STOP mention",
            trigger:
                ".modal .o_sms_phone_preview_bubble:contains('ACME'):contains('STOP au 36111'):contains('Alice Tour'):not(:contains('example.com'))",
        },
        {
            content: "Save the offer",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "Open the branches under the offer",
            trigger: `body:not(:has(.modal)) ${node("Offer")} > .o_sms_funnel_builder_actions .o_sms_funnel_builder_add_branch`,
            run: "click",
        },
        {
            content: "Branch: did not click",
            trigger: ".o_sms_funnel_builder_branch_not_clicked",
            run: "click",
        },
        {
            content: "Reminder: name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Reminder",
        },
        {
            content: "24 …",
            trigger: ".modal .o_field_widget[name=wait_value] input",
            run: "edit 24",
        },
        {
            content: "… hours after the offer",
            trigger: ".modal .o_field_widget[name=wait_unit] input[data-value=hours]",
            run: "click",
        },
        {
            content: "Reminder: text",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Rappel : l'offre -20 % se termine bientôt.",
        },
        {
            content: "Save the reminder",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "The reminder hangs under the offer, on the non-clickers' branch",
            trigger: `${node("Offer")} ${node("Reminder")} > .o_sms_funnel_builder_condition[data-condition=not_clicked]`,
        },
        {
            content: "Add a step after the reminder",
            trigger: `body:not(:has(.modal)) ${node("Reminder")} > .o_sms_funnel_builder_actions .o_sms_funnel_builder_add`,
            run: "click",
        },
        {
            content: "Last call: name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Last call",
        },
        {
            content: "Last call: text",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Dernier jour pour l'offre -20 %.",
        },
        {
            content: "Save the last call",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "Add a first-level step by mistake",
            trigger: "body:not(:has(.modal)) .o_sms_funnel_builder_add_root",
            run: "click",
        },
        {
            content: "Mistake: name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Mistake",
        },
        {
            content: "Mistake: text",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Oups",
        },
        {
            content: "Save the mistake",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "And a step after it",
            trigger: `body:not(:has(.modal)) ${node("Mistake")} > .o_sms_funnel_builder_actions .o_sms_funnel_builder_add`,
            run: "click",
        },
        {
            content: "Its name",
            trigger: ".modal .o_field_widget[name=name] input",
            run: "edit Mistake child",
        },
        {
            content: "Its text",
            trigger: ".modal .o_field_widget[name=body] textarea",
            run: "edit Oups encore",
        },
        {
            content: "Save it",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "The second mistake hangs under the first",
            trigger: `body:not(:has(.modal)) ${node("Mistake")} ${node("Mistake child")}`,
        },
        {
            content: "Delete the first mistake",
            trigger: `${node("Mistake")} > .o_sms_funnel_builder_card .o_sms_funnel_builder_delete`,
            run: "click",
        },
        {
            content: "Confirm: the step and the one after it",
            trigger: ".modal:contains('Mistake') .modal-footer .btn-primary",
            run: "click",
        },
        {
            content: "Both are gone, the three steps stay",
            trigger: `body:not(:has(.modal)) .o_sms_funnel_builder:not(:has([data-node-name^='Mistake'])) ${node("Last call")}`,
        },
        {
            content: "The last call card",
            trigger: ".o_sms_funnel_builder_card[data-step-name='Last call']",
        },
        {
            content: "Three cards, top-down",
            trigger: `${node("Offer")} ${node("Reminder")} ${node("Last call")} .o_sms_funnel_builder_wait:contains('${texts.day}')`,
        },
        {
            content: "Reopen the offer to preview it again",
            trigger:
                "body:not(:has(.modal)) .o_sms_funnel_builder_card[data-step-name='Offer']",
            run: "click",
        },
        {
            content: "The preview is there",
            trigger: ".modal .o_sms_phone_preview_bubble:contains('ACME')",
        },
        {
            content: "Close the step",
            trigger: ".modal .o_form_button_save",
            run: "click",
        },
        {
            content: "Save the funnel in one go",
            trigger: "body:not(:has(.modal)) .o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_view:not(:has(.o_form_button_save:visible))",
        },
        {
            content: "Pre-flight",
            trigger: "button[name=action_preflight]",
            run: "click",
        },
        {
            content: "Check the audience",
            trigger: ".modal button[name=action_check]",
            run: "click",
        },
        {
            content: "The outcomes are listed",
            trigger: ".modal .o_field_widget[name=line_ids] .o_data_row",
        },
        {
            content: "Close the pre-flight",
            trigger: ".modal .modal-footer .btn-secondary",
            run: "click",
        },
        {
            content: "Start",
            trigger: ".o_form_view:not(:has(.modal)) button[name=action_open_launch]",
            run: "click",
        },
        {
            content: "The confirmation gives the pre-flight figures",
            trigger: `.modal .o_sms_funnel_launch_summary:contains('${texts.selected}')`,
        },
        {
            content: "It says what happens next",
            trigger: `.modal .o_sms_funnel_launch_next:contains('${texts.next}')`,
        },
        {
            content: "Confirm",
            trigger: ".modal .modal-footer button[name=action_confirm]:visible",
            run: "click",
        },
        {
            content: "Running, with the enrolled counter already up to date",
            trigger: `.o_statusbar_status .o_arrow_button_current:contains('${texts.running}')`,
        },
        {
            content: "Enrolled counter refreshed at once",
            trigger:
                ".oe_stat_button .o_field_widget[name=enrollment_count] .o_stat_value:contains('2')",
        },
        {
            content: "A running funnel's steps are read-only",
            trigger:
                ".o_sms_funnel_builder_readonly:not(:has(.o_sms_funnel_builder_add))",
        },
    ];
}

registry.category("web_tour.tours").add("sms_microfunnel_marketer_tour", {
    url: "/odoo",
    steps: () =>
        marketerSteps({
            funnel: "Tour funnel",
            addStep: "Add step",
            day: "1 day after the previous step",
            selected: "selected:",
            next: "records will be enrolled",
            running: "Running",
        }),
});

registry.category("web_tour.tours").add("sms_microfunnel_marketer_tour_fr", {
    url: "/odoo",
    steps: () =>
        marketerSteps({
            funnel: "Parcours visite",
            addStep: "Ajouter une étape",
            day: "1 jour après l'étape précédente",
            selected: "sélectionnés :",
            next: "seront inscrits",
            running: "En cours",
        }),
});

/** After a dispatch: the canvas shows each step's figures. */
registry.category("web_tour.tours").add("sms_microfunnel_builder_counts_tour", {
    steps: () => [
        {
            content:
                "The offer card counts its two messages (queued or waiting for the window)",
            trigger:
                ".o_sms_funnel_builder_card[data-step-name='Offer'] .o_sms_funnel_builder_count_scheduled[data-count='2']",
        },
        {
            content: "The cards keep their tree once saved",
            trigger:
                ".o_sms_funnel_builder_node[data-node-name='Reminder'] .o_sms_funnel_builder_card[data-step-name='Last call']",
        },
    ],
});
