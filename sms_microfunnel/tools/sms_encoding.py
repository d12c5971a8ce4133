# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""SMS encoding and segment estimate (GSM-7 or UCS-2), standard library only.

Rules (compliance book docs/compliance.md, "Message encoding"):

* A message is GSM-7 when every character is in the 3GPP TS 23.038 default
  alphabet (``GSM7_BASIC``, 1 septet each) or its default extension table
  (``GSM7_EXTENSION``, 2 septets each: escape + character). Any other
  character switches the **whole** message to UCS-2, which counts UTF-16 code
  units: 2 for a character outside the Basic Multilingual Plane (most emoji),
  1 for any other.
* A single message holds 160 septets (GSM-7) or 70 units (UCS-2). Longer
  messages are concatenated and each segment holds 153 septets or 67 units.
* An escape pair (GSM-7) or a surrogate pair (UCS-2) is never split across
  segments, so a segment may end one unit short (152 septets, 66 units).
  Segments are therefore counted by packing characters, not by dividing.

French copy often forces UCS-2 (``ç``, ``ê``, curly apostrophe, NBSP...):
``GSM7_REPLACEMENTS``, ``suggest_replacements`` and ``transliterate`` offer
GSM-7 look-alikes.

This module is loaded standalone by file path: no Odoo, no relative imports.
"""

import re

__all__ = [
    "GSM7",
    "GSM7_BASIC",
    "GSM7_BASIC_TABLE",
    "GSM7_CHARSET",
    "GSM7_EXTENSION",
    "GSM7_EXTENSION_TABLE",
    "GSM7_REPLACEMENTS",
    "SEGMENT_CAPACITY",
    "SINGLE_CAPACITY",
    "UCS2",
    "analyze",
    "char_units",
    "is_gsm7",
    "non_gsm7_chars",
    "split_segments",
    "suggest_replacements",
    "transliterate",
]

GSM7 = "GSM-7"
UCS2 = "UCS-2"

_ESCAPE = "\x1b"

#: The GSM 7-bit default alphabet, indexed by code (3GPP TS 23.038 6.2.1).
#: Code 0x1B is the escape to the extension table, not a character.
GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

#: The default extension table (3GPP TS 23.038 6.2.1.1): character -> code
#: sent after the escape. Each of these characters costs 2 septets.
GSM7_EXTENSION_TABLE = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

#: Characters costing 1 septet (note: capital ``Ç`` only, not ``ç``).
GSM7_BASIC = frozenset(GSM7_BASIC_TABLE) - {_ESCAPE}
#: Characters costing 2 septets.
GSM7_EXTENSION = frozenset(GSM7_EXTENSION_TABLE)
#: Every character a GSM-7 message may contain.
GSM7_CHARSET = GSM7_BASIC | GSM7_EXTENSION
#: One of the characters costing 2 septets (counted in one pass).
_EXTENSION_RE = re.compile("[" + re.escape("".join(sorted(GSM7_EXTENSION))) + "]")

#: Units a single (non-concatenated) message holds, per encoding.
SINGLE_CAPACITY = {GSM7: 160, UCS2: 70}
#: Units each segment of a concatenated message holds, per encoding.
SEGMENT_CAPACITY = {GSM7: 153, UCS2: 67}

#: GSM-7 look-alikes for common characters that would force UCS-2, mostly
#: from French copy. Every key is outside ``GSM7_CHARSET`` and every value is
#: made of ``GSM7_CHARSET`` characters only.
GSM7_REPLACEMENTS = {
    # Typographic punctuation.
    "\u2018": "'",  # left single quotation mark
    "\u2019": "'",  # right single quotation mark (typographic apostrophe)
    "\u201c": '"',  # left double quotation mark
    "\u201d": '"',  # right double quotation mark
    "\u00ab": '"',  # left-pointing double angle quotation mark
    "\u00bb": '"',  # right-pointing double angle quotation mark
    "\u2026": "...",  # horizontal ellipsis
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2212": "-",  # minus sign
    # Spaces (French typography puts them before : ; ! ? and inside « »).
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space
    "\u2009": " ",  # thin space
    # French letters outside the GSM-7 alphabet (à é è ù É Ç are in it).
    "â": "a",
    "ç": "c",
    "ê": "e",
    "ë": "e",
    "î": "i",
    "ï": "i",
    "ô": "o",
    "û": "u",
    "ÿ": "y",
    "œ": "oe",
    "À": "A",
    "Â": "A",
    "È": "E",
    "Ê": "E",
    "Ë": "E",
    "Î": "I",
    "Ï": "I",
    "Ô": "O",
    "Ù": "U",
    "Û": "U",
    "Ÿ": "Y",
    "Œ": "OE",
}

_TRANSLITERATION = str.maketrans(GSM7_REPLACEMENTS)


def is_gsm7(text):
    """Tell whether ``text`` can be sent GSM-7 (the empty text can).

    :param str text: the message body; ``None``/``False`` count as empty
    :rtype: bool
    """
    return GSM7_CHARSET.issuperset(text or "")


def non_gsm7_chars(text):
    """Return the characters of ``text`` that force UCS-2.

    :param str text: the message body; ``None``/``False`` count as empty
    :return: each such character once, in order of first appearance
    :rtype: list[str]
    """
    text = text or ""
    if GSM7_CHARSET.issuperset(text):
        return []
    return [char for char in dict.fromkeys(text) if char not in GSM7_CHARSET]


def char_units(char, encoding):
    """Return what one character costs in ``encoding``.

    GSM-7: 2 septets for an extension character, else 1 (the character is
    assumed to be in ``GSM7_CHARSET``). UCS-2: 2 UTF-16 code units outside the
    Basic Multilingual Plane (a surrogate pair), else 1.

    :param str char: a single character (code point)
    :param str encoding: ``GSM7`` or ``UCS2``
    :rtype: int
    """
    if encoding == GSM7:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def units(text, encoding):
    """Return what ``text`` costs in ``encoding`` (the sum of ``char_units``
    of its characters, counted without a loop per character).

    :param str text: the message body; ``None``/``False`` count as empty
    :param str encoding: ``GSM7`` or ``UCS2``
    :rtype: int
    """
    text = text or ""
    if encoding == GSM7:
        return len(text) + len(_EXTENSION_RE.findall(text))
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _split(text, encoding):
    """Pack ``text`` into segments of ``encoding``; see ``split_segments``."""
    if not text:
        return []
    if units(text, encoding) <= SINGLE_CAPACITY[encoding]:
        return [text]
    widths = [char_units(char, encoding) for char in text]
    capacity = SEGMENT_CAPACITY[encoding]
    segments = []
    start = used = 0
    for index, width in enumerate(widths):
        if used + width > capacity:  # never split an escape or surrogate pair
            segments.append(text[start:index])
            start, used = index, 0
        used += width
    segments.append(text[start:])
    return segments


def split_segments(text):
    """Split ``text`` into the segments it would be sent as.

    Characters are packed greedily, each one whole, so an escape pair or a
    surrogate pair never straddles two segments. Joining the result gives
    ``text`` back.

    :param str text: the message body; ``None``/``False`` count as empty
    :return: no segment for the empty text, else one per segment
    :rtype: list[str]
    """
    text = text or ""
    return _split(text, GSM7 if is_gsm7(text) else UCS2)


def analyze(text):
    """Return the encoding, size and segment count of an SMS body.

    :param str text: the message body; ``None``/``False`` count as empty
    :return: a dict with

        * ``encoding``: ``"GSM-7"`` or ``"UCS-2"`` (``"GSM-7"`` when empty)
        * ``units``: septets (GSM-7) or UTF-16 code units (UCS-2)
        * ``segments``: segments sent, 0 for the empty text
        * ``ucs2_chars``: the characters forcing UCS-2, each once in order of
          first appearance (empty for GSM-7)
    :rtype: dict
    """
    text = text or ""
    ucs2_chars = non_gsm7_chars(text)
    encoding = UCS2 if ucs2_chars else GSM7
    size = units(text, encoding)
    if not text:
        segments = 0
    elif size <= SINGLE_CAPACITY[encoding]:
        segments = 1
    else:
        segments = len(_split(text, encoding))
    return {
        "encoding": encoding,
        "units": size,
        "segments": segments,
        "ucs2_chars": ucs2_chars,
    }


def suggest_replacements(text):
    """Return the known GSM-7 look-alikes for the characters forcing UCS-2.

    Characters forcing UCS-2 without a known look-alike (emoji...) are left
    out, so ``text`` may still be UCS-2 after ``transliterate``.

    :param str text: the message body; ``None``/``False`` count as empty
    :return: ``{character: replacement}`` in order of first appearance
    :rtype: dict[str, str]
    """
    return {
        char: GSM7_REPLACEMENTS[char]
        for char in non_gsm7_chars(text)
        if char in GSM7_REPLACEMENTS
    }


def transliterate(text):
    """Return ``text`` with every character of ``GSM7_REPLACEMENTS`` replaced.

    GSM-7 characters are never changed; other characters without a known
    look-alike are kept as they are. No Unicode normalization is applied.

    :param str text: the message body; ``None``/``False`` count as empty
    :rtype: str
    """
    return (text or "").translate(_TRANSLITERATION)
