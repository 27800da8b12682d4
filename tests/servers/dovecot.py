"""A real Dovecot IMAP server for tests, private to one temp directory.

Runs Debian's ``/usr/sbin/dovecot -F -c <conf>`` with a generated configuration: everything
(runtime sockets, state, log, Maildirs, passwd file) lives under one temp directory, and it
listens on 127.0.0.1 only, on two free ports:

* ``tls_port`` — implicit TLS (like 993),
* ``plain_port`` — cleartext that offers STARTTLS (like 143); plaintext LOGIN is allowed here
  too so a test can exercise ``security = none``.

Mailbox helpers (``append``, ``flags``, ...) talk IMAP as the user, so tests only ever see what
a real client would see.

Running as root (CI containers): Dovecot refuses to access mail as uid 0, so mail is owned by
the unprivileged ``mail`` system user (falling back to ``nobody``), ``first_valid_uid`` is
lowered to admit it, and every directory on the way to the Maildirs is made traversable.
Running as an ordinary user: every Dovecot service runs as that user instead.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from imapclient import IMAPClient

from .certs import TestCerts, generate_test_certs

DOVECOT_BINARY = "/usr/sbin/dovecot"
_TEMP_PREFIX = "mailwright-dovecot-"
MISSING_DOVECOT_MESSAGE = (
    f"{DOVECOT_BINARY} not found: the integration tests need a real Dovecot IMAP server. "
    "`make test` installs it (apt-get install dovecot-imapd); on Debian/Ubuntu run "
    "`sudo apt-get install -y dovecot-imapd`."
)

# Dovecot 2.3's compiled-in post-login CAPABILITY list (imap/imap-common.h CAPABILITY_STRING)
# minus MOVE. `imap_capability` can only replace or extend the list, not remove one entry,
# so disabling MOVE means spelling out the rest. Dovecot still *accepts* a MOVE command;
# only the advertisement goes, which is what a client's COPY+EXPUNGE fallback keys on.
CAPABILITIES_WITHOUT_MOVE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE "
    "SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
)

# If the test process dies without teardown (SIGKILL, pytest-timeout's thread method), the
# master gets SIGKILL too and its children exit when their master pipe closes: no orphaned
# servers. (The "parent" is the thread that called start(): start it from a long-lived one.)
_SETPRIV = shutil.which("setpriv")
_DIE_WITH_PARENT: tuple[str, ...] = (_SETPRIV, "--pdeathsig", "KILL") if _SETPRIV else ()

# Dovecot 2.3 services with a default chroot (doveconf -a); only overridden when not root.
_CHROOTED_SERVICES = ("aggregator", "anvil", "director", "imap-urlauth-login", "ipc", "old-stats")

_USERNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@+-]*$")  # also a file name


class DovecotError(RuntimeError):
    """Dovecot could not be started (the message includes the tail of its log)."""


def dovecot_available() -> bool:
    return os.access(DOVECOT_BINARY, os.X_OK)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out for *host*; free unless someone races us for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _mail_owner() -> tuple[int, int, str]:
    """(uid, gid, user name) that owns the Maildirs and runs the imap processes."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_uid, entry.pw_gid, entry.pw_name
    for name in ("mail", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid, entry.pw_name
    raise DovecotError("running as root but neither a 'mail' nor a 'nobody' user exists")


def _service_users() -> tuple[str, str, str]:
    """(internal user, internal group, login user) for Dovecot's own processes."""
    if os.geteuid() != 0:
        # Unprivileged Dovecot: everything runs as us (it cannot switch users anyway).
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, grp.getgrgid(me.pw_gid).gr_name, me.pw_name
    for internal, login in (("dovecot", "dovenull"), ("nobody", "nobody")):
        try:
            pwd.getpwnam(internal)
            pwd.getpwnam(login)
        except KeyError:
            continue
        return internal, grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name, login
    raise DovecotError("no 'dovecot'/'dovenull' system users (is dovecot-core installed?)")


def _process_state(stat_file: Path) -> tuple[str, int]:
    """(state letter, process group) from /proc/<pid>/stat."""
    # Fields after the parenthesised command name: state ppid pgrp ...
    fields = stat_file.read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[2])


def _pid_alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a slow-reaping init (common in containers)."""
    try:
        return _process_state(Path(f"/proc/{pid}/stat"))[0] not in ("Z", "X")
    except (OSError, IndexError, ValueError):
        return False


def _remove_stale_dirs() -> None:
    """Delete temp dirs of earlier runs that died without teardown (their owner is gone and,
    thanks to the parent-death signal, so is their Dovecot)."""
    for owner_file in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*/owner.pid"):
        with contextlib.suppress(OSError, ValueError):
            directory = owner_file.parent
            if _pid_alive(int(owner_file.read_text())):
                continue
            master = directory / "run" / "master.pid"
            if master.exists() and _pid_alive(int(master.read_text().split()[0])):
                continue
            shutil.rmtree(directory, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    """Is any non-zombie process left in process group *pgid*? (Linux /proc.)"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, group = _process_state(stat)
            if group == pgid and state not in ("Z", "X"):
                return True
    return False


def _wait_for_group_exit(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


class Dovecot:
    """A private Dovecot instance. Use as a context manager or call start()/stop()."""

    host = "127.0.0.1"

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        certs: TestCerts | None = None,
        disable_move: bool = False,
        oauth2_introspection_url: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """``oauth2_introspection_url``: also accept SASL XOAUTH2 / OAUTHBEARER logins whose token that
        URL (an RFC 7662 introspection endpoint, tests.servers.idp) calls active for the user."""
        if directory is None:
            _remove_stale_dirs()
            self._owned_dir: str | None = tempfile.mkdtemp(prefix=_TEMP_PREFIX)
            Path(self._owned_dir, "owner.pid").write_text(str(os.getpid()))
            directory = self._owned_dir
        else:
            self._owned_dir = None
        self.root = Path(directory)
        self.certs = certs or generate_test_certs(self.root / "certs")
        self.disable_move = disable_move
        self.oauth2_introspection_url = oauth2_introspection_url
        self.startup_timeout = startup_timeout
        # Chosen once so a stop()/start() cycle comes back on the same ports, like a restarted
        # production server would.
        self.tls_port = free_port(self.host)
        self.plain_port = free_port(self.host)
        while self.plain_port == self.tls_port:
            self.plain_port = free_port(self.host)
        self._users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._mail_uid, self._mail_gid, self._mail_user = _mail_owner()
        self._prepare_dirs()
        self.config_path.write_text(self._config())

    # ------------------------------------------------------------------ paths / properties

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def console_path(self) -> Path:
        return self.root / "dovecot.console"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    @property
    def ca_pem(self) -> str:
        return self.certs.ca_pem

    @property
    def ca_path(self) -> Path:
        return self.certs.ca_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # mkdtemp makes 0700 dirs; the imap processes (mail user) and the auth process
        # (dovecot user) must traverse to the Maildirs and the passwd file.
        for directory in (self.root, *self.root.parents):
            if directory == Path("/"):
                break
            mode = directory.stat().st_mode
            if not mode & 0o001:
                if directory == self.root or str(directory).startswith(tempfile.gettempdir()):
                    directory.chmod(mode | 0o011)
        self.mail_root.mkdir(exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        self.users_dir.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            os.chown(self.mail_root, self._mail_uid, self._mail_gid)

    def _write_user(self, name: str) -> None:
        # One passwd-file per user (the passdb path contains %u): Dovecot opens a file it has
        # not seen yet on the first lookup, so users added while it runs can log in at once.
        # Written atomically so a lookup never sees a half-written file.
        path = self.users_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(f"{name}:{{PLAIN}}{self._users[name]}::::::\n")
        tmp.chmod(0o644)
        os.replace(tmp, path)

    @property
    def oauth2_config_path(self) -> Path:
        return self.root / "dovecot-oauth2.conf.ext"

    def _oauth2_passdb(self) -> str:
        """The oauth2 passdb (Dovecot 2.3's built-in driver) and its settings file; "" when not asked for."""
        if not self.oauth2_introspection_url:
            return ""
        # The auth process runs unprivileged and cannot read pytest's 0700 temp dirs: its own copy.
        ca_copy = self.root / "oauth2-ca.crt"
        ca_copy.write_text(self.certs.ca_pem)
        ca_copy.chmod(0o644)
        self.oauth2_config_path.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.oauth2_introspection_url}\n"
            f"tls_ca_cert_file = {ca_copy}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        self.oauth2_config_path.chmod(0o644)
        return f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {self.oauth2_config_path}
}}
"""

    def _config(self) -> str:
        internal_user, internal_group, login_user = _service_users()
        unprivileged = os.geteuid() != 0
        capability = f"imap_capability = {CAPABILITIES_WITHOUT_MOVE}" if self.disable_move else ""
        ssl_dh = "/usr/share/dovecot/dh.pem"
        dh_line = f"ssl_dh = <{ssl_dh}" if os.path.exists(ssl_dh) else ""
        chroot = "chroot =" if unprivileged else ""
        # Several services chroot by default, which needs root; unprivileged, they must not.
        unchroot = "".join(f"service {name} {{\n  chroot =\n}}\n" for name in _CHROOTED_SERVICES if unprivileged)
        return f"""\
# Generated by tests/servers/dovecot.py — private test instance, do not edit.
instance_name = mailwright-test-{self.tls_port}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
debug_log_path = {self.log_path}
protocols = imap
listen = {self.host}
ssl = yes
ssl_cert = <{self.certs.cert_path}
ssl_key = <{self.certs.key_path}
{dh_line}
disable_plaintext_auth = no
auth_mechanisms = plain login{" xoauth2 oauthbearer" if self.oauth2_introspection_url else ""}
# Fast failures: the default 2 s delay after a wrong password would slow every negative test.
auth_failure_delay = 0
# Failed logins are logged with the reason, for debugging a test from dovecot.log.
auth_verbose = yes
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {self._mail_uid}
first_valid_gid = {self._mail_gid}
mail_location = maildir:{self.mail_root}/%u/Maildir:LAYOUT=fs
mail_home = {self.mail_root}/%u
mail_fsync = never
{capability}

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
}}

passdb {{
  driver = passwd-file
  args = username_format=%u {self.users_dir}/%u
  {"mechanisms = plain login" if self.oauth2_introspection_url else ""}
}}
{self._oauth2_passdb()}userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={self.mail_root}/%u
}}

protocol imap {{
  # Tests open many short connections per user; the default of 10 is easy to hit.
  mail_max_userip_connections = 1000
}}

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.plain_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.tls_port}
    ssl = yes
  }}
  # One long-lived login process instead of a fork per connection: faster logins.
  service_count = 0
  {chroot}
}}
{unchroot}# Auth penalty (anvil) delays every login from an IP after a failed one by up to 15 s; tests
# log in wrongly on purpose, from 127.0.0.1 every time. Unreachable socket = penalty disabled.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Dovecot:
        """Start Dovecot and return once both ports greet; raise DovecotError otherwise."""
        if self.running:
            return self
        if not dovecot_available():
            raise DovecotError(MISSING_DOVECOT_MESSAGE)
        self.config_path.write_text(self._config())
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Own session = own process group, so stop() can kill master and children together.
        # Output to a file, not a pipe: nobody drains a pipe while tests run, and errors
        # before the log is opened (config mistakes) land there.
        with self.console_path.open("ab") as console:
            console_offset = console.tell()
            self._proc = subprocess.Popen(
                [*_DIE_WITH_PARENT, DOVECOT_BINARY, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        pending = {self.plain_port, self.tls_port}
        while pending:
            if self._proc.poll() is not None:
                self._proc = None
                with self.console_path.open("rb") as console:
                    console.seek(console_offset)
                    output = console.read().decode(errors="replace")
                raise DovecotError(f"dovecot exited during start-up:\n{output}\n{self._log_tail(log_offset)}")
            if time.monotonic() > deadline:
                self.stop()
                raise DovecotError(
                    f"dovecot did not accept connections within {self.startup_timeout}s\n" + self._log_tail(log_offset)
                )
            for port in list(pending):
                if self._greets(port):
                    pending.discard(port)
            if pending:
                time.sleep(0.02)
        return self

    def _greets(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1) as sock:
                if port == self.tls_port:
                    ctx = ssl.create_default_context(cadata=self.ca_pem)
                    with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                        return tls.recv(100).startswith(b"* OK")
                return sock.recv(100).startswith(b"* OK")
        except OSError:
            return False

    def _log_tail(self, offset: int = 0, lines: int = 40) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                text = fh.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no dovecot log)"
        return "dovecot log:\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, *, kill: bool = False, timeout: float = 5.0) -> None:
        """Stop Dovecot and all its children; no-op when not running.

        Graceful by default: clients get ``* BYE Server shutting down`` and the master takes
        about a second to finish. ``kill=True`` SIGKILLs the whole process group at once —
        instant, and to a connected client it looks like a crash (connection reset/EOF).
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if not kill and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout)
        finally:
            # Whatever survived in the process group (everything, with kill=True; a wedged
            # child or master on timeout otherwise) dies hard, so no test run leaks servers.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
            # The master is reaped, but SIGKILLed children may still be exiting and holding
            # the listening sockets; a restart or a "refused" assertion must not see them.
            _wait_for_group_exit(proc.pid, timeout)
            # A killed master leaves its pid file; if that pid got reused by then, the next
            # start() would refuse with "Dovecot is already running".
            with contextlib.suppress(FileNotFoundError):
                (self.root / "run" / "master.pid").unlink()

    def close(self) -> None:
        """Stop (hard: the data is throw-away) and remove the temp directory if we created it."""
        self.stop(kill=True)
        if self._owned_dir:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ users

    def add_user(self, name: str, password: str) -> None:
        """Add (or change the password of) a user; takes effect immediately, even while running."""
        if not _USERNAME_RE.match(name):
            raise ValueError(f"unsupported test user name {name!r}")
        if any(c in password for c in ":\r\n"):
            raise ValueError("test passwords may not contain ':' or line breaks (passwd-file format)")
        changed = name in self._users and self._users[name] != password
        self._users[name] = password
        self._write_user(name)
        if changed and self.running:
            # passwd-file re-stats a known file at most once per wall-clock second, so a
            # password change made in the second of the last lookup would go unnoticed.
            time.sleep(1.05 - time.time() % 1)

    def password(self, user: str) -> str:
        return self._users[user]

    # ------------------------------------------------------------------ IMAP helpers

    @contextlib.contextmanager
    def client(self, user: str, *, tls: bool = False) -> Iterator[IMAPClient]:
        """An IMAPClient logged in as *user* (plain port by default: fastest, no handshake)."""
        if tls:
            ctx = ssl.create_default_context(cadata=self.ca_pem)
            imap = IMAPClient(self.host, self.tls_port, ssl=True, ssl_context=ctx, timeout=10)
        else:
            imap = IMAPClient(self.host, self.plain_port, ssl=False, timeout=10)
        try:
            imap.login(user, self._users[user])
            yield imap
        finally:
            try:
                imap.logout()
            except Exception:
                # Server already gone (a test stopped it): close our end without a ResourceWarning.
                with contextlib.suppress(Exception):
                    imap.shutdown()

    def create_folder(self, user: str, folder: str) -> None:
        with self.client(user) as imap:
            if not imap.folder_exists(folder):
                imap.create_folder(folder)

    def list_folders(self, user: str) -> list[str]:
        with self.client(user) as imap:
            return sorted(name for _flags, _sep, name in imap.list_folders())

    def append(
        self,
        user: str,
        folder: str,
        message: bytes,
        flags: Iterable[str | bytes] = (),
        create: bool = True,
    ) -> int:
        """APPEND *message* and return its UID (from the server's APPENDUID response)."""
        with self.client(user) as imap:
            if create and not imap.folder_exists(folder):
                imap.create_folder(folder)
            response = imap.append(folder, message, flags=tuple(flags))
        match = re.search(rb"\[APPENDUID (\d+) (\d+)\]", response)
        if not match:
            raise AssertionError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(2))

    def flags(self, user: str, folder: str) -> dict[int, set[str]]:
        """{uid: {'\\Seen', ...}} for every message in *folder* (read-only, changes nothing).

        ``\\Recent`` is left out: it is per-session noise, not state a test wants to compare.
        """
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            uids = imap.search("ALL")
            data = imap.fetch(uids, ["FLAGS"]) if uids else {}
        return {
            int(uid): {
                flag
                for flag in (f.decode() if isinstance(f, bytes) else str(f) for f in item[b"FLAGS"])
                if flag != "\\Recent"
            }
            for uid, item in data.items()
        }

    def uids(self, user: str, folder: str, criteria: str | list[str] = "ALL") -> list[int]:
        """UIDs matching an IMAP SEARCH *criteria* (raw string or imapclient list form)."""
        with self.client(user) as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(int(u) for u in imap.search(criteria))

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.client(user) as imap:
            status = imap.folder_status(folder, [b"UIDVALIDITY"])
        return int(status[b"UIDVALIDITY"])

    def recreate_folder(self, user: str, folder: str) -> int:
        """Delete and create *folder* (empty, new UIDVALIDITY); returns the new UIDVALIDITY."""
        with self.client(user) as imap:
            if imap.folder_exists(folder):
                imap.delete_folder(folder)
            imap.create_folder(folder)
            status = imap.folder_status(folder, [b"UIDVALIDITY"])
        return int(status[b"UIDVALIDITY"])

    def reset(self, user: str) -> None:
        """Empty the mailbox: every folder but INBOX deleted, INBOX expunged."""
        with self.client(user) as imap:
            names = [name for _flags, _sep, name in imap.list_folders()]
            # Children before parents: deleting a parent first would leave \Noselect ghosts.
            for name in sorted(names, key=lambda n: n.count("/"), reverse=True):
                if name.upper() != "INBOX":
                    imap.delete_folder(name)
            for name in imap.list_sub_folders():
                imap.unsubscribe_folder(name[2])
            imap.select_folder("INBOX")
            uids = imap.search("ALL")
            if uids:
                imap.set_flags(uids, [b"\\Deleted"], silent=True)
                imap.expunge()
            imap.unselect_folder()

    def mailbox(self, user: str) -> Mailbox:
        """The mailbox helpers bound to one user."""
        if user not in self._users:
            raise KeyError(f"no such test user {user!r}; add_user() first")
        return Mailbox(self, user)


class Mailbox:
    """Dovecot's mailbox helpers for one user, plus what a client needs to log in as them."""

    def __init__(self, server: Dovecot, user: str) -> None:
        self.server = server
        self.user = user

    def __repr__(self) -> str:
        return f"<Mailbox {self.user} on {self.host}:{self.tls_port}/{self.plain_port}>"

    @property
    def password(self) -> str:
        return self.server.password(self.user)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def tls_port(self) -> int:
        return self.server.tls_port

    @property
    def plain_port(self) -> int:
        return self.server.plain_port

    @property
    def ca_pem(self) -> str:
        return self.server.ca_pem

    @property
    def ca_path(self) -> Path:
        return self.server.ca_path

    def client(self, *, tls: bool = False) -> contextlib.AbstractContextManager[IMAPClient]:
        return self.server.client(self.user, tls=tls)

    def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str | bytes] = (),
        create: bool = True,
    ) -> int:
        return self.server.append(self.user, folder, message, flags=flags, create=create)

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        return self.server.flags(self.user, folder)

    def uids(self, folder: str = "INBOX", criteria: str | list[str] = "ALL") -> list[int]:
        return self.server.uids(self.user, folder, criteria)

    def uidvalidity(self, folder: str = "INBOX") -> int:
        return self.server.uidvalidity(self.user, folder)

    def recreate_folder(self, folder: str) -> int:
        return self.server.recreate_folder(self.user, folder)

    def create_folder(self, folder: str) -> None:
        self.server.create_folder(self.user, folder)

    def list_folders(self) -> list[str]:
        return self.server.list_folders(self.user)

    def reset(self) -> None:
        self.server.reset(self.user)
