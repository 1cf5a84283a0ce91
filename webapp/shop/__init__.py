"""Catalogue, cart, discounts and checkout up to the order."""
