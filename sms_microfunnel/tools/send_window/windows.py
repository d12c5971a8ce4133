# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The window engine: is an instant allowed, and when does the window open
or close, in the recipient's wall-clock time (DST handled by construction)."""

from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .policy import policy_from_dict

#: ``next_allowed`` gives up (``ValueError``) after this many days.
DEFAULT_HORIZON_DAYS = 400
_UTC = timezone.utc
# Offset changes are looked for at this step (then bisected to the second):
# no IANA zone changes its offset twice within an hour.
_PROBE = timedelta(hours=1)


def _as_utc(when):
    if not isinstance(when, datetime):
        raise TypeError(f"expected an aware datetime, got {type(when).__name__}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime {when!r}: pass an aware (UTC) instant")
    return when.astimezone(_UTC)


@lru_cache(maxsize=256)
def _zone(tz_name):
    if not isinstance(tz_name, str) or not tz_name.strip():
        raise ValueError(f"not a time zone name: {tz_name!r}")
    try:
        return ZoneInfo(tz_name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {tz_name!r}") from exc


def _offset(zone, instant):
    return instant.astimezone(zone).utcoffset()


def _first_change(zone, low, high, offset):
    """First instant in ``(low, high]`` whose UTC offset is not ``offset``."""
    probe = low
    while probe < high:
        nxt = min(probe + _PROBE, high)
        if _offset(zone, nxt) != offset:
            # Transitions fall on whole seconds: bisect on epoch seconds.
            lo = int(probe.timestamp() // 1)
            hi = -int(-nxt.timestamp() // 1)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset(zone, datetime.fromtimestamp(mid, _UTC)) == offset:
                    lo = mid
                else:
                    hi = mid
            return datetime.fromtimestamp(hi, _UTC)
        probe = nxt
    return None


def _first_local(policy, local, last_day, allowed):
    """First naive local time >= ``local``, on or before ``last_day``, that
    is allowed (``allowed=True``) or not allowed (``allowed=False``)."""
    if policy.allows_local(local) == allowed:
        return local
    if not allowed:
        # Inside an opening: walk to its end, through the midnights it spans.
        cursor = local
        while cursor.date() <= last_day:
            midnight = datetime.combine(cursor.date(), time())
            since = cursor - midnight
            for start, end in policy.intervals[cursor.weekday()]:
                if timedelta(minutes=start) <= since < timedelta(minutes=end):
                    cursor = midnight + timedelta(minutes=end)
                    break
            if not policy.allows_local(cursor):
                return cursor
        return None
    day = local.date()
    while day <= last_day:
        spans = policy.intervals[day.weekday()]
        if spans and not policy.is_closed(day):
            midnight = datetime.combine(day, time())
            for start, end in spans:
                if local < midnight + timedelta(minutes=end):
                    return max(local, midnight + timedelta(minutes=start))
        day += timedelta(days=1)
    return None


def _scan(policy, when_utc, tz_name, horizon_days, allowed):
    """First instant >= ``when_utc`` whose allowed state is ``allowed``.

    Works on stretches of constant UTC offset: within one, the local reading
    is ``instant + offset``, so the naive search of ``_first_local`` applies;
    when an offset change comes first, the search restarts at the change.
    """
    zone = _zone(tz_name)
    start = _as_utc(when_utc)
    limit = start + timedelta(days=horizon_days)
    cursor = start
    while cursor <= limit:
        offset = _offset(zone, cursor)
        local = (cursor + offset).replace(tzinfo=None)
        last_day = (limit + offset).date()
        found = _first_local(policy, local, last_day, allowed)
        if found is None:
            return None
        candidate = (found - offset).replace(tzinfo=_UTC)
        if candidate > limit:
            return None
        change = _first_change(zone, cursor, candidate, offset)
        if change is None:
            return candidate
        cursor = change
    return None


def is_allowed(policy, when_utc, tz_name):
    """True when ``when_utc`` is inside the policy's window in ``tz_name``.

    Frequency caps are not checked here (see ``cap_allows``).
    """
    policy = policy_from_dict(policy)
    instant = _as_utc(when_utc)
    local = instant.astimezone(_zone(tz_name)).replace(tzinfo=None)
    return policy.allows_local(local)


def next_allowed(policy, when_utc, tz_name, horizon_days=DEFAULT_HORIZON_DAYS):
    """First allowed instant at or after ``when_utc`` (aware UTC).

    Equal to ``when_utc`` when sending is allowed then; otherwise the next
    opening of the window in the recipient's zone ``tz_name`` (skipping
    excluded weekdays, closed dates and holidays), converted to UTC.  Raises
    ``ValueError`` when no allowed instant exists within ``horizon_days``.
    """
    policy = policy_from_dict(policy)
    if not any(policy.intervals):
        raise ValueError(f"policy {policy.name!r} has no allowed interval")
    found = _scan(policy, when_utc, tz_name, horizon_days, allowed=True)
    if found is None:
        raise ValueError(
            f"policy {policy.name!r} allows no time within {horizon_days} days "
            f"of {when_utc.isoformat()} in {tz_name}"
        )
    return found


def allowed_until(policy, when_utc, tz_name, horizon_days=DEFAULT_HORIZON_DAYS):
    """First instant at or after ``when_utc`` that is *not* allowed (UTC).

    ``when_utc`` itself when the window is closed then; the end of the
    current opening otherwise (an opening that runs past midnight into an
    open next day continues); ``None`` when it stays open for the whole
    horizon.  ``allowed_until(...) - now`` bounds the provider validity
    period of a message sent now.
    """
    policy = policy_from_dict(policy)
    return _scan(policy, when_utc, tz_name, horizon_days, allowed=False)


def is_allowed_multi(candidates, when_utc):
    """True when every ``(policy, tz_name)`` candidate allows ``when_utc``."""
    return all(is_allowed(p, when_utc, tz) for p, tz in candidates)


def next_allowed_multi(candidates, when_utc, horizon_days=DEFAULT_HORIZON_DAYS):
    """First instant >= ``when_utc`` that every ``(policy, tz_name)`` allows.

    For a recipient whose zone is uncertain (+262 Réunion or Mayotte, a
    partner zone differing from the number's) or who is under several rules
    in different zones; ``ValueError`` when there is none within the horizon.
    """
    candidates = [(policy_from_dict(p), tz) for p, tz in candidates]
    if not candidates:
        raise ValueError("next_allowed_multi() needs at least one candidate")
    start = _as_utc(when_utc)
    limit = start + timedelta(days=horizon_days)
    cursor = start
    while cursor <= limit:
        latest = max(next_allowed(p, cursor, tz, horizon_days) for p, tz in candidates)
        if latest == cursor:
            return cursor
        cursor = latest
    raise ValueError(f"no common allowed time within {horizon_days} days")
