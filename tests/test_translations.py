"""French translations of the addons are complete and their templates current.

Each addon ships ``i18n/<addon>.pot`` (the template exported by Odoo) and
``i18n/fr.po``.  These tests check, without Odoo:

1. every msgid of the template has a French translation in ``fr.po`` that is
   not fuzzy and keeps the placeholders of the source (``%(name)s``, ``%s``,
   ``{company}``…).  A term that reads the same in French (``Contact``,
   ``SMS``…) keeps an empty msgstr, as the OCA ``po-pretty-format`` hook
   demands, and says so with the translator comment ``# Same in French``;
2. the template is not older than the code: every literal string given to
   ``_()``, ``_lt()`` or ``env._()`` in the Python files, every ``string=`` and
   ``help=`` of a field and every label of a literal selection, and every
   ``string``, ``help``, ``placeholder`` and ``confirm`` attribute of the XML
   views is a msgid of the template.

When (2) fails, re-export the templates from a database where both addons are
installed and up to date (``./setup/test --keep-db`` leaves one, named in its
output), then translate the new terms in ``fr.po``::

    python3 -m odoo --addons-path=. i18n export -d <database> \\
        sms_microfunnel sms_microfunnel_twilio

The new terms then show up as missing from ``fr.po`` in test (1).
"""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import polib
import pytest

REPO = Path(__file__).resolve().parent.parent
ADDONS = tuple(sorted(p.parent.name for p in REPO.glob("*/__manifest__.py")))
SAME_IN_FRENCH = "Same in French"

PLACEHOLDER = re.compile(r"%\(\w+\)[sdfir]|%[sdfir]|%%|\{\w+\}")
TRANSLATE_CALLS = {"_", "_lt"}
XML_ATTRIBUTES = ("string", "help", "placeholder", "confirm")
XML_FOLDERS = ("views", "wizard", "report")


def template(addon):
    return polib.pofile(str(REPO / addon / "i18n" / f"{addon}.pot"))


def french(addon):
    return polib.pofile(str(REPO / addon / "i18n" / "fr.po"))


def placeholders(text):
    return sorted(PLACEHOLDER.findall(text))


def normalize(text):
    return " ".join(text.split())


# ---------------------------------------------------------------------------
# 1. French is complete
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("addon", ADDONS)
def test_french_translates_every_term(addon):
    translations = {entry.msgid: entry for entry in french(addon)}
    problems = []
    for term in template(addon):
        entry = translations.get(term.msgid)
        if entry is None:
            problems.append(f"missing from fr.po: {term.msgid!r}")
        elif entry.fuzzy or "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {term.msgid!r}")
        elif not entry.msgstr.strip() and SAME_IN_FRENCH not in entry.tcomment:
            problems.append(f"untranslated: {term.msgid!r}")
        elif entry.msgstr and placeholders(entry.msgstr) != placeholders(term.msgid):
            problems.append(f"placeholders differ: {term.msgid!r} -> {entry.msgstr!r}")
    assert not problems, f"{addon}/i18n/fr.po:\n" + "\n".join(problems)


@pytest.mark.parametrize("addon", ADDONS)
def test_french_has_no_obsolete_term(addon):
    terms = {term.msgid for term in template(addon)}
    po = french(addon)
    stale = [entry.msgid for entry in po if entry.msgid not in terms]
    stale += [entry.msgid for entry in po.obsolete_entries()]
    assert not stale, f"{addon}/i18n/fr.po has terms no longer in the .pot: {stale}"
    assert po.metadata.get("Language") == "fr"


def test_placeholder_check_catches_a_dropped_placeholder():
    assert placeholders("Sent to %(number)s: {link}") != placeholders("Envoyé : {link}")
    assert placeholders("%(rate)s %%") == placeholders("%(rate)s %%")


# ---------------------------------------------------------------------------
# 2. The template is current
# ---------------------------------------------------------------------------


def _constant(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _callee(node):
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def python_terms(addon):
    """Literal strings of the addon's Python code that Odoo exports."""
    found = {}
    for path in sorted((REPO / addon).rglob("*.py")):
        rel = path.relative_to(REPO)
        if "tests" in rel.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _callee(node)
            texts = []
            if name in TRANSLATE_CALLS and node.args:
                texts.append(_constant(node.args[0]))
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "fields"
            ):
                texts += [
                    _constant(kw.value)
                    for kw in node.keywords
                    if kw.arg in ("string", "help")
                ]
                selection = [kw.value for kw in node.keywords if kw.arg == "selection"]
                if func.attr == "Selection" and node.args:
                    selection.append(node.args[0])
                for value in selection:
                    if isinstance(value, ast.List | ast.Tuple):
                        texts += [
                            _constant(item.elts[1])
                            for item in value.elts
                            if isinstance(item, ast.Tuple) and len(item.elts) == 2
                        ]
            for text in texts:
                if text and text.strip():
                    found.setdefault(text, f"{rel}:{node.lineno}")
    return found


def xml_terms(addon):
    """Translatable attributes of the addon's XML views and templates."""
    found = {}
    for folder in XML_FOLDERS:
        for path in sorted((REPO / addon / folder).glob("*.xml")):
            rel = path.relative_to(REPO)
            for node in ET.parse(path).iter():
                for attribute in XML_ATTRIBUTES:
                    value = node.get(attribute)
                    if value and value.strip() and re.search(r"[^\W\d_]", value):
                        found.setdefault(value, f"{rel} <{node.tag}>")
    return found


@pytest.mark.parametrize("addon", ADDONS)
def test_pot_is_up_to_date_with_the_code(addon):
    msgids = {normalize(term.msgid) for term in template(addon)}
    terms = {**xml_terms(addon), **python_terms(addon)}
    # the scan finds the main addons' hundreds of terms (a guard against a
    # scanner that silently stops matching); a small bridge may have none
    assert len(terms) > 10 or len(msgids) < 50, "the source scan found nothing"
    missing = sorted(
        f"{where}: {text!r}"
        for text, where in terms.items()
        if normalize(text) not in msgids
    )
    assert not missing, (
        f"{addon}/i18n/{addon}.pot is out of date; re-export it (see the "
        f"docstring of {Path(__file__).name}) and translate fr.po. "
        "Not in the .pot:\n" + "\n".join(missing)
    )


def test_source_scan_sees_translated_calls(tmp_path, monkeypatch):
    addon = tmp_path / "fake_addon"
    (addon / "models").mkdir(parents=True)
    (addon / "views").mkdir()
    (addon / "models" / "m.py").write_text(
        "from odoo import _, fields\n"
        "x = fields.Char(string='Label', help='Some help')\n"
        "y = fields.Selection([('a', 'Choice A')])\n"
        "def f(self):\n"
        "    return self.env._('Hello %(name)s', name='x'), _('Bye')\n"
    )
    (addon / "views" / "v.xml").write_text(
        '<odoo><form><button string="Press me" confirm="Sure?"/></form></odoo>'
    )
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    found = {**python_terms("fake_addon"), **xml_terms("fake_addon")}
    assert set(found) == {
        "Label",
        "Some help",
        "Choice A",
        "Hello %(name)s",
        "Bye",
        "Press me",
        "Sure?",
    }
