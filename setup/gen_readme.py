#!/usr/bin/env python3
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Build each addon's README.rst from its readme/*.md fragments (OCA layout).

Usage: setup/gen_readme.py [--check]   (--check: exit 1 when a README.rst is stale)
"""

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDONS = tuple(sorted(p.parent.name for p in REPO.glob("*/__manifest__.py")))
SECTIONS = (
    ("CONTEXT.md", "Use Cases / Context"),
    ("CONFIGURE.md", "Configuration"),
    ("USAGE.md", "Usage"),
)


def md_to_rst(text):
    """The small Markdown subset our fragments use: paragraphs, lists, code."""
    out, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            if not in_code:
                out += [".. code-block:: " + (line[3:].strip() or "text"), ""]
            in_code = not in_code
            continue
        if in_code:
            out.append("   " + line if line else "")
            continue
        out.append(re.sub(r"(?<!`)`([^`]+)`(?!`)", r"``\1``", line))
    return "\n".join(out).strip() + "\n"


def render(addon):
    manifest = ast.literal_eval((REPO / addon / "__manifest__.py").read_text())
    title = manifest["name"]
    status = manifest["development_status"]
    fragments = REPO / addon / "readme"
    parts = [
        "=" * len(title),
        title,
        "=" * len(title),
        "",
        f".. |badge1| image:: https://img.shields.io/badge/maturity-{status}-red.png",
        f"    :alt: {status}",
        ".. |badge2| image:: https://img.shields.io/badge/license-LGPL--3-blue.png",
        "    :target: http://www.gnu.org/licenses/lgpl-3.0-standalone.html",
        "    :alt: License: LGPL-3",
        "",
        "|badge1| |badge2|",
        "",
        md_to_rst((fragments / "DESCRIPTION.md").read_text()),
        "**Table of contents**",
        "",
        ".. contents::",
        "   :local:",
        "",
    ]
    for name, heading in SECTIONS:
        if (fragments / name).exists():
            parts += [
                heading,
                "=" * len(heading),
                "",
                md_to_rst((fragments / name).read_text()),
            ]
    parts += [
        "Credits",
        "=======",
        "",
        "Contributors",
        "------------",
        "",
        md_to_rst((fragments / "CONTRIBUTORS.md").read_text()),
    ]
    return "\n".join(parts)


def main(argv):
    stale = []
    for addon in ADDONS:
        target = REPO / addon / "README.rst"
        text = render(addon)
        if target.exists() and target.read_text() == text:
            continue
        if "--check" in argv:
            stale.append(str(target.relative_to(REPO)))
        else:
            target.write_text(text)
    if stale:
        print("stale (run setup/gen_readme.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
