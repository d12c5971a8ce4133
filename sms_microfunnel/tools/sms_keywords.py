# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Inbound SMS keyword classification.

The rules and their sources (FCC 47 CFR 64.1200(a)(10)-(12), CNIL, CASL) are
in the compliance book ``docs/compliance.md``, sections US-FCC-REVOCATION and
"Keywords and service replies"; "book" below refers to it.

Pure standard-library module: no Odoo import and no relative import, so it can
be loaded straight from its file (tests do) and called from the models.

Public API
----------
``normalize(body) -> str``
    The matching copy of a body (book, steps 1-2): NFKC, case folding,
    diacritics stripped, typographic apostrophes and dashes unified,
    zero-width/format characters removed, whitespace collapsed, leading and
    trailing punctuation, quotes, brackets and emoji stripped.  The raw body
    must still be kept unchanged in the ledger.
``classify(body) -> "opt_out" | "help" | "opt_in" | "confirm" | None``
    The action an inbound body asks for; ``None`` for anything else, for an
    empty body and for a non-``str``.  Never raises.
``keyword_language(body, preferred=None) -> str | None``
    The language table (a key of ``KEYWORDS``) that matched, to answer in that
    language; ``None`` exactly when ``classify`` returns ``None``.
``match(body, preferred=None) -> KeywordMatch | None``
    ``(action, language, rule)`` in one call; ``rule`` tells how it matched
    (see below), e.g. ``"exact"`` for a message that is one keyword.
``needs_review(body) -> bool``
    True for an unclassified body that still looks like it may revoke consent
    (an opt-out keyword or phrase that the guards below refused): a
    candidate for the optional review queue (book, step 5).
``KEYWORDS``
    One table of words per language: ``{lang: {action: frozenset(words)}}``,
    read-only, every word stored in normalised form; compounds ("opt out",
    "stop all") are stored spaced and also match hyphenated and joined
    ("opt-out", "optout", "STOPALL").

Actions: ``opt_out`` (revocation), ``help``, ``opt_in`` (re-subscribe: START,
UNSTOP) and ``confirm`` (YES/OUI: the caller decides by context whether it
confirms a pending double opt-in, re-opts-in after a keyword opt-out, or is a
plain "yes" a funnel branches on).  Precedence when several are present:
opt_out > help > opt_in > confirm (book, step 6).

Matching rules (tried in this order, on word tokens of the normalised text;
a token is a run of letters/digits, so a keyword never matches inside another
word: "stopover", "nonstop", "unstoppable" are not STOP)
---------------------------------------------------------------------------
1. ``exact`` / ``keywords`` -- every token is a keyword or a politeness or
   greeting filler ("please", "merci", "svp", "s'il vous plaît", "bitte",
   "hi"...), with at least one keyword: the highest-precedence action
   ("Stop.", "  stop!! ", "STOP please", "Oui merci", "Bonjour, STOP").
   This is the only rule for help, opt_in and confirm: a consent must never be
   read into free text.
2. ``clause`` (opt-out only) -- the body is cut into clauses at . ! ? ; : ,
   line breaks and emoji.  A clause opts out when, after leading fillers, it
   starts with an opt-out keyword (or a French imperative such as
   "arrêtez"), every other token is a filler, a keyword, a number, a
   determiner/pronoun ("it", "me", "all", "vos", "aux"...) or a messaging
   word ("texting", "messages", "sms", "pub"...), and either
   (a) a messaging word is present ("stop texting me", "STOP SMS",
   "stop aux sms", "quit sending me messages"), or
   (b) it is the last clause and the keyword is a strong one ("Who is this?
   STOP", "STOP 36180", "unsubscribe me").  CANCEL, END, QUIT, ALTO, PARAR,
   CANCELAR and CANCELLA are weak (everyday words: "I can't make it,
   cancel" answers an appointment reminder): alone they count only under
   rule 1 or with a messaging word.
   A bare keyword followed by another sentence is ambiguous and does not
   count: "stop, what time is the webinar?", "stop by the shop tomorrow?".
   This narrows step 5 of the book ("first token is an opt-out keyword ->
   opt-out"), which would opt those two out; ``needs_review`` flags them.
3. ``phrase`` (opt-out only, English and French) -- explicit revocation
   phrases anywhere in a clause: stop/quit + texting/messaging/contacting...,
   stop + (the|these|your...) + texts/messages..., unsubscribe..., opt out,
   remove me / take me off (your list), don't text me, I don't want (to
   receive) these messages, no more texts, leave me alone, can you stop?, I
   said stop; arrêtez de m'envoyer/m'écrire/me contacter, arrêtez les sms,
   stop aux sms, (je) ne veux plus recevoir / ne plus m'envoyer, ne m'envoyez
   plus, désinscrivez-moi / me désabonner / désinscription, retirez-moi,
   supprimez mon numéro, me retirer de votre liste, laissez-moi tranquille,
   plus de sms.
   **Negation guard**: a phrase is refused when one of the six tokens before
   it in its clause is a negation or a question of cause: not, never, don't,
   can't, won't, didn't... (any "<word>n't"), cannot, why, no need; ne, n',
   pas, jamais, sans, pourquoi.  So "don't stop texting me", "ne pas arrêter
   de m'envoyer", "why did you stop texting me" stay ``None``.  Two
   rhetorical forms are not negations: "won't/can't you (please) stop..."
   and the threat "if you don't stop...".
Everything else is ``None`` ("don't stop", "I can't stop smiling", "ne pas
arrêter", "stop the car"); only the first ``MAX_BODY`` characters are read.
The rules favour opting out when the wording is explicit (FCC "any
reasonable means", rule US-FCC-REVOCATION) and leave guessing to
``needs_review``.
"""

import re
import unicodedata
from types import MappingProxyType
from typing import NamedTuple

OPT_OUT = "opt_out"
HELP = "help"
OPT_IN = "opt_in"
CONFIRM = "confirm"
#: Every action, highest precedence first (book, step 6).
ACTIONS = (OPT_OUT, HELP, OPT_IN, CONFIRM)


def _table(**words):
    return MappingProxyType({a: frozenset(words.get(a, ())) for a in ACTIONS})


#: Keyword table (book: Keywords and service replies), one entry per
#: language, words in normalised form (see ``normalize``).  STOP is
#: universal: it sits in the English, French and Italian tables.  The English
#: opt-out words include the FCC's per-se revocation words and their
#: multi-word forms ("stop all", "cancel all", "revoke consent"...).
KEYWORDS = MappingProxyType(
    {
        "en": _table(
            opt_out=(
                "stop",
                "stop all",
                "unsubscribe",
                "cancel",
                "end",
                "quit",
                "revoke",
                "opt out",
                "end all",
                "cancel all",
                "quit all",
                "unsubscribe all",
                "revoke all",
                "opt out all",
                "revoke consent",
                "revoke my consent",
            ),
            help=("help", "info"),
            opt_in=("start", "unstop"),
            confirm=("yes",),
        ),
        "fr": _table(
            opt_out=("stop", "arret", "arrete", "desabonner", "desinscrire"),
            help=("aide", "contact"),
            confirm=("oui",),
        ),
        "es": _table(
            opt_out=("alto", "baja", "parar", "cancelar", "no mas"), help=("ayuda",)
        ),
        "de": _table(opt_out=("stopp", "abmelden", "abbestellen"), help=("hilfe",)),
        "it": _table(
            opt_out=("stop", "basta", "cancella", "disiscrivi"), help=("aiuto",)
        ),
    }
)
#: Only this many leading characters are classified: longer than any SMS
#: (Twilio caps a body at 1,600 characters), and it bounds the work.
MAX_BODY = 4096
#: Language codes, in table order (the tie-break of ``keyword_language``).
LANGUAGES = tuple(KEYWORDS)

#: The words the FCC names as a revocation per se when sent in reply to a
#: text (47 CFR 64.1200(a)(10), rule US-FCC-REVOCATION), in normalised form.
#: Each is an opt-out keyword of the English table.
FCC_PER_SE_WORDS = ("stop", "quit", "end", "revoke", "opt out", "cancel", "unsubscribe")

#: Single-word keywords that Twilio's default handling acts on (long codes and
#: toll-free; book: Keywords and service replies), as ``normalize`` returns
#: them.  Whether Twilio also ignores punctuation around them is not verified.
TWILIO_DEFAULT_KEYWORDS = frozenset(
    {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "start",
        "unstop",
        "yes",
        "help",
        "info",
    }
)


class KeywordMatch(NamedTuple):
    """What ``match`` found: the action, the language table and the rule.

    ``rule`` is ``"exact"`` (the body is one keyword), ``"keywords"``
    (keywords and politeness words only), ``"clause"`` (an opt-out clause led
    by a keyword) or ``"phrase"`` (an explicit revocation phrase).
    """

    action: str
    language: str
    rule: str


# --- Free-text vocabulary (per language, normalised forms) ------------------

# Politeness, greetings and "now": allowed around any keyword (rule 1).
_FILLERS = {
    "en": "please pls plz plse pleas thanks thank you thx ty ok okay hi hello hey "
    "now asap immediately already",
    "fr": "merci svp stp s il vous te plait ok okay bonjour bonsoir salut "
    "maintenant immediatement desormais cordialement bien beaucoup tout de suite "
    "d accord",
    "es": "por favor porfa porfavor gracias hola ya ok",
    "de": "bitte danke hallo jetzt sofort ok",
    "it": "per favore grazie ciao subito ok",
}
# Determiners, pronouns and the like: allowed after an opt-out keyword (rule 2).
_WEAK = {
    "en": "me us it this that these those them all everything the your any my "
    "more from to right away anymore forever permanently for good number list",
    "fr": "moi me m nous ca cela ce cet cette ces vos tes mes les des du de d aux "
    "au a la le l tout tous toutes definitivement numero liste",
    "es": "me mi los las de a todo todos mas",
    "de": "mir alle keine mehr",
    "it": "mi tutti tutto i",
}
# Messaging nouns and verbs: make an opt-out clause explicit (rule 2a).
_STRONG = {
    "en": "texting txting messaging msging sending contacting calling emailing "
    "spamming bothering texts text txt txts messages message msg msgs sms smss "
    "spam promos promo promotions promotion offers ads marketing notifications "
    "alerts reminders subscription",
    "fr": "sms textos texto messages message mails mail envois envoi pub pubs "
    "publicite publicites promos promo notifications relances spam spams envoyer "
    "ecrire contacter appeler campagnes alertes rappels abonnement newsletter "
    "harceler",
    "es": "mensajes mensaje sms publicidad",
    "de": "nachrichten nachricht sms werbung",
    "it": "messaggi messaggio sms pubblicita",
}
# Imperatives that lead an opt-out clause like a keyword (rule 2), not
# keywords of their own (the book lists ARRET/ARRETE only).
_VERBS = {
    "fr": "arretez arretes arreter cessez cesser stoppez stopper stoppe",
}
# Opt-out keywords too common in everyday speech to count alone in a clause.
_WEAK_KEYWORDS = frozenset(
    {"cancel", "end", "quit", "alto", "parar", "cancelar", "cancella"}
)
# Word beginnings that flag a body for review when nothing matched.
_REVIEW_STEMS = ("unsubscri", "desinscri", "desabonn", "optout")


def _index(groups):
    """``{token: frozenset(langs)}`` from ``{lang: "space separated words"}``."""
    out = {}
    for lang, words in groups.items():
        for word in words.split():
            out.setdefault(word, set()).add(lang)
    return {word: frozenset(langs) for word, langs in out.items()}


_FILLER_LANGS = _index(_FILLERS)
_WEAK_LANGS = _index(_WEAK)
_STRONG_LANGS = _index(_STRONG)
_VERB_LANGS = _index(_VERBS)


def _build_lookup():
    """Token tuples -> ((lang, action), ...), with joined compound forms."""
    lookup = {}
    for lang, table in KEYWORDS.items():
        for action, words in table.items():
            for word in words:
                parts = tuple(word.split())
                keys = {parts, ("".join(parts),)}
                for key in keys:
                    lookup.setdefault(key, []).append((lang, action))
    return {key: tuple(entries) for key, entries in lookup.items()}


_LOOKUP = _build_lookup()
_MAX_PARTS = max(len(key) for key in _LOOKUP)

# --- Normalisation ----------------------------------------------------------

_CHAR_MAP = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u02bc": "'",
        "\u02bb": "'",
        "\u02b9": "'",
        "`": "'",
        "\u0153": "oe",
        "\u00e6": "ae",
        "\u00f8": "o",
        "\u0142": "l",
        "\u0111": "d",
        "\u00f0": "d",
        "\u00fe": "th",
        "\u0131": "i",
    }
)
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_CLAUSE_BREAKS = frozenset(".!?;:,\n\u2026\u00a1\u00bf\u061f\u3002")
_TOKEN_RE = re.compile(r"[^\W_]+")


def _fold(text):
    """Character-level normalisation; keeps line breaks and inner punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_CHAR_MAP)
    out = []
    for ch in unicodedata.normalize("NFD", text):
        category = unicodedata.category(ch)
        if category in ("Mn", "Me", "Cf"):
            continue  # diacritics, enclosing marks, zero-width/format characters
        if ch in _LINE_BREAKS:
            out.append("\n")
        elif ch.isspace():
            out.append(" ")
        elif category == "Pd":
            out.append("-")
        else:
            out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _strip_edges(text):
    start, end = 0, len(text)
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return text[start:end]


def normalize(body):
    """Return the matching copy of ``body`` (book, steps 1-2).

    NFKC (full-width and styled letters become plain), case folding,
    diacritics stripped ("ARRÊT" -> "arret"), typographic apostrophes -> "'",
    dashes -> "-", zero-width and other format characters removed, whitespace
    (NBSP, narrow NBSP, line breaks...) collapsed to single spaces, and
    leading/trailing non-alphanumerics (punctuation, quotes, brackets, emoji)
    stripped.  Inner punctuation is kept.  A non-``str`` gives ``""``.
    """
    if not isinstance(body, str):
        return ""
    return _strip_edges(" ".join(_fold(body).split()))


# --- Tokens and spans -------------------------------------------------------


class _Span(NamedTuple):
    kind: str  # kw, filler, weak, strong, verb, num, other
    word: str
    langs: frozenset
    entries: tuple = ()  # ((lang, action), ...) for a keyword


def _spans(tokens):
    """Label tokens, joining compound keywords (longest match first)."""
    spans = []
    i = 0
    while i < len(tokens):
        for size in range(min(_MAX_PARTS, len(tokens) - i), 0, -1):
            entries = _LOOKUP.get(tuple(tokens[i : i + size]))
            if entries:
                word = " ".join(tokens[i : i + size])
                langs = frozenset(lang for lang, _action in entries)
                spans.append(_Span("kw", word, langs, entries))
                i += size
                break
        else:
            token = tokens[i]
            for kind, table in (
                ("filler", _FILLER_LANGS),
                ("strong", _STRONG_LANGS),
                ("weak", _WEAK_LANGS),
                ("verb", _VERB_LANGS),
            ):
                if token in table:
                    spans.append(_Span(kind, token, table[token]))
                    break
            else:
                kind = "num" if token.isdigit() else "other"
                spans.append(_Span(kind, token, frozenset()))
            i += 1
    return spans


def _clauses(folded):
    """Token lists of the non-empty clauses of a folded body."""
    pieces, current = [], []
    for ch in folded:
        if ch in _CLAUSE_BREAKS or unicodedata.category(ch) == "So":
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return [tokens for tokens in (_TOKEN_RE.findall(p) for p in pieces) if tokens]


def _pick_language(candidates, spans, preferred):
    """Best language among ``candidates``: most tokens of its vocabulary.

    Ties go to ``preferred`` when it is one of them, else to table order.
    """
    scores = {lang: sum(lang in span.langs for span in spans) for lang in candidates}
    best = max(scores.values())
    tied = [lang for lang in LANGUAGES if scores.get(lang) == best]
    if preferred in tied:
        return preferred
    return tied[0]


def _preferred_code(preferred):
    if not isinstance(preferred, str):
        return None
    return preferred.strip().lower().replace("-", "_").split("_")[0] or None


# --- Rule 1: keywords and fillers only --------------------------------------


def _match_keywords(spans):
    actions = set()
    for span in spans:
        if span.kind == "kw":
            actions.update(action for _lang, action in span.entries)
        elif span.kind != "filler":
            return None
    if not actions:
        return None
    action = next(a for a in ACTIONS if a in actions)
    candidates = {
        lang
        for span in spans
        if span.kind == "kw"
        for lang, act in span.entries
        if act == action
    }
    return action, candidates


# --- Rule 2: opt-out clause led by a keyword --------------------------------


def _match_clause(spans, is_last):
    i = 0
    while i < len(spans) and spans[i].kind == "filler":
        i += 1
    if i == len(spans):
        return None
    head = spans[i]
    if head.kind == "kw":
        langs = {lang for lang, act in head.entries if act == OPT_OUT}
        strong_head = head.word not in _WEAK_KEYWORDS
    elif head.kind == "verb":
        langs, strong_head = set(head.langs), True
    else:
        return None
    if not langs:
        return None
    rest = spans[i + 1 :]
    if any(span.kind == "other" for span in rest):
        return None
    if any(span.kind == "strong" for span in rest) or (is_last and strong_head):
        return langs
    return None


# --- Rule 3: explicit revocation phrases with a negation guard --------------

# Phrase patterns run on a clause's tokens joined by single spaces, so a space
# in a pattern is a word gap; "don't" is seen as "don t", "m'envoyer" as
# "m envoyer", "désinscrivez-moi" as "desinscrivez moi".


def _p(*parts):
    return "".join(parts)


_EN_NOUN = _p(
    r"(?:texts?|txts?|text messages?|messages?|msgs?|sms(?:es|s)?|spam|promos?",
    r"|promotions?|offers?|ads|adverts?|advertising|marketing|notifications?",
    r"|alerts?|reminders?|newsletters?|subscriptions?)",
)
_EN_DET = _p(
    r"(?:(?:all|the|these|those|this|your|any|my|of|such|more|future|further",
    r"|promotional|marketing|text|sms) )*",
)
_EN_POLITE = r"(?:(?:please|pls|plz|now|just|kindly) )?"
_EN_END = r"(?: (?:it|this|that|now|please|pls|plz|already|immediately|asap))*$"
_EN_NEG = r"(?:dont|don t|do not|no longer|never)"
_FR_NOUN = _p(
    r"(?:sms|textos?|messages?|mails?|e mails?|envois?|pubs?|publicites?|promos?",
    r"|promotions?|offres?|notifications?|relances?|spams?|campagnes?|alertes?",
    r"|rappels?|newsletters?|abonnements?|sollicitations?)",
)
_FR_DET = _p(
    r"(?:(?:les|vos|ces|tes|mes|l|la|le|mon|ma|cet|cette|ce|tous|toutes|tout",
    r"|aux|a|au|d|de|des|du|votre|ton|ta) )*",
)
_FR_STOP = r"(?:arret(?:e|ez|er|es|ons)?|cess(?:e|ez|er|es)|stopp(?:e|ez|er|es)|stop)"
_FR_REMOVE = r"(?:retir|supprim|enlev|effac|radi|ray|sort)\w*"
_FR_LIST = _p(
    r"(?:listes?|fichiers?|bases?|repertoires?|contacts?|diffusion|mailing",
    r"|annuaire|envois)",
)

_PHRASES = {
    "en": (
        # stop texting me / quit messaging us / can you stop calling me
        _p(
            r"\b(?:stop|quit|cease|end) ",
            _EN_POLITE,
            r"(?:texting|txting|messaging|msging|contacting|spamming|calling",
            r"|emailing|bothering|harassing|harrassing|pestering|hounding)\b",
        ),
        # stop sending me these messages / stop receiving texts
        _p(
            r"\b(?:stop|quit|cease) ",
            _EN_POLITE,
            r"(?:sending|receiving|getting)(?: (?:me|us))? ",
            _EN_DET,
            _EN_NOUN,
            r"\b",
        ),
        # stop sending (me) (these|anything...) at the end of the clause
        _p(
            r"\b(?:stop|quit|cease) ",
            _EN_POLITE,
            r"sending(?: (?:me|us|them|these|this|those|it|stuff|things|anything",
            r"|anymore|please|pls|now))*$",
        ),
        # stop the texts / cancel my subscription / end these messages
        _p(r"\b(?:stop|end|cancel|block|halt|cease) ", _EN_DET, _EN_NOUN, r"\b"),
        r"\bunsub(?:scri\w*)?\b",
        r"\bopt(?:ed|ing|s)? (?:me |us )?out\b|\boptout\b",
        # remove me (from your list) / delete my number / take me off
        _p(
            r"\b(?:remove|delete|erase|unlist) (?:me|us|my (?:(?:phone|mobile",
            r"|cell|cellphone) )?(?:number|details|contact|info|data))\b",
        ),
        r"\btake (?:me|us|my (?:(?:phone|mobile|cell) )?number) off\b",
        r"\bdrop (?:me|us) (?:from|off)\b",
        # I don't want (to receive) these messages
        _p(
            r"\b",
            _EN_NEG,
            r" (?:want|wish|need) (?:to (?:receive|get|be sent) )?",
            r"(?:(?:any|anymore|more|these|those|your|the|such|of|this|further) )*",
            _EN_NOUN,
            r"\b",
        ),
        _p(
            r"\b",
            _EN_NEG,
            r" (?:want|wish) to (?:be (?:contacted|texted|messaged)",
            r"|hear from (?:you|u|them)|receive anything)\b",
        ),
        # don't text me / do not contact me
        _p(
            r"\b(?:dont|don t|do not|never) (?:ever )?(?:text|txt|message|msg",
            r"|contact|sms|spam|bother) (?:me|us|this number)\b",
        ),
        _p(r"\bno more ", _EN_NOUN, r"\b"),
        r"\bleave (?:me|us) alone\b",
        # can you (please) stop? / I said stop / I told you to stop
        _p(
            r"\b(?:can|could|will|would) (?:you|u) ",
            _EN_POLITE,
            r"(?:stop|quit)",
            _EN_END,
        ),
        _p(r"\b(?:said|say|told (?:you|u)(?: to)?) (?:stop|quit)", _EN_END),
    ),
    "fr": (
        # arrêtez de m'envoyer / cessez de me contacter / stop de m'écrire
        _p(
            r"\b",
            _FR_STOP,
            r" (?:de |d )?(?:(?:me|m|nous|moi) )?(?:envoyer|ecrire|contacter",
            r"|appeler|spammer|harceler|relancer|solliciter|texter|importuner",
            r"|deranger|embeter)\b",
        ),
        # arrêtez les sms / stop aux sms / arrêt des pubs / annulez mon abonnement
        _p(
            r"\b(?:",
            _FR_STOP,
            r"|supprim(?:e|ez|er)|annul(?:e|ez|er)|resili(?:e|ez|er)) ",
            _FR_DET,
            _FR_NOUN,
            r"\b",
        ),
        # (je) ne veux plus recevoir vos sms / merci de ne plus m'envoyer de sms
        _p(
            r"\bne? (?:(?:veux|voudrais|souhaite|souhaiterais|desire|desirerais",
            r"|veut|voulons|souhaitons|souhaitez) )?plus (?:(?:me|m|nous|etre",
            r"|jamais|rien|aucun|aucune|de|d|vos|ces|tes|les|des|votre|du|ce|ca",
            r"|recevoir) )*(?:recevoir|envoyer|contacter|contactee?s?|ecrire",
            r"|appeler|solliciter|sollicitee?s?|relancer|deranger|spammer|",
            _FR_NOUN,
            r")\b",
        ),
        # ne m'envoyez plus / ne me contactez jamais
        _p(
            r"\bne? (?:me|m|nous) (?:envoy|contact|ecri|appel|sollicit|relanc",
            r"|derang|spamm|harcel|text)\w* (?:plus|jamais)\b",
        ),
        # je veux plus recevoir (spoken French, "ne" dropped)
        _p(
            r"\bje (?:veux|voudrais|souhaite|desire) plus (?:recevoir",
            r"|etre (?:contacte|sollicite|derange)\w*)\b",
        ),
        # désinscrivez-moi / me désabonner / désinscription
        r"\bdes(?:inscri|abonn)\w*",
        # retirez-moi / supprimez mon numéro
        _p(
            r"\b(?:retir|supprim|enlev|effac|radi)(?:e|ez|er|es) (?:moi|mon ",
            r"(?:numero|num|contact|tel|telephone|portable|mobile))\b",
        ),
        # me retirer de votre liste / sortez-moi de vos fichiers
        _p(r"\b(?:me|m|nous) ", _FR_REMOVE, r" (?:de|d|du|des) ", _FR_DET, _FR_LIST),
        _p(r"\b", _FR_REMOVE, r" (?:moi|nous) (?:de|d|du|des) ", _FR_DET, _FR_LIST),
        r"\blaiss(?:e|ez) moi tranquilles?\b",
        r"\b(?:fich|fout)(?:e|ez) moi la paix\b",
        # "Plus de SMS svp" opening a clause means "no more SMS"
        _p(r"^(?:(?:merci|svp|stp|bonjour) )*plus (?:de |d )?", _FR_NOUN, r"\b"),
    ),
}

_PHRASE_RES = tuple(
    (lang, tuple(re.compile(p) for p in patterns))
    for lang, patterns in _PHRASES.items()
)

_NEGATIONS = frozenset(
    {
        "not",
        "never",
        "dont",
        "cant",
        "wont",
        "cannot",
        "didnt",
        "doesnt",
        "shouldnt",
        "wouldnt",
        "isnt",
        "arent",
        "havent",
        "hasnt",
        "why",
        "ne",
        "n",
        "pas",
        "jamais",
        "sans",
        "pourquoi",
    }
)
_GUARD_WINDOW = 6
# Rhetorical or threatening negations that still ask to stop.
_NOT_A_NEGATION = re.compile(
    r"(?:\b(?:can|won|couldn|wouldn)\st|\bcant|\bwont)\s(?:you|u)"
    r"(?:\s(?:please|pls|just))?$"
    r"|\bif\s(?:you|u)\s(?:don\st|dont|do\snot|won\st|wont)$"
)


def _negated(before):
    """True when the tokens just before a phrase negate or question it."""
    window = before.split()[-_GUARD_WINDOW:]
    if _NOT_A_NEGATION.search(" ".join(window)):
        return False
    for j, token in enumerate(window):
        if token in _NEGATIONS:
            return True
        if token == "t" and j and window[j - 1].endswith("n"):
            return True  # don't, can't, won't, didn't...
        if token == "need" and j and window[j - 1] == "no":
            return True
    return False


def _match_phrase(text):
    """(language, guarded): the first unguarded phrase; guarded if refused."""
    guarded = False
    for lang, patterns in _PHRASE_RES:
        for pattern in patterns:
            for found in pattern.finditer(text):
                if _negated(text[: found.start()]):
                    guarded = True
                else:
                    return lang, guarded
    return None, guarded


# --- Entry points -----------------------------------------------------------


def _analyse(body, preferred=None):
    """(KeywordMatch | None, review flag)."""
    if not isinstance(body, str):
        return None, False
    preferred = _preferred_code(preferred)
    clauses = [_spans(tokens) for tokens in _clauses(_fold(body[:MAX_BODY]))]
    if not clauses:
        return None, False
    spans = [span for clause in clauses for span in clause]

    found = _match_keywords(spans)
    if found:
        action, candidates = found
        exact = len(spans) == 1
        language = _pick_language(candidates, spans, preferred)
        return KeywordMatch(action, language, "exact" if exact else "keywords"), False

    for index, clause in enumerate(clauses):
        langs = _match_clause(clause, index == len(clauses) - 1)
        if langs:
            language = _pick_language(langs, spans, preferred)
            return KeywordMatch(OPT_OUT, language, "clause"), False

    guarded = False
    for clause in clauses:
        lang, refused = _match_phrase(" ".join(span.word for span in clause))
        guarded = guarded or refused
        if lang:
            return KeywordMatch(OPT_OUT, lang, "phrase"), False

    review = guarded or any(
        span.kind == "verb"
        or (
            span.kind == "kw"
            and span.word not in _WEAK_KEYWORDS
            and any(act == OPT_OUT for _lang, act in span.entries)
        )
        or span.word.startswith(_REVIEW_STEMS)
        for span in spans
    )
    return None, review


def match(body, preferred=None):
    """Classify ``body``: a ``KeywordMatch(action, language, rule)`` or None.

    ``preferred`` (e.g. the recipient's ``"fr_FR"``) breaks ties between
    language tables sharing the matched words, such as STOP (en, fr, it).
    """
    return _analyse(body, preferred)[0]


def classify(body):
    """Return ``"opt_out"``, ``"help"``, ``"opt_in"``, ``"confirm"`` or None.

    See the module docstring for the rules.  Never raises: a non-``str``,
    ``None`` or an empty/blank body gives None.
    """
    found = _analyse(body)[0]
    return found.action if found else None


def keyword_language(body, preferred=None):
    """Return the language code of the table that matched ``body``, or None.

    For words shared by several tables the language whose vocabulary covers
    more of the message wins ("STOP merci" -> "fr", "STOP please" -> "en"),
    then ``preferred`` (e.g. the recipient's ``lang``), then table order
    (``LANGUAGES``).  None exactly when ``classify(body)`` is None.
    """
    found = _analyse(body, preferred)[0]
    return found.language if found else None


def needs_review(body):
    """True if ``body`` is unclassified but may still be a revocation.

    That is: it holds a strong opt-out keyword ("stop, what time is the
    webinar?", "I can't stop smiling"), an opt-out stem ("unsubscri...",
    "désinscri...") or a revocation phrase refused by the negation guard
    ("why haven't I been unsubscribed?").  For the optional review queue of
    book, step 5; False whenever ``classify`` returns an action.
    """
    return _analyse(body)[1]
