"""The e-mail outbox: rows written in the caller's transaction, sent after the commit.

Owns the outbox table (models.py) and queueing, rendering and sending (services.py). Entry points:
`queue_email` and `queue_template_emails` for the packages above, `send_outbox` for the job
that retries what was not sent.
"""
