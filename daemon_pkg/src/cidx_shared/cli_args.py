"""The argparse side of the shared schema: flags for both command lines.

Kept out of ``schema`` so that the client's fast path (``schema.parse_query_argv``)
never imports argparse. Shared verbatim with the daemon package (symlink):
standard library only.
"""

from __future__ import annotations

import argparse

from .schema import OUTPUT_OPTIONS, QUERY_OPTIONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter without ``import shutil`` (1.6 ms with bz2/lzma) at start-up.

    argparse builds a formatter inside every ``add_argument`` call, and the stock
    one imports shutil just to read the terminal width.
    """

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            width = _terminal_width() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class RawDescriptionFormatter(argparse.RawDescriptionHelpFormatter, _Formatter):
    """Keeps the description's and epilog's line breaks: a config snippet must stay as written."""


def _terminal_width() -> int:
    import os

    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(1).columns
    except OSError:
        return 80


class CliParser(argparse.ArgumentParser):
    """argparse with the project's usage-error rule: usage line + one error line, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        import sys

        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the positional query and every flag of ``QUERY_OPTIONS`` and ``OUTPUT_OPTIONS``."""
    parser.add_argument("query", nargs="*", metavar="QUERY",
                        help="what to search for (several words are one query; after -- anything goes)")
    for opt in (*QUERY_OPTIONS, *OUTPUT_OPTIONS):
        spellings = [opt.flag, *([opt.alias] if opt.alias else [])]
        if opt.kind == "bool":
            parser.add_argument(*spellings, dest=opt.key, action="store_true", help=opt.help)
        elif opt.kind == "list":
            parser.add_argument(*spellings, dest=opt.key, action="append", default=None,
                                metavar=opt.metavar, help=opt.help)
        elif opt.kind == "choice":
            parser.add_argument(*spellings, dest=opt.key, choices=opt.choices, default=opt.default,
                                metavar=opt.metavar, help=opt.help)
        else:
            parser.add_argument(*spellings, dest=opt.key, type=_ranged(opt) if opt.key in _OUTPUT else
                                _ARG_TYPES[opt.kind], default=None, metavar=opt.metavar, help=opt.help)


_OUTPUT = frozenset(o.key for o in OUTPUT_OPTIONS)


def _ranged(opt: Any) -> Any:
    """An output option's number is checked here: it never reaches the engine's validation."""
    def parse(text: str) -> int:
        value = _int_arg(text)
        if not opt.minimum <= value <= opt.maximum:
            raise argparse.ArgumentTypeError(
                f"expected {int(opt.minimum)} to {int(opt.maximum)}, got {value}")
        return value

    return parse


def parse_query_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``query`` arguments with flags and words in any order (``read --fts a file``).

    ``parse_intermixed_args`` cannot work through subparsers, so each CLI hands the query
    arguments to the ``query`` parser itself: its errors then print its own usage too. It
    also mishandles ``--``, so the words after it are taken here.
    """
    cut = argv.index("--") if "--" in argv else len(argv)
    ns = parser.parse_intermixed_args(argv[:cut])
    ns.query = [*(ns.query or []), *argv[cut + 1:]]
    if not ns.query:
        parser.error("the following arguments are required: QUERY")
    return ns


def _int_arg(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


_ARG_TYPES = {"int": _int_arg, "float": _float_arg}


def request_from_namespace(ns: argparse.Namespace) -> dict[str, Any]:
    """Parsed CLI flags -> raw request dict (only the flags given); the engine validates it."""
    raw: dict[str, Any] = {"query": " ".join(ns.query) if isinstance(ns.query, list) else ns.query}
    for opt in QUERY_OPTIONS:
        value = getattr(ns, opt.key)
        if value is not None and not (opt.kind == "bool" and value is False):
            raw[opt.key] = value
    return raw




def output_from_namespace(ns: argparse.Namespace) -> dict[str, Any]:
    """Parsed CLI flags -> the output options (what ``schema.parse_query_argv`` returns second)."""
    out = {}
    for opt in OUTPUT_OPTIONS:
        value = getattr(ns, opt.key)
        out[opt.key] = opt.default if value is None or (opt.kind == "bool" and value is False) else value
    return out
