/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {Component} from "@odoo/owl";
import {_t} from "@web/core/l10n/translation";
import {formatFloat, formatInteger} from "@web/views/fields/formatters";
import {registry} from "@web/core/registry";
import {standardFieldProps} from "@web/views/fields/standard_field_props";

/**
 * Read-only funnel-shaped view of a funnel: one row per step, in the order of
 * the step tree, with horizontal bars for recipients → delivered → clicked →
 * converted and the drop-off from the step before. The figures come from the
 * computed JSON field (`_report_step_funnel` on the server): the widget only
 * draws them.
 */
export class SmsFunnelStepsField extends Component {
    static template = "sms_microfunnel.SmsFunnelStepsField";
    static props = {...standardFieldProps};

    get lines() {
        return this.props.record.data[this.props.name] || [];
    }

    /**
     * Width of a stage bar, relative to the widest step of the funnel, so that
     * the bars of all steps draw one funnel.
     * @param {Object} line
     * @param {number} share percentage of the step's recipients
     * @returns {string}
     */
    barStyle(line, share) {
        return `width: ${((line.width * share) / 100).toFixed(1)}%;`;
    }

    /**
     * @param {number} value a percentage
     * @returns {string} with one decimal, in the user's language
     */
    percent(value) {
        return formatFloat(value || 0, {digits: [16, 1]});
    }

    count(value) {
        return formatInteger(value || 0);
    }

    indentStyle(line) {
        return `padding-left: ${(line.level * 1.5).toFixed(1)}rem;`;
    }
}

export const smsFunnelStepsField = {
    component: SmsFunnelStepsField,
    displayName: _t("SMS funnel by step"),
    supportedTypes: ["json"],
};

registry.category("fields").add("sms_funnel_steps", smsFunnelStepsField);
