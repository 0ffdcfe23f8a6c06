"""The resident per-project daemon: socket claim, rpyc service, detach, idle/TTL, signals.

Public entry points live in ``server``: ``serve``, ``run_serve``, ``add_serve_subcommand``.
Kept import-light: the CLI imports this package for every command.
"""
