/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
/**
 * SMS encoding and segment estimate (GSM-7 or UCS-2): a faithful port of
 * sms_microfunnel/tools/sms_encoding.py, checked against the same vectors
 * (static/tests/sms_encoding_vectors.json).
 *
 * - A message is GSM-7 when every character is in the 3GPP TS 23.038 default
 *   alphabet (1 septet) or its extension table (2 septets: escape + char).
 *   Any other character switches the whole message to UCS-2, which counts
 *   UTF-16 code units (2 for a character outside the BMP).
 * - A single message holds 160 septets / 70 units; concatenated segments hold
 *   153 / 67. An escape or surrogate pair is never split across segments, so
 *   segments are counted by packing characters, not by dividing.
 *
 * Strings are walked by code point (`for...of`), as Python walks a `str`.
 */

export const GSM7 = "GSM-7";
export const UCS2 = "UCS-2";

const ESCAPE = "\x1b";

/** The GSM 7-bit default alphabet, indexed by code (0x1B is the escape). */
export const GSM7_BASIC_TABLE =
    "@£$¥èéùìòÇ\nØø\rÅå" +
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ" +
    " !\"#¤%&'()*+,-./" +
    "0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNO" +
    "PQRSTUVWXYZÄÖÑÜ§" +
    "¿abcdefghijklmno" +
    "pqrstuvwxyzäöñüà";

/** The extension table: character -> code sent after the escape. */
export const GSM7_EXTENSION_TABLE = Object.freeze({
    "\f": 0x0a,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2f,
    "[": 0x3c,
    "~": 0x3d,
    "]": 0x3e,
    "|": 0x40,
    "€": 0x65,
});

/** Characters costing 1 septet (capital Ç only, not ç). */
export const GSM7_BASIC = new Set(
    [...GSM7_BASIC_TABLE].filter((char) => char !== ESCAPE)
);
/** Characters costing 2 septets. */
export const GSM7_EXTENSION = new Set(Object.keys(GSM7_EXTENSION_TABLE));
/** Every character a GSM-7 message may contain. */
export const GSM7_CHARSET = new Set([...GSM7_BASIC, ...GSM7_EXTENSION]);

/** Units a single (non-concatenated) message holds, per encoding. */
export const SINGLE_CAPACITY = Object.freeze({[GSM7]: 160, [UCS2]: 70});
/** Units each segment of a concatenated message holds, per encoding. */
export const SEGMENT_CAPACITY = Object.freeze({[GSM7]: 153, [UCS2]: 67});

/** GSM-7 look-alikes for common characters forcing UCS-2 (French copy). */
export const GSM7_REPLACEMENTS = Object.freeze({
    // Typographic punctuation.
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2026": "...",
    "\u2010": "-",
    "\u2011": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u2212": "-",
    // Spaces.
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    // French letters outside the GSM-7 alphabet.
    â: "a",
    ç: "c",
    ê: "e",
    ë: "e",
    î: "i",
    ï: "i",
    ô: "o",
    û: "u",
    ÿ: "y",
    œ: "oe",
    À: "A",
    Â: "A",
    È: "E",
    Ê: "E",
    Ë: "E",
    Î: "I",
    Ï: "I",
    Ô: "O",
    Ù: "U",
    Û: "U",
    Ÿ: "Y",
    Œ: "OE",
});

/**
 * @param {string} [text]
 * @returns {string[]} the code points of `text` (a lone surrogate is one)
 */
function codePoints(text) {
    return [...(text || "")];
}

/**
 * @param {string} [text]
 * @returns {boolean} whether `text` can be sent GSM-7 (the empty text can)
 */
export function isGsm7(text) {
    return codePoints(text).every((char) => GSM7_CHARSET.has(char));
}

/**
 * @param {string} [text]
 * @returns {string[]} the characters forcing UCS-2, once each, in order of
 *  first appearance
 */
export function nonGsm7Chars(text) {
    return [...new Set(codePoints(text))].filter((char) => !GSM7_CHARSET.has(char));
}

/**
 * @param {string} char a single code point
 * @param {string} encoding GSM7 or UCS2
 * @returns {number} septets (GSM-7) or UTF-16 code units (UCS-2)
 */
export function charUnits(char, encoding) {
    if (encoding === GSM7) {
        return GSM7_EXTENSION.has(char) ? 2 : 1;
    }
    return char.codePointAt(0) > 0xffff ? 2 : 1;
}

function split(chars, encoding) {
    if (!chars.length) {
        return [];
    }
    const widths = chars.map((char) => charUnits(char, encoding));
    if (
        widths.reduce((total, width) => total + width, 0) <= SINGLE_CAPACITY[encoding]
    ) {
        return [chars.join("")];
    }
    const capacity = SEGMENT_CAPACITY[encoding];
    const segments = [];
    let start = 0;
    let used = 0;
    widths.forEach((width, index) => {
        if (used + width > capacity) {
            // never split an escape or surrogate pair
            segments.push(chars.slice(start, index).join(""));
            start = index;
            used = 0;
        }
        used += width;
    });
    segments.push(chars.slice(start).join(""));
    return segments;
}

/**
 * @param {string} [text]
 * @returns {string[]} the segments `text` would be sent as (none when empty)
 */
export function splitSegments(text) {
    const chars = codePoints(text);
    return split(chars, isGsm7(text) ? GSM7 : UCS2);
}

/**
 * @param {string} [text]
 * @returns {{encoding: string, units: number, segments: number, ucs2_chars: string[]}}
 */
export function analyze(text) {
    const chars = codePoints(text);
    const ucs2Chars = nonGsm7Chars(text);
    const encoding = ucs2Chars.length ? UCS2 : GSM7;
    return {
        encoding,
        units: chars.reduce((total, char) => total + charUnits(char, encoding), 0),
        segments: split(chars, encoding).length,
        ucs2_chars: ucs2Chars,
    };
}

/**
 * @param {string} [text]
 * @returns {number} units still free in the last segment (0 when empty)
 */
export function unitsLeft(text) {
    const segments = splitSegments(text);
    if (!segments.length) {
        return 0;
    }
    const encoding = isGsm7(text) ? GSM7 : UCS2;
    const capacity =
        segments.length === 1 ? SINGLE_CAPACITY[encoding] : SEGMENT_CAPACITY[encoding];
    const last = codePoints(segments.at(-1));
    return (
        capacity - last.reduce((total, char) => total + charUnits(char, encoding), 0)
    );
}

/**
 * @param {string} [text]
 * @returns {Object<string, string>} known GSM-7 look-alikes of the characters
 *  forcing UCS-2, in order of first appearance
 */
export function suggestReplacements(text) {
    const result = {};
    for (const char of nonGsm7Chars(text)) {
        if (Object.hasOwn(GSM7_REPLACEMENTS, char)) {
            result[char] = GSM7_REPLACEMENTS[char];
        }
    }
    return result;
}

/**
 * @param {string} [text]
 * @returns {string} `text` with every character of GSM7_REPLACEMENTS replaced
 */
export function transliterate(text) {
    return codePoints(text)
        .map((char) =>
            Object.hasOwn(GSM7_REPLACEMENTS, char) ? GSM7_REPLACEMENTS[char] : char
        )
        .join("");
}
