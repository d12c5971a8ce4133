"""One definition per compliance fact: a second copy must not reappear.

Read from the source (no Odoo): the French region family is defined once,
``FR_REGIONS`` in ``sms_microfunnel/tools/send_window/number_zones.py`` (with
``FR_FAMILY`` and ``policy_country`` derived from it), and the shipped
send-window policies once, in ``sms_microfunnel/data/sms_policy_data.xml``
(the tests read that file through ``sms_microfunnel/tests/shipped_policies.py``).
The short links of funnel SMS get their recipient suffix from Odoo's SMS
mailing rewriter (``sms.sms._update_body_short_links``), not from a copy.
"""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDONS = (
    "sms_microfunnel",
    "sms_microfunnel_twilio",
    "sms_microfunnel_sale",
    "sms_microfunnel_event",
)
FR_HOME = "sms_microfunnel/tools/send_window/number_zones.py"
#: the lookahead that ends a short link in Odoo's SMS mailing rewriter
#: (``mass_mailing_sms``, ``sms.sms._update_body_short_links``)
REWRITER_TAIL = r"(?![\w@:%.+&~#=/-])"
#: the one file allowed to match links itself: the message rules' batch
#: shortener puts the short URL of each long link in a whole chunk's texts
#: (one link tracker per link); the ``/s/<sms id>`` suffixes come from Odoo
SHORTENER = "sms_microfunnel/models/sms_microfunnel_message_rules.py"
#: how the recipient suffix is written by Odoo's rewriter (``f'/s/{sms.id}'``)
SUFFIX_MARKS = ("/s/{", "'/s/' +", '"/s/" +', "RECIPIENT_SUFFIX +", "RECIPIENT_SUFFIX}")
#: ISO codes of the French overseas regions
OVERSEAS = frozenset({"GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF"})


def python_files(root, with_tests):
    for addon in ADDONS:
        for path in sorted((root / addon).rglob("*.py")):
            if with_tests or "tests" not in path.relative_to(root).parts:
                yield path
    if with_tests:
        yield from sorted((root / "tests").rglob("*.py"))


def _strings(nodes):
    return [n.value for n in nodes if isinstance(n, ast.Constant)]


def overseas_tables(root):
    """``(file, line)`` of each literal listing four or more overseas region
    codes (set, list, tuple, dict keys) in the product's code."""
    found = []
    for path in python_files(root, with_tests=False):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                items = _strings(k for k in node.keys if k is not None)
            elif isinstance(node, (ast.Set, ast.List, ast.Tuple)):
                items = _strings(node.elts)
            else:
                continue
            if len(OVERSEAS.intersection(i for i in items if isinstance(i, str))) >= 4:
                found.append((path.relative_to(root).as_posix(), node.lineno))
    return found


def shipped_codes(root):
    data = root / "sms_microfunnel" / "data" / "sms_policy_data.xml"
    return {
        field.text.strip()
        for record in ET.parse(data).getroot().iter("record")
        if record.get("model") == "sms.microfunnel.policy"
        for field in record.iter("field")
        if field.get("name") == "code"
    }


def policy_tables(root):
    """``(file, line)`` of each Python copy of shipped policy rows, in the
    product or its tests: a policy dict (``intervals``) keyed by a shipped
    code, or a table mapping three or more shipped codes to something else
    than a string (an XML id, a name)."""
    codes = shipped_codes(root)
    found = []
    for path in python_files(root, with_tests=True):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            pairs = {
                k.value: v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(k.value, str)
            }
            named = pairs.get("key") or pairs.get("code")
            is_row = (
                "intervals" in pairs
                and isinstance(named, ast.Constant)
                and named.value in codes
            )
            table = [
                v
                for k, v in pairs.items()
                if k in codes
                and not (isinstance(v, ast.Constant) and isinstance(v.value, str))
            ]
            if is_row or len(table) >= 3:
                found.append((path.relative_to(root).as_posix(), node.lineno))
    return found


def short_link_rewriters(root):
    """Product files that use the short-link pattern of Odoo's rewriter
    (the shortener excepted), or write a ``/s/<id>`` suffix themselves."""
    found = []
    for path in python_files(root, with_tests=False):
        name = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        code = "\n".join(
            line for line in text.splitlines() if not line.lstrip().startswith("#")
        )
        if (REWRITER_TAIL in code and name != SHORTENER) or any(
            mark in code for mark in SUFFIX_MARKS
        ):
            found.append(name)
    return found


def test_short_links_are_suffixed_by_odoos_rewriter_only():
    rewriters = short_link_rewriters(REPO)
    assert not rewriters, (
        f"short links rewritten outside Odoo's rewriter: {rewriters}; call "
        "sms.sms._update_body_short_links (see sms.microfunnel.message.rules."
        "_with_recipient_suffixes)"
    )


def test_french_region_family_is_defined_once():
    tables = overseas_tables(REPO)
    assert [path for path, _line in tables] == [FR_HOME], (
        f"French overseas regions listed outside FR_REGIONS ({FR_HOME}): "
        f"{tables}; use send_window.FR_REGIONS, FR_FAMILY or policy_country"
    )


def test_shipped_policies_are_defined_once():
    copies = policy_tables(REPO)
    assert not copies, (
        f"shipped policy rows copied in Python: {copies}; read "
        "sms_microfunnel/data/sms_policy_data.xml (tests: shipped_policies)"
    )


def test_the_guards_see_a_copy(tmp_path):
    """The checks above find a second definition when one is written."""
    for addon in ADDONS:
        (tmp_path / addon).mkdir()
    (tmp_path / "tests").mkdir()
    data = tmp_path / "sms_microfunnel" / "data"
    data.mkdir()
    (data / "sms_policy_data.xml").write_text(
        '<odoo><record model="sms.microfunnel.policy">'
        '<field name="code">FR</field></record>'
        '<record model="sms.microfunnel.policy"><field name="code">BE</field>'
        '</record><record model="sms.microfunnel.policy">'
        '<field name="code">US</field></record></odoo>',
        encoding="utf-8",
    )
    (tmp_path / "sms_microfunnel" / "gate.py").write_text(
        'FAMILY = {"FR", "GP", "MQ", "RE", "YT"}\n', encoding="utf-8"
    )
    (tmp_path / "tests" / "test_x.py").write_text(
        'FR = {"key": "FR", "intervals": {}}\n'
        'ENGINE = {"FR": FR, "BE": FR, "US": FR}\n'
        'XMLIDS = {"FR": "m.fr", "BE": "m.be", "US": "m.us"}\n',
        encoding="utf-8",
    )
    (tmp_path / "sms_microfunnel" / "links.py").write_text(
        "import re\n\n\ndef suffix(body, url, sms_id):\n"
        f"    return re.sub(re.escape(url) + r'{REWRITER_TAIL}', url + '/s/1', body)\n",
        encoding="utf-8",
    )
    (tmp_path / "sms_microfunnel" / "count.py").write_text(
        'SUFFIX = "/s/"\n\n\ndef padded(url, n):\n    return url + SUFFIX + "0" * n\n'
        'def counted(url, sms_id):\n    return f"{url}/s/{sms_id}"\n',
        encoding="utf-8",
    )
    assert short_link_rewriters(tmp_path) == [
        "sms_microfunnel/count.py",
        "sms_microfunnel/links.py",
    ]
    assert overseas_tables(tmp_path) == [("sms_microfunnel/gate.py", 1)]
    assert policy_tables(tmp_path) == [("tests/test_x.py", 1), ("tests/test_x.py", 2)]
