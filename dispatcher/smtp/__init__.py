"""Talking SMTP: relay URLs, the client connection, and the embedded capture relay."""
