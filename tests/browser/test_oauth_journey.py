"""Create a Microsoft 365 OAuth connection in the browser, sign in with Microsoft (the local identity
provider approves at once), and press Test: the token comes from the stored refresh token, XOAUTH2 logs in."""

from playwright.sync_api import Browser, expect

from tests.browser.conftest import PASSWORD, screenshot
from tests.servers.fixtures import OAUTH_USER
from tests.servers.idp import CLIENT_ID, CLIENT_SECRET


def test_it_signs_in_with_microsoft_and_tests_the_connection(browser: Browser, live_server, alice, team, project,
                                                             idp, oauth_dovecot, smtp_factory, settings):
    settings.MAILWRIGHT_CHECK_PICKUP_SECONDS = 30
    smtp = smtp_factory("starttls", None, xoauth2=lambda user, token: idp.active_user(token) == user)
    # The identity provider's certificate comes from the test CA, which Chromium does not know.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        page.goto(f"{live_server.url}/login/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{live_server.url}/t/{team.slug}/projects/{project.pk}/connections/new/")
        page.get_by_label("Name", exact=True).fill("Microsoft mailbox")
        page.get_by_label("IMAP host").fill("localhost")
        page.get_by_label("IMAP port").fill(str(oauth_dovecot.tls_port))
        page.get_by_label("SMTP host").fill("localhost")
        page.get_by_label("SMTP port").fill(str(smtp.port))
        page.get_by_label("Authentication").select_option("oauth2_microsoft365")
        expect(page.get_by_label("Password")).to_be_hidden()  # client credentials by default
        page.get_by_label("Grant").select_option("password")
        expect(page.get_by_label("Password")).to_be_visible()
        page.get_by_label("Grant").select_option("authorization_code")
        expect(page.get_by_label("Password")).to_be_hidden()
        expect(page.get_by_text(f"{live_server.url}/oauth/microsoft/callback")).to_be_visible()
        page.get_by_label("Tenant id").fill(idp.tenant)
        page.get_by_label("Client id").fill(CLIENT_ID)
        page.get_by_label("Client secret").fill(CLIENT_SECRET)
        page.get_by_label("Mailbox address").fill(OAUTH_USER)
        page.get_by_label("Authority host").fill(idp.authority)
        page.get_by_label("Custom CA certificate (PEM)").fill(oauth_dovecot.ca_pem)
        screenshot(page, "oauth-connection-form")
        page.get_by_role("button", name="Create connection").click()
        expect(page.get_by_role("heading", name="Microsoft mailbox")).to_be_visible()
        expect(page.get_by_text("nobody has signed in yet")).to_be_visible()

        page.get_by_role("button", name="Sign in with Microsoft").click()
        expect(page.get_by_role("status").get_by_text(f"Signed in with Microsoft as {OAUTH_USER}")).to_be_visible()
        expect(page.get_by_text(f"signed in as {OAUTH_USER} · tokens stored encrypted")).to_be_visible()
        page.get_by_role("button", name="Test").click()
        expect(page.get_by_text("Connection Success")).to_be_visible()
        expect(page.get_by_text(f"token for {OAUTH_USER} from {idp.authority}")).to_be_visible()
        screenshot(page, "oauth-connection-tested")
        assert CLIENT_SECRET not in page.content()
        assert not any(token in page.content() for token in idp.issued_tokens())
        assert idp.grant_types()[0] == "authorization_code"
    finally:
        context.close()
