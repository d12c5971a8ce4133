"""Each addon builds as a wheel with whool and carries the OCA manifest keys."""

import ast
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

ADDONS = tuple(sorted(p.parent.name for p in REPO.glob("*/__manifest__.py")))
OCA_KEYS = {
    "name",
    "summary",
    "version",
    "category",
    "website",
    "author",
    "maintainers",
    "license",
    "development_status",
    "depends",
    "installable",
}


def manifest(addon):
    return ast.literal_eval((REPO / addon / "__manifest__.py").read_text())


@pytest.mark.parametrize("addon", ADDONS)
def test_manifest_keys(addon):
    data = manifest(addon)
    assert OCA_KEYS <= data.keys()
    assert data["version"] == "19.0.1.0.0"
    assert data["license"] == "LGPL-3"
    assert data["development_status"] in {
        "Alpha",
        "Beta",
        "Production/Stable",
        "Mature",
    }
    assert isinstance(data["maintainers"], list) and data["maintainers"]
    for fragment in ("DESCRIPTION.md", "CONTRIBUTORS.md"):
        assert (REPO / addon / "readme" / fragment).is_file()


def test_python_dependencies_are_declared():
    assert (
        "phonenumbers" in manifest("sms_microfunnel")["external_dependencies"]["python"]
    )
    requirements = (REPO / "requirements.txt").read_text()
    for addon in ADDONS:
        for package in (
            manifest(addon).get("external_dependencies", {}).get("python", [])
        ):
            assert package in requirements, f"{package} missing from requirements.txt"


@pytest.mark.parametrize(
    ("addon", "requires"),
    [
        ("sms_microfunnel", {"odoo==19.0.*", "phonenumbers"}),
        ("sms_microfunnel_twilio", {"odoo-addon-sms_microfunnel==19.0.*", "requests"}),
        (
            "sms_microfunnel_sale",
            {"odoo-addon-sms_microfunnel==19.0.*", "odoo==19.0.*"},
        ),
        (
            "sms_microfunnel_event",
            {"odoo-addon-sms_microfunnel==19.0.*", "odoo==19.0.*"},
        ),
    ],
)
def test_whool_builds_a_wheel(tmp_path, addon, requires):
    pytest.importorskip("whool")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(REPO / addon),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith(f"odoo_addon_{addon}-19.0.1.0.0")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(n for n in names if n.endswith("METADATA"))
        text = archive.read(metadata).decode()
    assert f"odoo/addons/{addon}/__manifest__.py" in names
    # every Python package of the addon travels in the wheel
    packages = {
        path.parent.relative_to(REPO).as_posix()
        for path in (REPO / addon).rglob("__init__.py")
    }
    assert packages, addon
    for package in packages:
        assert f"odoo/addons/{package}/__init__.py" in names, package
    declared = {
        line.split(":", 1)[1].strip().replace(" ", "")
        for line in text.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert requires <= declared, declared


def test_readme_rst_is_built_from_fragments():
    result = subprocess.run(
        [sys.executable, str(REPO / "setup" / "gen_readme.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("addon", ADDONS)
def test_readme_rst_renders_cleanly(addon):
    """Odoo renders README.rst on install and logs every docutils complaint as
    a WARNING: the file must be clean reStructuredText."""
    docutils_core = pytest.importorskip("docutils.core")
    import io  # noqa: PLC0415

    errors = io.StringIO()
    docutils_core.publish_doctree(
        (REPO / addon / "README.rst").read_text(),
        settings_overrides={"warning_stream": errors, "report_level": 2},
    )
    assert not errors.getvalue(), errors.getvalue()
