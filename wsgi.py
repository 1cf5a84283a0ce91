"""WSGI entry point of the shop: `gunicorn wsgi:app` (the bank: `python -m webapp.bank`)."""

from webapp import create_app

app = create_app()
