# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""What a dispatch run reads of the configuration, kept across its commits.

Each chunk of a dispatch run is committed, and Odoo's commit empties the ORM
cache: without this, every chunk would read the funnels' steps, the send
window policies with their hours and closed days, the prices, the company,
the step's SMS mailing and its link trackers again, some twenty queries a
chunk for rows that hardly ever change during a run.

A run keeps (``RunCache``):

- the cached values of the stored fields of those records, put back into the
  ORM cache after each commit (``keep`` before the commit, ``restore`` after);
- the results of its searches over them (``memo``: ids or plain values).

At the start of every chunk one query fingerprints the rows kept: every row
of the tables that are searched (a policy or a price created since is seen),
the kept rows of the others.  The fingerprint is made of the rows' ids and
row versions (PostgreSQL's ``xmin`` changes with each update), so any
creation, change or deletion since the previous chunk, by this run or by
anyone else, drops everything kept and the chunk reads it all again.
"""

from odoo.tools import SQL

#: model -> how its rows are fingerprinted: ``None`` every row (its table is
#: searched), else the column holding the ids of the kept records of the
#: model named after it (``("id", model)``: the kept rows themselves)
MODELS = {
    "sms.microfunnel.step": None,
    "sms.microfunnel.step.slot": None,
    "sms.microfunnel.policy": None,
    "sms.microfunnel.policy.line": None,
    "sms.microfunnel.policy.holiday": None,
    "sms.microfunnel.price": None,
    "res.company": None,
    "res.users": ("id", "res.users"),
    "res.partner": ("id", "res.partner"),
    "res.country": ("id", "res.country"),
    "res.country.state": ("id", "res.country.state"),
    "mailing.mailing": ("id", "mailing.mailing"),
    "utm.medium": ("id", "utm.medium"),
    "utm.source": ("id", "utm.source"),
    "link.tracker": ("id", "link.tracker"),
    "link.tracker.code": ("link_id", "link.tracker"),
}

#: cache values that may be mutable or large: never kept
SKIPPED_TYPES = frozenset({"binary", "json", "properties", "properties_definition"})

CONTEXT_KEY = "smf_run_cache"

MISSING = object()


def memo(env, key, compute, model=None, ids=None):
    """``compute()``, remembered for the dispatch run of ``env`` (if any)
    until the configuration changes.  ``compute`` returns plain values (ids,
    not records); ``key`` must name everything the result depends on.  When
    the result names records of a model whose rows are fingerprinted one by
    one, ``model`` names it and ``ids(result)`` gives their ids (default:
    the result is the ids)."""
    cache = env.context.get(CONTEXT_KEY)
    if cache is None:
        return compute()
    return cache.memo(key, compute, model=model, ids=ids)


class RunCache:
    """The configuration kept by one dispatch run (see the module)."""

    def __init__(self):
        self.values = {}  # {field: {id: cache value}}
        self.memos = {}
        self.memo_ids = {}  # {model: ids} of the records named by memos
        # the fingerprint of the kept rows, and the ids it was taken over
        self.fingerprint = None
        self.fingerprint_ids = None

    def __repr__(self):
        # the context of every environment of the run holds it
        return f"<RunCache {len(self.values)} fields, {len(self.memos)} memos>"

    def memo(self, key, compute, model=None, ids=None):
        """``compute()`` the first time ``key`` is asked, then its result
        (see the function ``memo``)."""
        if key not in self.memos:
            value = compute()
            self.memos[key] = value
            if model:
                found = ids(value) if ids else value
                self.memo_ids.setdefault(model, set()).update(found)
        return self.memos[key]

    def forget(self):
        """Drop everything kept (the chunk that read it was rolled back)."""
        self.values, self.memos, self.memo_ids = {}, {}, {}
        self.fingerprint = self.fingerprint_ids = None

    # -- ORM cache ----------------------------------------------------------

    def _kept_fields(self, env, model_name):
        for field in env[model_name]._fields.values():
            if (
                not field.store
                or field.type in SKIPPED_TYPES
                or field in env._field_depends_context
                # translated values are kept in the run's language only
                or (
                    getattr(field, "translate", False)
                    and "prefetch_langs" in env.context
                )
            ):
                continue
            # the rows of a relation are seen only when its table is
            # fingerprinted whole (a line added to a kept policy)
            whole = field.comodel_name in MODELS and MODELS[field.comodel_name] is None
            if field.type in ("one2many", "many2many") and not whole:
                continue
            yield field

    def _partner_ids(self, env):
        """The partners kept: the companies' and the users' (never the
        recipients of a chunk)."""
        ids = set()
        for model_name in ("res.company", "res.users"):
            field = env[model_name]._fields["partner_id"]
            ids.update(value for value in field._get_cache(env).values() if value)
        return ids

    def _kept_ids(self):
        """{model: ids} of the kept records of the models fingerprinted by
        their kept rows."""
        ids = {model: set(found) for model, found in self.memo_ids.items()}
        for field, cached in self.values.items():
            ids.setdefault(field.model_name, set()).update(cached)
        owners = {spec[1] for spec in MODELS.values() if spec is not None}
        return {owner: tuple(sorted(ids.get(owner, ()))) for owner in owners}

    def keep(self, env):
        """At the end of a chunk, its changes flushed, before the commit:
        copy what the ORM cache holds of the configuration.  When rows are
        kept that the fingerprint does not cover yet, it is taken again (one
        query, in the transaction that read them)."""
        partners = self._partner_ids(env)
        values = {}
        for model_name in MODELS:
            for field in self._kept_fields(env, model_name):
                cached = field._get_cache(env)
                # the partners kept only: a chunk's recipients are thousands
                ids = partners if model_name == "res.partner" else list(cached)
                values[field] = {
                    i: v
                    for i in ids
                    if isinstance(i, int)
                    # a translated value may be cached in other languages only
                    and (v := cached.get(i, MISSING)) is not MISSING
                }
        self.values = {field: cached for field, cached in values.items() if cached}
        kept_ids = self._kept_ids()
        if kept_ids != self.fingerprint_ids:
            self.fingerprint_ids = kept_ids
            self.fingerprint = self._fingerprint(env, kept_ids)

    def restore(self, env):
        """Put the kept values back into the ORM cache (values already in
        the cache win)."""
        for field, cached in self.values.items():
            records = env[field.model_name].browse(cached.keys())
            field._insert_cache(records, cached.values())

    def _fingerprint(self, env, kept_ids):
        parts = []
        for model_name, spec in MODELS.items():
            where = SQL("TRUE")
            if spec is not None:
                column, owner = spec
                where = SQL(
                    "%s = ANY(%s)", SQL.identifier(column), list(kept_ids[owner])
                )
            parts.append(
                SQL(
                    "(SELECT count(*) || ':' || COALESCE(md5(string_agg("
                    "id || '.' || xmin::text, ',' ORDER BY id)), '') "
                    "FROM %s WHERE %s)",
                    SQL.identifier(env[model_name]._table),
                    where,
                )
            )
        query = SQL("SELECT md5(concat_ws('/', %s))", SQL(", ").join(parts))
        return env.execute_query(query)[0][0]

    def refresh(self, env):
        """At the start of a chunk (one query when something is kept): what
        is kept goes back into the ORM cache if none of its rows changed
        since it was read, else it is all dropped."""
        if self.fingerprint is None:
            return
        if self._fingerprint(env, self.fingerprint_ids) == self.fingerprint:
            self.restore(env)
        else:
            self.forget()
