"""E-mails: queued in an outbox by services, sent after the commit."""
