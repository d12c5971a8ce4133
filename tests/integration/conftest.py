"""Fixtures for tests that drive real Odoo processes over PostgreSQL and HTTP.

They reuse ``setup/smf.py`` (the machinery behind ``setup/run`` and
``setup/test``), so the template databases are the same cached ones.
"""

import importlib.util
import itertools
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("smf_setup", REPO / "setup" / "smf.py")
smf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(smf)

_counter = itertools.count()


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def odoo_ready():
    """Skip (with the reason) when this machine cannot run Odoo at all."""
    try:
        smf.check_python()
        smf.check_postgresql()
    except smf.PrerequisiteError as error:
        pytest.skip(str(error))
    return smf


@pytest.fixture
def make_db(odoo_ready):
    """Factory: a throwaway copy of a template database, dropped afterwards."""
    created = []

    def make(demo=True):
        name = f"smf_test_{os.getpid()}_{next(_counter)}"
        smf.duplicate_template(name, demo=demo)
        created.append(name)
        return name

    yield make
    for name in created:
        if smf.database_exists(name):
            smf.run_odoo_db("drop", name)


def odoo_module(command, dbname, *modules):
    """``odoo module <command> -d db modules``; returns (returncode, log)."""
    cmd = smf.odoo_command(
        f"--addons-path={smf.addons_path()}", "module", command, "-d", dbname, *modules
    )
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr
