"""Payments of orders: the gateway, the hosted-page return, the portal with saved cards."""
