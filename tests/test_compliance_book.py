"""The compliance book ``docs/compliance.md`` covers the shipped rules.

Every rule ID of the shipped policy data (``code`` of the policies and of
the other compliance rules) has a section (``### <rule ID>``) in the book;
every test a section names (``path/to/test_file.py::test_name``) exists; and
no file of the product cites a document outside the repository.
"""

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "docs" / "compliance.md"
DATA = REPO / "sms_microfunnel" / "data" / "sms_policy_data.xml"
TEST_REF = re.compile(r"`([\w./-]+\.py)::(\w+)`")


def shipped_rule_ids():
    root = ET.parse(DATA).getroot()
    return [
        field.text.strip()
        for record in root.iter("record")
        for field in record.iter("field")
        if field.get("name") == "code"
    ]


def sections():
    """{heading: text} of the book's ``###`` sections."""
    found = {}
    heading = None
    for line in BOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            heading = line[4:].strip()
            found[heading] = []
        elif line.startswith("## "):
            heading = None
        elif heading:
            found[heading].append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def test_every_shipped_rule_has_a_section():
    ids = shipped_rule_ids()
    assert len(ids) > 20 and len(set(ids)) == len(ids)
    missing = sorted(set(ids) - set(sections()))
    assert not missing, f"rule IDs without a section in docs/compliance.md: {missing}"


def test_every_rule_section_names_a_test():
    book = sections()
    for rule_id in shipped_rule_ids():
        assert TEST_REF.search(book[rule_id]), f"{rule_id}: no test named"


def test_every_named_test_exists():
    refs = TEST_REF.findall(BOOK.read_text(encoding="utf-8"))
    assert len(refs) > 30
    for path, name in refs:
        source = REPO / path
        assert source.is_file(), f"{path} (named in the book) does not exist"
        text = source.read_text(encoding="utf-8")
        found = re.search(rf"^\s*def {name}\(", text, re.MULTILINE)
        assert found, f"{path}::{name} (named in the book) does not exist"


@pytest.mark.parametrize("pattern", ["COMPLIANCE.md", "COMPLIANCE §", "shared/docs"])
def test_no_reference_to_documents_outside_the_repository(pattern):
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    this = Path(__file__).relative_to(REPO).as_posix()
    offenders = [
        name
        for name in files
        if name != this
        and (REPO / name).is_file()
        and name.endswith((".py", ".xml", ".md", ".rst", ".po", ".pot", ".js", ".csv"))
        and pattern in (REPO / name).read_text(encoding="utf-8", errors="ignore")
    ]
    assert not offenders, f"{pattern} cited in {offenders}"
