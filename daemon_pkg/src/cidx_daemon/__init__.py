"""cidx_daemon: the engine and resident daemon of cidx."""

__version__ = "0.1.0"
