/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {registry} from "@web/core/registry";

// Started on a marketing SMS template of a company whose sender
// identification is "ACME: " and opt-out mention "STOP au 36111"
// (tests/test_js_counter.py): the counter counts
// "ACME: <body>\nSTOP au 36111".
const COUNTER = ".o_field_sms_funnel_counter .o_sms_funnel_counter";

registry.category("web_tour.tours").add("sms_microfunnel_counter_tour", {
    steps: () => [
        {
            content: "The counter shows the saved body: GSM-7, one SMS",
            trigger: `${COUNTER}[data-encoding='GSM-7'][data-segments='1'][data-units-left='106']`,
        },
        {
            content: "Type a body with a euro sign",
            trigger: ".o_field_sms_funnel_counter textarea",
            run: "edit Offre -10 € sur tout le site ce week-end, profitez-en vite",
        },
        {
            content: "Still GSM-7 in one SMS; the euro sign costs two septets",
            trigger: `${COUNTER}[data-encoding='GSM-7'][data-segments='1'][data-units-left='81']`,
        },
        {
            content: "No character forces Unicode",
            trigger: ".o_field_sms_funnel_counter:not(:has(.o_sms_funnel_ucs2))",
        },
        {
            content: "Go on typing with a curly apostrophe",
            trigger: ".o_field_sms_funnel_counter textarea",
            run: "fill , c’est maintenant !",
        },
        {
            content: "The whole message switches to UCS-2 and needs two SMS",
            trigger: `${COUNTER}[data-encoding='UCS-2'][data-segments='2'][data-units-left='36']`,
        },
        {
            content: "The curly apostrophe is shown with its GSM-7 replacement",
            trigger:
                ".o_sms_funnel_ucs2 .o_sms_funnel_ucs2_char:contains('’'):contains(\"'\")",
        },
        {
            content: "Discard the changes",
            trigger: ".o_form_button_cancel",
            run: "click",
        },
        {
            content: "The counter follows the saved body again",
            trigger: `${COUNTER}[data-encoding='GSM-7'][data-segments='1'][data-units-left='106']`,
        },
    ],
});
