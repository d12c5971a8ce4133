/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {Component} from "@odoo/owl";
import {ConfirmationDialog} from "@web/core/confirmation_dialog/confirmation_dialog";
import {Dropdown} from "@web/core/dropdown/dropdown";
import {DropdownItem} from "@web/core/dropdown/dropdown_item";
import {X2ManyField, x2ManyField} from "@web/views/fields/x2many/x2many_field";
import {_t} from "@web/core/l10n/translation";
import {formatFloat, formatInteger} from "@web/views/fields/formatters";
import {registry} from "@web/core/registry";
import {standardFieldProps} from "@web/views/fields/standard_field_props";
import {useService} from "@web/core/utils/hooks";

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

/** Figures of a step card, in the order they are shown. */
const CARD_COUNTS = [
    ["scheduled", _t("scheduled")],
    ["sent", _t("sent")],
    ["delivered", _t("delivered")],
    ["clicked", _t("clicked")],
    ["replied", _t("replied")],
    ["converted", _t("converted")],
    ["cancelled", _t("cancelled")],
];

const STEP_ICONS = {
    sms: "fa-commenting-o",
    email: "fa-envelope-o",
    activity: "fa-tasks",
    crm_update: "fa-handshake-o",
};

/** One step card of the builder, with its branches below (recursive). */
export class SmsFunnelBuilderNode extends Component {
    static template = "sms_microfunnel.SmsFunnelBuilderNode";
    static props = {node: Object, builder: Object};
    static components = {Dropdown, DropdownItem};
}
SmsFunnelBuilderNode.components.SmsFunnelBuilderNode = SmsFunnelBuilderNode;

/**
 * The funnel builder: the steps of a funnel drawn top-down as a tree of cards
 * joined by their branch conditions (Odoo's one2many of steps, edited in the
 * step form dialog). Each card shows the step's type, wait, send slot, a
 * preview of its message and its live figures (``step_stats`` of the funnel,
 * computed by the server as the Performance tab's figures).
 *
 * A step is linked to its parent by the parent's key (``parent_key``), not
 * its id, so a whole tree can be built on a funnel that is not saved yet; the
 * server resolves the keys into ``parent_id`` on save.
 */
export class SmsFunnelBuilderField extends X2ManyField {
    static template = "sms_microfunnel.SmsFunnelBuilderField";
    static components = {...X2ManyField.components, SmsFunnelBuilderNode};

    setup() {
        super.setup();
        this.dialogService = useService("dialog");
        this.cardCounts = CARD_COUNTS;
    }

    get records() {
        return this.list.records;
    }

    get canEdit() {
        return !this.props.readonly && this.props.record.isInEdition !== false;
    }

    keyOf(record) {
        return record.data.builder_key || `id-${record.resId || record.id}`;
    }

    parentKeyOf(record) {
        if (record.data.parent_key) {
            return record.data.parent_key;
        }
        const parent = record.data.parent_id;
        const parentId = parent && (parent.id ?? parent[0]);
        if (parentId) {
            const found = this.records.find((r) => r.resId === parentId);
            return found ? this.keyOf(found) : false;
        }
        return false;
    }

    /**
     * The steps as a tree: [{record, key, children}], children in the order
     * of the list (sequence, then id).
     * @returns {Array}
     */
    get tree() {
        const nodes = new Map();
        for (const record of this.records) {
            nodes.set(this.keyOf(record), {
                record,
                key: this.keyOf(record),
                children: [],
            });
        }
        const roots = [];
        for (const node of nodes.values()) {
            const parentKey = this.parentKeyOf(node.record);
            const parent = parentKey && nodes.get(parentKey);
            if (parent && parent !== node) {
                parent.children.push(node);
            } else {
                roots.push(node);
            }
        }
        return roots;
    }

    selectionLabel(record, fieldName) {
        const value = record.data[fieldName];
        const selection = record.fields[fieldName]?.selection || [];
        const item = selection.find(([key]) => key === value);
        return item ? item[1] : "";
    }

    conditionLabel(record) {
        let label = this.selectionLabel(record, "condition");
        if (
            record.data.condition === "replied_keyword" &&
            record.data.condition_keyword
        ) {
            label = `${label}: ${record.data.condition_keyword}`;
        }
        return label;
    }

    waitLabel(record) {
        const mode = record.data.wait_mode;
        const value = record.data.wait_value || 0;
        const units = {
            minutes: [_t("minute"), _t("minutes")],
            hours: [_t("hour"), _t("hours")],
            days: [_t("day"), _t("days")],
        }[record.data.wait_unit || "hours"];
        const number = formatFloat(value, {digits: [16, 2]}).replace(/[.,]00$/, "");
        const amount = `${number} ${value === 1 ? units[0] : units[1]}`;
        if (mode === "before_date" || mode === "after_date") {
            return `${amount} · ${this.selectionLabel(record, "wait_mode")}`;
        }
        if (!value) {
            return mode === "after_parent"
                ? _t("Right after the previous step")
                : _t("At enrollment");
        }
        return mode === "after_parent"
            ? _t("%(wait)s after the previous step", {wait: amount})
            : _t("%(wait)s after enrollment", {wait: amount});
    }

    slotLabel(record) {
        if (record.data.send_best_hour) {
            return _t("Best hour");
        }
        if (!record.data.send_slot || record.data.send_slot === "none") {
            return "";
        }
        return this.selectionLabel(record, "send_slot");
    }

    messagePreview(record) {
        const text = (record.data.body || "").trim();
        return text.length > 140 ? `${text.slice(0, 139)}…` : text;
    }

    icon(record) {
        return STEP_ICONS[record.data.step_type] || STEP_ICONS.sms;
    }

    stats(record) {
        const all = this.props.record.data.step_stats || {};
        return (record.resId && all[String(record.resId)]) || null;
    }

    count(value) {
        return formatInteger(value || 0);
    }

    async addStep(parent) {
        const context = {
            default_parent_key: parent ? this.keyOf(parent) : false,
            default_parent_id: (parent && parent.resId) || false,
            default_wait_mode: parent ? "after_parent" : "after_enrollment",
            default_wait_unit: parent ? "days" : "hours",
            default_wait_value: parent ? 1 : 0,
        };
        if (parent && parent.data.step_type === "sms") {
            context.default_message_class = parent.data.message_class;
        }
        await this._openRecord({
            context: {...this.props.context, ...context},
            title: _t("New step"),
        });
    }

    branchConditions(parent) {
        const selection = parent.fields.condition?.selection || [];
        const fitting =
            {
                sms: [
                    "clicked",
                    "not_clicked",
                    "replied",
                    "replied_keyword",
                    "not_replied",
                ],
                email: ["opened", "not_opened"],
                activity: ["activity_done", "activity_not_done"],
            }[parent.data.step_type] || [];
        return selection.filter(
            ([key]) =>
                fitting.includes(key) || key === "converted" || key === "not_converted"
        );
    }

    async addBranch(parent, condition) {
        await this._openRecord({
            context: {
                ...this.props.context,
                default_parent_key: this.keyOf(parent),
                default_parent_id: parent.resId || false,
                default_wait_mode: "after_parent",
                default_wait_unit: "days",
                default_wait_value: 1,
                default_condition: condition,
                default_message_class: parent.data.message_class || "marketing",
            },
            title: _t("New step"),
        });
    }

    editStep(record) {
        return this._openRecord({
            record,
            context: this.props.context,
            readonly: !this.canEdit,
            title: _t("Step: %(name)s", {name: record.data.name || ""}),
        });
    }

    descendants(record) {
        const key = this.keyOf(record);
        const children = this.records.filter((r) => this.parentKeyOf(r) === key);
        return children.flatMap((child) => [child, ...this.descendants(child)]);
    }

    deleteStep(record) {
        const subtree = this.descendants(record);
        const body = subtree.length
            ? _t("Delete “%(name)s” and the %(count)s steps that follow it?", {
                  name: record.data.name || "",
                  count: subtree.length,
              })
            : _t("Delete “%(name)s”?", {name: record.data.name || ""});
        this.dialogService.add(ConfirmationDialog, {
            title: _t("Delete a step"),
            body,
            confirmLabel: _t("Delete"),
            confirm: async () => {
                for (const step of [...subtree.reverse(), record]) {
                    await this.list.delete(step);
                }
            },
            cancel: () => {},
        });
    }
}

export const smsFunnelBuilderField = {
    ...x2ManyField,
    component: SmsFunnelBuilderField,
    displayName: _t("SMS funnel builder"),
};

registry.category("fields").add("sms_funnel_builder", smsFunnelBuilderField);
