"""Tests of sms_microfunnel/tools/sms_keywords.py (compliance book
``docs/compliance.md``: US-FCC-REVOCATION, Keywords and service replies)."""

import unicodedata

import pytest
from conftest import load_tool
from hypothesis import example, given, settings
from hypothesis import strategies as st

kw = load_tool("sms_microfunnel", "sms_keywords")

RESULTS = {None, "opt_out", "help", "opt_in", "confirm"}

# Every keyword of the book, spelt as the book spells it, with
# the action and the language table expected to own it.
DOC_KEYWORDS = [
    # Opt-out, Twilio default (long codes, toll-free)
    ("STOP", "opt_out", "en"),
    ("STOPALL", "opt_out", "en"),
    ("UNSUBSCRIBE", "opt_out", "en"),
    ("CANCEL", "opt_out", "en"),
    ("END", "opt_out", "en"),
    ("QUIT", "opt_out", "en"),
    ("REVOKE", "opt_out", "en"),
    ("OPTOUT", "opt_out", "en"),
    # Opt-out, FCC per se
    ("stop", "opt_out", "en"),
    ("quit", "opt_out", "en"),
    ("end", "opt_out", "en"),
    ("revoke", "opt_out", "en"),
    ("opt out", "opt_out", "en"),
    ("cancel", "opt_out", "en"),
    ("unsubscribe", "opt_out", "en"),
    # Opt-out, French
    ("STOP", "opt_out", "fr"),
    ("ARRET", "opt_out", "fr"),
    ("ARRÊT", "opt_out", "fr"),
    ("ARRETE", "opt_out", "fr"),
    ("ARRÊTE", "opt_out", "fr"),
    ("DESABONNER", "opt_out", "fr"),
    ("DÉSABONNER", "opt_out", "fr"),
    ("DESINSCRIRE", "opt_out", "fr"),
    ("DÉSINSCRIRE", "opt_out", "fr"),
    # Opt-out, Spanish
    ("ALTO", "opt_out", "es"),
    ("BAJA", "opt_out", "es"),
    ("PARAR", "opt_out", "es"),
    ("CANCELAR", "opt_out", "es"),
    # Opt-out, German / Italian
    ("STOPP", "opt_out", "de"),
    ("ABMELDEN", "opt_out", "de"),
    ("ABBESTELLEN", "opt_out", "de"),
    ("STOP", "opt_out", "it"),
    ("BASTA", "opt_out", "it"),
    ("CANCELLA", "opt_out", "it"),
    ("DISISCRIVI", "opt_out", "it"),
    # Opt-in (re-subscribe); YES/OUI are "confirm", decided by context
    ("START", "opt_in", "en"),
    ("UNSTOP", "opt_in", "en"),
    ("YES", "confirm", "en"),
    ("OUI", "confirm", "fr"),
    # Help
    ("HELP", "help", "en"),
    ("INFO", "help", "en"),
    ("CONTACT", "help", "fr"),
    ("AIDE", "help", "fr"),
    ("AYUDA", "help", "es"),
    ("HILFE", "help", "de"),
    ("AIUTO", "help", "it"),
]

TABLE_WORDS = sorted(
    (word, action, lang)
    for lang, table in kw.KEYWORDS.items()
    for action, words in table.items()
    for word in words
)


def _ids(rows):
    return [f"{lang}-{action}-{word}" for word, action, lang in rows]


# --- The table --------------------------------------------------------------


def test_table_shape():
    assert set(kw.KEYWORDS) == {"en", "fr", "es", "de", "it"}
    assert kw.LANGUAGES == tuple(kw.KEYWORDS)
    assert kw.ACTIONS == ("opt_out", "help", "opt_in", "confirm")
    for table in kw.KEYWORDS.values():
        assert tuple(table) == kw.ACTIONS
        assert all(isinstance(words, frozenset) for words in table.values())


def test_table_is_read_only():
    with pytest.raises(TypeError):
        kw.KEYWORDS["xx"] = {}
    with pytest.raises(TypeError):
        kw.KEYWORDS["fr"]["opt_out"] = frozenset()


@pytest.mark.parametrize(("word", "action", "lang"), TABLE_WORDS, ids=_ids(TABLE_WORDS))
def test_table_words_are_normalised(word, action, lang):
    assert kw.normalize(word) == word


def test_every_document_keyword_is_in_its_table():
    for word, action, lang in DOC_KEYWORDS:
        assert (
            kw.normalize(word)
            .replace("stopall", "stop all")
            .replace("optout", "opt out")
            in kw.KEYWORDS[lang][action]
        ), (word, lang)


def test_a_word_has_one_action_across_tables():
    actions = {}
    for word, action, _lang in TABLE_WORDS:
        actions.setdefault(word, set()).add(action)
    assert {w: a for w, a in actions.items() if len(a) > 1} == {}


def test_twilio_default_keywords():
    assert {kw.classify(word) for word in kw.TWILIO_DEFAULT_KEYWORDS} == {
        "opt_out",
        "opt_in",
        "help",
        "confirm",
    }
    assert all(kw.normalize(w) == w for w in kw.TWILIO_DEFAULT_KEYWORDS)


# --- Every keyword ----------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "action", "lang"), DOC_KEYWORDS, ids=_ids(DOC_KEYWORDS)
)
def test_document_keyword(word, action, lang):
    assert kw.classify(word) == action
    assert kw.classify(word.lower()) == action
    assert kw.classify(word.title()) == action
    assert kw.keyword_language(word, preferred=lang) == lang
    found = kw.match(word, preferred=lang)
    assert found == kw.KeywordMatch(action, lang, "exact")


@pytest.mark.parametrize(("word", "action", "lang"), TABLE_WORDS, ids=_ids(TABLE_WORDS))
def test_table_keyword(word, action, lang):
    for variant in (
        word,
        word.upper(),
        f"  {word.upper()}! ",
        f"«{word}»",
        f"{word} 🙏",
    ):
        assert kw.classify(variant) == action, variant
        assert kw.keyword_language(variant, preferred=lang) == lang, variant


@pytest.mark.parametrize(
    "body",
    [
        "opt out",
        "OPT OUT",
        "Opt-Out",
        "opt‑out",  # non-breaking hyphen
        "opt–out",  # en dash
        "opt_out",
        "optout",
        "OPTOUT",
        "opt  out",
        "stop all",
        "STOP-ALL",
        "stopall",
        "Stop All!",
    ],
)
def test_compound_forms(body):
    assert kw.classify(body) == "opt_out"
    assert kw.match(body).rule == "exact"


# --- Normalisation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Stop.", "stop"),
        ("  stop!! ", "stop"),
        ("ARRÊT", "arret"),
        ("arret", "arret"),
        ("Arrêté", "arrete"),
        ("DÉSINSCRIRE", "desinscrire"),
        ("ＳＴＯＰ", "stop"),  # full-width
        ("𝐒𝐓𝐎𝐏", "stop"),  # mathematical bold
        ("Ⓢⓣⓞⓟ", "stop"),  # circled
        ("\u00a0stop\u202f", "stop"),  # NBSP, narrow NBSP
        ("\u200bstop\u200d", "stop"),  # zero-width
        ("\ufeffSTOP", "stop"),  # BOM
        ("S\u200bTOP", "stop"),  # zero-width inside a word
        ("stop 🛑", "stop"),
        ("🛑🛑 STOP 🛑🛑", "stop"),
        ("👍🏽 oui", "oui"),
        ('"STOP"', "stop"),
        ("«ARRÊT»", "arret"),
        ("(stop)", "stop"),
        ("[HELP]", "help"),
        ("¡Alto!", "alto"),
        ("¿AYUDA?", "ayuda"),
        ("...stop...", "stop"),
        ("stop\n", "stop"),
        ("\tSTOP\r\n", "stop"),
        ("STOP   please", "stop please"),
        ("stop\n\nplease", "stop please"),
        ("Désinscrivez\u2011moi", "desinscrivez-moi"),
        ("don’t", "don't"),
        ("STRAẞE", "strasse"),
        ("cœur", "coeur"),
        ("", ""),
        ("   ", ""),
        ("?!", ""),
        ("🙂", ""),
    ],
)
def test_normalize(body, expected):
    assert kw.normalize(body) == expected


@pytest.mark.parametrize("body", [None, 1, 1.5, b"STOP", ["STOP"], {"Body": "STOP"}])
def test_non_str(body):
    assert kw.normalize(body) == ""
    assert kw.classify(body) is None
    assert kw.keyword_language(body) is None
    assert kw.match(body) is None
    assert kw.needs_review(body) is False


@pytest.mark.parametrize(
    "body",
    [
        "Stop.",
        "  stop!! ",
        "STOP",
        "stop",
        "sToP",
        "'stop'",
        "STOP!!!!!!",
        "Stop :)",
        "STOP 🛑",
        "\u00a0STOP\u00a0",
        "ＳＴＯＰ",
        "ｓｔｏｐ",
    ],
)
def test_stop_variants(body):
    assert kw.classify(body) == "opt_out"


@pytest.mark.parametrize(
    "body", ["ARRÊT", "arret", "Arrêt", "ARRET", "arrêt.", "Arrête"]
)
def test_arret_variants(body):
    assert kw.classify(body) == "opt_out"
    assert kw.keyword_language(body) == "fr"


# --- Keywords with politeness words (rule 1) --------------------------------


@pytest.mark.parametrize(
    ("body", "action", "lang"),
    [
        ("STOP PLEASE", "opt_out", "en"),
        ("Please stop", "opt_out", "en"),
        ("stop stop stop", "opt_out", "en"),
        ("STOP merci", "opt_out", "fr"),
        ("Bonjour, STOP", "opt_out", "fr"),
        ("STOP s'il vous plaît", "opt_out", "fr"),
        ("Arrêt svp", "opt_out", "fr"),
        ("BAJA por favor", "opt_out", "es"),
        ("STOPP bitte", "opt_out", "de"),
        ("basta grazie", "opt_out", "it"),
        ("Yes please", "confirm", "en"),
        ("YES!!! thanks", "confirm", "en"),
        ("Oui merci", "confirm", "fr"),
        ("oui, d'accord", "confirm", "fr"),
        ("START please", "opt_in", "en"),
        ("HELP please", "help", "en"),
        ("aide svp", "help", "fr"),
        ("Hilfe bitte", "help", "de"),
        # precedence: opt_out > help > opt_in > confirm
        ("yes stop", "opt_out", "en"),
        ("oui STOP", "opt_out", "fr"),
        ("help stop", "opt_out", "en"),
        ("start stop", "opt_out", "en"),
        ("help yes", "help", "en"),
        ("start yes", "opt_in", "en"),
        ("help start", "help", "en"),
    ],
)
def test_keywords_with_fillers(body, action, lang):
    assert kw.classify(body) == action
    assert kw.keyword_language(body) == lang
    assert kw.match(body).rule == "keywords"


# --- Free-text opt-outs (rules 2 and 3) -------------------------------------

FREE_TEXT_OPT_OUTS = [
    # English
    ("please stop texting me", "en"),
    ("Stop texting me", "en"),
    ("stop sending me messages", "en"),
    ("PLEASE STOP SENDING ME MESSAGES!!!", "en"),
    ("Stop messaging me, I'm not interested", "en"),
    ("quit texting me", "en"),
    ("stop calling me", "en"),
    ("Stop the texts", "en"),
    ("stop these messages please", "en"),
    ("STOP SMS", "en"),
    ("unsubscribe me", "en"),
    ("Unsubscribe me from this list", "en"),
    ("I want to unsubscribe", "en"),
    ("how do I unsubscribe?", "en"),
    ("I already unsubscribed, why are you still texting me", "en"),
    ("remove me from your list", "en"),
    ("Please remove me from your mailing list", "en"),
    ("take me off your list", "en"),
    ("delete my number", "en"),
    ("I'd like to opt out please", "en"),
    ("opt me out", "en"),
    ("I want to optout", "en"),
    ("don't text me anymore", "en"),
    ("Do not contact me again", "en"),
    ("I don't want these messages", "en"),
    ("I do not want to receive texts anymore", "en"),
    ("I no longer wish to receive your messages", "en"),
    ("i want to stop receiving these messages", "en"),
    ("no more texts please", "en"),
    ("leave me alone", "en"),
    ("Can you please stop?", "en"),
    ("I said STOP", "en"),
    ("i told you to stop already", "en"),
    ("Why won't you stop texting me?", "en"),
    ("If you don't stop texting me I'll report you", "en"),
    ("Who is this? STOP", "en"),
    ("who is this\nstop", "en"),
    ("who is this 😡 stop", "en"),
    ("What time is the webinar? Stop", "en"),
    ("STOP 36180", "en"),
    ("cancel my subscription", "en"),
    ("quit sending me stuff", "en"),
    # French
    ("je ne veux plus recevoir vos sms", "fr"),
    ("Je ne veux plus recevoir vos SMS.", "fr"),
    ("je veux plus recevoir vos sms", "fr"),
    ("Je ne souhaite plus être contacté", "fr"),
    ("je ne veux plus de vos messages", "fr"),
    ("arrêtez de m'envoyer des messages", "fr"),
    ("Arrête de m'écrire", "fr"),
    ("cessez de me contacter", "fr"),
    ("merci d'arrêter de m'envoyer des sms", "fr"),
    ("Merci de ne plus m'envoyer de SMS", "fr"),
    ("Ne m'envoyez plus de messages", "fr"),
    ("ne me contactez plus", "fr"),
    ("désinscrivez-moi", "fr"),
    ("Désinscrivez moi svp", "fr"),
    ("je veux me désabonner", "fr"),
    ("comment se désinscrire ?", "fr"),
    ("Désinscription", "fr"),
    ("merci de me retirer de votre liste", "fr"),
    ("Retirez-moi de votre fichier", "fr"),
    ("sortez-moi de vos listes", "fr"),
    ("supprimez mon numéro", "fr"),
    ("Supprimez-moi", "fr"),
    ("laissez-moi tranquille", "fr"),
    ("Plus de SMS svp", "fr"),
    ("Arrêtez les SMS", "fr"),
    ("stop aux sms", "fr"),
    ("Stop à la pub", "fr"),
    ("STOP SMS merci", "fr"),
    ("Arrêtez svp", "fr"),
    ("merci d'arrêter", "fr"),
    ("Arrêter !", "fr"),
    ("annulez mon abonnement", "fr"),
    ("Qui êtes-vous ? STOP", "fr"),
    ("Je ne veux plus recevoir de SMS, désinscrivez-moi", "fr"),
]


@pytest.mark.parametrize(("body", "lang"), FREE_TEXT_OPT_OUTS)
def test_free_text_opt_out(body, lang):
    assert kw.classify(body) == "opt_out"
    assert kw.keyword_language(body) == lang
    assert kw.match(body).rule in {"keywords", "clause", "phrase"}
    assert kw.needs_review(body) is False


AMBIGUOUS = [
    "don't stop",
    "Don't stop!",
    "please don't stop",
    "stop by the shop tomorrow?",
    "Can you stop by the shop",
    "I can't stop smiling",
    "ne pas arrêter",
    "Ne pas arrêter svp",
    "stop, what time is the webinar?",
    "Stop. What time is the webinar?",
    "stop it, what time is the webinar?",
    "don't stop texting me",
    "Don't ever stop sending me messages",
    "I don't want to stop receiving your messages",
    "why did you stop texting me?",
    "ne pas arrêter de m'envoyer des sms",
    "n'arrêtez pas de m'envoyer des messages",
    "je ne veux pas me désinscrire",
    "why haven't I been unsubscribed?",
    "stop sending me the link, I have it",
    "stop the car",
    "the end",
    "What time does it end?",
    "ok cancel it",
    "I can't make it, cancel",
    "cancel my appointment",
    "Arrêté préfectoral",
    "je ne reçois plus vos sms",
    "il n'y a plus de messages",
    "je ne veux plus rater vos promos",
    "drop me a line",
    "Yes I'd love to",
    "Oui je viens",
    "help me",
    "more info please",
]


@pytest.mark.parametrize("body", AMBIGUOUS)
def test_ambiguous_is_not_classified(body):
    assert kw.classify(body) is None
    assert kw.keyword_language(body) is None
    assert kw.match(body) is None


UNKNOWN = [
    "",
    "   ",
    "\n\t",
    "🙂",
    "?!",
    "STAHP",
    "stopped",
    "stopover",
    "Stop-over",
    "nonstop",
    "unstoppable",
    "st op",
    "s.t.o.p",
    "st0p",
    "helpful",
    "yesterday",
    "infos",
    "ouistiti",
    "starting",
    "Ok",
    "thanks",
    "merci",
    "no",
    "non",
    "NON MERCI",
    "hello",
    "12345",
    "Bonjour, je voudrais un rendez-vous",
]


@pytest.mark.parametrize("body", UNKNOWN)
def test_unknown_is_none(body):
    assert kw.classify(body) is None
    assert kw.keyword_language(body) is None


# --- needs_review -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "stop, what time is the webinar?",
        "stop by the shop tomorrow?",
        "I can't stop smiling",
        "don't stop texting me",
        "why haven't I been unsubscribed?",
        "je ne veux pas me désinscrire",
        "ne pas arrêter",
        "STOP. Jean Dupont",
    ],
)
def test_needs_review(body):
    assert kw.classify(body) is None
    assert kw.needs_review(body) is True


@pytest.mark.parametrize(
    "body", ["STOP", "stop texting me", "hello", "the end", "ok cancel it", "", None]
)
def test_no_review(body):
    assert kw.needs_review(body) is False


# --- Language of the answer -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "preferred", "lang"),
    [
        ("STOP", None, "en"),
        ("STOP", "fr", "fr"),
        ("STOP", "fr_FR", "fr"),
        ("STOP", "fr-CA", "fr"),
        ("STOP", "it_IT", "it"),
        ("STOP", "es_ES", "en"),  # STOP is not in the Spanish table
        ("STOP", "xx", "en"),
        ("STOP", 42, "en"),
        ("STOP merci", "en_US", "fr"),
        ("STOP please", "fr_FR", "en"),
        ("ARRÊT", "en_US", "fr"),
        ("BAJA", "fr_FR", "es"),
        ("stop texting me", "fr_FR", "en"),
        ("stop aux sms", "en_US", "fr"),
    ],
)
def test_keyword_language(body, preferred, lang):
    assert kw.keyword_language(body, preferred=preferred) == lang
    assert kw.match(body, preferred).language == lang


def test_match_rules():
    assert kw.match("STOP") == ("opt_out", "en", "exact")
    assert kw.match("STOP please").rule == "keywords"
    assert kw.match("stop texting me").rule == "clause"
    assert kw.match("remove me from your list").rule == "phrase"


def test_long_body_is_bounded():
    assert kw.classify("text " * 5000) is None
    assert kw.classify("stop " * 5000) == "opt_out"
    assert kw.classify("x" * kw.MAX_BODY + " STOP") is None


# --- Properties -------------------------------------------------------------


def _is_decoration(ch):
    """Punctuation, symbol, space or format character that NFKC keeps non-alnum."""
    folded = unicodedata.normalize("NFKC", ch)
    return not any(c.isalnum() for c in folded)


DECORATION = st.text(
    st.characters(
        categories=(
            *("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),
            *("Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cf"),
        ),
    ).filter(_is_decoration)
    | st.sampled_from(" \t\n\r\u00a0\u202f\u200b🛑🙏😡👍🏽!?.,;:«»\"'()[]"),
    max_size=8,
)
KEYWORD_ROWS = st.sampled_from(TABLE_WORDS + DOC_KEYWORDS)
FREE_TEXT_WORDS = sorted(
    {w for body, _lang in FREE_TEXT_OPT_OUTS for w in body.split()}
    | {w for body in AMBIGUOUS for w in body.split()}
    | {"ß", "İ", "ı", ",", ".", "?", "\n"}
)


@settings(max_examples=500)
@given(st.text(max_size=300))
@example("\ud800STOP")
@example("\u0301stop")
@example("İ")
@example("ß" * 10)
@example("don't " * 50 + "stop texting")
def test_classify_never_raises(body):
    assert kw.classify(body) in RESULTS
    language = kw.keyword_language(body)
    assert (language is None) == (kw.classify(body) is None)
    assert language is None or language in kw.KEYWORDS
    review = kw.needs_review(body)
    assert review is False or kw.classify(body) is None
    assert isinstance(kw.normalize(body), str)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_normalize_is_idempotent_and_trimmed(body):
    once = kw.normalize(body)
    assert kw.normalize(once) == once
    assert once == once.strip()
    assert "  " not in once
    assert not once or (once[0].isalnum() and once[-1].isalnum())


@settings(max_examples=300)
@given(
    st.text(max_size=200)
    | st.lists(st.sampled_from(FREE_TEXT_WORDS), max_size=12).map(" ".join)
)
def test_classify_is_invariant_under_case(body):
    assert kw.classify(body.upper()) == kw.classify(body)
    assert kw.classify(body.lower()) == kw.classify(body)


@settings(max_examples=500)
@given(KEYWORD_ROWS, DECORATION, DECORATION)
def test_invariant_under_surrounding_decoration(row, before, after):
    word, action, _lang = row
    assert kw.classify(before + word + after) == action


@settings(max_examples=500)
@given(KEYWORD_ROWS, st.data())
def test_invariant_under_case(row, data):
    word, action, _lang = row
    flips = data.draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    cased = "".join(
        c.upper() if f else c.lower() for c, f in zip(word, flips, strict=True)
    )
    assert kw.classify(cased) == action
    assert kw.classify(word.swapcase()) == action


@settings(max_examples=200)
@given(st.sampled_from(FREE_TEXT_OPT_OUTS), DECORATION, DECORATION)
def test_free_text_invariant_under_surroundings(row, before, after):
    body, _lang = row
    assert kw.classify(before + body.upper() + after) == "opt_out"


# ---------------------------------------------------------------------------
# FCC revocation words (rule US-FCC-REVOCATION, 47 CFR 64.1200(a)(10))
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("word", kw.FCC_PER_SE_WORDS)
def test_fcc_per_se_words_revoke_alone_and_politely(word):
    for body in (
        word,
        word.upper(),
        f"{word.title()}.",
        f"{word} please",
        f"Hi, {word.upper()}!",
        f"{word} all",
    ):
        assert kw.classify(body) == kw.OPT_OUT, body


@pytest.mark.parametrize(
    "body",
    [
        "opt-out",
        "OPTOUT",
        "Opt Out All",
        "STOPALL",
        "end all",
        "cancel all",
        "quit all",
        "unsubscribe all",
        "revoke consent",
        "Revoke my consent",
        "No más",
    ],
)
def test_fcc_multi_word_forms_revoke(body):
    assert kw.classify(body) == kw.OPT_OUT


def test_fcc_words_are_in_the_english_table():
    assert set(kw.FCC_PER_SE_WORDS) <= kw.KEYWORDS["en"][kw.OPT_OUT]
