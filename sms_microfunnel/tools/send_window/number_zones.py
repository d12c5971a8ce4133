# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Time zones and regions of a phone number, French holiday regions."""

import re
from types import MappingProxyType
from typing import NamedTuple


class FrRegion(NamedTuple):
    """A French holiday region: its time zone and its holiday rule keys."""

    zone: str
    holiday_rules: tuple


#: The French regions (book: Overseas, Public holidays), the one definition
#: of the French family: metropolitan France ("FR"; "FR-AM" is
#: Alsace-Moselle) and the overseas regions, by ISO code.  They share the
#: French marketing policy, each in its own zone with its own holidays.  New
#: Caledonia, French Polynesia and Wallis-et-Futuna have their own labour
#: codes and no holiday rows yet (empty: supply ``closed_dates``);
#: Saint-Pierre-et-Miquelon has the national days only.
FR_REGIONS = MappingProxyType(
    {
        "FR": FrRegion("Europe/Paris", ("fr",)),
        "FR-AM": FrRegion("Europe/Paris", ("fr", "fr_alsace_moselle")),
        "GP": FrRegion("America/Guadeloupe", ("fr", "fr_gp")),
        "MF": FrRegion("America/Marigot", ("fr", "fr_mf")),
        "BL": FrRegion("America/St_Barthelemy", ("fr", "fr_bl")),
        "MQ": FrRegion("America/Martinique", ("fr", "fr_mq")),
        "GF": FrRegion("America/Cayenne", ("fr", "fr_gf")),
        "RE": FrRegion("Indian/Reunion", ("fr", "fr_re")),
        "YT": FrRegion("Indian/Mayotte", ("fr", "fr_yt")),
        "PM": FrRegion("America/Miquelon", ("fr",)),
        "NC": FrRegion("Pacific/Noumea", ()),
        "PF": FrRegion("Pacific/Tahiti", ()),
        "WF": FrRegion("Pacific/Wallis", ()),
    }
)
#: ISO country codes (phone or address regions) under the French policy.
FR_FAMILY = frozenset(code for code in FR_REGIONS if code != "FR-AM")


def policy_country(region):
    """The country whose policies apply to the ISO ``region`` of a number or
    an address: "FR" for every region of the French family, else ``region``."""
    return "FR" if region in FR_FAMILY else region


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
    keys = (key for r in regions for key in FR_REGIONS[r].holiday_rules)
    return tuple(dict.fromkeys(keys))
