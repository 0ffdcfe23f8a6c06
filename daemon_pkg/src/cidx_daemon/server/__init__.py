"""The resident per-project daemon: socket claim, rpyc service, detach, idle/TTL, signals.

Public entry points live in ``server``: ``serve`` and ``run_serve``. The ``serve`` flags are
defined in ``cidx_daemon.cli``, which must stay light: importing ``server`` pulls in rpyc.
"""
