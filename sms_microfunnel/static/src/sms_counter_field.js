/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {SmsWidget, smsWidget} from "@sms/components/sms_widget/fields_sms_widget";
import {
    GSM7,
    SEGMENT_CAPACITY,
    SINGLE_CAPACITY,
    analyze,
    suggestReplacements,
    unitsLeft,
} from "@sms_microfunnel/sms_encoding";
import {onWillStart, useEffect, useState} from "@odoo/owl";
import {_t} from "@web/core/l10n/translation";
import {registry} from "@web/core/registry";
import {useRecordObserver} from "@web/model/relational_model/utils";
import {useService} from "@web/core/utils/hooks";

// Same as odoo.tools.mail.TEXT_URL_REGEX (links the server shortens).
const TEXT_URL_REGEX = /https?:\/\/[\w@:%.+&~#=/-]+(?:\?\S+)?/g;
const SPACES = /\s+/g;

/**
 * Case- and space-insensitive form used to find a mention in a text, as
 * `_fold` in models/sms_microfunnel_message_rules.py.
 * @param {string} text
 * @returns {string}
 */
function fold(text) {
    return (text || "")
        .replaceAll("\u00a0", " ")
        .replace(SPACES, " ")
        .trim()
        .toLowerCase();
}

/**
 * A visible label for a character (spaces and invisible characters get their
 * code point).
 * @param {string} char
 * @returns {string}
 */
function charLabel(char) {
    if (/^[\s\p{Cc}\p{Cf}\p{Mn}]$/u.test(char)) {
        return `U+${char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    }
    return char;
}

/**
 * SMS body field showing, live while typing, the encoding (GSM-7 or UCS-2),
 * the number of segments, the characters left in the current segment and
 * the characters forcing UCS-2 with their GSM-7 replacements. It counts the
 * text that will be sent: the company's sender identification and opt-out
 * mention are added (as the server's `_compose` does) and links are counted
 * at the length of their tracked short URL. Placeholders are counted as typed.
 */
export class SmsFunnelCounterField extends SmsWidget {
    static template = "sms_microfunnel.SmsFunnelCounterField";
    static props = {
        ...SmsWidget.props,
        messageClassField: {type: String, optional: true},
        modelField: {type: String, optional: true},
    };

    setup() {
        super.setup();
        this.counterOrm = useService("orm");
        this.counterContext = null;
        // The text being typed, before it is committed to the record.
        this.live = useState({text: null});
        // Placeholder picker: the fields of the funnel's target model.
        this.picker = useState({model: null, fields: []});
        useEffect(
            (model) => {
                if (model && model !== this.picker.model) {
                    this.loadPlaceholderFields(model);
                }
            },
            () => [this.targetModel]
        );
        onWillStart(async () => {
            this.counterContext = await this.counterOrm.call(
                "sms.microfunnel.message.rules",
                "get_counter_context",
                []
            );
        });
        useRecordObserver((record) => {
            // Any change of the record value (commit, discard, onchange)
            // replaces the text being typed.
            if (record.data[this.props.name] !== undefined) {
                this.live.text = null;
            }
        });
        useEffect(
            (el) => {
                if (!el) {
                    return;
                }
                const onInput = () => {
                    this.live.text = el.value;
                };
                el.addEventListener("input", onInput);
                return () => el.removeEventListener("input", onInput);
            },
            () => [this.textareaRef.el]
        );
    }

    get targetModel() {
        const fieldName = this.props.modelField;
        return (fieldName && this.props.record.data[fieldName]) || null;
    }

    async loadPlaceholderFields(model) {
        this.picker.model = model;
        const fields = await this.counterOrm.call(model, "fields_get", [], {
            attributes: ["string", "type"],
        });
        const usable = [
            "char",
            "text",
            "selection",
            "many2one",
            "date",
            "datetime",
            "integer",
            "float",
            "monetary",
        ];
        this.picker.fields = Object.entries(fields)
            .filter(
                ([name, field]) =>
                    usable.includes(field.type) &&
                    !name.startsWith("_") &&
                    !name.startsWith("message_") &&
                    !name.startsWith("activity_") &&
                    ![
                        "id",
                        "display_name",
                        "create_uid",
                        "write_uid",
                        "create_date",
                        "write_date",
                    ].includes(name)
            )
            .map(([name, field]) => ({name, label: field.string, type: field.type}))
            .sort((a, b) => a.label.localeCompare(b.label));
    }

    /**
     * Insert the placeholder of a field of the target model where the cursor is.
     * @param {Event} ev change of the picker
     */
    onPickPlaceholder(ev) {
        const name = ev.target.value;
        ev.target.value = "";
        const field = this.picker.fields.find((f) => f.name === name);
        if (!field) {
            return;
        }
        const path =
            field.type === "many2one"
                ? `object.${name}.display_name`
                : `object.${name}`;
        const placeholder = `{{ ${path} or '' }}`;
        const el = this.textareaRef.el;
        const text = this.currentBody;
        const start = el ? (el.selectionStart ?? text.length) : text.length;
        const end = el ? (el.selectionEnd ?? start) : start;
        const before = text.slice(0, start);
        // a word of its own: not glued to the word (or link) before it
        const space = before && !/\s$/.test(before) ? " " : "";
        const value = before + space + placeholder + text.slice(end);
        this.live.text = null;
        this.props.record.update({[this.props.name]: value});
    }

    get currentBody() {
        if (this.live.text !== null) {
            return this.live.text;
        }
        return this.props.record.data[this.props.name] || "";
    }

    get messageClass() {
        const fieldName = this.props.messageClassField;
        return (fieldName && this.props.record.data[fieldName]) || "marketing";
    }

    /**
     * The text the server would send for the typed body.
     * @returns {string}
     */
    get countedText() {
        const body = this.currentBody.trim();
        const context = this.counterContext;
        if (!body || !context) {
            return body;
        }
        const policy = context.classes[this.messageClass] || context.classes.marketing;
        let text = body.replace(TEXT_URL_REGEX, (url) => {
            if (url.startsWith(context.short_url_host)) {
                return url.includes("/s/", context.short_url_host.length)
                    ? url
                    : url + context.recipient_suffix;
            }
            if (context.skip_prefixes.some((prefix) => url.startsWith(prefix))) {
                return url;
            }
            return context.link_placeholder + context.recipient_suffix;
        });
        if (policy.prefix && !fold(text).startsWith(fold(policy.sender_name))) {
            text = policy.prefix + text;
        }
        if (
            policy.footer &&
            !(
                policy.optout_mode === "mention" &&
                fold(text).includes(fold(policy.footer))
            )
        ) {
            text = `${text}\n${policy.footer}`;
        }
        return text;
    }

    get counter() {
        const text = this.countedText;
        const result = analyze(text);
        const suggestions = suggestReplacements(text);
        const maxSegments = this.counterContext?.max_segments || 0;
        const capacity =
            result.segments > 1
                ? SEGMENT_CAPACITY[result.encoding]
                : SINGLE_CAPACITY[result.encoding];
        return {
            ...result,
            isGsm7: result.encoding === GSM7,
            capacity,
            unitsLeft: text ? unitsLeft(text) : capacity,
            maxSegments,
            tooLong: Boolean(maxSegments) && result.segments > maxSegments,
            extended: text !== this.currentBody.trim(),
            ucs2: result.ucs2_chars.map((char) => ({
                char,
                label: charLabel(char),
                replacement: suggestions[char],
                replacementLabel:
                    suggestions[char] === undefined ? "" : charLabel(suggestions[char]),
            })),
        };
    }
}

export const smsFunnelCounterField = {
    ...smsWidget,
    component: SmsFunnelCounterField,
    displayName: _t("SMS body with segment counter"),
    supportedTypes: ["char", "text"],
    extractProps: (fieldInfo, dynamicInfo) => ({
        ...smsWidget.extractProps(fieldInfo, dynamicInfo),
        messageClassField: fieldInfo.options?.message_class_field || "message_class",
        modelField: fieldInfo.options?.model_field || "",
    }),
};

registry.category("fields").add("sms_funnel_counter", smsFunnelCounterField);
