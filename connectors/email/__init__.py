"""The Email connector (IMAP + SMTP). Importing this package registers it."""

from connectors.email.connector import EMAIL, EmailConnector

__all__ = ["EMAIL", "EmailConnector"]
