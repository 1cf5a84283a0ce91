"""Services bought (subscriptions) and their automatic renewal.

Owns services and renewal rows (models.py), what is shared about them (services.py: prices,
settings, e-mails), what a customer manages (manage.py), starting and ending them
(activation.py, cancellation.py, expiry.py, ceasing.py) and the renewal engine (engine.py: per
row in charging.py, n at a time in batch*.py). Entry points: `run_renewals` (engine.py),
`flask renewals run|scheduler` (scheduler.py), and the subscribers to payments' events
(activation.py, cancellation.py, connected when the app factory imports them).
"""
