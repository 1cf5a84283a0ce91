"""Customers: registration, login, and the customer area."""
