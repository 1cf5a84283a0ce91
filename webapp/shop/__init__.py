"""The shop up to the order: catalogue, cart, discounts, checkout, customers and billing data.

Owns customers, products, carts and discount codes (models.py) and orders (order_models.py);
prices (catalogue.py: the list price on a day; pricing.py: pure quotes over integer cents), the
cart (cart.py, cartview.py), codici sconto (discounts.py), checkout (checkout.py) and a
customer's orders (orders.py). Entry points: the blueprint `bp` (views.py), registered by the
app factory; the packages above call the services (checkout.confirm_order, orders.get_order).
"""
