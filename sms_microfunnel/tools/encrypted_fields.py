# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""Char and Text fields encrypted at rest (tools/sms_crypto.py).

The column holds ``smfenc1:<Fernet token>``; the ORM cache holds the clear
text, so forms, exports and code read and write these fields as usual.  The
value is encrypted when it is written to the database and decrypted when it is
read from it.

Searching: ``= False`` / ``!= False`` run in SQL (an empty value stays NULL).
Any other condition (``=``, ``ilike``…) decrypts the non-empty values of the
column in Python and filters them: correct, but it reads the whole column, so
hot paths search a keyed hash column instead (e.g. the consent event's
``ip_hash``).  Sorting and grouping by an encrypted field are disabled.
"""

import re

from odoo import fields
from odoo.tools import SQL

from . import sms_crypto

NEGATIVE = {"not in": "in", "not like": "like", "not ilike": "ilike", "!=": "="}


def _like_regex(pattern, operator):
    """A compiled regex for an SQL LIKE pattern (``%`` and ``_`` wildcards)."""
    parts = []
    escaped = False
    for char in pattern:
        if escaped:
            parts.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    body = "".join(parts)
    if operator in ("like", "ilike"):
        body = f".*{body}.*"
    flags = re.DOTALL | (re.IGNORECASE if "ilike" in operator else 0)
    return re.compile(body, flags)


class _EncryptedMixin:
    """What the encrypted Char and Text fields share."""

    def _insert_cache(self, records, values):
        return super()._insert_cache(records, [sms_crypto.decrypt(v) for v in values])

    def convert_to_column_insert(self, value, record, values=None, validate=True):
        value = super().convert_to_column_insert(value, record, values, validate)
        return sms_crypto.encrypt(value)

    def _description_sortable(self, env):
        return False

    def _description_groupable(self, env):
        return False

    def _matcher(self, operator, value):
        if operator in ("in", "="):
            wanted = {v for v in (value if operator == "in" else [value]) if v}
            return lambda text: text in wanted
        if operator in ("like", "ilike", "=like", "=ilike"):
            regex = _like_regex(str(value), operator)
            return lambda text: bool(regex.fullmatch(text))
        raise ValueError(f"Operator {operator} is not supported on an encrypted field")

    def condition_to_sql(self, field_expr, operator, value, model, alias, query):
        if field_expr != self.name or (operator in ("in", "not in") and not any(value)):
            # emptiness: NULL (or '') in SQL, no clear text involved
            return super().condition_to_sql(
                field_expr, operator, value, model, alias, query
            )
        positive = NEGATIVE.get(operator, operator)
        matches = self._matcher(positive, value)
        model.flush_model([self.name])
        rows = model.env.execute_query(
            SQL(
                "SELECT id, %s FROM %s WHERE %s IS NOT NULL",
                SQL.identifier(self.name),
                SQL.identifier(model._table),
                SQL.identifier(self.name),
            )
        )
        ids = tuple(
            row_id for row_id, stored in rows if matches(sms_crypto.decrypt(stored))
        )
        id_column = SQL.identifier(alias, "id")
        condition = SQL("%s IN %s", id_column, ids) if ids else SQL("FALSE")
        if positive in ("in", "=") and not all(value if positive == "in" else [value]):
            # ('x', False): the matches or an empty value
            condition = SQL(
                "(%s OR %s IS NULL)",
                condition,
                SQL.identifier(alias, self.name),
            )
        if positive == operator:
            return condition
        return SQL("(NOT %s)", condition)


class EncryptedChar(_EncryptedMixin, fields.Char):
    """A Char stored encrypted (the column has no size: tokens are longer)."""

    @property
    def _column_type(self):
        return ("varchar", "varchar")


class EncryptedText(_EncryptedMixin, fields.Text):
    """A Text stored encrypted."""


def encrypted_fields(env):
    """{model name: [field names]} of every encrypted field of the registry."""
    found = {}
    for model_name in env.registry:
        model = env[model_name]
        if model._abstract or not model._auto:
            continue
        for name, field in model._fields.items():
            if isinstance(field, _EncryptedMixin) and field.store:
                found.setdefault(model_name, []).append(name)
    return found


def reencrypt_all(env, chunk_size=1000):
    """Re-encrypt every encrypted column, and the suppression secret, with the
    first configured key (and encrypt values still in clear); returns the
    number of values rewritten.  Run it after putting a new key first, before
    removing the old one (readme/CONFIGURE.md)."""
    env.flush_all()
    env["sms.microfunnel.suppression"]._reencrypt_key()
    done = 0
    for model_name, names in encrypted_fields(env).items():
        table = env[model_name]._table
        for name in names:
            last_id = 0
            while True:
                rows = env.execute_query(
                    SQL(
                        "SELECT id, %s FROM %s WHERE id > %s AND %s IS NOT NULL "
                        "ORDER BY id LIMIT %s",
                        SQL.identifier(name),
                        SQL.identifier(table),
                        last_id,
                        SQL.identifier(name),
                        chunk_size,
                    )
                )
                if not rows:
                    break
                last_id = rows[-1][0]
                updates = [
                    (row_id, new)
                    for row_id, stored in rows
                    if (new := sms_crypto.reencrypt(stored, strict=True)) is not None
                ]
                if updates:
                    env.cr.execute(
                        SQL(
                            "UPDATE %s AS t SET %s = v.value FROM (VALUES %s) "
                            "AS v(id, value) WHERE t.id = v.id",
                            SQL.identifier(table),
                            SQL.identifier(name),
                            SQL(", ").join(SQL("(%s, %s)", *u) for u in updates),
                        )
                    )
                    done += len(updates)
    env.invalidate_all()
    return done
