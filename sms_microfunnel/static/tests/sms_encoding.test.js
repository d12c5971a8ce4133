/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl). */
import {describe, expect, globals, test} from "@odoo/hoot";
import {
    GSM7,
    GSM7_CHARSET,
    GSM7_REPLACEMENTS,
    UCS2,
    analyze,
    isGsm7,
    splitSegments,
    suggestReplacements,
    transliterate,
    unitsLeft,
} from "@sms_microfunnel/sms_encoding";

describe.current.tags("headless");

// The vectors shared with the Python tests (tests/test_sms_encoding.py and
// sms_microfunnel/tests/test_tools.py). Hoot mocks `fetch` in tests: the
// static file is read with the real one.
const VECTORS_URL = "/sms_microfunnel/static/tests/sms_encoding_vectors.json";

async function loadVectors() {
    const response = await globals.fetch(VECTORS_URL);
    expect(response.ok).toBe(true, {message: `${VECTORS_URL} is served`});
    return JSON.parse(await response.text());
}

test("every shared vector gives the Python results", async () => {
    const vectors = await loadVectors();
    expect(vectors.length).toBeGreaterThan(40);
    for (const vector of vectors) {
        const expected = {
            encoding: vector.encoding,
            units: vector.units,
            segments: vector.segments,
            ucs2_chars: vector.ucs2_chars,
        };
        expect(analyze(vector.text)).toEqual(expected, {message: vector.name});
        expect(isGsm7(vector.text)).toBe(vector.encoding === GSM7, {
            message: vector.name,
        });
        const segments = splitSegments(vector.text);
        expect(segments.length).toBe(vector.segments, {message: vector.name});
        expect(segments.join("")).toBe(vector.text, {message: vector.name});
    }
});

test("units left in the current segment", () => {
    expect(unitsLeft("")).toBe(0);
    expect(unitsLeft("Hello")).toBe(155);
    expect(unitsLeft("a".repeat(160))).toBe(0);
    // 161 septets: 153 in the first segment, 8 in the second
    expect(unitsLeft("a".repeat(161))).toBe(145);
    // one euro sign costs two septets
    expect(unitsLeft("10 €")).toBe(155);
    // one curly apostrophe: the whole message is UCS-2
    expect(unitsLeft("L’offre")).toBe(63);
});

test("the euro sign stays GSM-7, a curly apostrophe switches to UCS-2", () => {
    const body = "Offre -10 € ce week-end";
    expect(analyze(body).encoding).toBe(GSM7);
    expect(analyze(`${body} : c’est maintenant`).encoding).toBe(UCS2);
    expect(analyze(`${body} : c’est maintenant`).ucs2_chars).toEqual(["’"]);
});

test("replacements of the characters forcing UCS-2", () => {
    const text = "« C’est prêt\u00a0! » 😀";
    expect(suggestReplacements(text)).toEqual({
        "«": '"',
        "’": "'",
        ê: "e",
        "\u00a0": " ",
        "»": '"',
    });
    expect(transliterate(text)).toBe('" C\'est pret ! " 😀');
    expect(analyze(transliterate("« C’est prêt\u00a0! »")).encoding).toBe(GSM7);
    for (const [char, replacement] of Object.entries(GSM7_REPLACEMENTS)) {
        expect(GSM7_CHARSET.has(char)).toBe(false, {message: char});
        expect(isGsm7(replacement)).toBe(true, {message: char});
    }
});
