# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Send-time targeting of funnel steps: preferred slots and the best hour.

A step may carry a *send slot*: weekdays and hour ranges in the recipient's
local time (a preset or custom hours).  The slot only narrows the legal
window: the gate decides first (consent, window, caps), then a message that
may go, or that waits for the window, waits further for the next instant
inside both the slot and the window (``send_window.next_in_slot``).  Such a
trace is deferred with the reason ``send_slot`` and its next due time; when
slot and window never meet (a Saturday slot in a country closed on
Saturdays) the trace is canceled with ``no_slot``.  Nothing is skipped
silently.

"Best hour" mode: the hour of the week with the best click-or-reply rate in
the history of the contact (its number), else of the funnel's audience, else
of the company's recipients (``_best_hour_levels``), each level needing a
minimum sample; without enough history the step's slot applies.  The
history is the send-time analysis (``sms.microfunnel.send.time.report``), so
the figures a team reads are the ones the funnel acts on.

The recipient's zone is the gate's: the decision's zone, else (no policy
applied: transactional SMS without a window) the gate's zone resolver
(``sms.microfunnel.gate._recipient_zones``) for the same recipient.
"""

from collections import defaultdict

from odoo import api, models

from ..tools import send_window
from .sms_microfunnel_gate import _aware, _naive, _valid_zone
from .sms_microfunnel_policy import WEEKDAYS  # noqa: F401 (also imported from here)

SLOT_PRESETS = [
    ("none", "Any time of the legal window"),
    ("b2b", "B2B: Tuesday to Thursday, 10:00-11:00 and 15:00-16:00"),
    ("b2c_evening", "B2C evening: 18:00-20:00"),
    ("weekend", "Weekend: Saturday 10:00-18:00"),
    ("custom", "Custom hours"),
]
HOURS = [(f"{hour:02d}", f"{hour:02d}:00") for hour in range(24)]
SLOT_SOURCES = [
    ("step", "Step's slot"),
    ("contact", "Contact's best hour"),
    ("segment", "Segment's best hour"),
    ("funnel", "Funnel audience's best hour"),
    ("company", "Company's best hour"),
]


class SmsMicrofunnelSendTime(models.AbstractModel):
    _name = "sms.microfunnel.send.time"
    _description = "SMS Funnel Send-Time Targeting"

    # -- slots ----------------------------------------------------------------

    @api.model
    def _step_slot(self, step):
        """The ``send_window.Policy`` of ``step``'s slot, or None (no slot)."""
        if not step.send_slot or step.send_slot == "none":
            return None
        if step.send_slot == "custom":
            return send_window.slot_policy(
                spans=step.send_slot_line_ids._spans(), name=step.name
            )
        return send_window.slot_policy(step.send_slot)

    # -- dispatch and dry-run ---------------------------------------------------

    @api.model
    def _apply_to_traces(
        self, traces, decisions, company, now, write=True, rows=None, steps=None
    ):
        """Narrow the gate's ``decisions`` ({trace id: decision}) to the slot
        of each trace's step; record the recipient's zone and the slot used on
        the traces (unless ``write`` is False: the dispatcher writes them with
        the rest of its chunk).  Constant queries per batch.  ``rows`` and
        ``steps``: the dispatcher's plain rows of the traces and their steps
        by id, read instead of the ORM.  Returns ``decisions``."""
        items = []
        if rows is None:
            for trace in traces.sudo():
                enrollment = trace.enrollment_id
                items.append(
                    {
                        "key": trace.id,
                        "step": trace.step_id,
                        "number": trace.number,
                        "campaign_id": trace.campaign_id.id,
                        "segment_id": enrollment.segment_id.id,
                        "company_id": company.id,
                        "model": enrollment.res_model,
                        "res_id": enrollment.res_id,
                    }
                )
        else:
            for trace_id in traces.ids:
                row = rows[trace_id]
                items.append(
                    {
                        "key": trace_id,
                        "step": steps[row["step_id"]],
                        "number": row["number"],
                        "campaign_id": row["campaign_id"],
                        "segment_id": row["segment_id"],
                        "company_id": company.id,
                        "model": row["res_model"],
                        "res_id": row["res_id"],
                    }
                )
        self._narrow(items, decisions, company, now)
        if not write:
            return decisions
        by_vals = defaultdict(list)
        for trace_id in traces.ids:
            decision = decisions.get(trace_id)
            if not decision or decision["action"] == "block":
                continue
            vals = (
                ("send_tz", decision.get("slot_tz") or False),
                ("send_slot_source", decision.get("slot_source") or False),
            )
            by_vals[vals].append(trace_id)
        Trace = self.env["sms.microfunnel.trace"].sudo()
        for vals, ids in by_vals.items():
            Trace.browse(ids).write(dict(vals))
        return decisions

    @api.model
    def _apply_to_decision(self, step, record, decision, company, when):
        """The same narrowing for one planned message (dry-run)."""
        item = {
            "key": 0,
            "step": step,
            "number": decision.get("number"),
            "campaign_id": step.campaign_id.id,
            "segment_id": step.campaign_id.segment_id.id,
            "company_id": company.id,
            "model": record._name,
            "res_id": record.id,
        }
        decisions = {0: decision}
        self._narrow([item], decisions, company, when)
        return decisions[0]

    @api.model
    def _narrow(self, items, decisions, company, when):
        """Apply the slots to ``decisions`` in place (see the module doc).

        Adds ``slot_tz`` (the recipient's zone) and ``slot_source`` (a
        ``SLOT_SOURCES`` key, or False without a slot) to each decision that
        is not a block; a deferral to a slot opening gets the reason
        ``send_slot``; a step slot that never meets the window blocks with
        ``no_slot`` (a best hour that never meets it is ignored).
        """
        live = [
            item
            for item in items
            if decisions.get(item["key"])
            and decisions[item["key"]]["action"] != "block"
        ]
        if not live:
            return decisions
        missing = [item for item in live if not decisions[item["key"]].get("tz")]
        zones = self._item_zones(missing, company, when) if missing else {}
        best = self._best_hours(
            [item for item in live if item["step"].send_best_hour], company
        )
        step_slots = {}
        cache = {}
        when = _aware(when)
        for item in live:
            decision = decisions[item["key"]]
            zone = decision.get("tz") or zones.get(item["key"]) or "UTC"
            decision["slot_tz"] = zone
            decision["slot_source"] = False
            step = item["step"]
            if step not in step_slots:
                step_slots[step] = self._step_slot(step)
            choices = []
            if item["key"] in best:
                (weekday, hour), source = best[item["key"]]
                choices.append((send_window.hour_slot(weekday, hour), source))
            if step_slots[step] is not None:
                choices.append((step_slots[step], "step"))
            if not choices:
                continue
            if decision["action"] == "defer" and decision.get("until"):
                start = max(when, _aware(decision["until"]))
            else:
                start = when
            candidates = tuple(decision.get("candidates") or ())
            found = None
            for slot, source in choices:
                key = (candidates, slot, zone, start)
                if key not in cache:
                    try:
                        cache[key] = send_window.next_in_slot(
                            candidates, slot, zone, start
                        )
                    except ValueError:
                        cache[key] = None
                if cache[key] is not None:
                    found = (cache[key], source)
                    break
            if found is None and step_slots[step] is None:
                # a best hour is a preference: when it never meets the legal
                # window and the step has no slot, the window alone decides
                continue
            if found is None:
                decision.update(
                    action="block", reason="no_slot", until=False, slot_source=False
                )
                continue
            opening, source = found
            decision["slot_source"] = source
            if opening > start:
                decision.update(
                    action="defer",
                    reason="send_slot",
                    until=_naive(opening),
                    window_closes=False,
                )
        return decisions

    # -- time zones ---------------------------------------------------------------

    @api.model
    def _item_zones(self, items, company, when):
        """{item key: zone} from the gate's zone resolver (one batch per
        message class: the policies' zones are those of the step's class)."""
        by_class = defaultdict(list)
        for item in items:
            by_class[item["step"].message_class or "marketing"].append(
                (item["key"], item.get("model"), item.get("res_id"), item.get("number"))
            )
        zones = {}
        gate = self.env["sms.microfunnel.gate"]
        for message_class, targets in by_class.items():
            zones.update(gate._target_zones(targets, company, message_class, when))
        return zones

    @api.model
    def _compute_local_time(self, traces):
        """Local weekday and hour at which each trace was queued (the
        recipient's zone recorded at dispatch, else the gate's zone of the
        recipient: one batch per company and message class)."""
        batches = defaultdict(list)
        for trace in traces:
            if trace.queued_at and not _valid_zone(trace.send_tz):
                enrollment = trace.enrollment_id
                batches[
                    (trace.company_id, trace.step_id.message_class or "marketing")
                ].append(
                    (trace.id, enrollment.res_model, enrollment.res_id, trace.number)
                )
        zones = {}
        gate = self.env["sms.microfunnel.gate"]
        for (company, message_class), targets in batches.items():
            zones.update(
                gate._target_zones(targets, company or self.env.company, message_class)
            )
        for trace in traces:
            if not trace.queued_at:
                trace.send_weekday = False
                trace.send_hour = False
                continue
            zone = trace.send_tz if _valid_zone(trace.send_tz) else zones[trace.id]
            weekday, hour = send_window.local_weekday_hour(
                _aware(trace.queued_at), zone
            )
            trace.send_weekday = str(weekday)
            trace.send_hour = f"{hour:02d}"

    # -- best hour ----------------------------------------------------------------

    @api.model
    def _best_hour_levels(self):
        """``(source, field)`` from the most personal history to the broadest.

        ``field`` names both an item key and a field of the send-time report:
        the history of a message is the report's rows with the same value.
        The first level with enough history wins: the contact, then the
        segment the contact was enrolled from (all funnels of that segment),
        then the funnel's audience, then the company.
        """
        return [
            ("contact", "number"),
            ("segment", "segment_id"),
            ("funnel", "campaign_id"),
            ("company", "company_id"),
        ]

    @api.model
    def _best_hours(self, items, company):
        """{item key: ((weekday, hour), source)} for the items whose history
        shows a best hour (one grouped query per level)."""
        Report = self.env["sms.microfunnel.send.time.report"].sudo()
        found = {}
        todo = list(items)
        for source, fname in self._best_hour_levels():
            if not todo:
                break
            values = {item.get(fname) for item in todo} - {None, False}
            if not values:
                continue
            rows = Report._read_group(
                [("company_id", "=", company.id), (fname, "in", sorted(values))],
                [fname, "weekday", "hour"],
                ["sent_count:sum", "engaged_count:sum"],
            )
            cells = defaultdict(list)
            for value, weekday, hour, sent, engaged in rows:
                if not weekday or not hour:
                    continue
                key = value.id if isinstance(value, models.BaseModel) else value
                cells[key].append((int(weekday), int(hour), sent, engaged))
            personal = source == "contact"
            remaining = []
            for item in todo:
                minimum = max(item["step"].send_best_hour_min_sample, 1)
                best = send_window.best_hour(
                    cells.get(item.get(fname), ()),
                    min_sample=minimum,
                    min_cell_sample=1 if personal else minimum,
                )
                if best:
                    found[item["key"]] = (best, source)
                else:
                    remaining.append(item)
            todo = remaining
        return found
