"""Customers at home: registration, login, password and address recovery, and the customer area.

Owns the area's pages ("I miei servizi", orders and their payment, invoices, saved cards, billing
data, profile, diritto di recesso, GDPR export and account closure); the logic they call lives
in the packages below (shop, payments, renewals, invoicing). Entry points: the blueprints, each
`bp` of views.py (register, log in, log out), area.py, orders.py, invoices.py, billing.py,
profile.py, recovery.py and withdrawal.py, registered by the app factory.
"""
