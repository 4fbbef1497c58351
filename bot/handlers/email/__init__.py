"""E-mail: IMAP polling or an SMTP listener in, SMTP out, threads found by plus-address and headers."""
