"""Modules shared verbatim with the stdlib client (symlinks into client_zipapp/cidx/).

They import only the standard library and each other, so the one schema and the
one renderer serve both sides and cannot drift.
"""
