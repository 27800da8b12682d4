"""The first-run demo of `make run`: a sandbox mailbox on loopback, and a demo project wired to it.

The sandbox is one asyncio process (``python -m designer.demo``) serving IMAP (pymap, with its
in-memory backend) and SMTP (aiosmtpd) on 127.0.0.1. Mail sent to its SMTP port is delivered into
the IMAP INBOX of its recipient. It has two mailboxes: ``support@mailwright.demo``, seeded with
example customer mail at every start, and ``helpdesk@mailwright.demo``, where the demo operation
forwards to. A forward never lands where the operation reads, so it is never forwarded again.

Ports and the mailboxes' password are kept in ``data/demo-mailbox.json``; ``setup_local`` points
the demo connection at them. ``MAILWRIGHT_DEMO=0`` turns the demo off.

The sandbox process imports this module without setting Django up: Django's models are imported
inside the one function that needs them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import socket
import sys
from contextlib import AsyncExitStack, closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from pymap.backend.dict import DictBackend, Identity
from pymap.imap import IMAPService
from pymap.parsing.message import AppendMessage
from pymap.user import Passwords, UserMetadata

from designer.env import envbool

HOST = "127.0.0.1"
DOMAIN = "mailwright.demo"
MAILBOXES = ("support", "helpdesk")
CONFIG_FILE = "demo-mailbox.json"
PROJECT = "Demo support desk"
CONNECTION = "Sandbox support mailbox"
OPERATION = "Forward to helpdesk"

log = logging.getLogger("mailwright.demo")


def enabled() -> bool:
    return envbool("MAILWRIGHT_DEMO", True)


@dataclass(frozen=True)
class Sandbox:
    imap_port: int
    smtp_port: int
    password: str


def _port_free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stored(data_dir: Path) -> Sandbox | None:
    path = data_dir / CONFIG_FILE
    return Sandbox(**json.loads(path.read_text())) if path.exists() else None


def prepare(data_dir: Path) -> Sandbox:
    """The sandbox's ports and password: kept from the last start, with new ports if one is taken now."""
    previous = stored(data_dir)
    if previous and _port_free(previous.imap_port) and _port_free(previous.smtp_port):
        return previous
    imap_port, smtp_port = _free_ports(2)
    sandbox = Sandbox(imap_port, smtp_port, previous.password if previous else secrets.token_urlsafe(12))
    path = data_dir / CONFIG_FILE
    path.write_text(json.dumps(asdict(sandbox)) + "\n")
    path.chmod(0o600)
    return sandbox


def project_document(sandbox: Sandbox) -> dict[str, Any]:
    """The demo project as a project file: the importer creates it, and re-creates what was deleted."""
    server = {"host": HOST, "security": "none", "verify_tls": True}
    return {
        "format": "mailwright.project/1",
        "name": PROJECT,
        "description": "Forwards customer mail from the sandbox's support mailbox to its helpdesk mailbox. "
                       "Press Run now on the operation to try it.",
        "connections": [{
            "name": CONNECTION, "connector": "email",
            "description": "The sandbox mailbox that make run starts on 127.0.0.1 (no mail leaves this machine).",
            "imap": {**server, "port": sandbox.imap_port},
            "smtp": {**server, "port": sandbox.smtp_port},
            "auth": {"method": "password", "username": "support", "password": sandbox.password},
            "timeouts": {"connect": 5, "read": 20},
        }],
        "activities": [
            {"name": "Read support inbox", "type": "read_email", "connection": CONNECTION, "folder": "INBOX",
             "max_messages": 100, "after_read": "mark_read"},
            {"name": "Send to helpdesk", "type": "send_email", "connection": CONNECTION,
             "defaults": {"from": f"support@{DOMAIN}"}},
        ],
        "operations": [{
            "name": OPERATION, "workflow": "Support", "source": "Read support inbox", "target": "Send to helpdesk",
            "mapping": {"to": f"helpdesk@{DOMAIN}", "reply_to": "{{ from }}", "subject": "Fwd: {{ subject }}",
                        "text": "Forwarded from {{ from }}:\n\n{{ text }}", "attachments": "{{ attachments }}"},
            # Automatic replies are not worth a helpdesk's time: the demo shows a skipped message too.
            "condition": "'out of office' not in subject|lower",
            "schedule": None, "on_success": None, "on_failure": None,
        }],
    }


def install(team: Any, sandbox: Sandbox, user: Any = None) -> None:
    """Create the demo project in ``team``; once it exists, only follow the sandbox to new ports.

    The project is the newcomer's to change afterwards: a restart must not undo their edits.
    """
    # Imported here: they need Django's app registry, which the sandbox process never loads.
    from designer.authoring import projectfile
    from designer.models import Connection

    connection = Connection.objects.filter(project__team=team, project__name=PROJECT, name=CONNECTION).first()
    if connection is None:
        projectfile.apply(projectfile.plan(project_document(sandbox), environ={}), team, user)
        return
    config = connection.config
    config["imap"]["port"], config["smtp"]["port"] = sandbox.imap_port, sandbox.smtp_port
    connection.set_secrets({"password": sandbox.password})
    connection.save()


# -- the sandbox process ------------------------------------------------------------------------------


def example_messages() -> list[bytes]:
    """Customer mail for the support INBOX, with new Message-IDs at every start so each start has news."""
    examples = [
        ("Ada Lovelace <ada@customer.example>", "Cannot log in since this morning",
         "Hello,\n\nsince this morning the portal says my password is wrong, although I did not change it.\n"
         "Could you have a look?\n\nAda", None),
        ("Grace Hopper <grace@customer.example>", "Invoice INV-2024-117 shows the wrong amount",
         "Hi,\n\nthe attached invoice charges 12 seats; we have 10.\n\nThanks, Grace",
         ("invoice-INV-2024-117.csv", b"item,seats,price\nMailwright Team,12,240.00\n")),
        ("Alan Turing <alan@customer.example>", "Feature request: export the run history",
         "Dear team,\n\nit would help us to export the run history as CSV for our monthly report.\n\nAlan", None),
        ("Linus Example <linus@customer.example>", "Out of office: back on Monday",
         "I am out of the office until Monday and will read your message then.", None),
        ("Margaret Hamilton <margaret@customer.example>", "Order #4411 arrived damaged",
         "Hello,\n\norder #4411 arrived today with a broken screen. What should I do?\n\nMargaret", None),
    ]
    messages = []
    for sender, subject, body, attachment in examples:
        message = EmailMessage()
        message["From"] = sender
        message["To"] = f"Support <support@{DOMAIN}>"
        message["Subject"] = subject
        message["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        message["Message-ID"] = make_msgid("demo", domain="customer.example")
        message.set_content(body + "\n")
        if attachment:
            name, content = attachment
            message.add_attachment(content, maintype="text", subtype="csv", filename=name)
        messages.append(bytes(message))
    return messages


class _Mailboxes:
    """The pymap in-memory backend with the sandbox's two users, and delivery into their INBOX."""

    def __init__(self, backend: Any, config: Any) -> None:
        self.backend = backend
        self.config = config

    @classmethod
    async def create(cls, sandbox: Sandbox) -> _Mailboxes:
        args = argparse.Namespace(
            host=[HOST], port=str(sandbox.imap_port), debug=False, cert=None, key=None, tls=False,
            passlib_cfg=None, proxy_protocol=None, inherited_sockets=None,
            demo_data=False, demo_user=MAILBOXES[0], demo_password=sandbox.password,
        )
        # reject_dnsbl off: no DNS lookups of clients on loopback (this machine may have no resolver).
        backend, config = await DictBackend.init(args, reject_dnsbl=False)
        config.apply_context()
        mailboxes = cls(backend, config)
        for name in MAILBOXES[1:]:
            await mailboxes._add_user(name, sandbox.password)
        return mailboxes

    async def _add_user(self, name: str, password: str) -> None:
        hashed = await Passwords(self.config).hash_password(password)
        await Identity(name, self.backend.login, None, frozenset()).set(UserMetadata(self.config, name,
                                                                                     password=hashed))

    async def deliver(self, user: str, raw: bytes) -> None:
        async with Identity(user, self.backend.login, None, frozenset()).new_session() as session:
            inbox = await session.mailbox_set.get_mailbox("INBOX")
            await inbox.append(AppendMessage(raw, datetime.now(UTC), frozenset()), recent=True)


class _SMTPHandler:
    """aiosmtpd handler: accepts mail for the sandbox's mailboxes and delivers it into them."""

    def __init__(self, mailboxes: _Mailboxes, password: str) -> None:
        self.mailboxes = mailboxes
        self.password = password

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        local, _, domain = address.lower().partition("@")
        if domain != DOMAIN or local not in MAILBOXES:
            return (f"550 5.1.1 <{address}>: no such mailbox in the sandbox "
                    f"(it has {', '.join(f'{m}@{DOMAIN}' for m in MAILBOXES)})")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        for address in envelope.rcpt_tos:
            await self.mailboxes.deliver(address.lower().partition("@")[0], raw)
        log.info("delivered %s bytes to %s", len(raw), ", ".join(envelope.rcpt_tos))
        return "250 2.0.0 delivered into the sandbox"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            if login in MAILBOXES and secrets.compare_digest(auth_data.password.decode("utf-8", "replace"),
                                                             self.password):
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)


async def serve(sandbox: Sandbox) -> None:
    """Run the sandbox until SIGTERM or SIGINT."""
    # pymap greets with the host's FQDN, which would mean a DNS lookup.
    os.environ.setdefault("FQDN", f"sandbox.{DOMAIN}")
    mailboxes = await _Mailboxes.create(sandbox)
    examples = example_messages()
    for raw in examples:
        await mailboxes.deliver("support", raw)
    handler = _SMTPHandler(mailboxes, sandbox.password)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with AsyncExitStack() as stack:
        await mailboxes.backend.start(stack)
        await IMAPService(mailboxes.backend, mailboxes.config).start(stack)
        # Loopback only and no TLS, so AUTH without TLS is allowed; sending without AUTH works too,
        # to let anyone drop a test message in with any mail client.
        smtp = await loop.create_server(
            lambda: SMTP(handler, hostname=f"sandbox.{DOMAIN}", authenticator=handler.authenticate,
                         auth_require_tls=False),
            HOST, sandbox.smtp_port,
        )
        stack.push_async_callback(smtp.wait_closed)
        stack.callback(smtp.close)
        print(f"sandbox mailbox: IMAP {HOST}:{sandbox.imap_port}, SMTP {HOST}:{sandbox.smtp_port}, "
              f"users {', '.join(MAILBOXES)}; {len(examples)} example messages in support's INBOX",
              flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the demo's sandbox mailbox on 127.0.0.1.")
    parser.add_argument("config", type=Path, help=f"the {CONFIG_FILE} written by manage.py setup_local")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s sandbox: %(message)s")
    sandbox = Sandbox(**json.loads(args.config.read_text()))
    try:
        asyncio.run(serve(sandbox))
    except OSError as exc:
        sys.exit(f"the demo's sandbox mailbox could not start: {exc}")


if __name__ == "__main__":
    main()
