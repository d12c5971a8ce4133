# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Text helpers shared by the send-window policy models (policy, lines,
holidays): lists of codes typed in a Char field, hours shown as HH:MM."""

import re


def split_codes(text):
    """Comma/space separated codes of a Char field, stripped, in order."""
    return [c for c in re.split(r"[\s,;]+", text or "") if c]


def hhmm(hours):
    """Hours as a float (``8.5``) shown as ``08:30``."""
    minutes = round((hours or 0.0) * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
