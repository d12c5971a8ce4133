"""One resolver per compliance fact: a second one must not reappear.

Read from the source (no Odoo).  Each fact is worked out in one function that
every caller uses:

* the recipient's time zone: ``sms.microfunnel.gate._recipient_zones`` (its
  rules in ``_recipient_rules`` and ``_phone_zones``; the zone tables in
  ``tools/send_window``);
* the consent state: ``sms.microfunnel.consent._states_sql`` (with
  ``_suppressed_among`` for the keyed erasure list);
* the due date of a funnel step, for the scheduler and the dry-run:
  ``sms.microfunnel.enrollment._step_due``;
* the contact (or lead) of a number in a company:
  ``sms.microfunnel.consent._contacts_by_number``.

The checks look for the shapes a second resolver takes (a lookup on the
sanitised number, a zone table or ``pytz``, SQL or code merging the blacklist
into a state, a wait added to a date) outside those functions.
"""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ADDONS = (
    "sms_microfunnel",
    "sms_microfunnel_twilio",
    "sms_microfunnel_sale",
    "sms_microfunnel_event",
)
#: pure zone tables and conversions (no recipient is resolved there)
ZONE_TOOLS = "sms_microfunnel/tools/send_window/"

CONTACT_HOME = {"_contacts_by_number"}
ZONE_HOME = {"_recipient_rules", "_phone_zones"}
#: ZoneInfo may only check a name or build the engine's zone
ZONEINFO_ALLOWED = {"_valid_zone", "_check_tz_names", "_zone"}
CONSENT_HOME = {"_states_sql", "_suppressed_among"}
#: the status record's own "blacklisted" flag (not a consent state)
BLACKLIST_FLAG = {"_compute_blacklisted", "_search_blacklisted"}
WAIT_HOME = {"_step_due"}

ZONE_FUNCTIONS = {"tz_candidates", "tz_for_number", "_phone_zones"}
ZONE_FUNCTIONS |= {"time_zones_for_number"}
LOOKUP_OPERATORS = {"=", "in", "=like", "=ilike", "like", "ilike"}
LOOKUP_SQL = re.compile(r"\bphone_sanitized\s*(=|\bIN\b)\s*(ANY\b|%|\()", re.IGNORECASE)


def product_files(root):
    """The addons' Python files, tests left out."""
    for addon in ADDONS:
        for path in sorted((root / addon).rglob("*.py")):
            if "tests" not in path.relative_to(root).parts:
                yield path


def _nodes_by_function(tree):
    """``(node, name of the innermost enclosing function or "")`` for every
    node of ``tree``."""
    stack = [(tree, "")]
    while stack:
        node, func = stack.pop()
        yield node, func
        inner = func
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = node.name
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def _name(node):
    """The called or read name: ``f`` for ``f(...)`` and ``x.f(...)``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _chain(node):
    """The dotted source of an attribute chain (``trace.partner_id.tz``)."""
    return ast.unparse(node)


def _scan(root, check):
    """``(file, line, what)`` of each finding of ``check(node, func, path)``."""
    found = []
    for path in product_files(root):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, func in _nodes_by_function(tree):
            what = check(node, func, rel)
            if what:
                found.append((rel, node.lineno, what))
    return sorted(found)


def _condition(node):
    """``(field, operator, value node)`` of a domain condition written as a
    tuple or list, or as ``Domain(field, operator, value)``."""
    if isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) == 3:
        parts = node.elts
    elif (
        isinstance(node, ast.Call)
        and _name(node.func) == "Domain"
        and len(node.args) == 3
    ):
        parts = node.args
    else:
        return None
    field, operator, value = parts
    if not all(isinstance(p, ast.Constant) for p in (field, operator)):
        return None
    return field.value, operator.value, value


def contact_lookups(root):
    """Contacts searched by their sanitised number outside the resolver."""

    def check(node, func, _path):
        if func in CONTACT_HOME:
            return None
        condition = _condition(node)
        if condition:
            field, operator, value = condition
            matched_by_query = isinstance(value, ast.Call) and _name(value.func) in (
                "subselect",
                "_search",
            )
            is_empty = isinstance(value, ast.Constant) and value.value in (False, None)
            if (
                field == "phone_sanitized"
                and operator in LOOKUP_OPERATORS
                and not (matched_by_query or is_empty)
            ):
                return f"phone_sanitized lookup in {func or 'module'}"
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and LOOKUP_SQL.search(node.value)
        ):
            return f"SQL phone_sanitized lookup in {func or 'module'}"
        return None

    return _scan(root, check)


def zone_resolutions(root):
    """Recipient zones worked out outside the zone resolver."""

    def check(node, func, path):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names]
            module = getattr(node, "module", None) or ""
            if module.split(".")[0] == "pytz" or any(
                n.split(".")[0] == "pytz" for n in names
            ):
                return "pytz imported"
        if isinstance(node, ast.Call):
            called = _name(node.func)
            if (
                called in ZONE_FUNCTIONS
                and func not in ZONE_HOME
                and not path.startswith(ZONE_TOOLS)
            ):
                return f"{called}() in {func or 'module'}"
            if called == "ZoneInfo" and func not in ZONEINFO_ALLOWED:
                return f"ZoneInfo() in {func or 'module'}"
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "tz"
            and "partner" in _chain(node.value)
            and "company" not in _chain(node.value)
            and "user" not in _chain(node.value)
        ):
            return f"contact's zone read in {func or 'module'}: {_chain(node)}"
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and node.slice.value == "partner_tz"
        ):
            return f"contact's zone read in {func or 'module'}: {_chain(node)}"
        return None

    return _scan(root, check)


def _values(node):
    """String constants of ``node`` used as values (not only compared)."""
    compared = {
        id(n) for c in ast.walk(node) if isinstance(c, ast.Compare) for n in ast.walk(c)
    }
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and id(n) not in compared
    }


def consent_resolutions(root):
    """Consent states worked out outside the consent resolver: a function
    that gives the state ``withdrawn`` after reading ``phone.blacklist`` or
    the suppression list, one that sorts records by the blacklist's numbers,
    or SQL joining the blacklist to the consent statuses."""
    found = []
    for path in product_files(root):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name in CONSENT_HOME | BLACKLIST_FLAG:
                continue
            strings = {
                n.value
                for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            calls = {_name(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
            blacklist = bool(strings & {"phone.blacklist", "phone_blacklist"})
            gives_withdrawn = "withdrawn" in _values(node) and (
                blacklist or "_suppressed" in calls
            )
            sorts_by_blacklist = blacklist and "subselect" in calls
            sql_join = any(
                "phone_blacklist" in s and "sms_microfunnel_consent" in s
                for s in strings
            )
            if gives_withdrawn or sorts_by_blacklist or sql_join:
                found.append((rel, node.lineno, f"consent state in {node.name}"))
    return sorted(found)


def wait_computations(root):
    """A step's wait added to a date outside the scheduler's ``_step_due``."""

    def check(node, func, _path):
        if func in WAIT_HOME or not isinstance(node, ast.Call):
            return None
        if _name(node.func) != "timedelta":
            return None
        if any(
            isinstance(n, ast.Attribute) and n.attr == "wait_hours"
            for arg in [*node.args, *(k.value for k in node.keywords)]
            for n in ast.walk(arg)
        ):
            return f"wait computed in {func or 'module'}"
        return None

    return _scan(root, check)


def test_contact_of_a_number_has_one_lookup():
    found = contact_lookups(REPO)
    assert not found, (
        f"contacts searched by number outside _contacts_by_number: {found}; use "
        "sms.microfunnel.consent._contacts_by_number(numbers, company, model)"
    )


def test_recipient_zone_has_one_resolver():
    found = zone_resolutions(REPO)
    assert not found, (
        f"recipient zones resolved outside the gate's resolver: {found}; use "
        "sms.microfunnel.gate._recipient_zones / _target_zones"
    )


def test_consent_state_has_one_resolver():
    found = consent_resolutions(REPO)
    assert not found, (
        f"consent states worked out outside _states_sql: {found}; use "
        "sms.microfunnel.consent._states_sql / _get_states"
    )


def test_due_date_has_one_computation():
    found = wait_computations(REPO)
    assert not found, (
        f"step waits computed outside the scheduler: {found}; use "
        "sms.microfunnel.enrollment._step_due"
    )


def test_the_guards_see_a_second_resolver(tmp_path):
    """Each check above finds a second resolver when one is written."""
    for addon in ADDONS:
        (tmp_path / addon).mkdir()
    (tmp_path / "sms_microfunnel" / "second.py").write_text(
        "import pytz\n"
        "def lookup(Partner, number):\n"
        "    return Partner.search([('phone_sanitized', '=', number)])\n"
        "def lookup_sql(env, numbers):\n"
        "    return 'SELECT id FROM res_partner WHERE phone_sanitized = ANY(%s)'\n"
        "def zone(trace, send_window):\n"
        "    return trace.enrollment_id.partner_id.tz or send_window.tz_candidates(\n"
        "        trace.number)\n"
        "def states(self, numbers):\n"
        "    states = dict.fromkeys(numbers, 'none')\n"
        "    for n in self.env['x']._suppressed(numbers):\n"
        "        states[n] = 'withdrawn'\n"
        "def search(self, wanted):\n"
        "    listed = self.env['phone.blacklist']._search([])\n"
        "    return [('phone_sanitized', 'in', listed.subselect('number'))]\n"
        "def opt_in(self, number, state):\n"
        "    if self.env['x']._suppressed([number]) or state != 'withdrawn':\n"
        "        return False\n"
        "def due(step, anchor):\n"
        "    return anchor + timedelta(hours=step.wait_hours or 0)\n"
        "def _contacts_by_number(Partner, numbers):\n"
        "    return Partner.search([('phone_sanitized', 'in', numbers)])\n"
        "def members(Partner, query):\n"
        "    return [('phone_sanitized', 'in', query.subselect('number')),\n"
        "            ('phone_sanitized', '=', False)]\n",
        encoding="utf-8",
    )
    path = "sms_microfunnel/second.py"
    assert [line for _p, line, _w in contact_lookups(tmp_path)] == [3, 5]
    assert [line for _p, line, _w in zone_resolutions(tmp_path)] == [1, 7, 7]
    assert consent_resolutions(tmp_path) == [
        (path, 9, "consent state in states"),
        (path, 13, "consent state in search"),
    ]
    assert wait_computations(tmp_path) == [(path, 20, "wait computed in due")]
