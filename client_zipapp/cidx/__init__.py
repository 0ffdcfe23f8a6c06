"""cidx: the stdlib-only client (zipapp). Keep imports here empty: every start pays for them."""

__version__ = "0.1.0"
