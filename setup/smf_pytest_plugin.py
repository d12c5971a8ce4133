# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""pytest plugin loaded by ``setup/test``: a test that makes Odoo (or our
addons) log a WARNING, ERROR or CRITICAL fails, with the offending lines.

Tests that expect a log line capture it with ``assertLogs``/``mute_logger``,
which keep it away from this handler.
"""

import logging

import pytest


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        if record.name.startswith(("odoo", "py.warnings")):
            self.records.append(record)


@pytest.fixture(autouse=True)
def _fail_on_odoo_warnings(request):
    collector = _Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    try:
        yield
    finally:
        root.removeHandler(collector)
    if collector.records:
        lines = "\n".join(
            f"{r.levelname} {r.name}: {r.getMessage()}" for r in collector.records
        )
        pytest.fail(f"Odoo logged warnings/errors during the test:\n{lines}")
