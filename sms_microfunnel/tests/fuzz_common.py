# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What the fuzz tests of the public routes share: hostile values, the
hypothesis settings, and a watch on the log.

Each route gets ``FUZZ_EXAMPLES`` generated requests through the test's
keep-alive HTTP session; every answer must be below 500 and nothing may be
logged at ERROR or above.  The examples are derandomized: the same requests
on every run, so a failure reproduces.
"""

import contextlib
import logging
import os

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# fewer while working on a route (SMF_FUZZ_EXAMPLES=100), never fewer in CI
FUZZ_EXAMPLES = int(os.environ.get("SMF_FUZZ_EXAMPLES") or 1000)

FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)

# values that broke or could break the routes: NUL and other controls, huge
# or non-finite numbers, absurd lengths, odd encodings, injection attempts
HOSTILE = [
    "",
    " ",
    "\x00",
    "STOP\x00",
    "\x00" * 40,
    "\x07\x1b[31m",
    "1e309",
    "-1e309",
    "NaN",
    "Infinity",
    "9" * 40,
    "-1",
    "0",
    "2147483648",
    "99999999999999999999999999",
    "+33612345678",
    "06 12 34 56 78",
    "+999999999999999999999",
    "+",
    "é" * 300,
    "x" * 5000,
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "%00",
    "../../etc/passwd",
    "\ufffd",
    "\u202e",
    "𝓢𝓣𝓞𝓟",
]

hostile_text = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=60),
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300),
)


class ErrorWatch(logging.Handler):
    """Collect every record at ERROR or above, from any thread."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def messages(self):
        return [f"{r.name}: {r.getMessage()[:300]}" for r in self.records]


class _DropWarnings(logging.Filter):
    def filter(self, record):
        return record.levelno != logging.WARNING


@contextlib.contextmanager
def watch_errors(expected_warnings=()):
    """Yield an ``ErrorWatch`` on the root logger; the WARNING records of the
    ``expected_warnings`` loggers (refused requests are logged there) are
    dropped, their errors are not."""
    watch = ErrorWatch()
    drop = _DropWarnings()
    loggers = [logging.getLogger(name) for name in expected_warnings]
    root = logging.getLogger()
    root.addHandler(watch)
    for logger in loggers:
        logger.addFilter(drop)
    try:
        yield watch
    finally:
        root.removeHandler(watch)
        for logger in loggers:
            logger.removeFilter(drop)
