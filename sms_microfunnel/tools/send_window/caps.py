# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Rolling frequency caps, and the first instant both window and cap allow."""

from datetime import timedelta

from .policy import policy_from_dict
from .windows import DEFAULT_HORIZON_DAYS, _as_utc, next_allowed


def _in_window(policy, sent, instant):
    window = timedelta(hours=policy.cap_hours)
    return sum(1 for s in sent if instant - window < s <= instant)


def cap_allows(policy, sent_times_utc, when_utc):
    """True when one more message at ``when_utc`` keeps within the cap.

    The cap is rolling: at most ``cap_count`` messages in any ``cap_hours``
    hours.  ``sent_times_utc`` are the instants of the messages actually sent
    to that recipient (for that subject where the law counts per subject,
    US state rows); a message sent exactly ``cap_hours`` before ``when_utc``
    has left the window, and messages later than ``when_utc`` are ignored.
    Always True for a policy without a cap.
    """
    policy = policy_from_dict(policy)
    instant = _as_utc(when_utc)
    if not policy.has_cap:
        return True
    sent = [_as_utc(s) for s in sent_times_utc]
    return _in_window(policy, sent, instant) < policy.cap_count


def cap_next_allowed(policy, sent_times_utc, when_utc):
    """First instant >= ``when_utc`` at which ``cap_allows`` is True (UTC).

    That is ``when_utc`` itself, or the moment enough earlier messages have
    left the rolling window (with 3 per 24 h, a 4th waits until the 1st is
    24 h old).
    """
    policy = policy_from_dict(policy)
    instant = _as_utc(when_utc)
    if not policy.has_cap:
        return instant
    sent = sorted(_as_utc(s) for s in sent_times_utc)
    window = timedelta(hours=policy.cap_hours)
    for candidate in [instant, *(s + window for s in sent if s + window > instant)]:
        if _in_window(policy, sent, candidate) < policy.cap_count:
            return candidate
    raise AssertionError("unreachable: the window empties after the last message")


def next_send_time(
    policy, when_utc, tz_name, sent_times_utc=(), horizon_days=DEFAULT_HORIZON_DAYS
):
    """First instant >= ``when_utc`` allowed by both the window and the cap."""
    policy = policy_from_dict(policy)
    sent = [_as_utc(s) for s in sent_times_utc]
    cursor = _as_utc(when_utc)
    while True:
        opening = next_allowed(policy, cursor, tz_name, horizon_days)
        cursor = cap_next_allowed(policy, sent, opening)
        if cursor == opening:
            return cursor
