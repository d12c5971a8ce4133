/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("sms_microfunnel_consent_form_tour", {
    url: "/sms/optin",
    steps: () => [
        {
            content: "The consent box is shown unticked, with the company's wording",
            trigger: ".o_sms_optin_form input[name='consent']:not(:checked)",
        },
        {
            content: "Type a name",
            trigger: ".o_sms_optin_form input[name='name']",
            run: "edit Tour Visitor",
        },
        {
            content: "Type a mobile number in national form",
            trigger: ".o_sms_optin_form input[name='phone']",
            run: "edit 06 12 34 56 99",
        },
        {
            content: "Tick the consent box",
            trigger: ".o_sms_optin_form input[name='consent']",
            run: "click",
        },
        {
            content: "Submit the form",
            trigger: ".o_sms_optin_form .o_sms_optin_submit",
            run: "click",
            expectUnloadPage: true,
        },
        {
            content: "The result page asks to check the phone",
            trigger: ".o_sms_optin_done[data-outcome='requested']:contains('YES')",
        },
    ],
});
