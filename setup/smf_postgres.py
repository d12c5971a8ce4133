# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
"""The project's private PostgreSQL cluster, used when no server is reachable.

Standard library only.  The cluster lives in ``.smf/postgresql/`` (git-ignored):
``data/`` (the cluster, its Unix socket and ``server.log``), ``port`` (the TCP
port on 127.0.0.1 it used last, reused when still free) and ``password`` (of
the ``odoo`` superuser, for TCP connections; the socket is reserved to the
server's owner).  It is created with the installed server binaries (``initdb``,
``pg_ctl``).  PostgreSQL refuses to run as root: as root the cluster belongs to
the ``postgres`` system user and its commands run through ``runuser``.
"""

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from smf_bootstrap import (
    STATE,
    PrerequisiteError,
    StepFailed,
    locked,
    say,
    tail,
)

ROLE = "odoo"
SERVER_USER_AS_ROOT = "postgres"


def server_binaries():
    """The folder holding initdb and pg_ctl (newest installed server), or None."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: (
            int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
        ),
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    return None


def port_free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One private cluster in ``folder``."""

    def __init__(self, folder=None, bindir=None):
        self.folder = Path(folder or STATE / "postgresql")
        self.data = self.folder / "data"
        self.bindir = bindir or server_binaries()
        self.log = self.folder / "server.log"
        self.started_here = False
        self.port = None
        if os.geteuid() == 0:
            try:
                self.owner = pwd.getpwnam(SERVER_USER_AS_ROOT)
            except KeyError:
                self.owner = None
        else:
            self.owner = pwd.getpwuid(os.getuid())

    # -- helpers -----------------------------------------------------------

    def command(self, *args):
        """A server command, run as the cluster's owner."""
        cmd = [str(self.bindir / args[0]), *map(str, args[1:])]
        if os.geteuid() == 0:
            return ["runuser", "-u", self.owner.pw_name, "--", *cmd]
        return cmd

    def run(self, step, *args, log=None):
        log = Path(log or self.folder / "commands.log")
        with open(log, "a") as out:
            out.write("$ " + " ".join(map(str, args)) + "\n")
            out.flush()
            rc = subprocess.run(
                self.command(*args),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd="/",
                check=False,
                start_new_session=True,
            ).returncode
        if rc:
            raise StepFailed(
                f"step '{step}' of the private PostgreSQL cluster failed (exit {rc}). "
                f"Last lines of {log}:\n{tail(log)}"
                + (
                    f"\nServer log ({self.log}):\n{tail(self.log)}"
                    if self.log.exists()
                    else ""
                )
            )

    def give(self, path):
        if os.geteuid() == 0:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    @property
    def socket_dir(self):
        return self.data

    @property
    def password_file(self):
        return self.folder / "password"

    def running_port(self):
        """The port of a server already running on this cluster, else None."""
        pid_file = self.data / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        status = subprocess.run(
            self.command("pg_ctl", "-D", self.data, "status"),
            capture_output=True,
            check=False,
            cwd="/",
        )
        return port if status.returncode == 0 else None

    # -- life cycle --------------------------------------------------------

    def check_usable(self):
        if self.bindir is None:
            raise PrerequisiteError("no PostgreSQL server binaries (initdb, pg_ctl)")
        if os.geteuid() == 0 and not shutil.which("runuser"):
            raise PrerequisiteError(
                "PostgreSQL refuses to run as root and 'runuser' (util-linux) is "
                "missing to run the private cluster as another user."
            )
        if self.owner is None:
            raise PrerequisiteError(
                "PostgreSQL refuses to run as root and there is no "
                f"'{SERVER_USER_AS_ROOT}' system user to run the private cluster. "
                f"Create one (useradd --system {SERVER_USER_AS_ROOT}) or run as "
                "a normal user."
            )
        if len(str(self.socket_dir)) > 90:
            raise PrerequisiteError(
                f"The repository's path is too long for a Unix socket in "
                f"{self.socket_dir}; clone it in a shorter path, or use a "
                "PostgreSQL server of your own (PGHOST, PGPORT, PGUSER, PGPASSWORD)."
            )

    def initialized(self):
        return (self.folder / "initialized").exists() and (
            self.data / "PG_VERSION"
        ).exists()

    def init(self):
        """initdb with the ``odoo`` superuser (an interrupted one starts over)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.give(self.folder)
        if os.geteuid() == 0:
            probe = subprocess.run(
                [
                    "runuser",
                    "-u",
                    self.owner.pw_name,
                    "--",
                    "test",
                    "-w",
                    str(self.folder),
                ],
                capture_output=True,
                check=False,
            )
            if probe.returncode:
                raise PrerequisiteError(
                    f"The private cluster runs as the '{self.owner.pw_name}' user, "
                    f"who cannot write to {self.folder} (a parent folder is "
                    "private, e.g. under /root). Clone the repository in a folder "
                    "that user can reach, or use a PostgreSQL server of your own "
                    "(PGHOST, PGPORT, PGUSER, PGPASSWORD)."
                )
        shutil.rmtree(self.data, ignore_errors=True)
        (self.folder / "initialized").unlink(missing_ok=True)
        password = secrets.token_urlsafe(18)
        pwfile = self.folder / "password.init"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        self.give(pwfile)
        say(f"Creating the private PostgreSQL cluster in {self.data} (role '{ROLE}')…")
        try:
            self.run(
                "initdb",
                "initdb",
                "-D",
                self.data,
                "-U",
                ROLE,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8" if c_utf8_available() else "--no-locale",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        self.password_file.write_text(password + "\n")
        self.password_file.chmod(0o600)
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# set by setup/smf_postgres.py\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                # a development cluster: a crash may lose the last commits,
                # never corrupt the data
                "synchronous_commit = off\n"
            )
        (self.folder / "initialized").write_text("")

    def choose_port(self):
        with contextlib.suppress(OSError, ValueError):
            port = int((self.folder / "port").read_text())
            if (
                port_free(port)
                and not Path(self.socket_dir, f".s.PGSQL.{port}").exists()
            ):
                return port
        port = free_port()
        (self.folder / "port").write_text(str(port))
        return port

    def start(self):
        """Start the cluster (create it first if needed); sets self.port."""
        self.check_usable()
        self.folder.mkdir(parents=True, exist_ok=True)
        with locked(self.folder.parent / "postgresql.lock"):
            port = self.running_port()
            if port:
                say(
                    "Using the private PostgreSQL cluster already running on "
                    f"port {port}."
                )
                self.port = port
                return self
            if not self.initialized():
                self.init()
            self.port = self.choose_port()
            if not self.log.exists():
                self.log.touch()
            self.give(self.log)
            self.run(
                "start",
                "pg_ctl",
                "-D",
                self.data,
                "-l",
                self.log,
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port}",
                "start",
            )
            self.started_here = True
        say(
            f"Private PostgreSQL cluster started: {self.data} "
            f"(socket there, 127.0.0.1:{self.port}, role '{ROLE}')."
        )
        return self

    def stop(self):
        if not self.started_here:
            return
        self.started_here = False
        try:
            self.run(
                "stop",
                "pg_ctl",
                "-D",
                self.data,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            )
        except StepFailed as error:
            say(f"setup: {error}")
        else:
            say("Private PostgreSQL cluster stopped.")

    def environment(self):
        """The libpq variables that reach this cluster."""
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": ROLE,
            "PGPASSWORD": self.password_file.read_text().strip(),
        }


def c_utf8_available():
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True, check=False)
    names = {n.lower().replace("-", "") for n in out.stdout.split()}
    return "c.utf8" in names
