# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Public holidays: the rule sets by key, Easter, and the closed days of a year.

Pure standard library (see the package docstring).
"""

from datetime import date, timedelta
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple


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
