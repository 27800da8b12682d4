"""Microsoft Entra ID (AADSTS) errors in words a mailbox owner can act on.

The identity provider answers a refused token request with ``error``, ``error_description``
("AADSTS7000215: Invalid client secret provided. ... Trace ID: ...") and ``error_codes``.
The description is written for developers and carries trace ids, so known codes get our own
sentence saying what to change where; an unknown code keeps the first sentence of Microsoft's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.base import ConnectorError

SIGN_IN_AGAIN = "sign in with Microsoft again on the connection page"
_MFA = (
    "multi-factor authentication is required for this user, which the password grant cannot do: "
    "use the client-credentials grant or sign in in the browser, or exempt this account in Conditional Access"
)

# code -> (what it means and what to do, permanent?). Permanent: retrying the same request cannot help.
CODES: dict[int, tuple[str, bool]] = {
    7000215: ("the client secret is wrong: enter the secret's Value (not its Secret ID) "
              "from the app registration's Certificates & secrets", True),
    7000222: ("the client secret has expired: create a new one in the app registration's "
              "Certificates & secrets and enter it here", True),
    7000218: ("the app registration wants a client secret and none was sent: enter the client secret", True),
    700016: ("no application with this client id exists in the tenant: check the client id and the tenant id "
             "(and that the app registration is not deleted)", True),
    7000112: ("the application is disabled in the tenant: an administrator must enable it", True),
    90002: ("the tenant was not found: check the tenant id (a GUID or a domain like contoso.onmicrosoft.com) "
            "and the authority host (sovereign clouds have their own)", True),
    900023: ("the tenant id is not valid: use the directory (tenant) id GUID or the tenant's domain", True),
    50128: ("the tenant was not found: check the tenant id", True),
    50059: ("the tenant was not found: check the tenant id", True),
    50034: ("the user was not found in this tenant: check the username", True),
    50020: ("the user belongs to another tenant than the one configured: check the tenant id", True),
    50126: ("wrong username or password", True),
    50053: ("the account is locked after too many sign-in attempts: wait or ask an administrator to unlock it",
            True),
    50055: ("the user's password has expired: change it, then enter the new one here", True),
    50057: ("the user account is disabled", True),
    50076: (_MFA, True),
    50079: (_MFA, True),
    50158: (_MFA, True),
    53003: ("sign-in was blocked by a Conditional Access policy of the tenant", True),
    65001: ("the app has not been granted consent: an administrator must grant admin consent to its API "
            "permissions (IMAP.AccessAsUser.All and SMTP.Send for delegated grants, "
            "IMAP.AccessAsApp and SMTP.SendAsApp for client credentials)", True),
    65004: ("the user declined to consent to the app's permissions", True),
    650057: ("the app registration lacks the requested API permission (Office 365 Exchange Online): "
             "add IMAP and SMTP permissions and grant consent", True),
    500011: ("Office 365 Exchange Online is not available in this tenant: check the tenant id "
             "and the authority host", True),
    70011: ("the requested scope is not valid for this grant", True),
    70008: (f"the sign-in has expired (the refresh token is too old): {SIGN_IN_AGAIN}", True),
    700082: (f"the sign-in expired after a long time without use: {SIGN_IN_AGAIN}", True),
    700084: (f"the sign-in has expired: {SIGN_IN_AGAIN}", True),
    50173: (f"the sign-in is no longer valid because the password changed or was reset: {SIGN_IN_AGAIN}", True),
    50132: (f"the sign-in was revoked (password change or session revoked): {SIGN_IN_AGAIN}", True),
    54005: (f"the sign-in code was already used: {SIGN_IN_AGAIN}", True),
    70000: (f"the grant is not valid or has expired: {SIGN_IN_AGAIN}", True),
    50011: ("the redirect URI is not registered: add the one shown on the connection page to the app "
            "registration's Web redirect URIs", True),
    50105: ("the user is not assigned to this application: an administrator must assign them", True),
    90014: ("the token request was incomplete (a required field is missing)", True),
}

_CODE_IN_TEXT = re.compile(r"\bAADSTS(\d{4,})\b")
_MAX_TEXT = 300


def error_code(response: Mapping[str, Any]) -> int | None:
    """The AADSTS number of an error response: ``error_codes`` first, else the one in the description."""
    codes = response.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    match = _CODE_IN_TEXT.search(str(response.get("error_description") or ""))
    return int(match.group(1)) if match else None


def explain(response: Mapping[str, Any], *, prefix: str = "OAuth token") -> ConnectorError:
    """The ``ConnectorError`` for a refused token request (``error`` / ``error_description`` JSON)."""
    code = error_code(response)
    if code in CODES:
        text, permanent = CODES[code]
        return ConnectorError(f"{prefix}: {text} (AADSTS{code})", permanent=permanent)
    error = str(response.get("error") or "error")
    # Microsoft's own first sentence, without the trace and correlation ids that follow it.
    description = str(response.get("error_description") or "").strip().splitlines()
    first = _clip(description[0]) if description else ""
    transient = error in ("temporarily_unavailable", "server_error")
    detail = f"{error}: {first}" if first else error
    return ConnectorError(f"{prefix}: the identity provider refused the request ({detail})", permanent=not transient)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
