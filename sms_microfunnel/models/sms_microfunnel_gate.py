# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The compliance gate: the one place that answers "may this SMS go now?".

Pre-flight, dispatch and dry-run call ``_evaluate`` (or its wrappers
``_evaluate_one`` and ``_evaluate_traces``).  It works on a whole batch with a
constant number of queries, whatever its size:

1. number: missing, invalid (not sanitisable), or a duplicate of a number seen
   earlier in the batch;
2. consent (**marketing only**, compliance book: "Consent"), from the status table
   (``sms.microfunnel.consent._get_states``), where ``phone.blacklist`` and the
   suppression list win: opted out, pending double opt-in, unproven, none;
3. send window of the recipient's policies in the recipient's local time;
4. frequency cap (marketing only): marketing SMS already sent to the number in
   the rolling period (``_recent_marketing_sends``); the policies' cap and the
   contact's own frequency preference (preferences page, e.g. at most one a
   week: ``sms.microfunnel.consent._frequency_caps``), the stricter wins.

Transactional messages (contract basis) need a valid number only: no
consent, no blacklist (Odoo's ``phone.blacklist`` is the marketing opt-out
list; a contract message such as a delivery notice still goes), no cap, and
no window unless a *transactional* policy exists for the recipient's country.

Each decision is a dict::

    {"key": record id or input number, "res_id": record id or False,
     "number": E.164 or False, "action": "allow" | "defer" | "block",
     "reason": False | a DEFER_REASONS / BLOCK_REASONS key,
     "until": naive UTC datetime (defer) or False,
     "window_closes": naive UTC end of the current opening (allow) or False,
     "tz": first zone applied or False, "tz_names": all zones applied,
     "policy": names of the policies applied,
     "rule": id of the rule that allowed, deferred or blocked (the policy
             whose window is closed, whose cap is reached, US-FCC-REVOKE-ALL...),
     "rule_source": that rule with its source (title, article, address),
     "candidates": the (send_window.Policy, zone) pairs of the window}

Caps count per policy: a policy's cap counts every marketing SMS to the
number (scope "global") or only those of the same subject (scope "subject":
the same funnel or mailing, the consent scope of the evaluation).

Time zone of a recipient, first that answers: the contact's ``tz``; a French
overseas postcode of the address; the number (French overseas prefixes, the
US/Canadian area code, several zones when ambiguous); the zones of the
country's policy; the company's zone.  Several zones: the window must be open
in every one of them (compliance book ``docs/compliance.md``, "Send windows").

Policies of a recipient: the country comes from the number (French overseas
numbers use the French policy, with their own holidays and zone), plus, for
+1 numbers, the state of the area code (policies' ``area_codes``, else the
engine's table) and the address state: the strictest of all applies.  A number
from a country without a marketing policy gets the company country's policy
(conservative); without a transactional policy, transactional SMS go any time.
"""

import dataclasses
import logging
from datetime import timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from odoo import api, fields, models
from odoo.tools import SQL

from ..tools import send_window, sql_array

try:
    import phonenumbers
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
    from phonenumbers import timezone as phone_timezone
except ImportError:  # declared in the manifest; the gate degrades gracefully
    phonenumbers = None
    COUNTRY_CODE_TO_REGION_CODE = {}
    phone_timezone = None

_logger = logging.getLogger(__name__)

ACTIONS = [("allow", "Sendable now"), ("defer", "Deferred"), ("block", "Blocked")]
DEFER_REASONS = [
    ("window_closed", "Send window closed"),
    ("frequency_cap", "Frequency cap reached"),
]
BLOCK_REASONS = [
    ("no_number", "No number"),
    ("invalid_number", "Invalid number"),
    ("duplicate", "Duplicate number in the audience"),
    ("opted_out", "Opted out / blacklisted"),
    ("pending_doi", "Double opt-in pending"),
    ("unproven_consent", "Consent without proof"),
    ("no_consent", "No consent"),
    ("no_window", "No send window within a year"),
]
# consent status -> block reason (confirmed: no block)
CONSENT_BLOCKS = {
    "withdrawn": "opted_out",
    "pending": "pending_doi",
    "unproven": "unproven_consent",
    "none": "no_consent",
    "expired": "no_consent",
}
# trace statuses that did not reach (and will not reach) the recipient
FAILED_TRACE_STATUSES = ("error", "bounce", "cancel")
_UTC = timezone.utc


@lru_cache(maxsize=512)
def _valid_zone(name):
    if not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@lru_cache(maxsize=4096)
def _region_of_prefix(prefix):
    """Main region (ISO code) of an E.164 prefix: "+33" or "+1NPA"."""
    if phonenumbers is None:
        return None
    if prefix.startswith("+1"):
        # the area code tells the NANP country (US, CA, Caribbean)
        try:
            parsed = phonenumbers.parse(prefix + "5550123")
        except phonenumbers.NumberParseException:
            return "US"
        return phonenumbers.region_code_for_number(parsed) or "US"
    regions = COUNTRY_CODE_TO_REGION_CODE.get(int(prefix[1:]))
    return regions[0] if regions else None


def number_region(e164):
    """ISO region of an E.164 number from its calling code (no parsing)."""
    if not e164 or not e164.startswith("+"):
        return None
    if e164.startswith("+1"):
        return _region_of_prefix(e164[:5]) if len(e164) >= 5 else "US"
    for size in (1, 2, 3):
        code = e164[1 : 1 + size]
        if code.isdigit() and int(code) in COUNTRY_CODE_TO_REGION_CODE:
            return _region_of_prefix("+" + code)
    return None


def _aware(value):
    """Aware UTC datetime from a naive (Odoo: UTC) or aware one."""
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


def _naive(value):
    return value.astimezone(_UTC).replace(tzinfo=None) if value else False


def _rules_profile(recipient):
    """What a recipient's rules and zones depend on: recipients of the same
    profile (7-character number prefix, which covers every table of the
    engine, number length, zone and address) get the same ones."""
    number = recipient.number or ""
    return (
        number[:7],
        len(number),
        recipient.tz,
        recipient.country,
        recipient.state,
        recipient.zip,
    )


class _Recipient:
    """One recipient of a batch (plain object: a batch may hold 100,000)."""

    __slots__ = (
        "country",
        "key",
        "number",
        "raw",
        "res_id",
        "scope",
        "state",
        "tz",
        "zip",
    )

    def __init__(
        self,
        key,
        raw,
        number,
        res_id=False,
        tz=False,
        country=False,
        state=False,
        zip=False,
        scope=False,
    ):
        self.key = key
        self.raw = raw
        self.number = number or False
        self.res_id = res_id
        self.tz = tz or False
        self.country = country.upper() if country else False
        self.state = state.upper() if state else False
        self.zip = zip or False
        self.scope = scope or False


class SmsMicrofunnelGate(models.AbstractModel):
    _name = "sms.microfunnel.gate"
    _description = "SMS Compliance Gate"

    # -- entry points ---------------------------------------------------------

    @api.model
    def _evaluate(
        self,
        records_or_numbers,
        message_class="marketing",
        company=None,
        when_utc=None,
        scope=False,
    ):
        """Decisions for a batch, in input order (see the module docstring).

        ``records_or_numbers``: a recordset of a model with phone fields
        (contacts, leads, any ``mail.thread.phone`` model), or an iterable of
        phone numbers (sanitised with the company's country).  ``when_utc``:
        naive UTC (Odoo) or aware datetime, default now.  ``scope``: a consent
        scope (e.g. a funnel) that must not be withdrawn, on top of the
        company's marketing consent.
        """
        company = company or self.env.company
        if isinstance(records_or_numbers, models.BaseModel):
            recipients = self._recipients_from_records(records_or_numbers, company)
        else:
            recipients = self._recipients_from_numbers(records_or_numbers, company)
        if scope:
            for recipient in recipients:
                recipient.scope = recipient.scope or scope
        return self._decide(recipients, message_class, company, when_utc)

    @api.model
    def _evaluate_one(
        self, record_or_number, message_class="marketing", company=None, when_utc=None
    ):
        """The decision for one record or number (dry-runs, forms)."""
        return self._evaluate(
            record_or_number
            if isinstance(record_or_number, models.BaseModel)
            else [record_or_number],
            message_class,
            company,
            when_utc,
        )[0]

    @api.model
    def _evaluate_traces(
        self, traces, message_class, company, when_utc=None, rows=None
    ):
        """{trace id: decision} for funnel traces (dispatch).

        The recipient is the enrolled record (its zone and address) reached at
        the trace's number; the funnel is the consent scope (a funnel-level
        opt-out blocks).  Constant queries per target model.  ``rows``: the
        dispatcher's plain rows of the traces ({trace id: {"number",
        "res_model", "res_id", "campaign_id"}}), read instead of the ORM.
        """
        if rows is None:
            rows = {
                trace.id: {
                    "number": trace.number,
                    "res_model": trace.enrollment_id.res_model,
                    "res_id": trace.enrollment_id.res_id,
                    "campaign_id": trace.campaign_id.id,
                }
                for trace in traces.sudo()
            }
        recipients = self._recipients_from_targets(
            [
                (
                    trace_id,
                    rows[trace_id]["res_model"],
                    rows[trace_id]["res_id"],
                    rows[trace_id]["number"],
                )
                for trace_id in traces.ids
            ],
            company,
        )
        for recipient in recipients:
            campaign_id = rows[recipient.key]["campaign_id"]
            if campaign_id:
                recipient.scope = f"sms.microfunnel.campaign,{campaign_id}"
        decisions = self._decide(recipients, message_class, company, when_utc)
        return {decision["key"]: decision for decision in decisions}

    # -- hook: marketing SMS already sent --------------------------------------

    @api.model
    def _recent_marketing_sends(self, numbers, since):
        """{number: [naive UTC datetimes]} of marketing SMS sent since ``since``:
        Odoo's SMS mailings and funnel marketing SMS, in time order."""
        sends = self._recent_mailing_sends(numbers, since)
        traces = self._recent_funnel_marketing_traces(
            numbers, since, ["number", "queued_at"]
        )
        for trace in traces:
            sends.setdefault(trace.number, []).append(trace.queued_at)
        for sent in sends.values():
            sent.sort()
        return sends

    @api.model
    def _recent_mailing_sends(self, numbers, since):
        """{number: [naive UTC datetimes]} of SMS mailings sent since ``since``
        (``_recent_mailing_subjects`` without the subjects)."""
        return {
            number: [sent for sent, _subject in sends]
            for number, sends in self._recent_mailing_subjects(numbers, since).items()
        }

    @api.model
    def _not_a_funnel_sms(self):
        """Condition on ``mailing_trace``: not the SMS mailing trace of a
        funnel SMS (its funnel trace counts it, with the funnel as subject)."""
        self.env["sms.microfunnel.step"].flush_model(["mailing_id"])
        return SQL(
            """NOT EXISTS (
                   SELECT 1 FROM sms_microfunnel_step s
                    WHERE s.mailing_id = mailing_trace.mass_mailing_id
               )"""
        )

    # -- recipients -----------------------------------------------------------

    @api.model
    def _recipients_from_numbers(self, numbers, company):
        country = company.country_id
        Partner = self.env["res.partner"]
        recipients = []
        for raw in numbers:
            raw = (raw or "").strip() if isinstance(raw, str) else raw
            number = (
                Partner._phone_format(number=raw, country=country, force_format="E164")
                if raw
                else False
            )
            recipients.append(_Recipient(raw or False, raw or False, number))
        return recipients

    @api.model
    def _recipients_from_records(self, records, company):
        """One SQL query: number, sanitised number, zone and address per record."""
        if not records:
            return []
        model = records
        fields_ = model._fields

        def stored(name, ftype=None):
            field = fields_.get(name)
            return bool(
                field and field.store and (ftype is None or field.type == ftype)
            )

        number_fields = [
            f for f in model._phone_get_number_fields() if stored(f, "char")
        ]
        flush = [*number_fields]
        select = [SQL("r.id")]
        joins = []
        if number_fields:
            select.append(
                SQL(
                    "COALESCE(%s)",
                    SQL(", ").join(
                        SQL("NULLIF(TRIM(%s), '')", SQL.identifier("r", f))
                        for f in number_fields
                    ),
                )
            )
        else:
            select.append(SQL("NULL"))
        has_sanitized = stored("phone_sanitized", "char")
        select.append(SQL("r.phone_sanitized") if has_sanitized else SQL("NULL"))
        if has_sanitized:
            flush.append("phone_sanitized")
        if stored("tz"):
            select.append(SQL("r.tz"))
            flush.append("tz")
        elif (
            stored("partner_id", "many2one")
            and fields_["partner_id"].comodel_name == "res.partner"
        ):
            joins.append(SQL("LEFT JOIN res_partner p ON p.id = r.partner_id"))
            select.append(SQL("p.tz"))
            flush.append("partner_id")
            self.env["res.partner"].flush_model(["tz"])
        else:
            select.append(SQL("NULL"))
        for fname, table, alias in (
            ("country_id", "res_country", "c"),
            ("state_id", "res_country_state", "s"),
        ):
            if stored(fname, "many2one") and fields_[
                fname
            ].comodel_name == table.replace("_", "."):
                joins.append(
                    SQL(
                        "LEFT JOIN %s %s ON %s = %s",
                        SQL.identifier(table),
                        SQL.identifier(alias),
                        SQL.identifier(alias, "id"),
                        SQL.identifier("r", fname),
                    )
                )
                select.append(SQL.identifier(alias, "code"))
                flush.append(fname)
            else:
                select.append(SQL("NULL"))
        if stored("zip"):
            select.append(SQL("r.zip"))
            flush.append("zip")
        else:
            select.append(SQL("NULL"))
        model.flush_model(flush)
        rows = self.env.execute_query(
            SQL(
                "SELECT %s FROM %s r %s WHERE r.id = ANY(%s)",
                SQL(", ").join(select),
                SQL.identifier(model._table),
                SQL(" ").join(joins),
                sql_array.literal(records.ids, "int"),
            )
        )
        by_id = {row[0]: row for row in rows}
        Partner = self.env["res.partner"]
        recipients = []
        for res_id in records.ids:
            row = by_id.get(res_id)
            if row is None:
                continue
            _id, raw, sanitized, tz, country, state, zip_code = row
            if raw and not sanitized and not has_sanitized:
                sanitized = Partner._phone_format(
                    number=raw, country=company.country_id, force_format="E164"
                )
            recipients.append(
                _Recipient(
                    res_id,
                    raw or False,
                    sanitized,
                    res_id=res_id,
                    tz=tz,
                    country=country,
                    state=state,
                    zip=zip_code,
                )
            )
        return recipients

    # -- the decision ---------------------------------------------------------

    @api.model
    def _decision(self, recipient, action, reason=False, until=False, **extra):
        return {
            "key": recipient.key,
            "res_id": recipient.res_id,
            "number": recipient.number,
            "action": action,
            "reason": reason,
            "until": until,
            "window_closes": extra.get("window_closes", False),
            "tz": extra.get("tz", False),
            "tz_names": extra.get("tz_names", ()),
            "policy": extra.get("policy", ""),
            "rule": extra.get("rule", False),
            "rule_source": extra.get("rule_source", False),
            # the legal (window policy, zone) pairs behind a window decision,
            # for callers that narrow it further (a funnel step's send slot)
            "candidates": tuple(extra.get("candidates", ())),
        }

    @api.model
    def _decide(self, recipients, message_class, company, when_utc=None):
        when = _aware(when_utc or fields.Datetime.now())
        decisions = [None] * len(recipients)
        live = []
        seen = set()
        for index, recipient in enumerate(recipients):
            if not recipient.number:
                reason = "invalid_number" if recipient.raw else "no_number"
                decisions[index] = self._decision(recipient, "block", reason)
            elif recipient.number in seen:
                decisions[index] = self._decision(recipient, "block", "duplicate")
            else:
                seen.add(recipient.number)
                live.append(index)
        if message_class == "marketing" and live:
            blocked = self._consent_blocks([recipients[i] for i in live], company)
            still = []
            for index in live:
                reason = blocked.get(recipients[index].number)
                if reason:
                    decisions[index] = self._decision(
                        recipients[index], "block", reason
                    )
                else:
                    still.append(index)
            live = still
        if live:
            live = self._apply_revoke_all(recipients, live, decisions, company, when)
        if live:
            self._decide_windows(
                recipients, live, decisions, message_class, company, when
            )
        return decisions

    @api.model
    def _consent_blocks(self, recipients, company):
        """{number: block reason} for marketing (blacklist and erasure win)."""
        Consent = self.env["sms.microfunnel.consent"]
        numbers = [r.number for r in recipients]
        states = Consent._get_states(numbers, company=company)
        blocked = {}
        for number, state in states.items():
            if state != "confirmed":
                blocked[number] = CONSENT_BLOCKS.get(state, "no_consent")
        by_scope = {}
        for recipient in recipients:
            if recipient.scope and recipient.number not in blocked:
                by_scope.setdefault(recipient.scope, []).append(recipient.number)
        for scope, scoped_numbers in by_scope.items():
            scoped = Consent._get_states(scoped_numbers, company=company, scope=scope)
            for number, state in scoped.items():
                if state == "withdrawn":
                    blocked[number] = "opted_out"
                elif state == "expired":
                    blocked[number] = "no_consent"
        return blocked

    @api.model
    def _decide_windows(
        self, recipients, live, decisions, message_class, company, when
    ):
        """Window and cap decisions of the ``live`` recipients, in phases:
        the applicable policies, the recipients grouped by the rules that
        apply to them, the window of each group, the send history the caps
        count, the personal caps, then each recipient's decision."""
        context = self._window_context(message_class, company, when)
        groups = self._group_by_rules(
            recipients, live, decisions, message_class, context
        )
        window_cache = {}
        group_state = {
            key: self._group_window(chosen, key, message_class, when, window_cache)
            for key, (chosen, _members) in groups.items()
        }
        history = self._cap_history(
            recipients, live, groups, group_state, message_class, company, when
        )
        self._apply_personal_caps(recipients, live, decisions, history, when)
        for key, (_chosen, members) in groups.items():
            state = group_state[key]
            zones = key[2]
            extra = {
                "tz": zones[0],
                "tz_names": zones,
                "policy": state["label"],
                "candidates": state["candidates"],
            }
            allowed = self._group_allow(recipients[members[0]], state, extra)
            for i in members:
                recipient = recipients[i]
                if allowed is not None and recipient.number not in history[0]:
                    # most of an audience is allowed: 100,000 decisions are
                    # copies of the group's one
                    decision = decisions[i] = allowed.copy()
                    decision["key"] = recipient.key
                    decision["res_id"] = recipient.res_id
                    decision["number"] = recipient.number
                    continue
                decisions[i] = self._window_decision(
                    recipient, state, extra, history, when
                )

    @api.model
    def _group_allow(self, recipient, state, extra):
        """The allow decision every member of a group without caps shares
        (the window is open now), worked out once; None otherwise."""
        if state["opening"] is None or not state["open"] or state["caps"]:
            return None
        return self._decision(
            recipient,
            "allow",
            window_closes=_naive(state["closes"]),
            **extra,
            **self._allow_rule(state),
        )

    @api.model
    def _window_context(self, message_class, company, when):
        """What each recipient's rules are chosen from: the applicable
        policies by (country, state), the company's fallback policies, the
        area codes of the North-American states and the company's zone."""
        Policy = self.env["sms.microfunnel.policy"]
        index = Policy._applicable(message_class, company, when.date())
        fallback = None
        if message_class == "marketing" and company.country_id:
            fallback = index.get((company.country_id.code, False))
        area_map = {}
        for (country, state), policies in index.items():
            if state and country in ("US", "CA"):
                for policy in policies:
                    for code in policy._area_code_list():
                        area_map.setdefault(code, state)
        company_tz = company.partner_id.tz
        company_tz = company_tz if _valid_zone(company_tz) else "UTC"
        return index, area_map, fallback, company_tz

    @api.model
    def _group_by_rules(self, recipients, live, decisions, message_class, context):
        """``{(policy ids, regions, zones): (policies, [recipient indexes])}``;
        recipients no policy applies to are allowed here.

        Recipients sharing a number prefix (7 characters: "+262639",
        "+1305..." cover every table of the engine), a zone and an address
        get the same rules: they are worked out once per such profile, not
        once per recipient.
        """
        groups = {}
        profiles = {}
        for i in live:
            recipient = recipients[i]
            profile = _rules_profile(recipient)
            rules = profiles.get(profile)
            if rules is None:
                chosen, regions, zones = self._recipient_rules(recipient, *context)
                if message_class == "marketing":
                    # marketing reaches confirmed consents only (checked above)
                    chosen = [p for p in chosen if not p.consent_lifts_window]
                key = (tuple(p.id for p in chosen), regions, zones)
                rules = profiles[profile] = (key, chosen)
            key, chosen = rules
            if not chosen:
                decisions[i] = self._decision(recipient, "allow")
                continue
            groups.setdefault(key, (chosen, []))[1].append(i)
        return groups

    @api.model
    def _group_window(self, chosen, key, message_class, when, window_cache):
        """The window state of one group of recipients: its merged window
        (without caps), the (window, zone) candidates, whether it is open at
        ``when``, its next opening (None: none within the horizon), when it
        closes, and the caps of its policies."""
        policy_ids, regions, zones = key
        window = window_cache.get((policy_ids, regions))
        if window is None:
            parts = [p._to_window_policy(regions) for p in chosen]
            window = parts[0] if len(parts) == 1 else send_window.strictest(parts)
            # caps are counted per policy (each with its scope), not merged
            window = dataclasses.replace(window, cap_count=None, cap_hours=None)
            window_cache[(policy_ids, regions)] = window
        candidates = [(window, zone) for zone in zones]
        state = {
            "window": window,
            "candidates": candidates,
            "label": " & ".join(p.code or p.name for p in chosen),
            "chosen": chosen,
            "regions": regions,
            "caps": self._policy_caps(chosen) if message_class == "marketing" else [],
        }
        try:
            state["open"] = send_window.is_allowed_multi(candidates, when)
            state["opening"] = (
                when
                if state["open"]
                else send_window.next_allowed_multi(candidates, when)
            )
            state["closes"] = (
                min(
                    filter(
                        None,
                        (
                            send_window.allowed_until(window, when, zone)
                            for zone in zones
                        ),
                    ),
                    default=None,
                )
                if state["open"]
                else None
            )
        except ValueError:
            state["opening"] = None
        return state

    @api.model
    def _cap_history(
        self, recipients, live, groups, group_state, message_class, company, when
    ):
        """``(personal, recent, by_subject)``: the contacts' own frequency
        preferences (``{number: (count, hours)}``, marketing only) and the
        marketing sends the caps count, over the longest cap period, all and
        by subject (the latter only when a cap counts per subject)."""
        max_cap_hours = 0
        capped_numbers = []
        for key, (_chosen, members) in groups.items():
            for cap in group_state[key]["caps"]:
                max_cap_hours = max(max_cap_hours, cap["policy"].cap_hours)
                capped_numbers += [recipients[i].number for i in members]

        # the contact's own frequency preference ("at most one a week") adds
        # a personal cap to the policies' caps (marketing only)
        personal = {}
        if message_class == "marketing":
            personal = self.env["sms.microfunnel.consent"]._frequency_caps(
                [recipients[i].number for i in live], company
            )
            for number, (_count, hours) in personal.items():
                max_cap_hours = max(max_cap_hours, hours)
                capped_numbers.append(number)

        recent = {}
        by_subject = {}
        if capped_numbers:
            since = when - timedelta(hours=max_cap_hours)
            recent = self._recent_marketing_sends(capped_numbers, since)
            if any(
                cap["scope"] == "subject"
                for state in group_state.values()
                for cap in state["caps"]
            ):
                by_subject = self._recent_marketing_subjects(capped_numbers, since)
        return personal, recent, by_subject

    @api.model
    def _apply_personal_caps(self, recipients, live, decisions, history, when):
        """Defer the recipients no policy applies to whose own frequency
        preference is reached (any time suits them, the personal cap alone
        decides)."""
        personal, recent, _by_subject = history
        for i in live:
            own = personal.get(recipients[i].number)
            if own and decisions[i] is not None:
                cap = send_window.Policy(cap_count=own[0], cap_hours=own[1])
                sent = [_aware(s) for s in recent.get(recipients[i].number, ())]
                if not send_window.cap_allows(cap, sent, when):
                    decisions[i] = self._decision(
                        recipients[i],
                        "defer",
                        "frequency_cap",
                        _naive(send_window.cap_next_allowed(cap, sent, when)),
                        **self._personal_rule(),
                    )

    @api.model
    def _window_decision(self, recipient, state, extra, history, when):
        """The decision for one recipient of a group whose window state is
        ``state`` (``extra``: the group's zones, policy label and candidates):
        allowed now, deferred to the window's opening or to the end of a cap,
        or blocked when no window opens within the horizon."""
        personal, recent, by_subject = history
        zones = extra["tz_names"]
        if state["opening"] is None:
            return self._decision(
                recipient,
                "block",
                "no_window",
                **extra,
                **self._window_rule(state, when, zones),
            )
        caps = ()
        if state["caps"] or recipient.number in personal:
            caps = self._recipient_caps(
                state["caps"], recipient, personal, recent, by_subject
            )
        capped_by = next(
            (c for c in caps if not send_window.cap_allows(c[1], c[2], when)),
            None,
        )
        if state["open"] and not capped_by:
            return self._decision(
                recipient,
                "allow",
                window_closes=_naive(state["closes"]),
                **extra,
                **self._allow_rule(state),
            )
        try:
            until = self._next_send_capped(state, caps, when)
        except ValueError:  # the cap ends where no window opens
            return self._decision(
                recipient,
                "block",
                "no_window",
                **extra,
                **self._window_rule(state, when, zones),
            )
        if not state["open"]:
            rule = self._window_rule(state, when, zones)
        else:
            rule = capped_by[0]
        return self._decision(
            recipient,
            "defer",
            "window_closed" if not state["open"] else "frequency_cap",
            _naive(until),
            **extra,
            **rule,
        )

    @api.model
    def _recipient_zones(
        self, recipients, company, message_class="marketing", when_utc=None
    ):
        """The recipients' zones (a tuple per recipient, in input order): the
        one place a recipient's zone is resolved, for the gate's windows and
        for every other caller (send-time slots, local send hour, dates of
        date-relative steps).

        The contact's zone; else the zone of a French overseas postcode;
        else the number's zones; else the zones of the policies of its
        country (``message_class``), or the number's zones as the phone
        library knows them when no policy applies; else the company's.  One
        query (the applicable policies) per call, whatever the number of
        recipients; recipients sharing a number prefix and an address are
        worked out once.
        """
        when = _aware(when_utc or fields.Datetime.now())
        context = self._window_context(message_class, company, when)
        profiles = {}
        zones = []
        for recipient in recipients:
            profile = _rules_profile(recipient)
            if profile not in profiles:
                profiles[profile] = self._recipient_rules(
                    recipient, *context, zones_only=True
                )[2]
            zones.append(profiles[profile])
        return zones

    @api.model
    def _recipients_from_targets(self, targets, company):
        """Recipients of ``targets`` (``[(key, model, res_id, number)]``): the
        record's zone and address reached at ``number`` (one query per
        model; a missing record leaves the number alone)."""
        by_model = {}
        for _key, model_name, res_id, _number in targets:
            if model_name and res_id:
                by_model.setdefault(model_name, set()).add(res_id)
        info = {}
        for model_name, res_ids in by_model.items():
            # missing records are left out by the query itself
            records = self.env[model_name].sudo().browse(sorted(res_ids))
            for recipient in self._recipients_from_records(records, company):
                info[(model_name, recipient.res_id)] = recipient
        recipients = []
        for key, model_name, res_id, number in targets:
            target = info.get((model_name, res_id))
            number = number or False
            recipients.append(
                _Recipient(
                    key,
                    number or (target and target.raw) or False,
                    number,
                    res_id=res_id,
                    tz=target and target.tz,
                    country=target and target.country,
                    state=target and target.state,
                    zip=target and target.zip,
                )
            )
        return recipients

    @api.model
    def _target_zones(self, targets, company, message_class="marketing", when_utc=None):
        """{key: zone} of ``targets`` (``[(key, model, res_id, number)]``):
        the first zone ``_recipient_zones`` gives (the one the gate names)."""
        recipients = self._recipients_from_targets(targets, company)
        zones = self._recipient_zones(recipients, company, message_class, when_utc)
        return {
            recipient.key: found[0]
            for recipient, found in zip(recipients, zones, strict=True)
        }

    @api.model
    def _recipient_rules(
        self, recipient, index, area_map, fallback, company_tz, zones_only=False
    ):
        """(policies, holiday regions, zones) that apply to one recipient;
        without a policy, no regions and no zones unless ``zones_only``
        (the zone resolver, ``_recipient_zones``, asks for them anyway)."""
        number = recipient.number or ""
        if not number:
            zone = recipient.tz if _valid_zone(recipient.tz) else company_tz
            return [], (), (zone,)
        region = number_region(number)
        # the French overseas regions share the French policies
        country = send_window.policy_country(region)
        same_country = (
            recipient.country
            and send_window.policy_country(recipient.country) == country
        )
        states = []
        if country in ("US", "CA") and number.startswith("+1"):
            area_state = area_map.get(number[2:5])
            if not area_state:
                found = send_window.nanp_region(number)
                area_state = found and found[0] == country and found[1]
            if area_state:
                states.append(area_state)
        if same_country and recipient.state and recipient.state not in states:
            states.append(recipient.state)
        own = list(index.get((country, False), ()))
        for state in states:
            own += list(index.get((country, state), ()))
        chosen = own or list(fallback or ())
        if not chosen and not zones_only:
            return [], (), ()

        postcode_region = None
        if country == "FR":
            if recipient.zip and (not recipient.country or same_country):
                postcode_region = send_window.fr_region_for_postcode(recipient.zip)
            regions = (
                (postcode_region,)
                if postcode_region
                else send_window.fr_regions_for_number(number) or ("FR",)
            )
        else:
            regions = tuple(states)

        if _valid_zone(recipient.tz):
            zones = (recipient.tz,)
        elif postcode_region and postcode_region not in ("FR", "FR-AM"):
            zones = (send_window.FR_REGIONS[postcode_region].zone,)
        else:
            zones = tuple(
                z for z in send_window.tz_candidates(number) if _valid_zone(z)
            )
            if not zones and own:
                for policy in own:
                    zones = tuple(z for z in policy._tz_name_list() if _valid_zone(z))
                    if zones:
                        break
            if not zones and not own:
                zones = self._phone_zones(number)
            zones = zones or (company_tz,)
        return chosen, tuple(sorted(regions)), tuple(zones)

    @api.model
    def _phone_zones(self, number):
        """Zones of a number of a country without a policy (phonenumbers)."""
        if phone_timezone is None:
            return ()
        try:
            parsed = phonenumbers.parse(number)
        except phonenumbers.NumberParseException:
            return ()
        zones = phone_timezone.time_zones_for_number(parsed)
        return tuple(z for z in zones if _valid_zone(z))

    # -- deciding rule, caps per policy, revoke-all (compliance book) --------

    @api.model
    def _rule_info(self, rule):
        """``rule`` (a policy or rule record) as decision keys."""
        if not rule:
            return {}
        return {"rule": rule.code or rule.name, "rule_source": rule._rule_reference()}

    @api.model
    def _allow_rule(self, state):
        """Allowed: every policy applied let it through (all are named).
        Worked out once per group of recipients."""
        if "allow_rule" not in state:
            state["allow_rule"] = {
                "rule": state["label"],
                "rule_source": "\n".join(p._rule_reference() for p in state["chosen"]),
            }
        return state["allow_rule"]

    @api.model
    def _window_rule(self, state, when, zones):
        """The first applied policy whose own window is closed at ``when``
        (the one that defers or blocks), else all of them."""
        if "closing_rule" not in state:
            state["closing_rule"] = self._allow_rule(state)
            for policy in state["chosen"]:
                own = policy._to_window_policy(state["regions"])
                try:
                    is_open = send_window.is_allowed_multi(
                        [(own, zone) for zone in zones], when
                    )
                except ValueError:
                    is_open = False
                if not is_open:
                    state["closing_rule"] = self._rule_info(policy)
                    break
        return state["closing_rule"]

    @api.model
    def _personal_rule(self):
        return {
            "rule": "CONTACT-FREQUENCY",
            "rule_source": self.env._(
                "CONTACT-FREQUENCY: the contact's own frequency preference"
            ),
        }

    @api.model
    def _policy_caps(self, policies):
        """Caps of the applied policies: [{"policy": send_window.Policy with
        the cap only, "scope": "global" | "subject", "rule": decision keys}]."""
        caps = []
        for policy in policies:
            if policy.cap_count and policy.cap_hours:
                caps.append(
                    {
                        "policy": send_window.Policy(
                            cap_count=policy.cap_count, cap_hours=policy.cap_hours
                        ),
                        "scope": policy.cap_scope or "global",
                        "rule": self._rule_info(policy),
                    }
                )
        return caps

    @api.model
    def _recipient_caps(self, caps, recipient, personal, recent, by_subject):
        """[(rule keys, cap policy, sent instants)] for one recipient: the
        policies' caps (a subject cap counts the sends of the recipient's
        subject only, i.e. its consent scope: the funnel or mailing; without a
        subject, every send counts) and the contact's own frequency
        preference."""
        out = []
        everything = [_aware(s) for s in recent.get(recipient.number, ())]
        for cap in caps:
            if cap["scope"] == "subject" and recipient.scope:
                sent = [
                    _aware(when)
                    for when, subject in by_subject.get(recipient.number, ())
                    if subject == recipient.scope
                ]
            else:
                sent = everything
            out.append((cap["rule"], cap["policy"], sent))
        own = personal.get(recipient.number)
        if own:
            out.append(
                (
                    self._personal_rule(),
                    send_window.Policy(cap_count=own[0], cap_hours=own[1]),
                    everything,
                )
            )
        return out

    @api.model
    def _next_send_capped(self, state, caps, when):
        """First instant >= ``when`` open in every zone and within every cap."""
        cursor = state["opening"]
        for _attempt in range(100):
            moved = cursor
            for _rule, cap, sent in caps:
                moved = max(moved, send_window.cap_next_allowed(cap, sent, moved))
            if moved == cursor:
                return cursor
            cursor = send_window.next_allowed_multi(state["candidates"], moved)
        return cursor

    @api.model
    def _recent_funnel_marketing_traces(self, numbers, since, field_names):
        """Funnel marketing SMS queued for ``numbers`` after ``since`` (the
        traces both frequency caps count), with ``field_names`` fetched."""
        if since.tzinfo:
            since = since.astimezone(timezone.utc).replace(tzinfo=None)
        numbers = [n for n in set(numbers) if n]
        if not numbers:
            return self.env["sms.microfunnel.trace"]
        return (
            self.env["sms.microfunnel.trace"]
            .sudo()
            .search_fetch(
                [
                    ("number", "in", numbers),
                    ("queued_at", ">", since),
                    ("state", "in", ("queued", "sent", "delivered")),
                    ("step_id.message_class", "=", "marketing"),
                    ("step_type", "=", "sms"),
                ],
                field_names,
            )
        )

    @api.model
    def _recent_marketing_subjects(self, numbers, since):
        """{number: [(naive UTC datetime, subject)]} of marketing SMS sent
        since ``since``.  Funnel marketing SMS count towards "same subject"
        caps too: their subject is the funnel (``sms.microfunnel.campaign,<id>``),
        the consent scope the gate evaluates funnel traces with."""
        sends = self._recent_mailing_subjects(numbers, since)
        traces = self._recent_funnel_marketing_traces(
            numbers, since, ["number", "queued_at", "campaign_id"]
        )
        for trace in traces:
            sends.setdefault(trace.number, []).append(
                (trace.queued_at, f"sms.microfunnel.campaign,{trace.campaign_id.id}")
            )
        return sends

    @api.model
    def _recent_mailing_subjects(self, numbers, since):
        """{number: [(naive UTC datetime, subject)]} of SMS mailings sent
        since ``since``; the subject of an SMS mailing is
        ``mailing.mailing,<id>``.

        Counts Odoo's SMS marketing traces (``mailing.trace``, type ``sms``)
        that did not fail, by ``sent_datetime`` (``create_date`` while still
        queued: a queued SMS counts, or a batch could exceed the cap), except
        those of funnel SMS (counted by their funnel trace).  One query."""
        numbers = sorted({n for n in numbers if n})
        if not numbers:
            return {}
        self.env["mailing.trace"].flush_model(
            [
                "sms_number",
                "sent_datetime",
                "trace_status",
                "trace_type",
                "mass_mailing_id",
            ]
        )
        rows = self.env.execute_query(
            SQL(
                """
                SELECT sms_number, COALESCE(sent_datetime, create_date),
                       'mailing.mailing,' || mass_mailing_id
                  FROM mailing_trace
                 WHERE trace_type = 'sms'
                   AND sms_number = ANY(%s)
                   AND COALESCE(sent_datetime, create_date) > %s
                   AND trace_status NOT IN %s
                   AND %s
                """,
                sql_array.literal(numbers),
                _naive(_aware(since)),
                FAILED_TRACE_STATUSES,
                self._not_a_funnel_sms(),
            )
        )
        sends = {}
        for number, sent, subject in rows:
            sends.setdefault(number, []).append((sent, subject))
        return sends

    @api.model
    def _apply_revoke_all(self, recipients, live, decisions, company, when):
        """FCC revoke-all (rule US-FCC-REVOKE-ALL, per-company setting): once
        in force, an opt-out of a US number, whatever the message or funnel it
        answered, stops every message class of the company (transactional
        included) and every funnel.  Returns the indexes still live."""
        if not company.sms_revoke_all:
            return live
        rule = self.env["sms.microfunnel.rule"]._in_force(
            "US-FCC-REVOKE-ALL", when.date()
        )
        if not rule:
            return live
        us = [i for i in live if number_region(recipients[i].number) == "US"]
        if not us:
            return live
        numbers = [recipients[i].number for i in us]
        Consent = self.env["sms.microfunnel.consent"]
        withdrawn = {
            n
            for n, s in Consent._get_states(numbers, company=company).items()
            if s == "withdrawn"
        }
        Consent.flush_model(["number", "company_id", "state"])
        rows = self.env.execute_query(
            SQL(
                """
                SELECT DISTINCT number FROM sms_microfunnel_consent
                 WHERE company_id = %s AND state = 'withdrawn' AND number = ANY(%s)
                """,
                company.id,
                sql_array.literal(numbers),
            )
        )
        withdrawn |= {number for (number,) in rows}
        info = self._rule_info(rule)
        still = []
        for i in live:
            if recipients[i].number in withdrawn and i in us:
                decisions[i] = self._decision(
                    recipients[i], "block", "opted_out", **info
                )
            else:
                still.append(i)
        return still
