"""Tests of ``sms_microfunnel/tools/sms_encoding.py`` (GSM-7 / UCS-2 segments)."""

import json
import subprocess
import sys

import pytest
from conftest import REPO, load_tool
from hypothesis import given
from hypothesis import strategies as st

enc = load_tool("sms_microfunnel", "sms_encoding")

VECTORS_PATH = (
    REPO / "sms_microfunnel" / "static" / "tests" / "sms_encoding_vectors.json"
)
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair, 2 UTF-16 units

# Hypothesis strategies. ``any_char`` favours GSM-7 and non-BMP characters and
# includes lone surrogates, which a Python ``str`` may hold (invalid Unicode).
any_char = st.one_of(
    st.characters(),
    st.sampled_from(sorted(enc.GSM7_CHARSET)),
    st.sampled_from(sorted(enc.GSM7_EXTENSION)),
    st.characters(min_codepoint=0x10000),
    st.characters(categories=["Cs"]),
)
any_text = st.text(any_char, max_size=400)
gsm_text = st.text(st.sampled_from(sorted(enc.GSM7_CHARSET)), max_size=400)
ucs2_char = st.characters(exclude_characters=enc.GSM7_CHARSET)
replaceable_text = st.text(
    st.sampled_from(sorted(enc.GSM7_CHARSET | set(enc.GSM7_REPLACEMENTS))),
    max_size=400,
)


def utf16_units(text):
    """Independent oracle for UCS-2 units: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def septets(text):
    """Independent oracle for GSM-7 units."""
    return len(text) + sum(text.count(char) for char in "^{}\\[]~|€\f")


# --- Shared vectors -----------------------------------------------------------


def test_vectors_are_well_formed():
    assert len(VECTORS) >= 30
    names = [vector["name"] for vector in VECTORS]
    assert len(set(names)) == len(names)
    for vector in VECTORS:
        assert set(vector) == {
            "name",
            "text",
            "encoding",
            "units",
            "segments",
            "ucs2_chars",
        }
        assert vector["encoding"] in ("GSM-7", "UCS-2")
        # The hand-derived units agree with independent oracles.
        if vector["encoding"] == "GSM-7":
            assert vector["units"] == septets(vector["text"])
            assert vector["ucs2_chars"] == []
        else:
            assert vector["units"] == utf16_units(vector["text"])
            assert vector["ucs2_chars"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector):
    expected = {key: vector[key] for key in ("encoding", "units", "segments")}
    expected["ucs2_chars"] = vector["ucs2_chars"]
    assert enc.analyze(vector["text"]) == expected
    assert enc.is_gsm7(vector["text"]) is (vector["encoding"] == "GSM-7")
    assert len(enc.split_segments(vector["text"])) == vector["segments"]


# --- Character tables ---------------------------------------------------------


def test_basic_table_positions():
    table = enc.GSM7_BASIC_TABLE
    assert len(table) == 128
    assert table[0x00] == "@"
    assert table[0x09] == "\u00c7"  # capital C cedilla, not lower-case
    assert table[0x0A] == "\n"
    assert table[0x0D] == "\r"
    assert table[0x10] == "\u0394"  # Greek capital delta, not U+2206
    assert table[0x15] == "\u03a9"  # Greek capital omega, not U+2126
    assert table[0x1B] == "\x1b"  # escape
    assert table[0x1F] == "\u00c9"
    assert table[0x24] == "\u00a4"
    assert table[0x40] == "\u00a1"
    assert table[0x60] == "\u00bf"
    assert table[0x7F] == "\u00e0"


def test_charsets():
    assert len(enc.GSM7_BASIC) == 127
    assert "\x1b" not in enc.GSM7_CHARSET
    assert "\u00c7" in enc.GSM7_BASIC
    assert "\u00e7" not in enc.GSM7_CHARSET
    assert enc.GSM7_EXTENSION == set("^{}\\[]~|€\f")
    assert not enc.GSM7_BASIC & enc.GSM7_EXTENSION
    assert enc.GSM7_CHARSET == enc.GSM7_BASIC | enc.GSM7_EXTENSION
    assert set("àéèùìòÉÇ") <= enc.GSM7_BASIC
    assert (
        not set("çâêîôûëïÿœŒÀÂÈÊËÎÏÔÙÛŸ\u2019\u2018“”«»…\u2013—\u00a0\u202f")
        & enc.GSM7_CHARSET
    )
    assert not set("`\t\v\x00") & enc.GSM7_CHARSET


def test_extension_codes():
    assert enc.GSM7_EXTENSION_TABLE["€"] == 0x65
    assert enc.GSM7_EXTENSION_TABLE["\f"] == 0x0A
    assert len(set(enc.GSM7_EXTENSION_TABLE.values())) == 10


def test_char_units():
    assert enc.char_units("a", enc.GSM7) == 1
    assert enc.char_units("€", enc.GSM7) == 2
    assert enc.char_units("€", enc.UCS2) == 1
    assert enc.char_units("ç", enc.UCS2) == 1
    assert enc.char_units(EMOJI, enc.UCS2) == 2
    assert enc.char_units("\uffff", enc.UCS2) == 1
    assert enc.char_units("\U00010000", enc.UCS2) == 2


# --- Boundaries and no-split rules --------------------------------------------


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("a" * 160, 160, 1),
        ("a" * 161, 161, 2),
        ("a" * 306, 306, 2),
        ("a" * 307, 307, 3),
        ("a" * 459, 459, 3),
        ("a" * 460, 460, 4),
        ("€" * 80, 160, 1),
        ("€" * 81, 162, 2),
        ("a" * 159 + "€", 161, 2),
    ],
)
def test_gsm7_boundaries(text, units, segments):
    result = enc.analyze(text)
    assert (result["encoding"], result["units"], result["segments"]) == (
        "GSM-7",
        units,
        segments,
    )


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        ("ç" * 70, 70, 1),
        ("ç" * 71, 71, 2),
        ("ç" * 134, 134, 2),
        ("ç" * 135, 135, 3),
        ("ç" + "€" * 69, 70, 1),
        ("ç" + "€" * 70, 71, 2),
        (EMOJI * 35, 70, 1),
        (EMOJI * 36, 72, 2),
        ("ç" * 69 + EMOJI, 71, 2),
    ],
)
def test_ucs2_boundaries(text, units, segments):
    result = enc.analyze(text)
    assert (result["encoding"], result["units"], result["segments"]) == (
        "UCS-2",
        units,
        segments,
    )


def test_escape_pair_never_split():
    text = "a" * 152 + "€" + "a" * 152  # 306 septets, yet 3 segments
    parts = enc.split_segments(text)
    assert [len(part) for part in parts] == [152, 152, 1]
    assert parts[1].startswith("€")
    assert enc.analyze(text)["segments"] == 3
    # One septet earlier, the pair ends the first segment exactly.
    text = "a" * 151 + "€" + "a" * 153
    assert [septets(part) for part in enc.split_segments(text)] == [153, 153]


def test_surrogate_pair_never_split():
    text = "a" * 66 + EMOJI + "a" * 66  # 134 units, yet 3 segments
    parts = enc.split_segments(text)
    assert [utf16_units(part) for part in parts] == [66, 67, 1]
    assert parts[1].startswith(EMOJI)
    assert enc.analyze(text)["segments"] == 3
    text = "a" * 65 + EMOJI + "a" * 67
    assert [utf16_units(part) for part in enc.split_segments(text)] == [67, 67]


def test_extension_chars_only_segments_hold_152():
    parts = enc.split_segments("{" * 153)  # 306 septets
    assert [septets(part) for part in parts] == [152, 152, 2]


def test_single_message_holds_full_capacity():
    # No UDH for a single message: no split even with pairs at the end.
    assert enc.split_segments("a" * 158 + "€") == ["a" * 158 + "€"]
    assert enc.split_segments("a" * 68 + EMOJI) == ["a" * 68 + EMOJI]


def test_empty_and_falsy():
    expected = {"encoding": "GSM-7", "units": 0, "segments": 0, "ucs2_chars": []}
    assert enc.analyze("") == expected
    assert enc.analyze(None) == expected
    assert enc.analyze(False) == expected
    assert enc.split_segments("") == []
    assert enc.is_gsm7("") is True
    assert enc.transliterate(None) == ""
    assert enc.suggest_replacements(False) == {}


def test_one_ucs2_char_switches_whole_message():
    gsm = enc.analyze("{" * 10)
    assert (gsm["encoding"], gsm["units"]) == ("GSM-7", 20)
    ucs2 = enc.analyze("{" * 10 + "ç")
    assert (ucs2["encoding"], ucs2["units"]) == ("UCS-2", 11)


# --- ucs2_chars ---------------------------------------------------------------


def test_ucs2_chars_order_and_uniqueness():
    text = "ê\u2019çaê€\u2019" + EMOJI + "ç" + EMOJI
    assert enc.analyze(text)["ucs2_chars"] == ["ê", "\u2019", "ç", EMOJI]
    assert enc.non_gsm7_chars(text) == ["ê", "\u2019", "ç", EMOJI]


def test_ucs2_chars_excludes_gsm_chars():
    assert enc.analyze("é€ç{")["ucs2_chars"] == ["ç"]


# --- Replacements -------------------------------------------------------------


def test_replacement_table_is_consistent():
    for char, replacement in enc.GSM7_REPLACEMENTS.items():
        assert len(char) == 1
        assert char not in enc.GSM7_CHARSET, char
        assert replacement
        assert enc.is_gsm7(replacement), (char, replacement)


@pytest.mark.parametrize(
    ("char", "replacement"),
    [
        ("\u2019", "'"),
        ("\u2018", "'"),
        ("“", '"'),
        ("”", '"'),
        ("«", '"'),
        ("»", '"'),
        ("…", "..."),
        ("\u2013", "-"),
        ("—", "-"),
        ("\u00a0", " "),
        ("\u202f", " "),
        ("ç", "c"),
        ("â", "a"),
        ("ê", "e"),
        ("î", "i"),
        ("ô", "o"),
        ("û", "u"),
        ("ë", "e"),
        ("ï", "i"),
        ("ÿ", "y"),
        ("œ", "oe"),
        ("Œ", "OE"),
        ("À", "A"),
        ("Â", "A"),
        ("È", "E"),
        ("Ê", "E"),
        ("Ë", "E"),
        ("Î", "I"),
        ("Ï", "I"),
        ("Ô", "O"),
        ("Ù", "U"),
        ("Û", "U"),
        ("Ÿ", "Y"),
    ],
)
def test_replacement(char, replacement):
    assert enc.GSM7_REPLACEMENTS[char] == replacement


def test_suggest_replacements():
    text = "C\u2019est prêt\u00a0! Leçon " + EMOJI + " « ça » ê"
    suggestions = enc.suggest_replacements(text)
    assert suggestions == {
        "\u2019": "'",
        "ê": "e",
        "\u00a0": " ",
        "ç": "c",
        "«": '"',
        "»": '"',
    }
    assert EMOJI not in suggestions
    assert enc.suggest_replacements("Déjà vu {ok}") == {}


def test_transliterate_french():
    text = "C\u2019est prêt\u00a0! Leçon à 9h… « Noël » — Œuvre"
    result = enc.transliterate(text)
    assert result == 'C\'est pret ! Lecon à 9h... " Noel " - OEuvre'
    assert enc.is_gsm7(result)
    assert enc.analyze(text)["encoding"] == "UCS-2"


def test_transliterate_keeps_unknown_and_gsm_chars():
    assert enc.transliterate("é€ " + EMOJI) == "é€ " + EMOJI
    assert enc.transliterate("Ça") == "Ça"


# --- Isolation ----------------------------------------------------------------


def test_module_imports_without_odoo():
    path = REPO / "sms_microfunnel" / "tools" / "sms_encoding.py"
    code = (
        "import importlib.util, sys\n"
        "before = set(sys.modules)\n"
        "spec = importlib.util.spec_from_file_location('smf_enc', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.analyze('Leçon')['encoding'] == 'UCS-2'\n"
        "assert 'odoo' not in sys.modules\n"
        "new = {name.partition('.')[0] for name in set(sys.modules) - before}\n"
        "extra = new - set(sys.stdlib_module_names)\n"
        "assert not extra, extra\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=path.parent,
    )
    assert result.returncode == 0, result.stderr


# --- Properties ---------------------------------------------------------------


@given(any_text)
def test_analyze_never_raises(text):
    result = enc.analyze(text)
    assert set(result) == {"encoding", "units", "segments", "ucs2_chars"}
    assert (result["segments"] == 0) is (text == "")


@given(any_text)
def test_units_match_oracles(text):
    result = enc.analyze(text)
    if result["encoding"] == "GSM-7":
        assert result["units"] == septets(text)
        assert result["units"] >= len(text)
    else:
        assert result["units"] == utf16_units(text)
        assert result["units"] >= len(text)


@given(gsm_text)
def test_gsm_text_is_gsm7(text):
    result = enc.analyze(text)
    assert result["encoding"] == "GSM-7"
    assert result["ucs2_chars"] == []
    assert result["units"] >= len(text)


@given(any_text, ucs2_char)
def test_any_non_gsm_char_forces_ucs2(text, char):
    result = enc.analyze(text + char)
    assert result["encoding"] == "UCS-2"
    assert char in result["ucs2_chars"]


@given(st.one_of(any_text, gsm_text), any_char)
def test_segments_monotonic_when_appending(text, char):
    assert enc.analyze(text + char)["segments"] >= enc.analyze(text)["segments"]


@given(st.one_of(any_text, gsm_text))
def test_segments_capacity_bounds(text):
    result = enc.analyze(text)
    units, segments = result["units"], result["segments"]
    single = enc.SINGLE_CAPACITY[result["encoding"]]
    capacity = enc.SEGMENT_CAPACITY[result["encoding"]]
    if segments <= 1:
        assert units <= single
    else:
        assert units > single
        assert segments * capacity >= units
        # Greedy packing: every segment but the last holds capacity - 1 or more.
        assert units >= (segments - 1) * (capacity - 1) + 1


@given(st.one_of(any_text, gsm_text))
def test_split_segments_round_trip(text):
    parts = enc.split_segments(text)
    result = enc.analyze(text)
    assert "".join(parts) == text
    assert len(parts) == result["segments"]
    assert all(parts)
    if len(parts) > 1:
        count = septets if result["encoding"] == "GSM-7" else utf16_units
        capacity = enc.SEGMENT_CAPACITY[result["encoding"]]
        assert all(count(part) <= capacity for part in parts)


@given(replaceable_text)
def test_transliterate_makes_gsm7(text):
    result = enc.transliterate(text)
    assert enc.is_gsm7(result)
    assert enc.transliterate(result) == result


@given(any_text)
def test_transliterate_only_touches_suggested_chars(text):
    suggestions = enc.suggest_replacements(text)
    assert list(suggestions) == [
        char for char in enc.analyze(text)["ucs2_chars"] if char in suggestions
    ]
    expected = "".join(suggestions.get(char, char) for char in text)
    assert enc.transliterate(text) == expected
