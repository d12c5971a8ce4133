# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send windows, public holidays and frequency caps.

The rules are explained, with their sources, in the compliance book
(``docs/compliance.md``); "book:" below names one of its sections.

Pure standard-library package (``datetime``, ``zoneinfo``): no Odoo import
and only relative imports between its modules, so it can be loaded straight
from its folder (tests do) and called from the models, which turn their data
rows into a ``Policy``.  One module per subject: ``public_holidays`` (rule sets
and Easter), ``policy`` (the ``Policy`` and its builder), ``windows`` (the
window engine), ``caps`` (rolling frequency caps), ``number_zones`` (zones and
French regions of a number), ``slots`` (send slots and the best hour);
everything public is re-exported here.

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
``FR_REGIONS`` / ``FR_FAMILY`` / ``policy_country(region)``
    The French regions (zone and holidays of each), the one definition of the
    French family that every caller uses; ``policy_country`` reads "FR" for
    each of them.
``fr_region_for_postcode`` / ``fr_regions_for_number`` / ``fr_holiday_rules``
    French holiday region (book: Public holidays) from a postcode, else from the number.
Shipped policies
    Not here: they are data (``data/sms_policy_data.xml``, the model
    ``sms.microfunnel.policy``), turned into a ``Policy`` by
    ``sms.microfunnel.policy._to_window_policy``.

Send slots (a funnel step's preferred hours, narrower than the legal window)
    ``SLOT_PRESETS`` ("b2b", "b2c_evening", "weekend"); ``slot_policy(preset,
    spans)`` and ``hour_slot(weekday, hour)`` build a slot ``Policy``;
    ``next_in_slot(candidates, slot, slot_tz, when_utc)`` is the first instant
    in the slot *and* the legal window; ``best_hour(cells, ...)`` picks the
    hour of the week with the best click/reply rate; ``local_weekday_hour``,
    ``local_to_utc`` and ``utc_to_local`` convert between UTC and a zone's clock.

All instants taken are aware ``datetime`` objects (a naive one raises
``ValueError``); all instants returned are aware UTC.
"""

from .caps import cap_allows, cap_next_allowed, next_send_time
from .number_zones import (
    FR_FAMILY,
    FR_REGIONS,
    NANP_AREA_CODES,
    FrRegion,
    fr_holiday_rules,
    fr_region_for_postcode,
    fr_regions_for_number,
    nanp_region,
    policy_country,
    tz_candidates,
    tz_for_number,
)
from .policy import WEEKDAYS, Policy, policy_from_dict, strictest
from .public_holidays import HOLIDAY_RULES, HolidayDef, easter_sunday, holidays
from .slots import (
    SLOT_PRESETS,
    best_hour,
    hour_slot,
    local_to_utc,
    local_weekday_hour,
    next_in_slot,
    slot_policy,
    utc_to_local,
)
from .windows import (
    DEFAULT_HORIZON_DAYS,
    allowed_until,
    is_allowed,
    is_allowed_multi,
    next_allowed,
    next_allowed_multi,
)

__all__ = [
    "DEFAULT_HORIZON_DAYS",
    "FR_FAMILY",
    "FR_REGIONS",
    "HOLIDAY_RULES",
    "NANP_AREA_CODES",
    "SLOT_PRESETS",
    "WEEKDAYS",
    "FrRegion",
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
    "local_to_utc",
    "local_weekday_hour",
    "nanp_region",
    "next_allowed",
    "next_allowed_multi",
    "next_in_slot",
    "next_send_time",
    "policy_country",
    "policy_from_dict",
    "slot_policy",
    "strictest",
    "tz_candidates",
    "tz_for_number",
    "utc_to_local",
]
