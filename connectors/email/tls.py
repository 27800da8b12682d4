"""TLS for both protocols of the Email connector: the client context a connection's settings ask
for, and the one-line description of a session's TLS that Test lines and logs show."""

from __future__ import annotations

import socket
import ssl

from connectors.email.config import EmailConfig, ServerSettings


def build_ssl_context(config: EmailConfig, server: ServerSettings) -> ssl.SSLContext:
    """The TLS client context for ``server`` (IMAP or SMTP): verifying unless the user turned it off.

    With a CA PEM, that CA is the *only* trust anchor: a private CA is not meant to widen what
    the public ones may vouch for. With ``verify_tls`` off nothing is checked; the form shows a
    warning next to that switch.
    """
    if not server.verify_tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if config.ca_pem:
        return ssl.create_default_context(cadata=config.ca_pem)
    return ssl.create_default_context()


def describe_tls(sock: socket.socket, server: ServerSettings, config: EmailConfig) -> str:
    """"TLSv1.3 (TLS_AES_256_GCM_SHA384), certificate verified" — for Test lines and logs."""
    if not isinstance(sock, ssl.SSLSocket):
        return "plain text (not encrypted)"
    cipher = sock.cipher()
    name = f" ({cipher[0]})" if cipher else ""
    if not server.verify_tls:
        trust = "certificate NOT verified"
    elif config.ca_pem:
        trust = "certificate verified against the given CA"
    else:
        trust = "certificate verified"
    return f"{sock.version()}{name}, {trust}"
