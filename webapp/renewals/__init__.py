"""Services bought (subscriptions) and their automatic renewal."""
