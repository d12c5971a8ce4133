/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {Component} from "@odoo/owl";
import {_t} from "@web/core/l10n/translation";
import {registry} from "@web/core/registry";
import {standardFieldProps} from "@web/views/fields/standard_field_props";

/**
 * The message as the recipient's phone shows it: the text composed by the
 * server's message rules (`sms.microfunnel.step._compose_preview`: sender,
 * short links, opt-out mention, placeholders rendered on the chosen record),
 * with its encoding, segments and estimated cost. The widget only draws the
 * computed JSON field; it is recomputed when the body, the message class or
 * the preview record change.
 */
export class SmsPhonePreviewField extends Component {
    static template = "sms_microfunnel.SmsPhonePreviewField";
    static props = {...standardFieldProps};

    get preview() {
        return this.props.record.data[this.props.name] || null;
    }
}

export const smsPhonePreviewField = {
    component: SmsPhonePreviewField,
    displayName: _t("SMS phone preview"),
    supportedTypes: ["json"],
};

registry.category("fields").add("sms_funnel_phone_preview", smsPhonePreviewField);
