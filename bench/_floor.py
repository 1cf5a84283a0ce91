"""The shop's floor for bench/fragments.py: the production app (`wsgi.py`, same config, hooks,
access line and metrics) with the measured fragments' views answering a constant.

What a request of the shop pays before and after its view does anything: the signed session,
Flask-Login's customer read (the security hook asks who is logged in; the customer area requires
it), the CSRF check of a POST, the request hooks, the access line and the metrics. A fragment
does its work on top of this, so it can never be faster than its floor.
"""

from bench._bare import BODY  # the bare route's fragment-sized answer
from wsgi import app


def _cart():
    return BODY


def _frequency(service_id: int):
    return BODY


app.view_functions["shop.view_cart"] = _cart
app.view_functions["area.set_frequency"] = _frequency
