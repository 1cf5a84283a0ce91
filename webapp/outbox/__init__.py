"""The e-mail outbox: rows written in the caller's transaction, sent after the commit."""
