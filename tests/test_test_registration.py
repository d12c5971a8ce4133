"""Every Odoo test module of every addon is registered in its ``tests`` package.

pytest-odoo collects the files directly, but Odoo's own test runner
(``odoo --test-enable``) only runs the modules that ``tests/__init__.py``
imports: a module left out there silently never runs for people who test the
addons the Odoo way.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ADDONS = sorted(p.parent for p in REPO.glob("*/__manifest__.py"))


def imported_modules(init_file):
    tree = ast.parse(init_file.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and not node.module:
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("addon", ADDONS, ids=lambda p: p.name)
def test_every_test_module_is_registered(addon):
    tests = addon / "tests"
    modules = {p.stem for p in tests.glob("test_*.py")}
    if not modules:
        pytest.skip(f"{addon.name} has no Odoo tests")
    missing = sorted(modules - imported_modules(tests / "__init__.py"))
    assert not missing, f"{addon.name}/tests/__init__.py does not import {missing}"
