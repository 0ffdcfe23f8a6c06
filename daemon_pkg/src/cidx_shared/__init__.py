"""What the stdlib client and the daemon share: request/response schema, config, renderer, CLI table.

Standard library only: the daemon wheel ships this package and build.py copies the same
files into the client zipapp, so both sides import one module under one name and no
flag can be dropped between them. Keep imports here empty: every client start pays for them.
"""
