"""The test suite. It runs as APP_ENV=testing (its processes inherit it): the app refuses the
development secrets under any other APP_ENV, and unset means production."""

import os

os.environ.setdefault("APP_ENV", "testing")
