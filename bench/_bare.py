"""The baseline for bench/fragments.py: a bare Flask route returning a fragment-sized body."""

from flask import Flask

app = Flask(__name__)
BODY = '<section id="cart">' + "x" * 1500 + "</section>"


@app.get("/bare")
def bare():
    return BODY
