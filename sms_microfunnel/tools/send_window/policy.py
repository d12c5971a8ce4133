# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The ``Policy``: allowed intervals per weekday, closed days and a cap.

Built from plain data by ``policy_from_dict``; ``strictest`` intersects
policies read in one zone.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from .public_holidays import _holidays, _rule_keys

#: Weekday names accepted in data, index = ``date.weekday()`` (Monday = 0).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 1440


_DAY_NAMES = tuple(
    d + "day" for d in ("mon", "tues", "wednes", "thurs", "fri", "satur", "sun")
)


def _weekday(key):
    if isinstance(key, int) and not isinstance(key, bool) and 0 <= key <= 6:
        return key
    name = key.strip().lower() if isinstance(key, str) else None
    if name in WEEKDAYS:
        return WEEKDAYS.index(name)
    if name in _DAY_NAMES:
        return _DAY_NAMES.index(name)
    raise ValueError(f"not a weekday: {key!r} (0-6, Monday = 0, or 'mon'..'sun')")


_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def _minute(value):
    """Minutes after midnight from an int, a ``time`` or an ``"HH:MM"``."""
    if isinstance(value, bool):
        raise TypeError(f"not a time of day: {value!r}")
    if isinstance(value, int):
        minute = value
    elif isinstance(value, time):
        if value.second or value.microsecond:
            raise ValueError(f"window bounds are whole minutes: {value!r}")
        minute = value.hour * 60 + value.minute
    elif isinstance(value, str) and _HHMM.match(value):
        hours, minutes = (int(g) for g in _HHMM.match(value).groups())
        if minutes >= 60:
            raise ValueError(f"not a time of day: {value!r}")
        minute = hours * 60 + minutes
    else:
        raise ValueError(f"not a time of day: {value!r}")
    if not 0 <= minute <= _MINUTES_PER_DAY:
        raise ValueError(f"time of day out of 00:00-24:00: {value!r}")
    return minute


def _merge(spans):
    """Sort and merge overlapping or touching ``(start, end)`` spans."""
    merged = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _normalize_intervals(intervals):
    per_day = [[] for _ in WEEKDAYS]
    if isinstance(intervals, Mapping):
        items = intervals.items()
    else:
        days = tuple(intervals)
        if len(days) != len(WEEKDAYS):
            raise ValueError("intervals: a mapping or a sequence of 7 weekdays")
        items = enumerate(days)
    for key, spans in items:
        day = _weekday(key)
        for span in spans or ():
            start, end = (_minute(v) for v in span)
            if start >= end:
                raise ValueError(f"empty or reversed interval {span!r}")
            per_day[day].append((start, end))
    return tuple(_merge(spans) for spans in per_day)


def _to_date(value):
    if isinstance(value, datetime):
        raise TypeError(f"closed dates are dates, not datetimes: {value!r}")
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip())


@dataclass(frozen=True)
class Policy:
    """When marketing messages may reach a recipient (see the module doc).

    ``intervals`` is normalised to a tuple of 7 tuples indexed by
    ``date.weekday()`` (Monday = 0), each a sorted tuple of merged
    ``(start_minute, end_minute)`` with ``0 <= start < end <= 1440``; the
    constructor also takes a mapping ``{weekday: [(start, end), ...]}`` with
    weekday numbers or names and bounds as minutes, ``time`` or ``"HH:MM"``.
    ``cap_count``/``cap_hours``: at most ``cap_count`` messages per rolling
    ``cap_hours`` hours (both or neither).
    """

    intervals: tuple = ()
    closed_dates: frozenset = frozenset()
    holiday_rules: tuple = ()
    cap_count: int | None = None
    cap_hours: int | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "intervals", _normalize_intervals(self.intervals or {}))
        set_(self, "closed_dates", frozenset(_to_date(d) for d in self.closed_dates))
        set_(self, "holiday_rules", _rule_keys(self.holiday_rules))
        if (self.cap_count is None) != (self.cap_hours is None):
            raise ValueError("cap_count and cap_hours go together")
        if self.cap_count is not None:
            for attr in ("cap_count", "cap_hours"):
                value = getattr(self, attr)
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{attr} must be a positive integer: {value!r}")

    @property
    def has_cap(self):
        return self.cap_count is not None

    def is_closed(self, day):
        """True when the local date ``day`` is closed (listed or a holiday)."""
        if day in self.closed_dates:
            return True
        return bool(self.holiday_rules) and day in _holidays(
            day.year, self.holiday_rules
        )

    def allows_local(self, local):
        """True when the naive local wall-clock time ``local`` is in a window."""
        day = local.date()
        spans = self.intervals[day.weekday()]
        if not spans or self.is_closed(day):
            return False
        since_midnight = local - datetime.combine(day, time())
        return any(
            timedelta(minutes=start) <= since_midnight < timedelta(minutes=end)
            for start, end in spans
        )


#: Keys of a policy dict that only document the row (ignored by the engine).
_METADATA_KEYS = frozenset(
    {
        "key",
        "basis",
        "source",
        "note",
        "zones",
        "valid_from",
        "valid_to",
        "enabled",
        "cap_scope",
    }
)
_POLICY_KEYS = frozenset(
    {"intervals", "closed_dates", "holiday_rules", "cap_count", "cap_hours", "name"}
)


def policy_from_dict(data):
    """Build a ``Policy`` from plain data (e.g. one of the shipped defaults).

    Keys: ``intervals`` (``{weekday: [(start, end), ...]}``; weekday ``0``-``6``,
    ``"mon"``..``"sun"`` or ``"monday"``..``"sunday"``; bounds ``"HH:MM"``,
    ``time`` or minutes, ``"24:00"`` for midnight), ``closed_dates`` (dates or
    ISO strings), ``holiday_rules`` (keys of ``HOLIDAY_RULES``), ``cap_count``
    and ``cap_hours``, ``name`` (defaults to ``key``).  Documentation keys
    (``key``, ``basis``, ``source``, ``note``, ``zones``, ``valid_from``,
    ``valid_to``, ``enabled``) are ignored; any other key raises
    ``ValueError`` (a typo must not silently widen a window).  A ``Policy``
    is returned as is.
    """
    if isinstance(data, Policy):
        return data
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a Policy or a mapping, got {type(data).__name__}")
    unknown = set(data) - _POLICY_KEYS - _METADATA_KEYS
    if unknown:
        raise ValueError(f"unknown policy key(s): {', '.join(sorted(unknown))}")
    return Policy(
        intervals=data.get("intervals") or {},
        closed_dates=frozenset(data.get("closed_dates") or ()),
        holiday_rules=tuple(data.get("holiday_rules") or ()),
        cap_count=data.get("cap_count"),
        cap_hours=data.get("cap_hours"),
        name=str(data.get("name") or data.get("key") or ""),
    )


def _intersect_spans(left, right):
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            out.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def strictest(policies):
    """The intersection of several policies read in the same time zone.

    Intervals are intersected weekday by weekday, closed dates and holiday
    rules are united.  Caps: the smallest count over the longest period,
    which implies every cap given (when all periods are equal it is simply
    the smallest count).  Accepts ``Policy`` objects and plain dicts.  For
    candidates in *different* zones use ``next_allowed_multi``.
    """
    items = [policy_from_dict(p) for p in policies]
    if not items:
        raise ValueError("strictest() needs at least one policy")
    intervals = items[0].intervals
    for other in items[1:]:
        intervals = tuple(
            _intersect_spans(a, b)
            for a, b in zip(intervals, other.intervals, strict=True)
        )
    capped = [p for p in items if p.has_cap]
    return Policy(
        intervals=intervals,
        closed_dates=frozenset().union(*(p.closed_dates for p in items)),
        holiday_rules=tuple(r for p in items for r in p.holiday_rules),
        cap_count=min(p.cap_count for p in capped) if capped else None,
        cap_hours=max(p.cap_hours for p in capped) if capped else None,
        name=" & ".join(p.name for p in items if p.name),
    )


def _days(names, *spans):
    """``{weekday: spans}`` for weekday names given as "mon-sat" or "sat,sun"."""
    if "-" in names:
        first, last = (WEEKDAYS.index(n) for n in names.split("-"))
        keys = WEEKDAYS[first : last + 1]
    else:
        keys = tuple(names.split(","))
    return {key: list(spans) for key in keys}
