"""One home per concept: where a reader finds a model, a menu or a cron.

- each model the addons define (``_name``) lives in exactly one Python file,
  named after it (``sms.microfunnel.campaign`` →
  ``sms_microfunnel_campaign.py``), in ``models/``, ``wizard/`` or
  ``report/``;
- an extension of another module's model (``_inherit`` only) lives in a file
  named after that model (``res.partner`` → ``res_partner.py``), and a model
  is extended at most once per addon;
- an abstract model of the addons is a mixin shared by several models or a
  service, not a partial class of one model (an abstract model that a single
  other model inherits belongs in that model's class);
- every menu item of an addon is in ``views/<addon>_menus.xml``;
- every ``ir.cron`` record of an addon is in ``data/ir_cron_data.xml``.

Checked on the source files (no Odoo needed).  ``ROOT`` can point the test at
another checkout.
"""

import ast
import os
from collections import defaultdict
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(os.environ.get("SMF_LAYOUT_ROOT") or Path(__file__).resolve().parent.parent)
ADDONS = sorted(p.parent for p in ROOT.glob("sms_microfunnel*/__manifest__.py"))
MODEL_DIRS = ("models", "wizard", "report")

# Files that still hold more than one model, or a model under another name.
# Each entry is temporary and says why; the list may only shrink.
EXCEPTIONS = {}


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def model_classes(path):
    """(model, kind) of each Odoo model class in ``path``: kind is ``define``
    for a ``_name`` (new model or ``_name = _inherit`` extension written the
    classic way) and ``extend`` for an ``_inherit``-only class."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name) and target.id in ("_name", "_inherit"):
                    attrs[target.id] = _literal(stmt.value)
        name, inherit = attrs.get("_name"), attrs.get("_inherit")
        inherits = [inherit] if isinstance(inherit, str) else list(inherit or [])
        if name:
            kind = "extend" if name in inherits else "define"
            found.append((name, kind))
        elif len(inherits) == 1:
            found.append((inherits[0], "extend"))
    return found


def python_files(addon):
    for folder in MODEL_DIRS:
        yield from sorted((addon / folder).glob("*.py"))


def expected_stem(model):
    return model.replace(".", "_")


def layout_problems(addons=ADDONS):
    problems = []
    defined_in = defaultdict(list)
    for addon in addons:
        homes = defaultdict(list)
        for path in python_files(addon):
            rel = path.relative_to(ROOT).as_posix()
            models = model_classes(path)
            allowed = EXCEPTIONS.get(rel, set())
            for model, kind in models:
                homes[(model, kind)].append(rel)
                if model in allowed:
                    continue
                if path.stem != expected_stem(model):
                    problems.append(
                        f"{rel}: {model} belongs in {expected_stem(model)}.py"
                    )
        for (model, kind), files in sorted(homes.items()):
            if len(files) > 1:
                problems.append(f"{addon.name}: {model} ({kind}) in {files}")
        defined = {m for m, k in homes if k == "define"}
        for model in defined:
            defined_in[model].extend(homes[(model, "define")])
        for model, kind in homes:
            if kind == "extend" and model in defined:
                problems.append(f"{addon.name}: {model} extends itself")
    for model, files in sorted(defined_in.items()):
        if len(files) > 1:
            problems.append(f"{model} defined in {files}")
    return problems


def _class_models(path):
    """(``_name``, inherited names, abstract?) of each model class in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs = {}
        for stmt in node.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target = stmt.targets[0]
                if isinstance(target, ast.Name) and target.id in ("_name", "_inherit"):
                    attrs[target.id] = _literal(stmt.value)
        inherit = attrs.get("_inherit")
        inherits = [inherit] if isinstance(inherit, str) else list(inherit or [])
        name = attrs.get("_name") or (inherits[0] if len(inherits) == 1 else None)
        abstract = any(
            isinstance(base, ast.Attribute) and base.attr == "AbstractModel"
            for base in node.bases
        )
        yield name, inherits, abstract


def partial_class_problems(addons=ADDONS):
    """Abstract models of the addons that exactly one other model inherits:
    partial classes of that model."""
    abstract, inheritors = {}, defaultdict(set)
    for addon in addons:
        for path in python_files(addon):
            rel = path.relative_to(ROOT).as_posix()
            for name, inherits, is_abstract in _class_models(path):
                if is_abstract and name and name not in inherits:
                    abstract[name] = rel
                for parent in inherits:
                    if parent != name:
                        inheritors[parent].add(name)
    return [
        f"{rel}: {name} is only inherited by {next(iter(inheritors[name]))}: "
        "fold it into that model"
        for name, rel in sorted(abstract.items())
        if len(inheritors[name]) == 1
    ]


def xml_files(addon):
    return sorted(p for p in addon.rglob("*.xml") if "static" not in p.parts)


def records(path, xpath):
    tree = etree.parse(str(path))
    return tree.xpath(xpath)


def menu_problems(addons=ADDONS):
    problems = []
    for addon in addons:
        menus_file = addon / "views" / f"{addon.name}_menus.xml"
        for path in xml_files(addon):
            if path == menus_file:
                continue
            found = records(path, "//menuitem | //record[@model='ir.ui.menu']")
            if found:
                problems.append(
                    f"{path.relative_to(ROOT)}: {len(found)} menu item(s) outside "
                    f"{menus_file.relative_to(ROOT)}"
                )
    return problems


def cron_problems(addons=ADDONS):
    problems = []
    for addon in addons:
        cron_file = addon / "data" / "ir_cron_data.xml"
        for path in xml_files(addon):
            if path == cron_file:
                continue
            found = records(path, "//record[@model='ir.cron']")
            if found:
                problems.append(
                    f"{path.relative_to(ROOT)}: {len(found)} cron(s) outside "
                    f"{cron_file.relative_to(ROOT)}"
                )
    return problems


def test_addons_found():
    assert {a.name for a in ADDONS} >= {
        "sms_microfunnel",
        "sms_microfunnel_twilio",
        "sms_microfunnel_sale",
        "sms_microfunnel_event",
    }


@pytest.mark.parametrize(
    "check",
    [layout_problems, partial_class_problems, menu_problems, cron_problems],
    ids=lambda f: f.__name__,
)
def test_one_home_per_concept(check):
    problems = check()
    assert not problems, "\n".join(problems)


def test_exceptions_are_still_needed():
    """An exception that no longer matches a file must be removed."""
    for rel, allowed in EXCEPTIONS.items():
        path = ROOT / rel
        if not path.exists():
            continue
        models = {m for m, _kind in model_classes(path)}
        assert models & allowed, f"{rel}: exception no longer needed"


def test_checks_catch_a_split_model(tmp_path):
    """The checks see a model split across files and a misplaced menu/cron."""
    addon = tmp_path / "sms_microfunnel_x"
    (addon / "models").mkdir(parents=True)
    (addon / "views").mkdir()
    (addon / "data").mkdir()
    (addon / "models" / "sms_microfunnel_x_thing.py").write_text(
        "class A:\n    _name = 'sms.microfunnel.x.thing'\n"
    )
    (addon / "models" / "thing_extra.py").write_text(
        "class B:\n    _inherit = 'sms.microfunnel.x.thing'\n"
    )
    (addon / "models" / "sms_microfunnel_x_part.py").write_text(
        "class C(models.AbstractModel):\n    _name = 'sms.microfunnel.x.part'\n"
    )
    (addon / "models" / "sms_microfunnel_x_whole.py").write_text(
        "class D:\n    _name = 'sms.microfunnel.x.whole'\n"
        "    _inherit = ['mail.thread', 'sms.microfunnel.x.part']\n"
    )
    (addon / "views" / "thing_views.xml").write_text(
        '<odoo><menuitem id="m" name="M" /></odoo>'
    )
    (addon / "data" / "ir_cron_other.xml").write_text(
        '<odoo><record id="c" model="ir.cron" /></odoo>'
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert any("extends itself" in p for p in layout_problems([addon]))
        assert any("thing_extra.py" in p for p in layout_problems([addon]))
        assert any(
            "x.part is only inherited" in p for p in partial_class_problems([addon])
        )
        assert menu_problems([addon])
        assert cron_problems([addon])
    finally:
        ROOT = saved


def _missing_imports(root):
    """Imports of the addons' own modules (relative, or through
    ``odoo.addons.<our addon>``) that name no file: a module moved without
    updating an import that runs only late (inside a function) or in tests."""
    ours = {p.parent.name for p in root.glob("sms_microfunnel*/__manifest__.py")}
    missing = []
    for path in sorted(root.glob("sms_microfunnel*/**/*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                parts = node.module.split(".") if node.module else []
            elif node.module and node.module.startswith("odoo.addons."):
                parts = node.module.split(".")[2:]
                if parts[0] not in ours:
                    continue
                base = root
            else:
                continue
            target = base.joinpath(*parts)
            candidates = [target.with_suffix(".py"), target / "__init__.py"]
            if parts and not any(c.exists() for c in candidates):
                missing.append(f"{path.relative_to(root)}:{node.lineno} {node.module}")
                continue
            # ``from . import name`` / ``from .pkg import module``
            for alias in node.names:
                sub = target / alias.name
                if target.is_dir() and not (
                    sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                ):
                    init = (target / "__init__.py").read_text(encoding="utf-8")
                    if alias.name not in init:
                        missing.append(
                            f"{path.relative_to(root)}:{node.lineno} "
                            f"{node.module or '.'}.{alias.name}"
                        )
    return missing


def test_imports_of_our_modules_name_existing_files():
    assert not _missing_imports(ROOT)


def test_import_check_catches_a_stale_module_name(tmp_path):
    addon = tmp_path / "sms_microfunnel_x"
    (addon / "models").mkdir(parents=True)
    (addon / "__manifest__.py").write_text("{}")
    (addon / "models" / "__init__.py").write_text("from . import new_name\n")
    (addon / "models" / "new_name.py").write_text("X = 1\n")
    (addon / "models" / "other.py").write_text(
        "def f():\n    from .old_name import X\n    return X\n"
    )
    assert _missing_imports(tmp_path) == [
        "sms_microfunnel_x/models/other.py:2 old_name"
    ]
