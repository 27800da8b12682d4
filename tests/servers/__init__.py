"""Real IMAP (Dovecot) and SMTP (aiosmtpd) servers for integration tests; see fixtures.py."""
