# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send windows, public holidays and frequency caps.

The rules are explained, with their sources, in the compliance book
(``docs/compliance.md``); "book:" below names one of its sections.

Pure standard-library module (``datetime``, ``zoneinfo``): no Odoo import and
no relative import, so it can be loaded straight from its file (tests do) and
called from the models, which turn their data rows into a ``Policy``.

Model
-----
A ``Policy`` says when a marketing message may reach a recipient, in the
recipient's **wall-clock** time: per weekday a list of half-open intervals
``[start, end)`` in minutes after local midnight (``end`` is exclusive, 1440
means midnight at the end of the day), plus closed local dates (explicit
``closed_dates`` and the public holidays of ``holiday_rules``), plus an
optional rolling cap (``cap_count`` messages per ``cap_hours`` hours).

An instant is allowed when its reading on the recipient's clock (local date
and time of day, IANA zone) falls in an interval of that weekday and the local
date is not closed.  Consequences across DST changes, by construction:

* spring forward: a local time in the gap is never read, so an interval that
  starts in the gap opens at the transition (e.g. 02:30 -> 03:00 Paris), and
  an interval that lies wholly in the gap does not open that day; no
  non-existent local time is ever returned;
* autumn fold: a time of day in the repeated hour is read twice, and is
  allowed both times when it is in an interval (a window 02:00-02:30 opens on
  both passes); an interval end is exclusive on each pass;
* windows are wall-clock: 08:00 stays 08:00 local after a DST change.

Public API
----------
``Policy`` / ``policy_from_dict(data)``
    The frozen policy, and its builder from plain data (the shipped defaults
    below, or a model's rows): weekday names or numbers, ``"HH:MM"`` strings
    or minutes, ISO dates.
``is_allowed(policy, when_utc, tz_name) -> bool``
``next_allowed(policy, when_utc, tz_name) -> datetime``
    The first allowed instant at or after ``when_utc`` (aware UTC, equal to
    ``when_utc`` when it is allowed).  ``ValueError`` when nothing is allowed
    within ``horizon_days`` (default 400).
``allowed_until(policy, when_utc, tz_name) -> datetime | None``
    The first instant at or after ``when_utc`` that is *not* allowed (the end
    of the current opening; ``when_utc`` itself when closed now); ``None``
    when the window never closes within the horizon.  Use it to bound the
    provider validity period (book: Time zones, Twilio ``ValidityPeriod``).
``is_allowed_multi`` / ``next_allowed_multi(candidates, when_utc)``
    The same for several ``(policy, tz_name)`` candidates at once: allowed
    only when every candidate allows (book: Time zones "several candidates ⇒
    intersection"), across different zones (+262 Réunion/Mayotte, a partner
    zone that differs from the number's zone, US area code vs address).
``strictest(policies) -> Policy``
    Intersection of policies read in **one** zone: intervals intersected per
    weekday, closed dates and holiday rules united, the stricter cap.
``cap_allows(policy, sent_times_utc, when_utc)`` /
``cap_next_allowed(policy, sent_times_utc, when_utc)``
    Rolling frequency cap; ``next_send_time`` combines window and cap.
``easter_sunday(year)`` / ``holidays(year, rules)``
    Gregorian Easter, and ``{date: name}`` for the holiday rules named (keys
    of ``HOLIDAY_RULES``).
``tz_candidates(e164)`` / ``tz_for_number(e164, default_tz=None)``
    Zones of a number: French overseas prefixes (book: Overseas), +33, and a partial
    North-American area-code table; ``nanp_region(e164)`` gives the US state
    or Canadian province of the area code.
``fr_region_for_postcode`` / ``fr_regions_for_number`` / ``fr_holiday_rules``
    French holiday region (book: Public holidays) from a postcode, else from the number.
Defaults (plain dicts, one per shipped policy, all in ``WINDOWS``)
    ``FRANCE_MARKETING`` ("FR"), ``FR_AF2M_2026``, ``FR_AF2M_2024``,
    ``FR_SUNDAY_10_18``, ``FR_CALLS_D223_9``, ``BELGIUM``, ``GERMANY``,
    ``SPAIN``, ``ITALY``, ``UNITED_KINGDOM``, ``US_FEDERAL``, ``US_FL``,
    ``US_OK``, ``US_MD`` (also in ``US_STRICT_STATES``), ``CANADA``;
    ``us_policy(*states)`` is the strictest of federal and those states.

Send slots (a funnel step's preferred hours, narrower than the legal window)
    ``SLOT_PRESETS`` ("b2b", "b2c_evening", "weekend"); ``slot_policy(preset,
    spans)`` and ``hour_slot(weekday, hour)`` build a slot ``Policy``;
    ``next_in_slot(candidates, slot, slot_tz, when_utc)`` is the first instant
    in the slot *and* the legal window; ``best_hour(cells, ...)`` picks the
    hour of the week with the best click/reply rate; ``local_weekday_hour``.

All instants taken are aware ``datetime`` objects (a naive one raises
``ValueError``); all instants returned are aware UTC.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "BELGIUM",
    "CANADA",
    "DEFAULT_HORIZON_DAYS",
    "FRANCE_MARKETING",
    "FR_AF2M_2024",
    "FR_AF2M_2026",
    "FR_CALLS_D223_9",
    "FR_REGION_HOLIDAY_RULES",
    "FR_REGION_ZONES",
    "FR_SUNDAY_10_18",
    "GERMANY",
    "HOLIDAY_RULES",
    "ITALY",
    "NANP_AREA_CODES",
    "SLOT_PRESETS",
    "SPAIN",
    "UNITED_KINGDOM",
    "US_CT",
    "US_FEDERAL",
    "US_FL",
    "US_MD",
    "US_NJ",
    "US_OK",
    "US_STRICT_STATES",
    "US_TX",
    "US_VA",
    "WEEKDAYS",
    "WINDOWS",
    "HolidayDef",
    "Policy",
    "allowed_until",
    "best_hour",
    "cap_allows",
    "cap_next_allowed",
    "easter_sunday",
    "fr_holiday_rules",
    "fr_region_for_postcode",
    "fr_regions_for_number",
    "holidays",
    "hour_slot",
    "is_allowed",
    "is_allowed_multi",
    "local_weekday_hour",
    "nanp_region",
    "next_allowed",
    "next_allowed_multi",
    "next_in_slot",
    "next_send_time",
    "policy_from_dict",
    "slot_policy",
    "strictest",
    "tz_candidates",
    "tz_for_number",
    "us_policy",
]

#: ``next_allowed`` gives up (``ValueError``) after this many days.
DEFAULT_HORIZON_DAYS = 400
#: Weekday names accepted in data, index = ``date.weekday()`` (Monday = 0).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 1440
_UTC = timezone.utc
# Offset changes are looked for at this step (then bisected to the second):
# no IANA zone changes its offset twice within an hour.
_PROBE = timedelta(hours=1)


# ---------------------------------------------------------------------------
# Holidays
# ---------------------------------------------------------------------------


class HolidayDef(NamedTuple):
    """One holiday of a rule set (a data row).

    ``kind`` and ``arg``:

    * ``"fixed"``: ``(month, day)``;
    * ``"easter"``: offset in days from Easter Sunday (Good Friday -2);
    * ``"nth"``: ``(month, weekday, n)``, the n-th weekday of the month
      (Monday = 0; ``n = -1`` is the last);
    * ``"before"``: ``(month, day, weekday)``, the last such weekday strictly
      before that day (Buß- und Bettag: Wednesday before 23 November).

    ``first_year``/``last_year`` bound the years it applies (inclusive),
    ``skip_years`` lists years it was moved (the replacement is its own row),
    ``substitute`` moves it to the next free weekday when it falls on a
    Saturday or Sunday (UK "substitute day").
    """

    name: str
    kind: str
    arg: object
    first_year: int | None = None
    last_year: int | None = None
    skip_years: tuple = ()
    substitute: bool = False


def _fixed(name, month, day, **kw):
    return HolidayDef(name, "fixed", (month, day), **kw)


def _easter(name, offset, **kw):
    return HolidayDef(name, "easter", offset, **kw)


def _once(name, day):
    """A one-off holiday on an ISO date."""
    d = date.fromisoformat(day)
    return HolidayDef(name, "fixed", (d.month, d.day), d.year, d.year)


# Abolition of slavery (décret 83-1003 as amended, book: Public holidays).
_ABOLITION = "Abolition de l'esclavage"

#: Holiday rule sets, by key.  A policy names the keys that apply; rules add
#: up (Strasbourg: ``("fr", "fr_alsace_moselle")``).  ``fr*`` rows are those
#: of the book (Public holidays).  The other countries' rows are not detailed
#: in the book (it only says "BE holidays", "federal + Land holidays"...):
#: they are the national calendars as published, kept conservative (a day
#: observed in only part of a Land or region closes the whole of it); verify
#: them yearly like the French rows.  Regional holidays not listed here (e.g.
#: Spanish autonomous communities, Augsburg's 8 August) go into a policy's
#: ``closed_dates``.
HOLIDAY_RULES = MappingProxyType(
    {
        # France, Code du travail L3133-1: the 11 national days.
        "fr": (
            _fixed("Jour de l'an", 1, 1),
            _easter("Lundi de Pâques", 1),
            _fixed("Fête du Travail", 5, 1),
            _fixed("Victoire 1945", 5, 8),
            _easter("Ascension", 39),
            _easter("Lundi de Pentecôte", 50),
            _fixed("Fête nationale", 7, 14),
            _fixed("Assomption", 8, 15),
            _fixed("Toussaint", 11, 1),
            _fixed("Armistice 1918", 11, 11),
            _fixed("Noël", 12, 25),
        ),
        # Départements 57, 67, 68 (L3134-13); Good Friday for the whole
        # départements (policy, book: Public holidays).
        "fr_alsace_moselle": (
            _easter("Vendredi saint", -2),
            _fixed("Saint-Étienne", 12, 26),
        ),
        "fr_yt": (_fixed(_ABOLITION, 4, 27),),  # Mayotte
        "fr_mq": (_fixed(_ABOLITION, 5, 22),),  # Martinique
        "fr_gp": (_fixed(_ABOLITION, 5, 27),),  # Guadeloupe
        # Saint-Martin: 28 May since 2018, 27 May before (verify yearly).
        "fr_mf": (
            _fixed(_ABOLITION, 5, 27, last_year=2017),
            _fixed(_ABOLITION, 5, 28, first_year=2018),
        ),
        "fr_gf": (_fixed(_ABOLITION, 6, 10),),  # Guyane
        "fr_bl": (_fixed(_ABOLITION, 10, 9),),  # Saint-Barthélemy
        "fr_re": (_fixed(_ABOLITION, 12, 20),),  # La Réunion
        # Belgium: the 10 legal public holidays.
        "be": (
            _fixed("Nouvel An", 1, 1),
            _easter("Lundi de Pâques", 1),
            _fixed("Fête du Travail", 5, 1),
            _easter("Ascension", 39),
            _easter("Lundi de Pentecôte", 50),
            _fixed("Fête nationale", 7, 21),
            _fixed("Assomption", 8, 15),
            _fixed("Toussaint", 11, 1),
            _fixed("Armistice", 11, 11),
            _fixed("Noël", 12, 25),
        ),
        # Germany: nationwide days; Land days below (``de_<land>``).
        "de": (
            _fixed("Neujahr", 1, 1),
            _easter("Karfreitag", -2),
            _easter("Ostermontag", 1),
            _fixed("Tag der Arbeit", 5, 1),
            _easter("Christi Himmelfahrt", 39),
            _easter("Pfingstmontag", 50),
            _fixed("Tag der Deutschen Einheit", 10, 3),
            _once("Reformationstag", "2017-10-31"),
            _fixed("1. Weihnachtstag", 12, 25),
            _fixed("2. Weihnachtstag", 12, 26),
        ),
        "de_bw": (
            _fixed("Heilige Drei Könige", 1, 6),
            _easter("Fronleichnam", 60),
            _fixed("Allerheiligen", 11, 1),
        ),
        "de_by": (
            _fixed("Heilige Drei Könige", 1, 6),
            _easter("Fronleichnam", 60),
            _fixed("Mariä Himmelfahrt", 8, 15),
            _fixed("Allerheiligen", 11, 1),
        ),
        "de_be": (
            _fixed("Internationaler Frauentag", 3, 8, first_year=2019),
            _once("Tag der Befreiung", "2020-05-08"),
            _once("Tag der Befreiung", "2025-05-08"),
            _once("Jahrestag des Volksaufstandes 1953", "2028-06-17"),
        ),
        "de_bb": (_fixed("Reformationstag", 10, 31),),
        "de_hb": (_fixed("Reformationstag", 10, 31, first_year=2018),),
        "de_hh": (_fixed("Reformationstag", 10, 31, first_year=2018),),
        "de_he": (_easter("Fronleichnam", 60),),
        "de_mv": (
            _fixed("Internationaler Frauentag", 3, 8, first_year=2023),
            _fixed("Reformationstag", 10, 31),
        ),
        "de_ni": (_fixed("Reformationstag", 10, 31, first_year=2018),),
        "de_nw": (_easter("Fronleichnam", 60), _fixed("Allerheiligen", 11, 1)),
        "de_rp": (_easter("Fronleichnam", 60), _fixed("Allerheiligen", 11, 1)),
        "de_sl": (
            _easter("Fronleichnam", 60),
            _fixed("Mariä Himmelfahrt", 8, 15),
            _fixed("Allerheiligen", 11, 1),
        ),
        "de_sn": (
            _easter("Fronleichnam", 60),  # some communes only
            _fixed("Reformationstag", 10, 31),
            HolidayDef("Buß- und Bettag", "before", (11, 23, 2)),
        ),
        "de_st": (
            _fixed("Heilige Drei Könige", 1, 6),
            _fixed("Reformationstag", 10, 31),
        ),
        "de_sh": (_fixed("Reformationstag", 10, 31, first_year=2018),),
        "de_th": (
            _easter("Fronleichnam", 60),  # some communes only
            _fixed("Weltkindertag", 9, 20, first_year=2019),
            _fixed("Reformationstag", 10, 31),
        ),
        # Spain: national days (a day a community moves or replaces is kept:
        # conservative); Holy Thursday is observed everywhere but Catalonia
        # (and some years Valencia).  Regional days: ``closed_dates``.
        "es": (
            _fixed("Año Nuevo", 1, 1),
            _fixed("Epifanía del Señor", 1, 6),
            _easter("Jueves Santo", -3),
            _easter("Viernes Santo", -2),
            _fixed("Fiesta del Trabajo", 5, 1),
            _fixed("Asunción de la Virgen", 8, 15),
            _fixed("Fiesta Nacional de España", 10, 12),
            _fixed("Todos los Santos", 11, 1),
            _fixed("Día de la Constitución", 12, 6),
            _fixed("Inmaculada Concepción", 12, 8),
            _fixed("Natividad del Señor", 12, 25),
        ),
        # Italy: national days; San Francesco restored from 2026 (law
        # 151/2025).  Patron saints' days: ``closed_dates``.
        "it": (
            _fixed("Capodanno", 1, 1),
            _fixed("Epifania", 1, 6),
            _easter("Lunedì dell'Angelo", 1),
            _fixed("Festa della Liberazione", 4, 25),
            _fixed("Festa del Lavoro", 5, 1),
            _fixed("Festa della Repubblica", 6, 2),
            _fixed("Ferragosto", 8, 15),
            _fixed("San Francesco d'Assisi", 10, 4, first_year=2026),
            _fixed("Ognissanti", 11, 1),
            _fixed("Immacolata Concezione", 12, 8),
            _fixed("Natale", 12, 25),
            _fixed("Santo Stefano", 12, 26),
        ),
        # United Kingdom, England and Wales bank holidays; Scotland and
        # Northern Ireland add ``uk_sct`` / ``uk_nir``.
        "uk": (
            _fixed("New Year's Day", 1, 1, substitute=True),
            _easter("Good Friday", -2),
            _easter("Easter Monday", 1),
            HolidayDef(
                "Early May bank holiday", "nth", (5, 0, 1), skip_years=(1995, 2020)
            ),
            _once("Early May bank holiday", "1995-05-08"),
            _once("Early May bank holiday", "2020-05-08"),
            HolidayDef(
                "Spring bank holiday", "nth", (5, 0, -1), skip_years=(2002, 2012, 2022)
            ),
            _once("Spring bank holiday", "2002-06-04"),
            _once("Golden Jubilee", "2002-06-03"),
            _once("Spring bank holiday", "2012-06-04"),
            _once("Diamond Jubilee", "2012-06-05"),
            _once("Spring bank holiday", "2022-06-02"),
            _once("Platinum Jubilee", "2022-06-03"),
            HolidayDef("Summer bank holiday", "nth", (8, 0, -1)),
            _fixed("Christmas Day", 12, 25, substitute=True),
            _fixed("Boxing Day", 12, 26, substitute=True),
            _once("Millennium", "1999-12-31"),
            _once("Royal wedding", "2011-04-29"),
            _once("State funeral of Queen Elizabeth II", "2022-09-19"),
            _once("Coronation of King Charles III", "2023-05-08"),
        ),
        "uk_sct": (
            _fixed("2nd January", 1, 2, substitute=True),
            HolidayDef("Summer bank holiday (Scotland)", "nth", (8, 0, 1)),
            _fixed("St Andrew's Day", 11, 30, substitute=True),
        ),
        "uk_nir": (
            _fixed("St Patrick's Day", 3, 17, substitute=True),
            _fixed("Battle of the Boyne", 7, 12, substitute=True),
        ),
    }
)


def easter_sunday(year):
    """Gregorian Easter Sunday of ``year`` (anonymous Gregorian computus)."""
    if not isinstance(year, int) or year < 1583:
        raise ValueError(f"Gregorian Easter is defined from 1583, not {year!r}")
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _rule_keys(rules):
    """Normalise ``rules`` (one key or an iterable of keys) to a tuple."""
    if rules is None:
        return ()
    if isinstance(rules, str):
        rules = (rules,)
    keys = tuple(dict.fromkeys(str(r).strip().lower() for r in rules))
    unknown = [k for k in keys if k not in HOLIDAY_RULES]
    if unknown:
        raise ValueError(f"unknown holiday rule(s): {', '.join(unknown)}")
    return keys


def _holiday_date(row, year):
    if row.first_year is not None and year < row.first_year:
        return None
    if row.last_year is not None and year > row.last_year:
        return None
    if year in row.skip_years:
        return None
    if row.kind == "fixed":
        return date(year, *row.arg)
    if row.kind == "easter":
        return easter_sunday(year) + timedelta(days=row.arg)
    if row.kind == "nth":
        month, weekday, n = row.arg
        if n > 0:
            first = date(year, month, 1)
            return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
        nxt = date(year + month // 12, month % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - weekday) % 7 + 7 * (-n - 1))
    if row.kind == "before":
        month, day, weekday = row.arg
        limit = date(year, month, day)
        return limit - timedelta(days=(limit.weekday() - weekday - 1) % 7 + 1)
    raise ValueError(f"unknown holiday kind {row.kind!r}")


@lru_cache(maxsize=1024)
def _holidays(year, keys):
    found = {}
    movable = []
    for key in keys:
        for row in HOLIDAY_RULES[key]:
            day = _holiday_date(row, year)
            if day is None:
                continue
            names = found.setdefault(day, [])
            if row.name not in names:
                names.append(row.name)
            if row.substitute and day.weekday() >= 5:
                movable.append((day, row.name))
    for day, name in sorted(movable):
        sub = day
        while sub.weekday() >= 5 or sub in found:
            sub += timedelta(days=1)
        found[sub] = [f"{name} (substitute day)"]
    return MappingProxyType({d: " / ".join(n) for d, n in sorted(found.items())})


def holidays(year, rules):
    """Public holidays of ``year`` for the rule keys ``rules``: ``{date: name}``.

    ``rules`` is one key or an iterable of keys of ``HOLIDAY_RULES``; the days
    of all of them are united (a day in several rules gets the names joined
    with " / ").  Unknown keys raise ``ValueError``.
    """
    return dict(_holidays(int(year), _rule_keys(rules)))


# ---------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Window engine
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Frequency caps
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Time zones and regions of a number
# ---------------------------------------------------------------------------

#: Zone of each French holiday region (book: Overseas); "FR-AM" is Alsace-Moselle.
FR_REGION_ZONES = MappingProxyType(
    {
        "FR": "Europe/Paris",
        "FR-AM": "Europe/Paris",
        "GP": "America/Guadeloupe",
        "MF": "America/Marigot",
        "BL": "America/St_Barthelemy",
        "MQ": "America/Martinique",
        "GF": "America/Cayenne",
        "RE": "Indian/Reunion",
        "YT": "Indian/Mayotte",
        "PM": "America/Miquelon",
        "NC": "Pacific/Noumea",
        "PF": "Pacific/Tahiti",
        "WF": "Pacific/Wallis",
    }
)

#: Holiday rules of each French region (book: Public holidays).  New Caledonia, French
#: Polynesia and Wallis-et-Futuna have their own labour codes and no rows yet
#: (empty: supply ``closed_dates``); Saint-Pierre-et-Miquelon has the
#: national days only.
FR_REGION_HOLIDAY_RULES = MappingProxyType(
    {
        "FR": ("fr",),
        "FR-AM": ("fr", "fr_alsace_moselle"),
        "GP": ("fr", "fr_gp"),
        "MF": ("fr", "fr_mf"),
        "BL": ("fr", "fr_bl"),
        "MQ": ("fr", "fr_mq"),
        "GF": ("fr", "fr_gf"),
        "RE": ("fr", "fr_re"),
        "YT": ("fr", "fr_yt"),
        "PM": ("fr",),
        "NC": (),
        "PF": (),
        "WF": (),
    }
)

# French numbers (book: Overseas): (E.164 prefix, zones, regions), longest prefix
# first.  +262: Mayotte is 639 (mobiles, book: Overseas) and 269 (fixed lines, ARCEP
# plan); Réunion fixed lines are 262/263; everything else under +262,
# Réunion mobiles 692/693 included, is reported both ways by phonenumbers, so
# it is ambiguous (book: Overseas: apply the strictest).  +590 covers Guadeloupe,
# Saint-Martin and Saint-Barthélemy (one offset, UTC-4).  +689 is read as
# Pacific/Tahiti: a number does not tell the Marquesas (-9:30) or Gambier (-9).
_FR_PREFIXES = (
    ("+262639", ("Indian/Mayotte",), ("YT",)),
    ("+262269", ("Indian/Mayotte",), ("YT",)),
    ("+262262", ("Indian/Reunion",), ("RE",)),
    ("+262263", ("Indian/Reunion",), ("RE",)),
    ("+262", ("Indian/Reunion", "Indian/Mayotte"), ("RE", "YT")),
    ("+590", ("America/Guadeloupe",), ("GP", "MF", "BL")),
    ("+594", ("America/Cayenne",), ("GF",)),
    ("+596", ("America/Martinique",), ("MQ",)),
    ("+508", ("America/Miquelon",), ("PM",)),
    ("+687", ("Pacific/Noumea",), ("NC",)),
    ("+689", ("Pacific/Tahiti",), ("PF",)),
    ("+681", ("Pacific/Wallis",), ("WF",)),
    ("+33", ("Europe/Paris",), ("FR",)),
)

_NY, _CHI, _DEN, _LA = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)

#: North-American area codes -> (country, state/province, zones), first zone
#: the most likely.  **Partial**: the strict states of book: Send windows (FL, OK, MD)
#: fully, plus a handful of large cities; any other area code is unknown
#: (``tz_candidates`` returns ``()``, the caller falls back to the address or
#: the company zone).  An area code is where the number was issued, not
#: where its holder lives: book: Time zones intersects it with the address.  Area codes
#: spanning two zones list both (850: Pensacola CT / Tallahassee ET).
NANP_AREA_CODES = MappingProxyType(
    {
        # Florida (Fla. Stat. 501.616): every area code.
        **dict.fromkeys(
            (
                "239",
                "305",
                "321",
                "324",
                "352",
                "386",
                "407",
                "561",
                "645",
                "656",
                "727",
                "728",
                "754",
                "772",
                "786",
                "813",
                "863",
                "904",
                "941",
                "954",
            ),
            ("US", "FL", (_NY,)),
        ),
        # 850 and its overlay 448 span Central and Eastern time; phonenumbers
        # puts 689 (the Orlando overlay, Eastern) in Central: both, strictest.
        **dict.fromkeys(("448", "850"), ("US", "FL", (_CHI, _NY))),
        "689": ("US", "FL", (_NY, _CHI)),
        # Oklahoma
        **dict.fromkeys(("405", "539", "572", "580", "918"), ("US", "OK", (_CHI,))),
        # Maryland
        **dict.fromkeys(
            ("227", "240", "301", "410", "443", "667"), ("US", "MD", (_NY,))
        ),
        # New York City
        **dict.fromkeys(
            ("212", "332", "347", "646", "718", "917", "929"), ("US", "NY", (_NY,))
        ),
        "202": ("US", "DC", (_NY,)),
        "617": ("US", "MA", (_NY,)),
        "404": ("US", "GA", (_NY,)),
        **dict.fromkeys(("312", "773", "872"), ("US", "IL", (_CHI,))),
        **dict.fromkeys(("214", "713", "512"), ("US", "TX", (_CHI,))),
        "303": ("US", "CO", (_DEN,)),
        "602": ("US", "AZ", ("America/Phoenix",)),
        **dict.fromkeys(("213", "310", "415", "628"), ("US", "CA", (_LA,))),
        "206": ("US", "WA", (_LA,)),
        "808": ("US", "HI", ("Pacific/Honolulu",)),
        "907": ("US", "AK", ("America/Anchorage", "America/Adak")),
        # Canada
        **dict.fromkeys(("416", "437", "647"), ("CA", "ON", ("America/Toronto",))),
        **dict.fromkeys(("438", "514"), ("CA", "QC", ("America/Toronto",))),
        **dict.fromkeys(("236", "604", "778"), ("CA", "BC", ("America/Vancouver",))),
        **dict.fromkeys(("403", "587", "780"), ("CA", "AB", ("America/Edmonton",))),
        "709": ("CA", "NL", ("America/St_Johns", "America/Halifax")),  # Labrador
    }
)


def _e164(number):
    """``+`` and digits of ``number`` (``00`` read as ``+``), or ``""``."""
    if not isinstance(number, str):
        return ""
    compact = re.sub(r"[\s.\-()/]", "", number)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not re.fullmatch(r"\+[1-9]\d{3,14}", compact):
        return ""
    return compact


def _fr_entry(number):
    compact = _e164(number)
    for prefix, zones, regions in _FR_PREFIXES:
        if compact.startswith(prefix):
            return zones, regions
    return None


def nanp_region(e164):
    """``(country, state_or_province)`` of a +1 number's area code, or None.

    ``("US", "FL")``, ``("CA", "QC")``...; None for an area code missing from
    the partial ``NANP_AREA_CODES`` and for non-+1 numbers.
    """
    compact = _e164(e164)
    if not compact.startswith("+1") or len(compact) != 12:
        return None
    entry = NANP_AREA_CODES.get(compact[2:5])
    return entry[:2] if entry else None


def tz_candidates(e164):
    """Every IANA zone the holder of ``e164`` may be in; ``()`` when unknown.

    Several zones mean the number alone cannot tell (+262 outside the known
    blocks, US area code 850): apply them all (``next_allowed_multi``).
    """
    compact = _e164(e164)
    if compact.startswith("+1"):
        entry = NANP_AREA_CODES.get(compact[2:5]) if len(compact) == 12 else None
        return entry[2] if entry else ()
    entry = _fr_entry(compact)
    return entry[0] if entry else ()


def tz_for_number(e164, default_tz=None):
    """The most likely zone of ``e164``, else ``default_tz`` (None by default).

    France metropolitan +33 -> Europe/Paris; overseas prefixes per book: Overseas; +1
    from the partial area-code table.  For an ambiguous number this is the
    first of ``tz_candidates`` (+262 692 -> Indian/Reunion): compliance
    checks should use all candidates.
    """
    zones = tz_candidates(e164)
    return zones[0] if zones else default_tz


_POSTCODE = re.compile(r"^\d{5}$")


def fr_region_for_postcode(postcode):
    """French holiday region of a postcode (book: Public holidays), or None.

    "FR-AM" for Alsace-Moselle (57, 67, 68), "GP", "MQ", "GF", "RE", "YT",
    "BL" (97133), "MF" (97150), "PM" (975), "WF" (986), "PF" (987), "NC"
    (988), else "FR".  Monaco (980xx) and malformed codes give None.
    """
    code = re.sub(r"\s", "", str(postcode or ""))
    if not _POSTCODE.match(code) or code.startswith(("00", "980")):
        return None
    if code in ("97133", "97150"):
        return "BL" if code == "97133" else "MF"
    overseas = {
        "971": "GP",
        "972": "MQ",
        "973": "GF",
        "974": "RE",
        "975": "PM",
        "976": "YT",
        "986": "WF",
        "987": "PF",
        "988": "NC",
    }
    if code[:3] in overseas:
        return overseas[code[:3]]
    if code.startswith(("97", "98")):
        return None
    return "FR-AM" if code[:2] in ("57", "67", "68") else "FR"


def fr_regions_for_number(e164):
    """French holiday regions a number may belong to; ``()`` when not French.

    +33 gives ("FR",) (Alsace-Moselle cannot be told from a number); +590
    gives ("GP", "MF", "BL"); ambiguous +262 gives ("RE", "YT").
    """
    entry = _fr_entry(e164)
    return entry[1] if entry else ()


def fr_holiday_rules(postcode=None, e164=None):
    """Holiday rule keys for a French recipient (book: Public holidays).

    From the postcode when it is French, else from the number (united over
    the regions it may belong to), else the national days ``("fr",)``.
    """
    region = fr_region_for_postcode(postcode) if postcode else None
    regions = (region,) if region else fr_regions_for_number(e164) or ("FR",)
    keys = (key for r in regions for key in FR_REGION_HOLIDAY_RULES[r])
    return tuple(dict.fromkeys(keys))


# ---------------------------------------------------------------------------
# Shipped defaults (book: Send windows), plain data
# ---------------------------------------------------------------------------


def _days(names, *spans):
    """``{weekday: spans}`` for weekday names given as "mon-sat" or "sat,sun"."""
    if "-" in names:
        first, last = (WEEKDAYS.index(n) for n in names.split("-"))
        keys = WEEKDAYS[first : last + 1]
    else:
        keys = tuple(names.split(","))
    return {key: list(spans) for key in keys}


#: FR (default): Mon-Sat 08:00-20:00 Europe/Paris (overseas: their own zone,
#: book: Overseas), no Sundays, no French public holidays.
FRANCE_MARKETING = {
    "key": "FR",
    "name": "France, marketing (default)",
    "intervals": _days("mon-sat", ("08:00", "20:00")),
    "holiday_rules": ("fr",),
    "cap_count": None,
    "cap_hours": None,
    "zones": ("Europe/Paris",),
    "basis": "policy: no statutory SMS window; carrier rules and af2m",
    "source": "practice; CPCE L34-5 (consent); Code du travail L3133-1",
}
#: FR-af2m-2026 (switch): the recommended form, Mon-Sat 08:00-21:30, Sundays
#: and holidays excluded (the charter only "tolerates" them).
FR_AF2M_2026 = {
    **FRANCE_MARKETING,
    "key": "FR-af2m-2026",
    "name": "France, af2m charter 2026",
    "intervals": _days("mon-sat", ("08:00", "21:30")),
    "basis": "industry: af2m charter 2026",
    "source": "af2m, Charte Business Messaging 2026",
    "valid_from": "2026-03-01",
}
#: FR-af2m-2024 (historical, 1 Sep 2024 until the 2026 charter): "working
#: days" read as Mon-Fri without public holidays, 08:00-22:00.
FR_AF2M_2024 = {
    **FRANCE_MARKETING,
    "key": "FR-af2m-2024",
    "name": "France, af2m charter 2024 (historical)",
    "intervals": _days("mon-fri", ("08:00", "22:00")),
    "basis": "industry: af2m charter 2024",
    "source": "af2m, Charte Business Messaging 2024",
    "valid_from": "2024-09-01",
    "valid_to": "2026-02-28",
}
#: FR-sunday-10-18 (switch, off): Sunday 10:00-18:00 only.  No legal or
#: industry source; enabling it (merging its Sunday into FR) is a logged
#: policy choice.
FR_SUNDAY_10_18 = {
    "key": "FR-sunday-10-18",
    "name": "France, Sunday 10:00-18:00 (no source, off)",
    "intervals": _days("sun", ("10:00", "18:00")),
    "holiday_rules": ("fr",),
    "zones": ("Europe/Paris",),
    "enabled": False,
    "basis": "no legal or industry source found",
    "source": "none (option of the product brief)",
}
#: FR-calls-D223-9 (optional, law for **calls** only): Mon-Fri 10-13 and
#: 14-20, no holidays, 4 attempts per 30 days (the 60-day pause after a
#: refusal is the caller's to apply).
FR_CALLS_D223_9 = {
    "key": "FR-calls-D223-9",
    "name": "France, telephone canvassing (décret 2022-1313)",
    "intervals": _days("mon-fri", ("10:00", "13:00"), ("14:00", "20:00")),
    "holiday_rules": ("fr",),
    "cap_count": 4,
    "cap_hours": 30 * 24,
    "zones": ("Europe/Paris",),
    "basis": "law for calls only (D.223-9)",
    "source": "Code de la consommation D223-9 (décret 2022-1313)",
}
BELGIUM = {
    "key": "BE",
    "name": "Belgium",
    "intervals": _days("mon-sat", ("08:00", "20:00")),
    "holiday_rules": ("be",),
    "zones": ("Europe/Brussels",),
    "basis": "policy",
    "source": "practice; CDE XII.13 (consent)",
}
#: DE: add the recipient's Land rules (``de_by``...) to ``holiday_rules``.
GERMANY = {
    "key": "DE",
    "name": "Germany",
    "intervals": _days("mon-sat", ("08:00", "20:00")),
    "holiday_rules": ("de",),
    "zones": ("Europe/Berlin",),
    "basis": "policy",
    "source": "practice; UWG 7(2) (consent)",
}
SPAIN = {
    "key": "ES",
    "name": "Spain",
    "intervals": _days("mon-fri", ("09:00", "21:00")),
    "holiday_rules": ("es",),
    "zones": ("Europe/Madrid", "Atlantic/Canary"),
    "basis": "law for calls (TRLGDCU art. 96.2), applied to SMS",
    "source": "TRLGDCU art. 96.2",
}
ITALY = {
    "key": "IT",
    "name": "Italy",
    "intervals": _days("mon-sat", ("09:00", "20:00")),
    "holiday_rules": ("it",),
    "zones": ("Europe/Rome",),
    "basis": "policy",
    "source": "practice; Codice privacy art. 130 (consent)",
}
#: UK: England and Wales bank holidays; add ``uk_sct``/``uk_nir`` there.
UNITED_KINGDOM = {
    "key": "UK",
    "name": "United Kingdom",
    "intervals": _days("mon-sat", ("08:00", "20:00")),
    "holiday_rules": ("uk",),
    "zones": ("Europe/London",),
    "basis": "policy (PECR sets no hours)",
    "source": "practice; PECR reg. 22 (consent)",
}
#: US federal: 08:00-21:00 every day in the recipient's zone.
US_FEDERAL = {
    "key": "US",
    "name": "United States, federal (TCPA)",
    "intervals": _days("mon-sun", ("08:00", "21:00")),
    "basis": "law, 47 CFR 64.1200(c)(1)",
    "source": "47 CFR 64.1200(c)(1)",
}
#: US-FL: 08:00-20:00 daily, 3 messages per rolling 24 h on the same subject
#: (Fla. Stat. 501.616(6)(a)-(b)); the gate counts per funnel or mailing.
US_FL = {
    "key": "US-FL",
    "name": "United States, Florida",
    "intervals": _days("mon-sun", ("08:00", "20:00")),
    "cap_count": 3,
    "cap_hours": 24,
    "cap_scope": "global",
    "basis": "law, Fla. Stat. 501.616(6) (CS for SB 1120, 2021)",
    "source": "Fla. Stat. 501.616(6)(a) hours, (6)(b) 3 per 24 h, same subject",
}
US_OK = {
    **US_FL,
    "key": "US-OK",
    "name": "United States, Oklahoma",
    "basis": "law, Oklahoma Telephone Solicitation Act of 2022",
    "source": "15 O.S. 775C.4",
}
US_MD = {
    **US_FL,
    "key": "US-MD",
    "name": "United States, Maryland",
    "basis": "law, Stop the Spam Calls Act of 2023 (from 1 Jan 2024)",
    "source": "Md. Code, Com. Law 14-4501 ff.",
    "valid_from": "2024-01-01",
}
#: US-TX: Mon-Sat 09:00-21:00, Sunday 12:00-21:00 (texts since SB 140).
US_TX = {
    "key": "US-TX",
    "name": "United States, Texas",
    "intervals": {
        **_days("mon-sat", ("09:00", "21:00")),
        **_days("sun", ("12:00", "21:00")),
    },
    "basis": "law, Tex. Bus. & Com. Code 301.051 (SB 140, from 1 Sep 2025)",
    "source": "Texas SB 140 (2025)",
    "valid_from": "2025-09-01",
}
#: US-VA: 08:00-21:00 daily, lifted by prior consent (Va. Code 59.1-511).
US_VA = {
    "key": "US-VA",
    "name": "United States, Virginia",
    "intervals": _days("mon-sun", ("08:00", "21:00")),
    "basis": "law, Va. Code 59.1-511 (prior consent lifts it)",
    "source": "Virginia Telephone Privacy Protection Act",
}
#: US-CT: 09:00-20:00 daily (Conn. Gen. Stat. 42-288a, PA 23-98).
US_CT = {
    "key": "US-CT",
    "name": "United States, Connecticut",
    "intervals": _days("mon-sun", ("09:00", "20:00")),
    "basis": "law, Conn. Gen. Stat. 42-288a (from 1 Oct 2023)",
    "source": "Public Act 23-98",
    "valid_from": "2023-10-01",
}
#: US-NJ: 08:00-21:00 daily (N.J.S.A. 56:8-128); no cap found in the statute.
US_NJ = {
    "key": "US-NJ",
    "name": "United States, New Jersey",
    "intervals": _days("mon-sun", ("08:00", "21:00")),
    "basis": "law, N.J.S.A. 56:8-128",
    "source": "P.L.2003, c.76",
}
#: State rows by state code (book: Send windows); other states: federal only.
#: Virginia is left out: prior consent lifts its window, and marketing SMS
#: only reach confirmed consents.
US_STRICT_STATES = {
    "FL": US_FL,
    "OK": US_OK,
    "MD": US_MD,
    "TX": US_TX,
    "CT": US_CT,
    "NJ": US_NJ,
}
#: CA: Mon-Fri 09:00-21:30, Sat-Sun 10:00-18:00: the CRTC telemarketing
#: window kept as a practice (CASL has no time-of-day rule).
CANADA = {
    "key": "CA",
    "name": "Canada",
    "intervals": {
        **_days("mon-fri", ("09:00", "21:30")),
        **_days("sat,sun", ("10:00", "18:00")),
    },
    "basis": "policy: CASL sets no hours; CRTC telemarketing window as practice",
    "source": "CRTC Unsolicited Telecommunications Rules, Part III",
}

#: Every shipped row by its rule ID (book: Send windows).
WINDOWS = {
    row["key"]: row
    for row in (
        FRANCE_MARKETING,
        FR_AF2M_2026,
        FR_AF2M_2024,
        FR_SUNDAY_10_18,
        FR_CALLS_D223_9,
        BELGIUM,
        GERMANY,
        SPAIN,
        ITALY,
        UNITED_KINGDOM,
        US_FEDERAL,
        US_FL,
        US_OK,
        US_MD,
        US_TX,
        US_VA,
        US_CT,
        US_NJ,
        CANADA,
    )
}


def us_policy(*states):
    """Strictest of the US federal window and the rows of ``states``.

    ``us_policy("FL")`` for an area code in Florida; pass the area-code state
    and the address state together (book: Time zones).  Unknown or ``None`` states add
    nothing.
    """
    rows = [US_FEDERAL]
    rows += [
        US_STRICT_STATES[s.upper()]
        for s in states
        if s and s.upper() in US_STRICT_STATES
    ]
    return strictest(rows)


# ---------------------------------------------------------------------------
# Send slots: a funnel step's preferred hours, and the best hour of the week
# ---------------------------------------------------------------------------

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
    local = _as_utc(when_utc).astimezone(_zone(tz_name))
    return local.weekday(), local.hour


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
