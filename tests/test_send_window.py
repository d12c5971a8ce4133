"""Tests of the package ``sms_microfunnel/tools/send_window/`` (compliance book
``docs/compliance.md``: Send windows, Public holidays, Time zones, Overseas).

Every instant is explicit: nothing here reads the wall clock.
"""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from conftest import load_tool, shipped_policies, shipped_records
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

sw = load_tool("sms_microfunnel", "send_window")

UTC = timezone.utc
PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
#: the shipped policies, read from the data file (their only definition)
SHIPPED = shipped_policies()
FR = sw.policy_from_dict(SHIPPED["FR"])
US = sw.policy_from_dict(SHIPPED["US"])
FL = sw.policy_from_dict(SHIPPED["US-FL"])
MINUTE = timedelta(minutes=1)
TINY = timedelta(microseconds=1)


def local(tz_name, *args, fold=0):
    """The UTC instant read as ``args`` on a clock in ``tz_name``.

    Converted to UTC because Python never finds a time in a repeated hour
    equal to a time in another zone (PEP 495).
    """
    return datetime(*args, tzinfo=ZoneInfo(tz_name), fold=fold).astimezone(UTC)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def us_policy(*states):
    """Strictest of the shipped US federal window and the shipped rows of
    ``states`` (area-code state and address state, as the gate combines them);
    a row lifted by consent (Virginia) adds nothing for confirmed consents."""
    records = shipped_records()
    rows = [SHIPPED["US"]]
    for state in states:
        code = f"US-{state.upper()}" if state else None
        if code in SHIPPED and not records[code].get("consent_lifts_window"):
            rows.append(SHIPPED[code])
    return sw.strictest(rows)


def wall(instant, tz_name):
    """Naive wall-clock reading of ``instant`` in ``tz_name``."""
    return instant.astimezone(ZoneInfo(tz_name)).replace(tzinfo=None)


def daily(start, end, days=range(7), **kw):
    return sw.Policy(intervals={d: [(start, end)] for d in days}, **kw)


# ---------------------------------------------------------------------------
# Easter and holidays
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "year, expected",
    [
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),  # earliest possible date
        (1943, date(1943, 4, 25)),  # latest possible date
        (2000, date(2000, 4, 23)),
    ],
)
def test_easter_known_dates(year, expected):
    assert sw.easter_sunday(year) == expected


def test_easter_matches_dateutil():
    easter = pytest.importorskip("dateutil.easter").easter
    for year in range(1583, 3001):
        assert sw.easter_sunday(year) == easter(year), year


@given(st.integers(1583, 9999))
def test_easter_is_a_spring_sunday(year):
    day = sw.easter_sunday(year)
    assert day.weekday() == 6
    assert date(year, 3, 22) <= day <= date(year, 4, 25)


@pytest.mark.parametrize("year", [1582, 0, -5, "2025"])
def test_easter_rejects_non_gregorian_years(year):
    with pytest.raises(ValueError):
        sw.easter_sunday(year)


def test_french_national_holidays_2025():
    assert sw.holidays(2025, ("fr",)) == {
        date(2025, 1, 1): "Jour de l'an",
        date(2025, 4, 21): "Lundi de Pâques",
        date(2025, 5, 1): "Fête du Travail",
        date(2025, 5, 8): "Victoire 1945",
        date(2025, 5, 29): "Ascension",
        date(2025, 6, 9): "Lundi de Pentecôte",
        date(2025, 7, 14): "Fête nationale",
        date(2025, 8, 15): "Assomption",
        date(2025, 11, 1): "Toussaint",
        date(2025, 11, 11): "Armistice 1918",
        date(2025, 12, 25): "Noël",
    }


@pytest.mark.parametrize(
    "year, easter_monday, ascension, whit_monday",
    [
        (2024, date(2024, 4, 1), date(2024, 5, 9), date(2024, 5, 20)),
        (2026, date(2026, 4, 6), date(2026, 5, 14), date(2026, 5, 25)),
        (2027, date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17)),
        (2038, date(2038, 4, 26), date(2038, 6, 3), date(2038, 6, 14)),
    ],
)
def test_french_easter_based_holidays(year, easter_monday, ascension, whit_monday):
    days = sw.holidays(year, "fr")
    assert len(days) == 11
    assert days[easter_monday] == "Lundi de Pâques"
    assert days[ascension] == "Ascension"
    assert days[whit_monday] == "Lundi de Pentecôte"
    assert sw.easter_sunday(year) not in days  # a Sunday anyway, not listed


def test_alsace_moselle_adds_good_friday_and_st_stephen():
    national = sw.holidays(2026, ("fr",))
    alsace = sw.holidays(2026, ("fr", "fr_alsace_moselle"))
    assert set(alsace) - set(national) == {date(2026, 4, 3), date(2026, 12, 26)}
    assert alsace[date(2026, 4, 3)] == "Vendredi saint"
    assert sw.fr_holiday_rules(postcode="67000") == ("fr", "fr_alsace_moselle")
    assert sw.fr_holiday_rules(postcode="57000") == ("fr", "fr_alsace_moselle")
    assert sw.fr_holiday_rules(postcode="75011") == ("fr",)


@pytest.mark.parametrize(
    "rule, day",
    [
        ("fr_yt", date(2025, 4, 27)),
        ("fr_mq", date(2025, 5, 22)),
        ("fr_gp", date(2025, 5, 27)),
        ("fr_mf", date(2025, 5, 28)),
        ("fr_gf", date(2025, 6, 10)),
        ("fr_bl", date(2025, 10, 9)),
        ("fr_re", date(2025, 12, 20)),
    ],
)
def test_overseas_abolition_days(rule, day):
    assert sw.holidays(2025, rule) == {day: "Abolition de l'esclavage"}


def test_saint_martin_moved_to_28_may_in_2018():
    assert list(sw.holidays(2017, "fr_mf")) == [date(2017, 5, 27)]
    assert list(sw.holidays(2018, "fr_mf")) == [date(2018, 5, 28)]


def test_holidays_union_and_errors():
    both = sw.holidays(2025, ("fr", "be"))
    assert both[date(2025, 7, 14)] == "Fête nationale"
    assert both[date(2025, 7, 21)] == "Fête nationale"
    assert both[date(2025, 11, 11)] == "Armistice 1918 / Armistice"
    with pytest.raises(ValueError, match="unknown holiday rule"):
        sw.holidays(2025, ("fr", "atlantis"))
    assert sw.holidays(2025, ()) == {}
    # the result is a fresh dict: mutating it does not touch the cache
    sw.holidays(2025, "fr").clear()
    assert len(sw.holidays(2025, "fr")) == 11


def test_other_countries_rules():
    uk_2022 = sw.holidays(2022, "uk")
    assert date(2022, 12, 27) in uk_2022  # Christmas on a Sunday: Tuesday
    assert uk_2022[date(2022, 6, 3)] == "Platinum Jubilee"
    assert date(2022, 5, 30) not in uk_2022  # spring bank moved to 2 June
    assert date(2021, 12, 28) in sw.holidays(2021, "uk")  # Boxing Day, Sunday
    assert date(2022, 1, 3) in uk_2022  # New Year's Day, Saturday
    assert date(2022, 1, 4) in sw.holidays(2022, ("uk", "uk_sct"))
    assert sw.holidays(2025, "de_sn")[date(2025, 11, 19)] == "Buß- und Bettag"
    assert date(2026, 6, 4) in sw.holidays(2026, "de_by")  # Fronleichnam
    assert date(2026, 10, 4) in sw.holidays(2026, "it")
    assert date(2025, 10, 4) not in sw.holidays(2025, "it")
    assert date(2026, 4, 2) in sw.holidays(2026, "es")  # Jueves Santo
    assert len(sw.holidays(2025, "be")) == 10


# ---------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------


def test_policy_from_dict_normalises():
    policy = sw.policy_from_dict(
        {
            "key": "X",
            "intervals": {
                "mon": [("14:00", "16:00"), ("08:00", "12:00"), ("11:00", "13:00")],
                4: [(time(9), "24:00")],
            },
            "closed_dates": ["2025-12-24", date(2025, 12, 31)],
            "holiday_rules": ["FR"],
            "cap_count": 2,
            "cap_hours": 12,
            "source": "ignored",
        }
    )
    assert policy.intervals[0] == ((480, 780), (840, 960))
    assert policy.intervals[4] == ((540, 1440),)
    assert policy.intervals[6] == ()
    assert policy.closed_dates == {date(2025, 12, 24), date(2025, 12, 31)}
    assert policy.holiday_rules == ("fr",)
    assert (policy.cap_count, policy.cap_hours) == (2, 12)
    assert policy.name == "X"
    assert sw.policy_from_dict(policy) is policy
    hash(policy)  # frozen and hashable


def test_weekday_names_and_sequences():
    by_name = sw.Policy(intervals={"Sunday": [(0, 60)], "tue": [("00:00", "00:01")]})
    by_index = sw.Policy(intervals=[(), [(0, 1)], (), (), (), (), [(0, 60)]])
    assert by_name == by_index
    assert by_name.intervals[6] == ((0, 60),)
    with pytest.raises(TypeError):
        sw.policy_from_dict("FR")
    with pytest.raises(ValueError):
        sw.Policy(intervals=[[(0, 60)]] * 6)


@pytest.mark.parametrize(
    "data",
    [
        {"intervals": {"monkey": [("08:00", "20:00")]}},
        {"intervals": {"mon": [("20:00", "08:00")]}},
        {"intervals": {"mon": [("08:00", "08:00")]}},
        {"intervals": {"mon": [("08:00", "24:01")]}},
        {"intervals": {"mon": [("8h", "20:00")]}},
        {"intervals": {"funday": [("08:00", "20:00")]}},
        {"intervals": {7: [(0, 60)]}},
        {"intervals": {}, "cap_count": 3},
        {"intervals": {}, "cap_count": 0, "cap_hours": 24},
        {"intervals": {}, "holiday_rules": ("fr", "xx")},
        {"intervals": {}, "closed_dates": ["2025-02-30"]},
        {"intervals": {}, "windows": {}},  # a typo must not pass
    ],
)
def test_policy_rejects_bad_data(data):
    with pytest.raises(ValueError):
        sw.policy_from_dict(data)


def test_shipped_defaults_match_the_window_table():
    mon_sat_8_20 = tuple(((480, 1200),) if d < 6 else () for d in range(7))
    assert FR.intervals == mon_sat_8_20 and FR.holiday_rules == ("fr",)
    assert not FR.has_cap
    for key, rules in (("BE", ("be",)), ("DE", ("de",)), ("UK", ("uk",))):
        policy = sw.policy_from_dict(SHIPPED[key])
        assert policy.intervals == mon_sat_8_20 and policy.holiday_rules == rules
    af2m = sw.policy_from_dict(SHIPPED["FR-AF2M-2026"])
    assert af2m.intervals[5] == ((480, 1290),) and af2m.intervals[6] == ()
    assert SHIPPED["FR-AF2M-2026"]["enabled"] is False
    assert sw.policy_from_dict(SHIPPED["FR-AF2M-2024"]).intervals[0] == ((480, 1320),)
    # the Sunday 10:00-18:00 option is an inactive line of FR
    (sunday,) = [x for x in shipped_records()["FR"]["line_ids"] if x["weekday"] == "6"]
    assert (sunday["hour_from"], sunday["hour_to"], sunday["active"]) == (10, 18, False)
    spain = sw.policy_from_dict(SHIPPED["ES"])
    assert spain.intervals[4] == ((540, 1260),) and spain.intervals[5] == ()
    assert sw.policy_from_dict(SHIPPED["IT"]).intervals[5] == ((540, 1200),)
    assert US.intervals == ((((480, 1260),),) * 7) and not US.has_cap
    for state in ("FL", "OK", "MD"):
        policy = sw.policy_from_dict(SHIPPED[f"US-{state}"])
        assert policy.intervals == ((((480, 1200),),) * 7)
        assert (policy.cap_count, policy.cap_hours) == (3, 24)
    canada = sw.policy_from_dict(SHIPPED["CA"])
    assert canada.intervals[4] == ((540, 1290),)
    assert canada.intervals[5] == canada.intervals[6] == ((600, 1080),)
    assert set(SHIPPED) >= {"FR", "BE", "DE", "ES", "IT", "UK", "US", "CA"}
    for row in SHIPPED.values():
        assert sw.policy_from_dict(row).name
    # regional holiday rows apply to their region only
    alsace = shipped_policies(regions=("FR-AM",))["FR"]
    assert alsace["holiday_rules"] == ("fr", "fr_alsace_moselle")


# ---------------------------------------------------------------------------
# Windows: France
# ---------------------------------------------------------------------------


def test_friday_1959_vs_2000_paris():
    friday_1959 = local(PARIS, 2025, 6, 13, 19, 59)
    assert sw.is_allowed(FR, friday_1959, PARIS)
    assert sw.next_allowed(FR, friday_1959, PARIS) == friday_1959
    last = local(PARIS, 2025, 6, 13, 19, 59, 59, 999999)
    assert sw.is_allowed(FR, last, PARIS)
    friday_2000 = local(PARIS, 2025, 6, 13, 20, 0)
    assert not sw.is_allowed(FR, friday_2000, PARIS)
    assert sw.next_allowed(FR, friday_2000, PARIS) == local(PARIS, 2025, 6, 14, 8)
    assert sw.allowed_until(FR, friday_1959, PARIS) == friday_2000


def test_result_is_utc_and_equal_to_input_when_open():
    when = local(PARIS, 2025, 6, 13, 10, 30)
    result = sw.next_allowed(FR, when, PARIS)
    assert result == when and result.tzinfo == UTC
    assert sw.next_allowed(FR, utc(2025, 6, 13, 5), PARIS) == utc(2025, 6, 13, 6)


def test_saturday_evening_goes_to_monday_morning():
    saturday = local(PARIS, 2025, 6, 14, 20, 15)
    assert sw.next_allowed(FR, saturday, PARIS) == local(PARIS, 2025, 6, 16, 8)
    sunday = local(PARIS, 2025, 6, 15, 12)
    assert not sw.is_allowed(FR, sunday, PARIS)
    assert sw.next_allowed(FR, sunday, PARIS) == local(PARIS, 2025, 6, 16, 8)


def test_monday_holiday_goes_to_tuesday():
    # Easter Monday 2025-04-21 and Whit Monday 2026-05-25
    saturday = local(PARIS, 2025, 4, 19, 21)
    assert sw.next_allowed(FR, saturday, PARIS) == local(PARIS, 2025, 4, 22, 8)
    holiday_noon = local(PARIS, 2026, 5, 25, 12)
    assert not sw.is_allowed(FR, holiday_noon, PARIS)
    assert sw.next_allowed(FR, holiday_noon, PARIS) == local(PARIS, 2026, 5, 26, 8)


def test_alsace_moselle_good_friday():
    alsace = sw.Policy(
        intervals=FR.intervals, holiday_rules=sw.fr_holiday_rules(postcode="68100")
    )
    good_friday = local(PARIS, 2026, 4, 3, 10)
    assert sw.is_allowed(FR, good_friday, PARIS)
    assert not sw.is_allowed(alsace, good_friday, PARIS)
    # Good Friday, Saturday open, Sunday, Easter Monday
    assert sw.next_allowed(alsace, good_friday, PARIS) == local(PARIS, 2026, 4, 4, 8)
    saturday = local(PARIS, 2026, 4, 4, 20)
    assert sw.next_allowed(alsace, saturday, PARIS) == local(PARIS, 2026, 4, 7, 8)
    # 26 Dec 2025 is a Friday
    assert not sw.is_allowed(alsace, local(PARIS, 2025, 12, 26, 9), PARIS)
    assert sw.is_allowed(FR, local(PARIS, 2025, 12, 26, 9), PARIS)


def test_year_end():
    # 31 Dec 2023 is a Sunday, 1 Jan 2024 a (Monday) holiday
    sunday = local(PARIS, 2023, 12, 31, 19, 30)
    assert sw.next_allowed(FR, sunday, PARIS) == local(PARIS, 2024, 1, 2, 8)
    # 31 Dec 2025 (Wednesday): open until 20:00, then 2 Jan 2026
    evening = local(PARIS, 2025, 12, 31, 19, 30)
    assert sw.next_allowed(FR, evening, PARIS) == evening
    late = local(PARIS, 2025, 12, 31, 20, 30)
    assert sw.next_allowed(FR, late, PARIS) == local(PARIS, 2026, 1, 2, 8)
    assert sw.next_allowed(FR, late, PARIS) == utc(2026, 1, 2, 7)


def test_closed_dates_are_local_dates():
    policy = daily(480, 1200, closed_dates={date(2025, 6, 17)})
    # 23:30 UTC on the 16th is already the 17th in Réunion (+4)
    when = utc(2025, 6, 16, 23, 30)
    assert sw.next_allowed(policy, when, "Indian/Reunion") == local(
        "Indian/Reunion", 2025, 6, 18, 8
    )
    assert sw.next_allowed(policy, when, "America/Martinique") == when


# ---------------------------------------------------------------------------
# DST
# ---------------------------------------------------------------------------


def test_paris_spring_forward_weekend():
    # Sunday 2025-03-30 02:00 CET -> 03:00 CEST
    saturday = local(PARIS, 2025, 3, 29, 20)
    result = sw.next_allowed(FR, saturday, PARIS)
    assert result == utc(2025, 3, 31, 6)
    assert wall(result, PARIS) == datetime(2025, 3, 31, 8)


def test_paris_autumn_weekend():
    # Sunday 2025-10-26 03:00 CEST -> 02:00 CET
    saturday = local(PARIS, 2025, 10, 25, 20)
    result = sw.next_allowed(FR, saturday, PARIS)
    assert result == utc(2025, 10, 27, 7)
    assert wall(result, PARIS) == datetime(2025, 10, 27, 8)


def test_window_starting_in_the_spring_gap_opens_at_the_transition():
    policy = daily(150, 600)  # 02:30-10:00, every day
    result = sw.next_allowed(policy, utc(2025, 3, 29, 20), PARIS)
    assert result == utc(2025, 3, 30, 1)  # the transition
    assert wall(result, PARIS) == datetime(2025, 3, 30, 3, 0)  # not 02:30
    assert not sw.is_allowed(policy, result - TINY, PARIS)


def test_window_inside_the_spring_gap_does_not_open_that_day():
    policy = daily(120, 165)  # 02:00-02:45
    result = sw.next_allowed(policy, utc(2025, 3, 29, 12), PARIS)
    assert wall(result, PARIS) == datetime(2025, 3, 31, 2, 0)


def test_window_ending_in_the_spring_gap():
    policy = daily(60, 150)  # 01:00-02:30
    start = local(PARIS, 2025, 3, 30, 1, 30)
    assert sw.allowed_until(policy, start, PARIS) == utc(2025, 3, 30, 1)
    assert not sw.is_allowed(policy, utc(2025, 3, 30, 1), PARIS)  # reads 03:00


def test_autumn_fold_end_is_exclusive_and_repeats():
    policy = daily(120, 150)  # 02:00-02:30, read twice on 2025-10-26
    first = local(PARIS, 2025, 10, 26, 2, 0, fold=0)
    assert first == utc(2025, 10, 26, 0)
    assert sw.next_allowed(policy, utc(2025, 10, 25, 12), PARIS) == first
    end_first = local(PARIS, 2025, 10, 26, 2, 30, fold=0)
    assert not sw.is_allowed(policy, end_first, PARIS)
    assert sw.allowed_until(policy, first, PARIS) == end_first
    second = sw.next_allowed(policy, end_first, PARIS)
    assert second == utc(2025, 10, 26, 1)  # 02:00 CET, second pass
    assert wall(second, PARIS) == datetime(2025, 10, 26, 2, 0)
    assert sw.allowed_until(policy, second, PARIS) == utc(2025, 10, 26, 1, 30)
    # then the next day
    third = sw.next_allowed(policy, utc(2025, 10, 26, 1, 30), PARIS)
    assert third == local(PARIS, 2025, 10, 27, 2, 0)


def test_windows_across_the_fold():
    start = local(PARIS, 2025, 10, 26, 1, 30)  # CEST
    assert start == utc(2025, 10, 25, 23, 30)
    # 01:30-03:30: open from 01:30 CEST through the repeated hour to 03:30 CET
    wide = daily(90, 210)
    assert sw.allowed_until(wide, start, PARIS) == utc(2025, 10, 26, 2, 30)
    # 01:30-02:45: closed from 02:45 CEST until the clock goes back to 02:00
    narrow = daily(90, 165)
    end = sw.allowed_until(narrow, start, PARIS)
    assert end == utc(2025, 10, 26, 0, 45)
    assert sw.next_allowed(narrow, end, PARIS) == utc(2025, 10, 26, 1)
    assert sw.allowed_until(narrow, utc(2025, 10, 26, 1), PARIS) == utc(
        2025, 10, 26, 1, 45
    )


def test_new_york_dst_days():
    # Sunday 2025-03-09 02:00 EST -> 03:00 EDT
    saturday = local(NEW_YORK, 2025, 3, 8, 21, 0)
    assert not sw.is_allowed(US, saturday, NEW_YORK)
    assert sw.next_allowed(US, saturday, NEW_YORK) == utc(2025, 3, 9, 12)
    assert sw.allowed_until(US, utc(2025, 3, 9, 12), NEW_YORK) == utc(2025, 3, 10, 1)
    # Sunday 2025-11-02 02:00 EDT -> 01:00 EST
    autumn = local(NEW_YORK, 2025, 11, 1, 21, 30)
    assert sw.next_allowed(US, autumn, NEW_YORK) == utc(2025, 11, 2, 13)
    assert sw.allowed_until(US, utc(2025, 11, 2, 13), NEW_YORK) == utc(2025, 11, 3, 2)


def test_a_skipped_local_day():
    # Samoa skipped 2011-12-30 entirely
    apia = "Pacific/Apia"
    only_friday = sw.Policy(intervals={4: [(0, 1440)]})
    thursday = local(apia, 2011, 12, 29, 12)
    result = sw.next_allowed(only_friday, thursday, apia)
    assert wall(result, apia) == datetime(2012, 1, 6, 0, 0)


# ---------------------------------------------------------------------------
# Overseas and numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, zone, wall_time, allowed, opening",
    [
        # Monday 2025-06-16 07:00 Paris (CEST) = 05:00 UTC
        ("+262692123456", "Indian/Reunion", time(9), True, utc(2025, 6, 16, 5)),
        ("+596696123456", "America/Martinique", time(1), False, utc(2025, 6, 16, 12)),
        ("+594694123456", "America/Cayenne", time(2), False, utc(2025, 6, 16, 11)),
        ("+33612345678", PARIS, time(7), False, utc(2025, 6, 16, 6)),
    ],
)
def test_overseas_local_hours(number, zone, wall_time, allowed, opening):
    seven_paris = local(PARIS, 2025, 6, 16, 7)
    assert sw.tz_for_number(number) == zone
    assert wall(seven_paris, zone).time() == wall_time
    assert sw.is_allowed(FR, seven_paris, zone) is allowed
    assert sw.next_allowed(FR, seven_paris, zone) == opening


def test_overseas_holiday_in_its_own_zone():
    reunion = sw.Policy(
        intervals=FR.intervals, holiday_rules=sw.fr_holiday_rules(postcode="97400")
    )
    # Saturday 20 Dec 2025 is a holiday in La Réunion only
    when = local("Indian/Reunion", 2025, 12, 20, 10)
    assert sw.is_allowed(FR, when, "Indian/Reunion")
    assert not sw.is_allowed(reunion, when, "Indian/Reunion")
    assert sw.next_allowed(reunion, when, "Indian/Reunion") == local(
        "Indian/Reunion", 2025, 12, 22, 8
    )


@pytest.mark.parametrize(
    "number, zones",
    [
        ("+33612345678", ("Europe/Paris",)),
        ("+33 1 23 45 67 89", ("Europe/Paris",)),
        ("0033612345678", ("Europe/Paris",)),
        ("+590690123456", ("America/Guadeloupe",)),
        ("+596696123456", ("America/Martinique",)),
        ("+594694123456", ("America/Cayenne",)),
        ("+262639012345", ("Indian/Mayotte",)),
        ("+262269612345", ("Indian/Mayotte",)),
        ("+262262123456", ("Indian/Reunion",)),
        ("+262692123456", ("Indian/Reunion", "Indian/Mayotte")),
        ("+508551234", ("America/Miquelon",)),
        ("+687751234", ("Pacific/Noumea",)),
        ("+68987123456", ("Pacific/Tahiti",)),
        ("+681721234", ("Pacific/Wallis",)),
        ("+12125550123", ("America/New_York",)),
        ("+1 (646) 555-0123", ("America/New_York",)),
        ("+13055550123", ("America/New_York",)),
        ("+14055550123", ("America/Chicago",)),
        ("+14105550123", ("America/New_York",)),
        ("+13125550123", ("America/Chicago",)),
        ("+14155550123", ("America/Los_Angeles",)),
        ("+14165550123", ("America/Toronto",)),
        ("+15145550123", ("America/Toronto",)),
        ("+16045550123", ("America/Vancouver",)),
        ("+18505550123", ("America/Chicago", "America/New_York")),
        ("+19995550123", ()),  # area code not in the partial table
        ("+4930123456", ()),
        ("0612345678", ()),  # national format: not E.164
        ("", ()),
        (None, ()),
    ],
)
def test_tz_candidates(number, zones):
    assert sw.tz_candidates(number) == zones
    assert sw.tz_for_number(number) == (zones[0] if zones else None)
    assert sw.tz_for_number(number, "Europe/Paris") == (
        zones[0] if zones else "Europe/Paris"
    )


def test_nanp_region_and_fr_regions():
    assert sw.nanp_region("+13055550123") == ("US", "FL")
    assert sw.nanp_region("+14055550123") == ("US", "OK")
    assert sw.nanp_region("+14435550123") == ("US", "MD")
    assert sw.nanp_region("+15145550123") == ("CA", "QC")
    assert sw.nanp_region("+19995550123") is None
    assert sw.nanp_region("+33612345678") is None
    assert sw.fr_regions_for_number("+590690123456") == ("GP", "MF", "BL")
    assert sw.fr_regions_for_number("+262692123456") == ("RE", "YT")
    assert sw.fr_regions_for_number("+12125550123") == ()
    assert sw.fr_holiday_rules(e164="+262692123456") == ("fr", "fr_re", "fr_yt")
    assert sw.fr_holiday_rules(postcode="97133", e164="+262692123456") == (
        "fr",
        "fr_bl",
    )
    assert sw.fr_holiday_rules() == ("fr",)
    assert sw.fr_holiday_rules(postcode="98000") == ("fr",)  # Monaco: not French
    for code, region in {
        "97150": "MF",
        "97100": "GP",
        "97200": "MQ",
        "97300": "GF",
        "97400": "RE",
        "97600": "YT",
        "97500": "PM",
        "98800": "NC",
        "20000": "FR",
        "57000": "FR-AM",
        "bad": None,
    }.items():
        assert sw.fr_region_for_postcode(code) == region
    for region, (zone, rules) in sw.FR_REGIONS.items():
        ZoneInfo(zone)
        assert set(rules) <= set(sw.HOLIDAY_RULES), region
    assert sw.FR_FAMILY == set(sw.FR_REGIONS) - {"FR-AM"}
    assert sw.policy_country("GP") == sw.policy_country("FR") == "FR"
    assert sw.policy_country("BE") == "BE" and sw.policy_country(None) is None


def test_area_code_table_agrees_with_phonenumbers():
    phonenumbers = pytest.importorskip("phonenumbers")
    pn_timezone = pytest.importorskip("phonenumbers.timezone")

    for code, (country, _region, zones) in sw.NANP_AREA_CODES.items():
        for zone in zones:
            ZoneInfo(zone)
        number = next(
            n
            for n in (
                phonenumbers.parse(f"+1{code}{sub}")
                for sub in ("2345678", "5550123", "4561234", "7891234")
            )
            if phonenumbers.is_valid_number(n)
        )
        assert phonenumbers.region_code_for_number(number) == country, code
        # every zone phonenumbers gives is a candidate (ours may add more)
        assert set(pn_timezone.time_zones_for_number(number)) <= set(zones), code


# ---------------------------------------------------------------------------
# US, strictest, several zones
# ---------------------------------------------------------------------------


def test_us_strict_state_vs_federal():
    number = "+13055550123"
    zone = sw.tz_for_number(number)
    _country, state = sw.nanp_region(number)
    policy = us_policy(state)
    evening = local(zone, 2025, 6, 16, 20, 30)
    assert sw.is_allowed(US, evening, zone)
    assert not sw.is_allowed(policy, evening, zone)
    assert sw.next_allowed(policy, evening, zone) == local(zone, 2025, 6, 17, 8)
    assert (policy.cap_count, policy.cap_hours) == (3, 24)
    assert us_policy() == US
    assert us_policy("ks", None) == US
    # area code in New York, address in Maryland: Maryland's rule applies
    assert us_policy(sw.nanp_region("+12125550123")[1], "MD") == FL


def test_texas_sunday_opens_at_noon():
    """Texas SB 140 (rule US-TX): Sunday 12:00-21:00, other days 09:00-21:00."""
    texas = us_policy("TX")
    zone = "America/Chicago"
    assert not sw.is_allowed(texas, local(zone, 2026, 3, 15, 11, 59), zone)
    assert sw.is_allowed(texas, local(zone, 2026, 3, 15, 12, 0), zone)
    assert not sw.is_allowed(texas, local(zone, 2026, 3, 15, 21, 0), zone)
    assert not sw.is_allowed(texas, local(zone, 2026, 3, 14, 8, 59), zone)
    assert sw.is_allowed(texas, local(zone, 2026, 3, 14, 9, 0), zone)
    assert sw.next_allowed(texas, local(zone, 2026, 3, 15, 8, 0), zone) == local(
        zone, 2026, 3, 15, 12, 0
    )


def test_af2m_2026_closes_at_21_30():
    """af2m 2026 charter (rule FR-AF2M-2026): 08:00-21:30, Sunday off by default."""
    af2m = sw.policy_from_dict(SHIPPED["FR-AF2M-2026"])
    zone = "Europe/Paris"
    assert sw.is_allowed(af2m, local(zone, 2026, 3, 17, 21, 29), zone)
    assert not sw.is_allowed(af2m, local(zone, 2026, 3, 17, 21, 30), zone)
    assert not sw.is_allowed(FR, local(zone, 2026, 3, 17, 20, 0), zone)
    assert not sw.is_allowed(af2m, local(zone, 2026, 3, 22, 12, 0), zone)


def test_connecticut_and_new_jersey_windows():
    zone = "America/New_York"
    connecticut = us_policy("CT")
    assert not sw.is_allowed(connecticut, local(zone, 2026, 3, 17, 8, 59), zone)
    assert sw.is_allowed(connecticut, local(zone, 2026, 3, 17, 9, 0), zone)
    assert not sw.is_allowed(connecticut, local(zone, 2026, 3, 17, 20, 0), zone)
    new_jersey = us_policy("NJ")
    assert sw.is_allowed(new_jersey, local(zone, 2026, 3, 17, 20, 59), zone)
    assert not sw.is_allowed(new_jersey, local(zone, 2026, 3, 17, 21, 0), zone)
    # Virginia's window is lifted by consent: not a strict state of the engine
    assert us_policy("VA") == US


def test_strictest_intersects():
    a = sw.Policy(
        intervals={0: [(480, 720), (840, 1200)], 1: [(480, 1200)], 2: [(480, 600)]},
        closed_dates={date(2025, 1, 2)},
        cap_count=3,
        cap_hours=24,
        name="a",
    )
    b = sw.Policy(
        intervals={0: [(600, 900)], 1: [(0, 1440)], 3: [(480, 1200)]},
        holiday_rules=("fr",),
        cap_count=4,
        cap_hours=720,
        name="b",
    )
    both = sw.strictest([a, b])
    assert both.intervals[0] == ((600, 720), (840, 900))
    assert both.intervals[1] == ((480, 1200),)
    assert both.intervals[2] == () and both.intervals[3] == ()
    assert both.closed_dates == {date(2025, 1, 2)} and both.holiday_rules == ("fr",)
    assert (both.cap_count, both.cap_hours) == (3, 720)
    assert both.name == "a & b"
    assert sw.strictest([a]) == a
    assert sw.strictest([SHIPPED["US"], SHIPPED["US-FL"]]) == FL
    with pytest.raises(ValueError):
        sw.strictest([])


def test_ambiguous_reunion_or_mayotte():
    number = "+262692123456"
    candidates = [(FR, zone) for zone in sw.tz_candidates(number)]
    assert len(candidates) == 2
    # Monday 2025-06-16 04:30 UTC: 08:30 Réunion but 07:30 Mayotte
    when = utc(2025, 6, 16, 4, 30)
    assert sw.is_allowed(FR, when, "Indian/Reunion")
    assert not sw.is_allowed_multi(candidates, when)
    assert sw.next_allowed_multi(candidates, when) == utc(2025, 6, 16, 5)
    # 19:30 Réunion = 15:30 UTC is fine; 16:00 UTC is 20:00 in Réunion
    assert sw.next_allowed_multi(candidates, utc(2025, 6, 16, 15, 30)) == utc(
        2025, 6, 16, 15, 30
    )
    assert sw.next_allowed_multi(candidates, utc(2025, 6, 16, 16)) == utc(
        2025, 6, 17, 5
    )
    with pytest.raises(ValueError):
        sw.next_allowed_multi([], when)


def test_multi_without_common_time_raises():
    morning = daily(480, 540)  # 08:00-09:00
    candidates = [(morning, "Europe/Paris"), (morning, "America/New_York")]
    with pytest.raises(ValueError, match="no common"):
        sw.next_allowed_multi(candidates, utc(2025, 1, 1), horizon_days=30)


# ---------------------------------------------------------------------------
# Caps
# ---------------------------------------------------------------------------


def test_three_per_rolling_24_hours():
    sent = [utc(2025, 6, 16, 13), utc(2025, 6, 16, 14), utc(2025, 6, 16, 15)]
    fourth = utc(2025, 6, 16, 16)
    assert not sw.cap_allows(FL, sent, fourth)
    assert sw.cap_allows(FL, sent[:2], fourth)
    assert sw.cap_next_allowed(FL, sent, fourth) == utc(2025, 6, 17, 13)
    assert not sw.cap_allows(FL, sent, utc(2025, 6, 17, 13) - TINY)
    assert sw.cap_allows(FL, sent, utc(2025, 6, 17, 13))
    # sent in any order, and messages long gone do not count
    older = [utc(2025, 6, 10, 9), *reversed(sent)]
    assert sw.cap_next_allowed(FL, older, fourth) == utc(2025, 6, 17, 13)
    assert sw.cap_allows(US, sent * 10, fourth)  # no cap
    assert sw.cap_next_allowed(US, sent * 10, fourth) == fourth


def test_cap_with_more_messages_than_the_cap():
    sent = [utc(2025, 6, 16, h) for h in (9, 10, 11, 12, 13)]
    assert sw.cap_next_allowed(FL, sent, utc(2025, 6, 16, 14)) == utc(2025, 6, 17, 11)


def test_next_send_time_combines_window_and_cap():
    zone = NEW_YORK
    sent = [local(zone, 2025, 6, 16, h) for h in (9, 10, 19)]
    # cap frees at 09:00 on the 17th, which is inside the window
    assert sw.next_send_time(FL, local(zone, 2025, 6, 16, 19, 30), zone, sent) == (
        local(zone, 2025, 6, 17, 9)
    )
    late = [local(zone, 2025, 6, 16, h) for h in (19, 19, 19)]
    # cap frees at 19:00 on the 17th; window is open then
    assert sw.next_send_time(FL, local(zone, 2025, 6, 17, 8), zone, late) == local(
        zone, 2025, 6, 17, 19
    )
    # four messages late on the 16th: the cap frees at 22:00 on the 17th,
    # when the window is closed, so the next morning
    night = [local(zone, 2025, 6, 16, 22), local(zone, 2025, 6, 16, 23)] * 2
    for start in (local(zone, 2025, 6, 17, 8), local(zone, 2025, 6, 17, 19)):
        assert sw.next_send_time(FL, start, zone, night) == local(zone, 2025, 6, 18, 8)
    # no cap: the window alone
    assert sw.next_send_time(US, local(zone, 2025, 6, 17, 7), zone, night) == local(
        zone, 2025, 6, 17, 8
    )


# ---------------------------------------------------------------------------
# Errors and horizon
# ---------------------------------------------------------------------------


def test_no_allowed_time_raises_instead_of_looping():
    with pytest.raises(ValueError, match="no allowed interval"):
        sw.next_allowed(sw.Policy(), utc(2025, 1, 1), PARIS)
    mondays = [date(2025, 1, 6) + timedelta(weeks=w) for w in range(60)]
    closed = sw.Policy(intervals={0: [(480, 1200)]}, closed_dates=mondays)
    with pytest.raises(ValueError, match="allows no time"):
        sw.next_allowed(closed, utc(2025, 1, 1), PARIS)
    assert sw.next_allowed(closed, utc(2025, 1, 1), PARIS, horizon_days=500) == (
        local(PARIS, 2026, 3, 2, 8)
    )
    # 29 February only
    leap = sw.Policy(
        intervals=FR.intervals,
        closed_dates=[
            date(2025, 1, 1) + timedelta(days=d)
            for d in range(1200)
            if (date(2025, 1, 1) + timedelta(days=d)) != date(2028, 2, 29)
        ],
    )
    with pytest.raises(ValueError):
        sw.next_allowed(leap, utc(2025, 1, 1), PARIS)
    assert sw.next_allowed(leap, utc(2025, 1, 1), PARIS, horizon_days=1200) == (
        local(PARIS, 2028, 2, 29, 8)
    )


def test_allowed_until_never_closing():
    always = daily(0, 1440)
    assert sw.allowed_until(always, utc(2025, 1, 1), PARIS) is None
    assert sw.allowed_until(FR, local(PARIS, 2025, 6, 15, 12), PARIS) == local(
        PARIS, 2025, 6, 15, 12
    )
    # an opening through midnight into an open day continues
    night = sw.Policy(intervals={0: [(1200, 1440)], 1: [(0, 120)]})
    assert sw.allowed_until(night, local(PARIS, 2025, 6, 16, 23), PARIS) == local(
        PARIS, 2025, 6, 17, 2
    )


@pytest.mark.parametrize(
    "when, tz_name, error",
    [
        (datetime(2025, 1, 1, 12), PARIS, ValueError),  # naive
        (date(2025, 1, 1), PARIS, TypeError),
        ("2025-01-01T12:00:00Z", PARIS, TypeError),
        (utc(2025, 1, 1, 12), "Mars/Olympus_Mons", ValueError),
        (utc(2025, 1, 1, 12), "", ValueError),
        (utc(2025, 1, 1, 12), None, ValueError),
    ],
)
def test_bad_inputs(when, tz_name, error):
    with pytest.raises(error):
        sw.next_allowed(FR, when, tz_name)
    with pytest.raises(error):
        sw.is_allowed(FR, when, tz_name)


def test_accepts_any_aware_datetime_and_dicts():
    when = datetime(2025, 6, 13, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert sw.next_allowed(SHIPPED["FR"], when, PARIS) == when
    assert sw.is_allowed(SHIPPED["FR"], when, PARIS)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

ZONES = (
    "Europe/Paris",
    "America/New_York",
    "Indian/Reunion",
    "America/Martinique",
    "America/Cayenne",
    "America/Miquelon",
    "Pacific/Noumea",
    "Australia/Lord_Howe",  # 30-minute DST
    "America/Santiago",  # transitions at midnight
    "America/Sao_Paulo",  # had DST ending at midnight until 2019
    "Asia/Kolkata",
    "Pacific/Chatham",  # +12:45 / +13:45
    "Pacific/Apia",  # skipped 2011-12-30
    "America/St_Johns",
    "Europe/London",
    "UTC",
)
instants = st.datetimes(
    min_value=datetime(2010, 1, 1),
    max_value=datetime(2040, 12, 31),
    timezones=st.just(UTC),
)
minutes = st.one_of(
    st.integers(0, 1440),
    st.sampled_from([0, 60, 90, 120, 150, 165, 180, 480, 1200, 1260, 1380, 1440]),
)


@st.composite
def spans(draw):
    a, b = draw(minutes), draw(minutes)
    assume(a != b)
    return (min(a, b), max(a, b))


@st.composite
def policies(draw, with_cap=False):
    intervals = draw(
        st.dictionaries(
            st.integers(0, 6), st.lists(spans(), min_size=1, max_size=3), min_size=1
        )
    )
    closed = draw(st.lists(st.integers(0, 20), max_size=4))
    rules = draw(
        st.sampled_from([(), ("fr",), ("fr", "fr_alsace_moselle"), ("uk",), ("de",)])
    )
    cap = draw(st.tuples(st.integers(1, 4), st.integers(1, 72))) if with_cap else None
    return sw.Policy(
        intervals=intervals,
        closed_dates={date(2025, 1, 1) + timedelta(days=d) for d in closed},
        holiday_rules=rules,
        cap_count=cap[0] if cap else None,
        cap_hours=cap[1] if cap else None,
    )


def minute_marks(start, end):
    """Every whole UTC minute strictly between ``start`` and ``end``."""
    mark = start.replace(second=0, microsecond=0) + MINUTE
    while mark < end:
        yield mark
        mark += MINUTE


PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(policies(), instants, st.sampled_from(ZONES))
def test_next_allowed_is_the_first_allowed_instant(policy, when, zone):
    result = sw.next_allowed(policy, when, zone)
    assert result >= when and result.tzinfo == UTC
    assert sw.is_allowed(policy, result, zone)
    assert sw.next_allowed(policy, result, zone) == result
    if result == when:
        return
    assert not sw.is_allowed(policy, when, zone)
    assert not sw.is_allowed(policy, result - TINY, zone)
    # windows and offsets are whole minutes, so any allowed stretch before
    # ``result`` would contain a whole UTC minute
    assert result - when < timedelta(days=60)
    for mark in minute_marks(when, result):
        assert not sw.is_allowed(policy, mark, zone), mark


@PROPERTY
@given(policies(), instants, st.sampled_from(ZONES))
def test_allowed_until_is_the_end_of_the_opening(policy, when, zone):
    end = sw.allowed_until(policy, when, zone)
    if not sw.is_allowed(policy, when, zone):
        assert end == when
        return
    if end is None:  # open for the whole horizon: every day fully open
        assert all(s == ((0, 1440),) for s in policy.intervals)
        return
    assert end > when and not sw.is_allowed(policy, end, zone)
    assert sw.is_allowed(policy, end - TINY, zone)
    for mark in minute_marks(when, min(end, when + timedelta(days=8))):
        assert sw.is_allowed(policy, mark, zone), mark


@PROPERTY
@given(policies(), policies(), instants, st.sampled_from(ZONES))
def test_strictest_allows_exactly_what_all_allow(a, b, when, zone):
    both = sw.strictest([a, b])
    expected = sw.is_allowed(a, when, zone) and sw.is_allowed(b, when, zone)
    assert sw.is_allowed(both, when, zone) is expected
    assert sw.is_allowed_multi([(a, zone), (b, zone)], when) is expected

    def outcome(function, *args):
        try:
            return function(*args, horizon_days=60)
        except ValueError:
            return None

    assert outcome(sw.next_allowed_multi, [(a, zone), (b, zone)], when) == outcome(
        sw.next_allowed, both, when, zone
    )


@settings(max_examples=60, deadline=None)
@given(
    policies(),
    instants,
    st.sampled_from(ZONES),
    st.sampled_from(ZONES),
)
def test_next_allowed_multi_is_the_first_common_instant(policy, when, zone_a, zone_b):
    candidates = [(policy, zone_a), (FR, zone_b)]
    try:
        result = sw.next_allowed_multi(candidates, when, horizon_days=40)
    except ValueError:
        return  # no common time within 40 days: possible with odd windows
    assert result >= when and sw.is_allowed_multi(candidates, result)
    if result > when:
        assert not sw.is_allowed_multi(candidates, result - TINY)
        for mark in minute_marks(when, result):
            assert not sw.is_allowed_multi(candidates, mark), mark


@settings(max_examples=200, deadline=None)
@given(
    policies(with_cap=True),
    st.lists(st.integers(0, 96 * 60), max_size=8),
    st.integers(0, 96 * 60),
)
def test_cap_next_allowed_is_the_first_allowed_instant(policy, sent_minutes, at):
    base = utc(2025, 6, 16)
    sent = [base + timedelta(minutes=m) for m in sent_minutes]
    when = base + timedelta(minutes=at)
    result = sw.cap_next_allowed(policy, sent, when)
    assert result >= when and sw.cap_allows(policy, sent, result)
    # the count only drops when a message leaves the window: check every
    # minute before the result (sent times are whole minutes)
    for mark in [when, *minute_marks(when, result)]:
        assert not sw.cap_allows(policy, sent, mark) or mark == result
    window = timedelta(hours=policy.cap_hours)
    in_window = [s for s in sent if result - window < s <= result]
    assert len(in_window) < policy.cap_count
