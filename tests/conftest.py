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
from hypothesis import HealthCheck, settings

# The properties are about behaviour, not about how fast examples come: on a
# cold machine the first text example builds Hypothesis' character tables
# (seconds), which its "too slow" health check took for a failure.
settings.register_profile(
    "smf", suppress_health_check=[HealthCheck.too_slow], deadline=None
)
settings.load_profile("smf")

REPO = Path(__file__).resolve().parent.parent
# the development tools (``devtools/``) are imported as a package from the root
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def load_tool(addon, name):
    """Import ``<addon>/tools/<name>.py`` (or the package ``<name>/``) as a
    standalone module, without importing Odoo."""
    key = f"_smf_tools_{addon}_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = REPO / addon / "tools" / f"{name}.py"
    package = REPO / addon / "tools" / name
    if (package / "__init__.py").is_file():
        spec = importlib.util.spec_from_file_location(
            key, package / "__init__.py", submodule_search_locations=[str(package)]
        )
    else:
        spec = importlib.util.spec_from_file_location(key, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def load_module(path, key):
    """Import the plain-Python file ``path`` (relative to the repository)."""
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, REPO / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def shipped_policies(regions=()):
    """``{code: policy data}`` of the shipped policies, read from the data
    file ``sms_microfunnel/data/sms_policy_data.xml`` (their only definition)."""
    reader = load_module(
        "sms_microfunnel/tests/shipped_policies.py", "_smf_shipped_policies"
    )
    return reader.shipped_policies(regions=regions)


def shipped_records():
    """``{code: field values}`` of the shipped policies, as in the data file."""
    reader = load_module(
        "sms_microfunnel/tests/shipped_policies.py", "_smf_shipped_policies"
    )
    return reader.shipped_records()


@pytest.fixture(scope="session")
def repo_root():
    return REPO
