"""Shared helpers for the tests that run outside Odoo's test runner.

The addons' ``tools`` modules are plain Python: they are loaded straight from
their files so these tests never import Odoo or an addon package. The
repository's development tools (``devtools/``) are a package imported from
the repository root.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# the development tools (``devtools/``) are imported as a package from the root
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_tool(addon, name):
    """Import ``<addon>/tools/<name>.py`` as a standalone module."""
    key = f"_smf_tools_{addon}_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = REPO / addon / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root():
    return REPO
