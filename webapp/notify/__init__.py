"""E-mails about what happened: subscribers to the domain events, queued in the outbox."""
