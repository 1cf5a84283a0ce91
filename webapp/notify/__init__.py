"""E-mails about what happened: subscribers to the domain events, queued in the outbox.

Owns which e-mail each event sends (subscribers.py), nothing else. Entry point: importing
webapp.notify.subscribers connects them (the app factory does).
"""
