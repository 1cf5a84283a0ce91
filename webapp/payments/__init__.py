"""Payments of orders: the gateway, the hosted page, saved cards, refunds and bank transfers.

Owns payments and saved cards (models.py), the bank's client (gateway.py) and the one check of
its answers (verify.py), how a payment ends (settlement.py), paying on the hosted page
(hosted.py) or with a saved card (charges.py), the reconciliation job (stuck.py), refunds,
transfers and the diritto di recesso. What the upper packages must hear ("order paid",
"payment refunded") is a signal in events.py. Entry points: the use cases in flows.py (the
views and jobs call them: they commit), and the blueprints `bp` and `portal_bp` (views.py).
"""
