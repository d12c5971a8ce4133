# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""First-run set-up of ``setup/run`` and ``setup/test``: the operating system
packages Odoo's requirements build against, and a project-local virtual
environment with Odoo 19.0 Community when ``$PYTHON`` has none.

Standard library only (it runs before anything is installed).  Everything it
writes lives in the git-ignored state folder (``.smf/`` at the top of the
repository): ``venv/`` (the environment), ``odoo/`` (the Odoo source it runs
from), ``downloads/`` and ``logs/``.  Each step writes under a temporary name
and renames, or is idempotent (pip), so an interrupted bootstrap is simply run
again.
"""

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".smf"
ODOO_SERIES = "19.0"
# The address a user would download Odoo 19.0 Community's source from by hand.
DEFAULT_ODOO_SOURCE = (
    "https://nightly.odoo.com/19.0/nightly/src/odoo_19.0.latest.tar.gz"
)
CONSTRAINTS = REPO / "setup" / "constraints.txt"
SUPPORTED_PYTHON = ((3, 10), (3, 13))


class PrerequisiteError(Exception):
    """Something the project needs is missing; the message says what to do."""


class StepFailed(Exception):
    """A bootstrap step failed; the message names the step, its log and its end."""


def say(message):
    print(message, flush=True)


def tail(path, lines=20):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


class Steps:
    """Numbered progress lines with the time each step took."""

    def __init__(self, total):
        self.total = total
        self.number = 0

    @contextlib.contextmanager
    def step(self, title):
        self.number += 1
        say(f"[{self.number}/{self.total}] {title}…")
        started = time.monotonic()
        yield
        say(f"      done in {time.monotonic() - started:.1f} s")


def run_logged(cmd, log_path, step, env=None, cwd=None):
    """Run ``cmd`` with its output in ``log_path``; StepFailed when it fails."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(str(c) for c in cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False
            ).returncode
        except OSError as error:
            log.write(f"{error}\n")
            rc = 127
    if rc:
        raise StepFailed(
            f"step '{step}' failed (exit {rc}). Last lines of its log "
            f"({log_path}):\n{tail(log_path)}"
        )


@contextlib.contextmanager
def locked(path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# System packages
# ---------------------------------------------------------------------------

# need → (what it is, Debian/Ubuntu package, Fedora/RHEL package)
PACKAGES = {
    "compiler": ("a C compiler", "build-essential", "gcc"),
    "python-headers": ("Python's C headers", "python{ver}-dev", "python3-devel"),
    "ldap": ("OpenLDAP headers", "libldap-dev", "openldap-devel"),
    "sasl": ("SASL headers", "libsasl2-dev", "cyrus-sasl-devel"),
    "libpq": ("PostgreSQL client headers (pg_config)", "libpq-dev", "libpq-devel"),
    "venv": ("Python's venv/ensurepip", "python{ver}-venv", "python3-libs"),
    "postgresql": ("the PostgreSQL server", "postgresql", "postgresql-server"),
    "chromium": ("Chromium (browser tours)", "chromium", "chromium"),
    "wkhtmltopdf": ("wkhtmltopdf (PDF reports)", "wkhtmltopdf", "wkhtmltopdf"),
}


def os_release():
    values = {}
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            values[key] = value.strip().strip('"')
    return values


def os_family(release=None):
    release = os_release() if release is None else release
    ids = {release.get("ID", ""), *release.get("ID_LIKE", "").split()}
    if ids & {"debian", "ubuntu"}:
        return "debian"
    if ids & {"fedora", "rhel", "centos"}:
        return "fedora"
    return ""


def package_names(needs, family, python_version, release=None):
    ver = "{}.{}".format(*python_version)
    names = []
    for need in needs:
        _, debian, fedora = PACKAGES[need]
        name = fedora if family == "fedora" else debian
        if need == "chromium" and (release or {}).get("ID") == "ubuntu":
            name = "chromium-browser"
        names.append(name.format(ver=ver))
    return list(dict.fromkeys(names))


def install_command(packages, family, root):
    if family == "fedora":
        return ("" if root else "sudo ") + "dnf install -y " + " ".join(packages)
    return (
        ("" if root else "sudo ")
        + "apt-get install -y --no-install-recommends "
        + " ".join(packages)
    )


def python_info(python):
    """(version tuple, include dir) of an interpreter."""
    out = subprocess.run(
        [
            python,
            "-c",
            (
                "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); "
                "print(sysconfig.get_paths()['include'])"
            ),
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    try:
        version = tuple(int(p) for p in out[0].split("."))
    except ValueError:
        version = (0, 0)
    return version, out[1] if len(out) > 1 else ""


def missing_build_needs(python):
    """What building Odoo's requirements needs and this system lacks."""
    version, include = python_info(python)
    missing = []
    if not (shutil.which("cc") or shutil.which("gcc")):
        missing.append("compiler")
    if not include or not (Path(include) / "Python.h").exists():
        missing.append("python-headers")
    if not header_exists("ldap.h"):
        missing.append("ldap")
    if not header_exists("sasl/sasl.h"):
        missing.append("sasl")
    if not shutil.which("pg_config"):
        missing.append("libpq")
    probe = subprocess.run(
        [python, "-c", "import ensurepip, venv"], capture_output=True, check=False
    )
    if probe.returncode:
        missing.append("venv")
    return missing, version


def header_exists(name):
    roots = ["/usr/include", "/usr/local/include"]
    roots += [str(p) for p in Path("/usr/include").glob("*-linux-gnu*")]
    return any((Path(root) / name).exists() for root in roots)


def ensure_system_packages(needs, python_version, purpose):
    """Install what is missing (root on Debian/Ubuntu) or stop with the command."""
    if not needs:
        return
    release = os_release()
    family = os_family(release)
    packages = package_names(needs, family, python_version, release)
    what = ", ".join(PACKAGES[need][0] for need in needs)
    root = os.geteuid() == 0
    if root and family == "debian" and shutil.which("apt-get"):
        say(
            f"{purpose} needs {what}: installing the system packages "
            f"{' '.join(packages)} with apt-get…"
        )
        log = STATE / "logs" / "system-packages.log"
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        try:
            run_logged(["apt-get", "update", "-q"], log, "system packages", env=env)
            run_logged(
                [
                    "apt-get",
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    *packages,
                ],
                log,
                "system packages",
                env=env,
            )
        except StepFailed as error:
            command = install_command(packages, family, True)
            raise PrerequisiteError(
                f"{error}\nInstall them by hand: {command}"
            ) from None
        return
    if family:
        hint = f"Run:\n    {install_command(packages, family, root)}"
    else:
        hint = "Install them with your system's package manager (Debian/Ubuntu names: "
        hint += " ".join(package_names(needs, "debian", python_version)) + ")."
    raise PrerequisiteError(
        f"{purpose} needs {what}, missing on this system. {hint}\n"
        "Then run the same command again."
    )


# ---------------------------------------------------------------------------
# Odoo into a project-local virtual environment
# ---------------------------------------------------------------------------


def probe_odoo(python):
    """("ok", series) / ("missing", detail) / ("error", detail) for ``python``."""
    try:
        probe = subprocess.run(
            [python, "-c", "import odoo.release as r; print(r.series)"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as error:
        return "error", str(error)
    if probe.returncode == 0:
        return "ok", probe.stdout.strip()
    lines = probe.stderr.strip().splitlines()
    detail = lines[-1] if lines else "no output"
    if "No module named 'odoo'" in detail:
        return "missing", detail
    return "error", detail


def venv_python(state=STATE):
    return state / "venv" / "bin" / "python"


def source_series(root):
    """The Odoo series of a source tree, read from ``odoo/release.py``."""
    text = (Path(root) / "odoo" / "release.py").read_text(errors="replace")
    match = re.search(r"^version_info\s*=\s*\(\s*(\d+)\s*,\s*(\d+)", text, re.MULTILINE)
    if not match:
        match = re.search(
            r"^(?:series|serie)\s*=\s*['\"](\d+)\.(\d+)", text, re.MULTILINE
        )
    return f"{match.group(1)}.{match.group(2)}" if match else "unknown"


def odoo_root_in(folder):
    """The folder holding ``odoo/release.py`` at or one level below ``folder``."""
    folder = Path(folder)
    for candidate in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
        if (candidate / "odoo" / "release.py").is_file():
            return candidate
    return None


def is_url(source):
    return re.match(r"^https?://", source) is not None


def check_source(source):
    """Validate ODOO_SOURCE before anything is created; returns its kind."""
    if is_url(source):
        return "url"
    path = Path(source).expanduser()
    if path.is_dir():
        root = odoo_root_in(path)
        if root is None:
            raise PrerequisiteError(
                f"ODOO_SOURCE={source} is a folder without Odoo's source "
                "(no odoo/release.py in it or one level below)."
            )
        series = source_series(root)
        if series != ODOO_SERIES:
            raise PrerequisiteError(
                f"ODOO_SOURCE={source} holds Odoo {series}; these addons need "
                f"Odoo {ODOO_SERIES}."
            )
        return "folder"
    if path.is_file():
        if not (tarfile.is_tarfile(path) or zipfile.is_zipfile(path)):
            raise PrerequisiteError(
                f"ODOO_SOURCE={source} is neither a folder nor a .tar(.gz/.xz) "
                "or .zip archive."
            )
        return "archive"
    raise PrerequisiteError(
        f"ODOO_SOURCE={source} does not exist. Give Odoo {ODOO_SERIES} "
        "Community's source: a URL, a local archive or a checkout folder "
        f"(default: {DEFAULT_ODOO_SOURCE})."
    )


def download(url, target, step):
    """Download ``url`` into ``target`` (via ``target.part``), with progress."""
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(url, timeout=60) as response,
            open(part, "wb") as out,
        ):
            size = int(response.headers.get("Content-Length") or 0)
            done = 0
            shown = -1
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                tenth = done * 10 // size if size else -1
                if tenth != shown and tenth >= 0:
                    shown = tenth
                    say(f"      {done >> 20} MB of {size >> 20} MB")
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise StepFailed(
            f"step '{step}' failed: could not download {url}: {error}\n"
            "Check the network (or a proxy: https_proxy), or set ODOO_SOURCE to "
            "a local archive or checkout of Odoo 19.0."
        ) from None
    part.replace(target)


def extract(archive, destination, step):
    """Unpack ``archive`` into ``destination`` (replaced); returns the Odoo root."""
    work = destination.with_name(destination.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(work)
        elif shutil.which("tar"):
            log = STATE / "logs" / "extract.log"
            run_logged(["tar", "-xf", str(archive), "-C", str(work)], log, step)
        else:
            with tarfile.open(archive) as tarred:
                tarred.extractall(work, filter="data")
    except (OSError, tarfile.TarError, zipfile.BadZipFile) as error:
        raise StepFailed(
            f"step '{step}' failed: cannot unpack {archive}: {error}"
        ) from None
    root = odoo_root_in(work)
    if root is None:
        raise StepFailed(
            f"step '{step}' failed: {archive} holds no Odoo source "
            "(no odoo/release.py)."
        )
    series = source_series(root)
    if series != ODOO_SERIES:
        shutil.rmtree(work, ignore_errors=True)
        raise PrerequisiteError(
            f"{archive} holds Odoo {series}; these addons need Odoo {ODOO_SERIES}."
        )
    shutil.rmtree(destination, ignore_errors=True)
    root.replace(destination)
    shutil.rmtree(work, ignore_errors=True)
    return destination


def stamp_ok(path, value):
    with contextlib.suppress(OSError):
        return Path(path).read_text() == value
    return False


def requirements_key(odoo_root, python):
    digest = hashlib.sha256()
    for path in (
        Path(odoo_root) / "requirements.txt",
        REPO / "requirements.txt",
        CONSTRAINTS,
    ):
        digest.update(path.read_bytes())
    digest.update(str(python).encode())
    return digest.hexdigest()


def site_packages(python):
    return subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def bootstrap_odoo(base_python, source, explicit=True):
    """Create/repair ``.smf/venv`` with Odoo 19.0 from ``source``; its python.

    An environment already complete is reused as it is, unless ``explicit``
    names another source than the one it was built from."""
    python = venv_python()
    logs = STATE / "logs"
    odoo_stamp = STATE / "odoo.source"
    req_stamp = STATE / "venv" / ".smf-requirements"
    if (
        python.exists()
        and complete(python, req_stamp)
        and (
            not explicit
            or stamp_ok(odoo_stamp, source)
            or linked_odoo(python) == Path(source).expanduser().resolve()
        )
    ):
        return python
    kind = check_source(source)
    version, _ = python_info(base_python)
    low, high = SUPPORTED_PYTHON
    if not low <= version <= high:
        raise PrerequisiteError(
            f"'{base_python}' is Python {'.'.join(map(str, version))}; Odoo "
            f"{ODOO_SERIES} supports Python {low[0]}.{low[1]} to "
            f"{high[0]}.{high[1]}. Set PYTHON to one of those."
        )
    STATE.mkdir(exist_ok=True)
    with locked(STATE / "bootstrap.lock"):
        odoo_dir = Path(source).expanduser().resolve() if kind == "folder" else None
        say(
            f"Odoo {ODOO_SERIES} is not importable from '{base_python}': installing "
            f"it into the project's environment {python.parent.parent} "
            f"(source: {source}). Logs: {logs}"
        )
        needs, _ = missing_build_needs(base_python)
        ensure_system_packages(needs, version, "Installing Odoo's requirements")
        steps = Steps(5 if kind == "url" else 4)
        if odoo_dir:
            odoo_dir = odoo_root_in(odoo_dir)
            with steps.step(f"Odoo source: using the checkout {odoo_dir}"):
                pass
        else:
            odoo_dir = STATE / "odoo"
            if stamp_ok(odoo_stamp, source) and odoo_root_in(odoo_dir) == odoo_dir:
                with steps.step(f"Odoo source: reusing {odoo_dir}"):
                    pass
            else:
                odoo_stamp.unlink(missing_ok=True)
                archive = Path(source).expanduser()
                if kind == "url":
                    archive = STATE / "downloads" / "odoo-source.archive"
                    with steps.step(f"Downloading {source}"):
                        download(source, archive, "download")
                with steps.step(f"Unpacking Odoo's source into {odoo_dir}"):
                    extract(archive, odoo_dir, "unpack")
                odoo_stamp.write_text(source)
                if kind == "url":
                    archive.unlink(missing_ok=True)
        with steps.step(f"Virtual environment {python.parent.parent}"):
            if not runs(python):
                shutil.rmtree(STATE / "venv", ignore_errors=True)
                run_logged(
                    [base_python, "-m", "venv", str(STATE / "venv")],
                    logs / "venv.log",
                    "virtual environment",
                )
        key = requirements_key(odoo_dir, python)
        with steps.step(
            "Python requirements (Odoo's requirements.txt and ours; the first "
            "time this downloads and builds for several minutes)"
        ):
            if not stamp_ok(req_stamp, key):
                req_stamp.unlink(missing_ok=True)
                pip_install(python, odoo_dir, logs / "requirements.log")
                req_stamp.write_text(key)
        with steps.step("Odoo install (the source linked into the environment)"):
            link = Path(site_packages(python)) / "smf-odoo-source.pth"
            link.write_text(f"{odoo_dir}\n")
            status, series = probe_odoo(str(python))
            if status != "ok" or series != ODOO_SERIES:
                raise StepFailed(
                    f"step 'Odoo install' failed: {python} cannot import Odoo "
                    f"{ODOO_SERIES} from {odoo_dir}: {series}"
                )
        say(f"Odoo {ODOO_SERIES} ready in {python.parent.parent}")
    return python


def complete(python, req_stamp):
    """The environment imports Odoo 19.0 and its requirements went in."""
    status, series = probe_odoo(str(python))
    if status != "ok" or series != ODOO_SERIES:
        return False
    try:
        return stamp_ok(req_stamp, requirements_key(linked_odoo(python), python))
    except OSError:  # the source folder it was built from is gone
        return False


def linked_odoo(python):
    """The Odoo source folder the environment's .pth points at (or STATE/odoo)."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        link = Path(site_packages(python)) / "smf-odoo-source.pth"
        return Path(link.read_text().strip())
    return STATE / "odoo"


def runs(python):
    if not Path(python).exists():
        return False
    probe = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, check=False
    )
    return probe.returncode == 0


def pip_install(python, odoo_dir, log_path):
    # PIP_CONSTRAINT also reaches the isolated environments pip builds source
    # packages in (cbor2 needs setuptools<81 there); a -c option would not.
    constraints = " ".join(
        p for p in (str(CONSTRAINTS), os.environ.get("PIP_CONSTRAINT", "")) if p
    )
    env = dict(os.environ, PIP_CONSTRAINT=constraints)
    run_logged(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--progress-bar=off",
            "-r",
            str(Path(odoo_dir) / "requirements.txt"),
            "-r",
            str(REPO / "requirements.txt"),
        ],
        log_path,
        "Python requirements",
        env=env,
    )


def ensure_odoo_python(python):
    """The interpreter to run Odoo with: ``python`` when it has Odoo 19.0, else
    the project's environment (built on first use)."""
    if not shutil.which(python) and not Path(python).is_file():
        raise PrerequisiteError(
            f"Python interpreter '{python}' not found. Set PYTHON to a Python "
            "3.10 to 3.13 (with Odoo 19.0 or without: the scripts then install it)."
        )
    status, detail = probe_odoo(python)
    if status == "ok":
        if detail != ODOO_SERIES:
            raise PrerequisiteError(
                f"'{python}' imports Odoo {detail}, but these addons need Odoo "
                f"{ODOO_SERIES}. Point PYTHON at an interpreter with Odoo "
                f"{ODOO_SERIES}, or at one without Odoo (the scripts then install "
                "it into the project's environment)."
            )
        return python
    if status == "error":
        raise PrerequisiteError(
            f"Odoo is installed in '{python}' but cannot be imported ({detail}). "
            "Repair that installation, or point PYTHON at a Python without Odoo "
            "(the scripts then install it into the project's environment)."
        )
    source = os.environ.get("ODOO_SOURCE") or DEFAULT_ODOO_SOURCE
    return str(bootstrap_odoo(python, source, explicit="ODOO_SOURCE" in os.environ))


if __name__ == "__main__":  # pragma: no cover - manual use
    print(ensure_odoo_python(sys.argv[1] if len(sys.argv) > 1 else sys.executable))
