"""What the Email connector tells a user for each low-level failure (no network is touched)."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl

import pytest
from imapclient.exceptions import LoginError

from connectors import net
from connectors.base import ConnectorError
from connectors.email.config import EmailConfig, ServerSettings
from connectors.email.errors import check_secrets, redact, translate, translated

SSL_SERVER = ServerSettings(host="mail.example.com", port=993, security="ssl")
STARTTLS_SERVER = ServerSettings(host="mail.example.com", port=143, security="starttls")
PLAIN_SERVER = ServerSettings(host="mail.example.com", port=143, security="none")
SMTP_SERVER = ServerSettings(host="smtp.example.com", port=587, security="starttls")
PASSWORD = "s3cret-Pässwörd"


def explain(exc: BaseException, server: ServerSettings = SSL_SERVER, phase: str = "connect", **kw) -> ConnectorError:
    return translate(exc, server=server, phase=phase, timeout=kw.pop("timeout", 10), **kw)


def ssl_error(cls: type[ssl.SSLError], reason: str, text: str) -> ssl.SSLError:
    """An SSLError shaped like the ones the ssl module raises (reason set by C code)."""
    error = cls(1, f"[SSL: {reason}] {text} (_ssl.c:1006)")
    error.reason = reason
    error.library = "SSL"
    return error


def cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl_error(ssl.SSLCertVerificationError, "CERTIFICATE_VERIFY_FAILED", f"verify failed: {message}")
    error.verify_code = code
    error.verify_message = message
    return error


def test_it_says_the_name_was_not_found() -> None:
    error = explain(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), phase="resolve")

    assert error.message == "name not found: mail.example.com (check the host name)"
    assert error.permanent


def test_it_treats_a_temporary_dns_failure_as_transient() -> None:
    error = explain(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), phase="resolve")

    assert "temporary DNS failure" in error.message
    assert not error.permanent


def test_it_says_a_dns_lookup_timed_out() -> None:
    error = explain(net.ResolveTimeout("slow"), phase="resolve", timeout=4)

    assert error.message == "timed out after 4 s looking up mail.example.com"


def test_it_says_the_connection_was_refused() -> None:
    error = explain(ConnectionRefusedError(111, "Connection refused"))

    assert error.message == (
        "connection refused by mail.example.com:993 (is the port right? is the server running?)"
    )
    assert not error.permanent


def test_it_says_connecting_timed_out() -> None:
    error = explain(TimeoutError("timed out"), timeout=7)

    assert error.message.startswith("timed out after 7 s connecting to mail.example.com:993")


def test_it_says_an_unreachable_network_plainly() -> None:
    error = explain(OSError(101, "Network is unreachable"))

    assert error.message == "cannot reach mail.example.com:993: Network is unreachable"


def test_it_says_a_certificate_is_not_trusted_and_how_to_fix_it() -> None:
    error = explain(cert_error(19, "self-signed certificate in certificate chain"), phase="tls")

    assert error.message.startswith("certificate not trusted: self-signed certificate in certificate chain")
    assert "turn on 'accept self-signed / custom CA' or give the CA PEM" in error.message
    assert error.permanent


def test_it_tells_a_host_name_mismatch_apart() -> None:
    error = explain(cert_error(62, "Hostname mismatch, certificate is not valid for 'mail.example.com'."), phase="tls")

    assert error.message.startswith("certificate not trusted: Hostname mismatch")
    assert "connect with a host name the certificate names" in error.message


@pytest.mark.parametrize("reason", ["WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNEXPECTED_EOF_WHILE_READING"])
def test_it_says_an_implicit_tls_port_is_really_plain(reason: str) -> None:
    error = explain(ssl_error(ssl.SSLError, reason, reason.lower().replace("_", " ")), phase="tls")

    assert error.message == (
        "the server did not answer TLS on port 993: it looks like a plain port — choose security starttls or none"
    )
    assert error.permanent


def test_it_counts_an_eof_during_the_implicit_handshake_as_a_plain_port() -> None:
    error = explain(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), phase="tls")

    assert "it looks like a plain port" in error.message


def test_it_reports_other_handshake_failures_as_they_are() -> None:
    error = explain(ssl_error(ssl.SSLError, "TLSV1_ALERT_PROTOCOL_VERSION", "alert"), STARTTLS_SERVER, "starttls")

    assert error.message == "TLS handshake with mail.example.com:143 failed: TLSV1_ALERT_PROTOCOL_VERSION"


def test_it_says_a_silent_plain_connection_is_probably_a_tls_port() -> None:
    error = explain(TimeoutError("timed out"), PLAIN_SERVER, "greeting", timeout=2)

    assert error.message == (
        "no greeting from mail.example.com:143 within 2 s: this port probably expects TLS: choose security ssl"
    )


def test_it_says_the_same_when_smtplib_wraps_the_timeout() -> None:
    try:
        try:
            raise TimeoutError("timed out")
        except TimeoutError as exc:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed: timed out") from exc
    except smtplib.SMTPServerDisconnected as exc:
        error = explain(exc, SMTP_SERVER, "greeting", timeout=2)

    assert "this port probably expects TLS: choose security ssl" in error.message


def test_it_says_an_unreadable_greeting_on_a_plain_connection_means_tls() -> None:
    error = explain(smtplib.SMTPConnectError(-1, b"\x15\x03\x01\x00\x02\x02"), SMTP_SERVER, "greeting")

    assert error.message.startswith("an unreadable greeting from smtp.example.com:587")
    assert error.message.endswith("choose security ssl")


def test_it_says_when_a_plain_connection_closes_before_the_greeting() -> None:
    error = explain(imaplib.IMAP4.abort("socket error: EOF"), PLAIN_SERVER, "greeting")

    assert "no greeting (the connection closed)" in error.message
    assert "choose security ssl" in error.message


def test_it_says_a_server_refused_the_session() -> None:
    error = explain(smtplib.SMTPConnectError(554, b"5.7.1 No service for you"), SMTP_SERVER, "greeting")

    # The reply code, not the server's text: a banner would fingerprint whatever answers there.
    assert error.message == "smtp.example.com:587 refused the session (reply code 554)"
    assert error.permanent


def test_it_says_an_imap_login_was_rejected_in_the_servers_words() -> None:
    error = explain(LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"), phase="login")

    assert error.message == "authentication rejected: [AUTHENTICATIONFAILED] Authentication failed."
    assert error.permanent


def test_it_says_an_smtp_login_was_rejected() -> None:
    exc = smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid")

    error = explain(exc, SMTP_SERVER, "login")

    assert error.message == "authentication rejected: 535 5.7.8 Authentication credentials invalid"
    assert error.permanent


def test_it_treats_a_temporary_smtp_auth_failure_as_transient() -> None:
    error = explain(smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary failure"), SMTP_SERVER, "login")

    assert not error.permanent


def test_it_says_when_the_server_offers_no_smtp_auth() -> None:
    exc = smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")

    error = explain(exc, SMTP_SERVER, "login")

    assert "does not offer AUTH on this connection" in error.message


def test_it_says_when_starttls_is_not_offered() -> None:
    exc = smtplib.SMTPNotSupportedError("STARTTLS extension not supported by server.")

    error = explain(exc, SMTP_SERVER, "starttls")

    assert error.message.startswith("smtp.example.com:587 does not offer STARTTLS")
    assert "choose security ssl" in error.message
    assert error.permanent


def test_it_marks_5xx_replies_permanent_and_4xx_transient() -> None:
    hard = explain(smtplib.SMTPDataError(550, b"5.7.1 Spam"), SMTP_SERVER, "DATA")
    soft = explain(smtplib.SMTPDataError(451, b"4.3.0 Try again later"), SMTP_SERVER, "DATA")

    assert hard.message == "smtp.example.com:587 answered 550 5.7.1 Spam during DATA"
    assert hard.permanent
    assert not soft.permanent


def test_it_says_a_dropped_connection_is_transient() -> None:
    error = explain(smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), SMTP_SERVER, "DATA")

    assert error.message == "smtp.example.com:587 closed the connection during DATA"
    assert not error.permanent


def test_it_says_a_failed_imap_command_in_the_servers_words() -> None:
    error = explain(imaplib.IMAP4.error("select failed: b'Mailbox does not exist: Nope'"), phase="select Nope")

    assert error.message == "select Nope at mail.example.com:993 failed: Mailbox does not exist: Nope"


def test_it_passes_its_own_errors_through() -> None:
    original = ConnectorError("already in words", permanent=True)

    error = explain(original)

    assert error.message == "already in words" and error.permanent


def test_it_never_shows_a_password_held_by_a_unicode_error() -> None:
    line = f'A001 LOGIN alice "{PASSWORD}"'
    exc = UnicodeEncodeError("ascii", line, line.index("ä"), line.index("ä") + 1, "ordinal not in range(128)")

    with pytest.raises(ConnectorError) as caught:
        with translated(SSL_SERVER, "login", 10, {"password": PASSWORD}):
            raise exc

    error = caught.value
    assert "cannot take" in error.message
    for text in (str(error), repr(error), repr(error.args)):
        assert PASSWORD not in text
    assert error.__cause__ is None and error.__suppress_context__


def test_it_masks_a_password_a_server_echoes_back() -> None:
    exc = LoginError(f"b'[AUTHENTICATIONFAILED] bad password {PASSWORD}'")

    error = explain(exc, phase="login", secrets={"password": PASSWORD})

    assert PASSWORD not in error.message
    assert "•••" in error.message


def test_it_hides_the_text_of_an_unexpected_error_at_login() -> None:
    error = explain(RuntimeError(f"boom {PASSWORD[:6]}"), phase="login")

    assert error.message == "unexpected RuntimeError during login at mail.example.com:993"


def test_it_redacts_only_secrets_long_enough_to_mean_something() -> None:
    assert redact("token abc and xy", ["abc", "xy", ""]) == "token ••• and xy"


def test_it_says_when_a_needed_secret_was_never_stored() -> None:
    config = EmailConfig(imap=SSL_SERVER, smtp=None, auth_method="password", auth={"username": "alice"})

    with pytest.raises(ConnectorError, match="no password is stored for this connection"):
        check_secrets(config, {})
    check_secrets(config, {"password": PASSWORD})
