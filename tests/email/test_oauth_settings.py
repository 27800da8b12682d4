"""The Microsoft 365 OAuth auth method without a network: settings per grant, scopes, AADSTS words, the form."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import ConfigError, ConnectorError
from connectors.email import aadsts
from connectors.email.config import parse_email_config, split_email_secrets
from connectors.email.connector import EMAIL
from connectors.email.errors import check_secrets
from connectors.email.forms import EmailConnectionForm
from connectors.email.oauth import OAuthSettings, split_authority, xoauth2
from connectors.email.oauth_http import GuardedHTTP
from tests.helpers import form_data

TENANT = "7d1c2b3a-0000-4000-8000-00000000abcd"
CLIENT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _data(**auth: Any) -> dict[str, Any]:
    settings = {"method": "oauth2_microsoft365", "tenant_id": TENANT, "client_id": CLIENT,
                "mailbox": "support@contoso.com", **auth}
    return {"imap": {"host": "outlook.office365.com"}, "smtp": {"host": "smtp.office365.com",
                                                                 "security": "starttls"}, "auth": settings}


def _errors(**auth: Any) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        parse_email_config(_data(**auth))
    return caught.value.errors


def test_it_defaults_to_client_credentials_at_the_public_cloud():
    config = parse_email_config(_data())
    assert config.auth == {"tenant_id": TENANT, "client_id": CLIENT, "mailbox": "support@contoso.com",
                           "grant": "client_credentials", "authority": "login.microsoftonline.com"}
    assert EMAIL.required_secret_names(config) == ["client_secret"]
    assert OAuthSettings.of(config).scopes == ["https://outlook.office365.com/.default"]


def test_it_keys_each_problem_by_its_auth_field():
    errors = _errors(tenant_id="common", client_id="my-app", mailbox="support", grant="device_code",
                     authority="https://login.microsoftonline.com/")
    assert errors["auth.tenant_id"] == ["must be your tenant's id or domain, not “common”: a mailbox belongs to "
                                        "one tenant"]
    assert errors["auth.client_id"][0].startswith("must be the application (client) id, a GUID")
    assert errors["auth.mailbox"] == ["must be an email address like support@contoso.com"]
    assert errors["auth.grant"] == ["must be one of client_credentials, password, authorization_code"]
    assert errors["auth.authority"][0].startswith("must be a host name with an optional port")
    assert _errors(tenant_id="")["auth.tenant_id"] == ["is required"]


def test_it_needs_a_username_and_password_for_the_password_grant_only():
    assert _errors(grant="password") == {"auth.username": ["is required"]}
    password = parse_email_config(_data(grant="password", username="svc@contoso.com"))
    assert EMAIL.required_secret_names(password) == ["client_secret", "password"]
    browser = parse_email_config(_data(grant="authorization_code", username="ignored@contoso.com"))
    assert "username" not in browser.auth  # another grant's field is not kept
    assert EMAIL.required_secret_names(browser) == ["client_secret"]
    with pytest.raises(ConnectorError, match="no password is stored"):
        check_secrets(password, {"client_secret": "x"})
    check_secrets(browser, {"client_secret": "x"})


def test_it_takes_secrets_out_of_a_project_file_and_drops_another_grants_password():
    _config, secrets = split_email_secrets(_data(client_secret={"env": "M365_SECRET"}, password="unused"))
    assert secrets == {"client_secret": ("auth.client_secret", {"env": "M365_SECRET"})}
    _config, secrets = split_email_secrets(_data(grant="password", client_secret="s", password="p"))
    assert set(secrets) == {"client_secret", "password"}


@pytest.mark.parametrize(("authority", "resource"), [
    ("login.microsoftonline.us", "outlook.office365.us"),
    ("login.partner.microsoftonline.cn", "partner.outlook.cn"),
    ("127.0.0.1:8443", "outlook.office365.com"),  # not a Microsoft cloud: the IMAP host
])
def test_it_asks_each_cloud_for_its_own_exchange_resource(authority, resource):
    settings = OAuthSettings.of(parse_email_config(_data(authority=authority, grant="authorization_code")))
    assert settings.scopes == [f"https://{resource}/IMAP.AccessAsUser.All", f"https://{resource}/SMTP.Send"]


def test_it_asks_only_for_the_scopes_a_connection_uses():
    data = _data(grant="password", username="svc@contoso.com")
    data["smtp"] = None
    assert OAuthSettings.of(parse_email_config(data)).scopes == ["https://outlook.office365.com/IMAP.AccessAsUser.All"]


def test_it_fingerprints_the_settings_tokens_belong_to():
    one = OAuthSettings.of(parse_email_config(_data()))
    assert one.fingerprint == OAuthSettings.of(parse_email_config(_data(mailbox="other@contoso.com"))).fingerprint
    assert one.fingerprint != OAuthSettings.of(parse_email_config(_data(tenant_id="contoso.com"))).fingerprint
    assert one.fingerprint != OAuthSettings.of(parse_email_config(_data(grant="authorization_code"))).fingerprint


def test_it_splits_an_authority_into_host_and_port():
    assert split_authority("login.microsoftonline.com") == ("login.microsoftonline.com", 443)
    assert split_authority("127.0.0.1:8443") == ("127.0.0.1", 8443)
    assert split_authority("[::1]:8443") == ("::1", 8443)
    with pytest.raises(ValueError):
        split_authority("host:99999")


def test_it_builds_the_xoauth2_string():
    assert xoauth2("a@contoso.com", "tok") == "user=a@contoso.com\x01auth=Bearer tok\x01\x01"


@pytest.mark.parametrize(("response", "message", "permanent"), [
    ({"error": "invalid_client", "error_codes": [7000215], "error_description": "AADSTS7000215: Invalid client "
      "secret provided.\r\nTrace ID: 1"}, "OAuth token: the client secret is wrong: enter the secret's Value (not "
     "its Secret ID) from the app registration's Certificates & secrets (AADSTS7000215)", True),
    ({"error": "invalid_grant", "error_description": "AADSTS700082: The refresh token has expired due to "
      "inactivity."}, "OAuth token: the sign-in expired after a long time without use: sign in with Microsoft "
     "again on the connection page (AADSTS700082)", True),
    ({"error": "invalid_request", "error_codes": [9999999], "error_description": "AADSTS9999999: Something new.\r\n"
      "Trace ID: abc"}, "OAuth token: the identity provider refused the request (invalid_request: AADSTS9999999: "
     "Something new.)", True),
    ({"error": "temporarily_unavailable"}, "OAuth token: the identity provider refused the request "
     "(temporarily_unavailable)", False),
])
def test_it_puts_aadsts_errors_in_words(response, message, permanent):
    error = aadsts.explain(response)
    assert (error.message, error.permanent) == (message, permanent)


def test_it_maps_every_code_the_issue_names():
    for code in (7000215, 65001, 50034, 90002, 50076, 50079, 70008, 700082, 7000222, 50126):
        assert code in aadsts.CODES


def test_it_sends_token_requests_over_https_only():
    settings = OAuthSettings.of(parse_email_config(_data()))
    with pytest.raises(ConnectorError, match="HTTPS only"):
        GuardedHTTP(settings, 1, 1, deadline=None).get("http://login.microsoftonline.com/x")  # type: ignore[arg-type]


def _oauth_form(**overrides: Any) -> EmailConnectionForm:
    data = form_data(auth_method="oauth2_microsoft365", auth_tenant_id=TENANT, auth_client_id=CLIENT,
                     auth_mailbox="support@contoso.com", auth_client_secret="s3cret", auth_grant="client_credentials",
                     auth_authority="", auth_username=None, auth_password=None)
    data.update(overrides)
    return EmailConnectionForm({k: v for k, v in data.items() if v is not None})


def test_it_takes_an_oauth_connection_from_the_form():
    form = _oauth_form()
    assert form.is_valid(), form.errors
    assert form.config.auth["authority"] == "login.microsoftonline.com"
    assert form.merged_secrets({"password": "old"}) == {"client_secret": "s3cret"}
    password_grant = _oauth_form(auth_grant="password", auth_username="svc@contoso.com")
    assert not password_grant.is_valid()
    assert password_grant.errors["auth_password"] == ["This field is required."]


def test_it_hides_the_password_grant_fields_for_other_grants_with_css_rules():
    form = EmailConnectionForm()
    rules = form.conditional_rules()
    assert ("oauth2_microsoft365", "auth_password", "auth_grant", "client_credentials") in rules
    assert ("oauth2_microsoft365", "auth_username", "auth_grant", "authorization_code") in rules
    assert not any(rule[3] == "password" for rule in rules)
    form.show_redirect_uri("https://mailwright.example/oauth/microsoft/callback")
    assert "https://mailwright.example/oauth/microsoft/callback" in form.fields["auth_grant"].help_text
    assert '<select name="auth_grant"' in str(form["auth_grant"])


def test_it_takes_only_microsoft_authorities_unless_the_operator_adds_one(settings):
    assert parse_email_config(_data(authority="login.microsoftonline.us")).auth["authority"] == (
        "login.microsoftonline.us")
    assert _errors(authority="login.evil.example")["auth.authority"][0].startswith("must be a Microsoft authority")
    settings.MAILWRIGHT_MICROSOFT_AUTHORITIES = ["login.contoso-proxy.example"]
    assert parse_email_config(_data(authority="login.contoso-proxy.example:8443")).auth["authority"] == (
        "login.contoso-proxy.example:8443")
