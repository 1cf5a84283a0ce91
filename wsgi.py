"""WSGI entry point of the shop: `gunicorn wsgi:app` (the bank: `python -m webapp.bank`)."""

from webapp import compile_templates, create_app

app = create_app()
compile_templates(app)  # in gunicorn's master, before the fork: every worker starts with them
