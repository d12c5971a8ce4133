# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The shipped send-window policies, read from the data file.

``data/sms_policy_data.xml`` is the only definition of the shipped policies.
The tests compare the engine and the models with it through this reader, so
no second copy of the rows exists in Python.  Plain standard library (no
Odoo import): the tests run outside Odoo load it by its path too.
"""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data" / "sms_policy_data.xml"
POLICY_MODEL = "sms.microfunnel.policy"


def _created_rows(expression):
    """The value dicts of the ``Command.create({...})`` of an ``eval``."""
    rows = []
    for node in ast.walk(ast.parse(expression, mode="eval")):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "create"
        ):
            rows.append(ast.literal_eval(node.args[0]))
    return rows


def _record(element):
    fields = {}
    for field in element.iter("field"):
        name = field.get("name")
        if field.get("eval") is not None:
            if name in ("line_ids", "holiday_ids"):
                fields[name] = _created_rows(field.get("eval"))
            else:
                fields[name] = ast.literal_eval(field.get("eval"))
        elif field.get("ref") is not None:
            fields[name] = field.get("ref")
        else:
            fields[name] = (field.text or "").strip()
    return fields


def shipped_records(path=DATA):
    """``{code: field values}`` of every shipped policy, as written in the file
    (``line_ids`` and ``holiday_ids`` as lists of value dicts)."""
    root = ET.parse(path).getroot()
    return {
        values["code"]: values
        for values in (
            _record(element)
            for element in root.iter("record")
            if element.get("model") == POLICY_MODEL
        )
    }


def policy_data(values, regions=()):
    """The ``send_window.policy_from_dict`` data of one shipped policy for a
    recipient in ``regions`` (holiday rows of other regions left out, as
    ``sms.microfunnel.policy._to_window_policy`` does)."""
    regions = {r.upper() for r in regions}
    intervals = {}
    for line in values.get("line_ids", ()):
        if line.get("active", True):
            intervals.setdefault(int(line["weekday"]), []).append(
                (round(line["hour_from"] * 60), round(line["hour_to"] * 60))
            )
    rules = []
    for row in values.get("holiday_ids", ()):
        own = {r.upper() for r in re.split(r"[\s,;]+", row.get("regions") or "") if r}
        if row["kind"] != "rule":
            raise ValueError(f"{values['code']}: only holiday rule rows are read")
        if row.get("active", True) and (not own or own & regions):
            rules.append(row["rule_key"])
    return {
        "key": values["code"],
        "intervals": intervals,
        "holiday_rules": tuple(rules),
        "cap_count": values.get("cap_count") or None,
        "cap_hours": values.get("cap_hours") or None,
        "enabled": values.get("active", True),
    }


def shipped_policies(path=DATA, regions=()):
    """``{code: policy data}`` of every shipped policy (``policy_data``)."""
    return {
        code: policy_data(values, regions)
        for code, values in shipped_records(path).items()
    }
