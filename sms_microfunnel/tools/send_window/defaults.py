# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Shipped defaults (book: Send windows), plain data."""

from .policy import _days, strictest

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
