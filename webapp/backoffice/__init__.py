"""The operators' back office at /backoffice: staff accounts, audit log, support and admin tools.

Owns the staff (models.py, auth.py: password + TOTP, links.py), the audit log (audit.py), what
staff do (operations.py, catalogue.py: each action writes its audit row) and what each page
reads (search.py, files.py, dashboard.py, queues.py). Entry points: the blueprint `bp`
(blueprint.py, its routes in views.py and the *_views.py modules), registered by the app
factory, and `flask staff` (cli.py).
"""
