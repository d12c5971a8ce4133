"""Send slots and the best hour (``sms_microfunnel/tools/send_window/slots.py``).

A slot is the preferred hours of a funnel step in the recipient's local time;
it is always intersected with the legal window.  Every instant is explicit.
"""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import load_tool, shipped_policies
from hypothesis import given, settings
from hypothesis import strategies as st

sw = load_tool("sms_microfunnel", "send_window")

UTC = timezone.utc
PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
SHIPPED = shipped_policies()  # read from the data file
FR = sw.policy_from_dict(SHIPPED["FR"])
ES = sw.policy_from_dict(SHIPPED["ES"])
US = sw.policy_from_dict(SHIPPED["US"])
B2B = sw.slot_policy("b2b")
EVENING = sw.slot_policy("b2c_evening")
WEEKEND = sw.slot_policy("weekend")


def local(tz_name, *args):
    return datetime(*args, tzinfo=ZoneInfo(tz_name)).astimezone(UTC)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def in_fr(slot, when_utc):
    return sw.next_in_slot([(FR, PARIS)], slot, PARIS, when_utc)


# -- presets ----------------------------------------------------------------------


def test_presets_match_the_brief():
    minutes = [(600, 660), (900, 960)]
    assert (
        B2B.intervals
        == ((), tuple(minutes), tuple(minutes), tuple(minutes)) + ((),) * 3
    )
    assert EVENING.intervals == (((1080, 1200),),) * 7
    assert WEEKEND.intervals == ((),) * 5 + (((600, 1080),), ())
    assert not B2B.holiday_rules and not B2B.has_cap


def test_slot_policy_spans_and_empty():
    assert sw.slot_policy() is None
    assert sw.slot_policy(None, ()) is None
    slot = sw.slot_policy(spans=[(None, "09:00", "10:00"), ("sat", 660, 720)])
    assert slot.intervals[0] == ((540, 600),)
    assert slot.intervals[5] == ((540, 600), (660, 720))
    # a preset plus a span
    more = sw.slot_policy("weekend", [(6, "10:00", "12:00")])
    assert more.intervals[6] == ((600, 720),)
    assert more.intervals[5] == ((600, 1080),)
    with pytest.raises(ValueError):
        sw.slot_policy("night")
    with pytest.raises(ValueError):
        sw.slot_policy(spans=[(0, "11:00", "10:00")])


def test_hour_slot():
    slot = sw.hour_slot(1, 10)
    assert slot.intervals[1] == ((600, 660),)
    assert sum(map(len, slot.intervals)) == 1
    assert sw.hour_slot("sun", 23).intervals[6] == ((1380, 1440),)
    for bad in (24, -1, 10.5, True):
        with pytest.raises(ValueError):
            sw.hour_slot(0, bad)


# -- deferral to the next slot opening ---------------------------------------------


def test_inside_slot_and_window_is_now():
    when = local(PARIS, 2026, 3, 10, 10, 30)  # Tuesday 10:30
    assert in_fr(B2B, when) == when


def test_b2b_waits_for_the_afternoon_then_next_week():
    # Tuesday 11:00 (the slot's end is exclusive): 15:00 the same day
    assert in_fr(B2B, local(PARIS, 2026, 3, 10, 11, 0)) == local(
        PARIS, 2026, 3, 10, 15, 0
    )
    # Thursday 16:00: next Tuesday 10:00
    assert in_fr(B2B, local(PARIS, 2026, 3, 12, 16, 0)) == local(
        PARIS, 2026, 3, 17, 10, 0
    )
    # Monday (inside the legal window, not the slot): Tuesday 10:00
    assert in_fr(B2B, local(PARIS, 2026, 3, 9, 9, 0)) == local(
        PARIS, 2026, 3, 10, 10, 0
    )


def test_b2b_across_dst_keeps_the_local_hour():
    # Friday 24 Oct 2025 (CEST); clocks go back on Sunday 26 October
    due = utc(2025, 10, 24, 12, 0)
    opening = in_fr(B2B, due)
    assert opening == utc(2025, 10, 28, 9, 0)  # Tuesday 10:00 CET
    # spring: Friday 27 Mar 2026 (CET); clocks go forward on Sunday 29 March
    opening = in_fr(B2B, utc(2026, 3, 27, 12, 0))
    assert opening == utc(2026, 3, 31, 8, 0)  # Tuesday 10:00 CEST


def test_evening_never_outside_the_legal_window():
    # Sunday is closed in France: Monday 18:00
    assert in_fr(EVENING, local(PARIS, 2026, 3, 15, 12, 0)) == local(
        PARIS, 2026, 3, 16, 18, 0
    )
    # Saturday 19:59 is in both; 20:00 is in neither
    saturday = local(PARIS, 2026, 3, 14, 19, 59)
    assert in_fr(EVENING, saturday) == saturday
    assert in_fr(EVENING, local(PARIS, 2026, 3, 14, 20, 0)) == local(
        PARIS, 2026, 3, 16, 18, 0
    )


def test_weekend_skips_a_holiday_saturday():
    # Saturday 15 Aug 2026 is a French public holiday: the next Saturday
    assert in_fr(WEEKEND, local(PARIS, 2026, 8, 14, 12, 0)) == local(
        PARIS, 2026, 8, 22, 10, 0
    )


def test_weekend_in_a_country_closed_on_saturday_raises():
    with pytest.raises(ValueError):
        sw.next_in_slot(
            [(ES, "Europe/Madrid")], WEEKEND, "Europe/Madrid", utc(2026, 3, 9)
        )


def test_slot_in_the_recipients_zone():
    when = utc(2026, 3, 13, 12, 0)  # Friday
    assert sw.next_in_slot([(US, NEW_YORK)], WEEKEND, NEW_YORK, when) == local(
        NEW_YORK, 2026, 3, 14, 10, 0
    )


def test_no_window_no_slot():
    when = utc(2026, 3, 13, 3, 0)
    assert sw.next_in_slot([], None, None, when) == when
    # a slot alone (no legal window applies to the message)
    assert sw.next_in_slot([], B2B, PARIS, when) == local(PARIS, 2026, 3, 17, 10, 0)
    # a window alone
    assert sw.next_in_slot([(FR, PARIS)], None, None, when) == local(
        PARIS, 2026, 3, 13, 8, 0
    )
    with pytest.raises(ValueError):
        sw.next_in_slot([], B2B, PARIS, datetime(2026, 3, 13))  # naive


def test_best_hour_slot_across_dst():
    tuesday_10 = sw.hour_slot(1, 10)
    # the same local hour before and after the spring change
    assert in_fr(tuesday_10, utc(2026, 3, 20, 12)) == utc(2026, 3, 24, 9, 0)
    assert in_fr(tuesday_10, utc(2026, 3, 27, 12)) == utc(2026, 3, 31, 8, 0)


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
    st.sampled_from(["b2b", "b2c_evening", "weekend"]),
)
def test_result_is_in_both_and_nothing_earlier_on_the_minute(naive, preset):
    when = naive.replace(tzinfo=UTC)
    slot = sw.slot_policy(preset)
    found = sw.next_in_slot([(FR, PARIS)], slot, PARIS, when)
    assert found >= when
    assert sw.is_allowed(FR, found, PARIS)
    assert sw.is_allowed(slot, found, PARIS)
    if found > when:
        before = found - timedelta(minutes=1)
        assert not (
            sw.is_allowed(FR, before, PARIS) and sw.is_allowed(slot, before, PARIS)
        )


# -- local time of a message ---------------------------------------------------------


def test_local_weekday_hour():
    assert sw.local_weekday_hour(utc(2026, 3, 10, 9, 30), PARIS) == (1, 10)
    assert sw.local_weekday_hour(utc(2026, 3, 31, 8, 30), PARIS) == (1, 10)
    # late Sunday evening in New York is Monday in UTC
    assert sw.local_weekday_hour(utc(2026, 3, 16, 2, 0), NEW_YORK) == (6, 22)


# -- best hour ------------------------------------------------------------------------


def test_best_hour_highest_rate():
    cells = [(1, 10, 4, 1), (3, 18, 2, 1), (5, 11, 3, 0)]
    assert sw.best_hour(cells) == (3, 18)


def test_best_hour_needs_a_minimum_sample():
    cells = [(1, 10, 2, 1), (3, 18, 1, 1)]
    assert sw.best_hour(cells, min_sample=4) is None
    assert sw.best_hour(cells, min_sample=3) == (3, 18)
    # every cell must hold enough messages to count
    assert sw.best_hour(cells, min_sample=3, min_cell_sample=2) == (1, 10)
    assert sw.best_hour(cells, min_sample=3, min_cell_sample=3) is None


def test_best_hour_without_engagement_is_no_signal():
    assert sw.best_hour([(1, 10, 50, 0), (2, 10, 50, 0)]) is None
    assert sw.best_hour([]) is None


def test_best_hour_rows_add_up_and_ties():
    # the same cell from two rows: 2/4 = 50 %, beats 1/3
    cells = [(1, 10, 2, 1), ("tue", 10, 2, 1), (2, 9, 3, 1)]
    assert sw.best_hour(cells) == (1, 10)
    # equal rates: the larger sample, then the earliest hour of the week
    assert sw.best_hour([(4, 9, 2, 1), (2, 9, 4, 2)]) == (2, 9)
    assert sw.best_hour([(4, 9, 2, 1), (2, 9, 2, 1)]) == (2, 9)
    with pytest.raises(ValueError):
        sw.best_hour([(1, 24, 1, 1)])
