# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send slots: a funnel step's preferred hours, and the best hour of the week."""

from datetime import timezone
from types import MappingProxyType

from .policy import WEEKDAYS, Policy, _days, _weekday, policy_from_dict
from .windows import DEFAULT_HORIZON_DAYS, _as_utc, _zone, next_allowed_multi

_UTC = timezone.utc

#: Preset send slots by key, in the recipient's wall-clock time.  A slot only
#: narrows the legal window, it never widens it (``next_in_slot``).
SLOT_PRESETS = MappingProxyType(
    {
        # Tuesday to Thursday, 10:00-11:00 and 15:00-16:00
        "b2b": MappingProxyType(
            _days("tue-thu", ("10:00", "11:00"), ("15:00", "16:00"))
        ),
        # every evening, 18:00-20:00
        "b2c_evening": MappingProxyType(_days("mon-sun", ("18:00", "20:00"))),
        # Saturday, 10:00-18:00
        "weekend": MappingProxyType(_days("sat", ("10:00", "18:00"))),
    }
)


def slot_policy(preset=None, spans=(), name=""):
    """The ``Policy`` of a send slot, or ``None`` when it sets no preference.

    ``preset``: a key of ``SLOT_PRESETS`` or ``None``; ``spans``: more
    ``(weekday, start, end)`` triples (weekday as policies accept it, or
    ``None`` for every day; bounds as minutes, ``time`` or ``"HH:MM"``), added
    to the preset.  A slot has no holidays and no cap: those belong to the
    legal window it is intersected with.
    """
    intervals = {day: [] for day in WEEKDAYS}
    if preset:
        if preset not in SLOT_PRESETS:
            raise ValueError(f"unknown send slot preset {preset!r}")
        for day, day_spans in SLOT_PRESETS[preset].items():
            intervals[day] += list(day_spans)
    for weekday, start, end in spans:
        days = WEEKDAYS if weekday is None else (WEEKDAYS[_weekday(weekday)],)
        for day in days:
            intervals[day].append((start, end))
    if not any(intervals.values()):
        return None
    return Policy(intervals=intervals, name=name or preset or "slot")


def hour_slot(weekday, hour):
    """The one-hour slot ``hour:00``-``hour+1:00`` of ``weekday`` (Monday = 0)."""
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ValueError(f"not an hour of the day: {hour!r}")
    day = _weekday(weekday)
    return Policy(
        intervals={day: [(hour * 60, hour * 60 + 60)]},
        name=f"{WEEKDAYS[day]} {hour:02d}:00",
    )


def next_in_slot(
    candidates, slot, slot_tz, when_utc, horizon_days=DEFAULT_HORIZON_DAYS
):
    """First instant >= ``when_utc`` in the send slot *and* the legal window.

    ``candidates``: the legal ``(policy, tz_name)`` pairs, which must all
    allow (as in ``next_allowed_multi``; none: no legal window applies);
    ``slot``: the slot ``Policy`` (or dict; ``None``: no preference), read on
    the recipient's clock ``slot_tz``.  Everything is wall-clock, so the
    result is DST-safe like the windows (10:00 stays 10:00 local).  Returns
    ``when_utc`` (as aware UTC) when it is already inside both; raises
    ``ValueError`` when slot and window never meet within ``horizon_days``
    (e.g. a Saturday slot for a country closed on Saturdays).
    """
    pairs = [(policy_from_dict(p), tz) for p, tz in candidates]
    if slot is not None:
        pairs.append((policy_from_dict(slot), slot_tz))
    if not pairs:
        return _as_utc(when_utc)
    return next_allowed_multi(pairs, when_utc, horizon_days)


def local_weekday_hour(when_utc, tz_name):
    """``(weekday, hour)`` of ``when_utc`` read on the clock of ``tz_name``
    (Monday = 0)."""
    local = utc_to_local(when_utc, tz_name)
    return local.weekday(), local.hour


def local_to_utc(local, tz_name):
    """The aware UTC instant of the naive wall-clock time ``local`` read on
    the clock of ``tz_name`` (the only naive value this package takes)."""
    return local.replace(tzinfo=_zone(tz_name)).astimezone(_UTC)


def utc_to_local(when_utc, tz_name):
    """``when_utc`` as an aware datetime on the clock of ``tz_name`` (the only
    instant this package returns in another zone than UTC)."""
    return _as_utc(when_utc).astimezone(_zone(tz_name))


def best_hour(cells, min_sample=1, min_cell_sample=1):
    """The hour of the week with the best engagement rate, or ``None``.

    ``cells``: ``(weekday, hour, sent, engaged)`` rows, ``engaged`` being the
    messages clicked or replied to (rows of the same cell add up).  ``None``
    when the rows hold fewer than ``min_sample`` messages in all, or when no
    cell with at least ``min_cell_sample`` messages was ever engaged with (no
    signal: the caller falls back).  Ties go to the larger sample, then to the
    earliest hour of the week.  Returns ``(weekday, hour)``.
    """
    totals = {}
    for weekday, hour, sent, engaged in cells:
        key = (_weekday(weekday), int(hour))
        if not 0 <= key[1] <= 23:
            raise ValueError(f"not an hour of the day: {hour!r}")
        sent_sum, engaged_sum = totals.get(key, (0, 0))
        totals[key] = (sent_sum + (sent or 0), engaged_sum + (engaged or 0))
    if sum(sent for sent, _engaged in totals.values()) < max(min_sample, 1):
        return None
    ranked = [
        (engaged / sent, sent, key)
        for key, (sent, engaged) in totals.items()
        if sent >= max(min_cell_sample, 1) and engaged > 0
    ]
    if not ranked:
        return None
    # best rate, then larger sample, then earliest hour of the week
    ranked.sort(key=lambda item: (-item[0], -item[1], item[2]))
    return ranked[0][2]
