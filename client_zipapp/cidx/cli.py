"""The ``cidx`` command line: parse, dispatch, print. Standard library only.

Hot path (``cidx query``): the table-driven fast parser (argparse only when it
defers), config lookup, one RPC, render. Nothing else is imported before the
request is on the wire; the daemon-control and standalone modules load only
when they are needed.
"""

from __future__ import annotations

import os
import sys
import time

from cidx_shared import config as cfgmod
from cidx_shared.schema import RequestError, parse_query_argv, widen_for_files

from . import __version__

# Same values as render.EXIT_*; not imported from there so that the renderer stays off
# the hot path until the reply is on its way (see delegate._warm_imports).
EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

HANDED_OFF = {
    "index": "index the project (incremental; --clear to rebuild); runs the daemon package",
    "status": "index status: files, chunks, generation, model, size, staleness",
    "clean": "delete the index (--all: the whole .code-indexer directory)",
    "export": "write the index to one file, for another copy of the project (cidx import)",
    "import": "adopt an index written by 'cidx export' (nothing is re-embedded)",
}


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    return build_parsers()[0]


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's own (whose errors print its own usage)."""
    from cidx_shared.cli_args import CliParser, RawDescriptionFormatter, add_query_arguments

    p = CliParser(prog="cidx", description=(
        "Semantic, full-text and hybrid code search, answered by a warm per-project daemon."),
        epilog="Run 'cidx COMMAND --help' for a command's flags.")
    p.add_argument("--version", action="version", version=f"cidx {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True

    q = sub.add_parser("query", help="search (hybrid by default; --semantic or --fts for one leg only)",
                       description="Search the index. Hybrid by default: meaning and words in one "
                                   "ranked list; --semantic for meaning only, --fts for full text only.")
    add_query_arguments(q)

    i = sub.add_parser("init", help="create .code-indexer/config.json in the current directory",
                       description="Make the current directory a cidx project. Refuses inside another "
                                   "project unless --force; adds .code-indexer/ to git's info/exclude.")
    i.add_argument("--no-daemon", action="store_true", help="disable the daemon in the new config")
    i.add_argument("--force", action="store_true", help="create a separate project inside another one")

    c = sub.add_parser("config", help="show or change daemon settings")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--daemon", dest="daemon", action="store_const", const=True,
                   help="delegate queries to the daemon (the default)")
    g.add_argument("--no-daemon", dest="daemon", action="store_const", const=False,
                   help="query standalone; also stops a running daemon")
    g.add_argument("--show", action="store_true", help="print the config")

    d = sub.add_parser("daemon", help="start, stop, restart or inspect the project's daemon")
    d.add_argument("action", choices=("start", "stop", "status", "restart"))
    d.add_argument("--json", action="store_true", help="status as JSON")

    m = sub.add_parser("mcp", help="serve code search to AI agents (Model Context Protocol on stdio)",
                       description=MCP_DESCRIPTION, epilog=MCP_EPILOG,
                       formatter_class=RawDescriptionFormatter)
    m.add_argument("--project", metavar="DIR", default=None,
                   help="the project to serve (default: the one around the working directory, "
                        "as for every command)")

    for name, text in HANDED_OFF.items():
        # Listed for --help only: main() hands these to cidx-daemon before argparse runs.
        sub.add_parser(name, help=text, add_help=False)
    return p, {"query": q, "init": i, "config": c, "daemon": d, "mcp": m}


MCP_DESCRIPTION = """\
Serve this project's code search to AI agents over the Model Context Protocol:
JSON-RPC 2.0, one message per line on stdin/stdout, protocol revision 2025-06-18
(2025-03-26 and 2024-11-05 are accepted too). An agent starts this command and
talks to it; there is nothing to type. Searches go through the same per-project
daemon as 'cidx query': started on first use, restarted after a crash, or run
standalone when the daemon cannot serve."""

MCP_EPILOG = """\
tools:
  search   full-text (mode fts: identifiers, strings, error messages), semantic
           (behaviour described in words) or hybrid (the default) search, with
           every option of 'cidx query' (limit, language, path_filter, regex...). The
           answer fits in about max_tokens tokens (default 2000): snippets are
           shortened, then the last results dropped, and the text says so.
           Text content as 'cidx query' prints it (no colour, paths relative to
           the project root) plus the JSON result document as structuredContent.
  status   the index (as 'cidx status') and the daemon's state
  index    refresh the index incrementally (as 'cidx index'); one summary line

add it to an agent:
  Claude Code:             claude mcp add cidx -- cidx mcp
  Claude Desktop, Cursor:  {"mcpServers": {"cidx": {"command": "cidx",
                              "args": ["mcp", "--project", "/path/to/repo"]}}}

stdout carries protocol messages only; logs go to stderr. A failing tool answers
with isError and one line; the server keeps serving. Run 'cidx index' once first."""


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in HANDED_OFF:
            # Passed through untouched (flags and --help included): argparse's REMAINDER
            # refuses a first argument that looks like an option.
            return cmd_handoff(argv[0], argv[1:])
        fast = parse_query_argv(argv[1:]) if argv and argv[0] == "query" else None
        if fast is not None:
            raw, output = fast
            return run_query(raw, started, output)
        top, commands = build_parsers()
        if argv and argv[0] in commands:
            command = commands[argv[0]]
            if argv[0] == "query":
                from cidx_shared.cli_args import parse_query_args

                args = parse_query_args(command, argv[1:])
            else:
                args = command.parse_args(argv[1:])
            args.command = argv[0]
            return _dispatch(args, started)
        return _dispatch(top.parse_args(argv), started)
    except (UsageError, RequestError, cfgmod.ConfigError) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:  # `cidx query ... | head -1`: the reader has what it wanted
        _quiet_stdout()
        return EXIT_OK
    except Exception as exc:
        from .daemon_process import DaemonNotInstalled

        if isinstance(exc, DaemonNotInstalled):
            _say(f"error: {exc}")
            return EXIT_RUNTIME
        if os.environ.get("CIDX_DEBUG"):
            raise
        _say(f"error: {type(exc).__name__}: {exc} (set CIDX_DEBUG=1 for a traceback)")
        return EXIT_RUNTIME


def _say(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the final flush of what is still buffered cannot fail."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


def _config_path() -> str:
    path = cfgmod.find_config()
    if path is None:
        raise UsageError(f"no .code-indexer/config.json in {os.getcwd()} or above: run 'cidx init'")
    return path


def _project() -> tuple[str, dict]:
    path = _config_path()
    return path, cfgmod.load_config(path)


def _dispatch(args: argparse.Namespace, started: float) -> int:
    cmd = args.command
    if cmd == "query":
        return cmd_query(args, started)
    if cmd == "init":
        return cmd_init(args)
    if cmd == "mcp":
        from .mcp_server import serve

        return serve(args.project)
    if cmd == "config":
        config_path, cfg = _project()
        return cmd_config(args, config_path, cfg)
    from . import daemon_cli

    # stop and status need only the socket's path: they work with a broken config.
    config_path = _config_path()
    cfg = cfgmod.load_config(config_path) if args.action in ("start", "restart") else None
    return daemon_cli.run(args.action, config_path, cfg, as_json=args.json)


def cmd_query(args: argparse.Namespace, started: float) -> int:
    from cidx_shared.cli_args import output_from_namespace, request_from_namespace

    return run_query(request_from_namespace(args), started, output_from_namespace(args))


def run_query(req: dict, started: float, output: dict) -> int:
    req, output = widen_for_files(req, output)
    return print_document(query_document(req), output, total_s=time.perf_counter() - started)


def query_document(req: dict) -> dict:
    """The result (or error) document for a raw request, printed by nobody.

    One path for ``cidx query`` and the MCP search tool, so both get the same project
    lookup, the same "no index yet" answer and the same recovery (daemon, restart,
    standalone). Raises UsageError when there is no project or a value is not UTF-8.
    """
    from cidx_shared.schema import undecodable_argument

    bad = undecodable_argument(req)  # bytes at the edge: nothing is started or sent for them
    if bad is not None:
        raise UsageError(f"{bad} is not valid UTF-8")
    config_path, cfg = _project()
    if not os.path.exists(cfgmod.sibling(config_path, cfgmod.INDEX_DIR + "/CURRENT")):
        # Nothing to search: say so without starting a daemon that would live for its TTL.
        from cidx_shared.schema import make_error_document

        root = os.path.dirname(os.path.dirname(config_path))
        return make_error_document("no_index", f"no index yet in {root}: run 'cidx index' first")
    if cfg["daemon"]["enabled"]:
        from .delegate import query_via_daemon

        return query_via_daemon(cfg, config_path, req)
    from .standalone import run_query

    return run_query(cfg, config_path, req)


def print_document(doc: dict, output: dict, *, total_s: float) -> int:
    from cidx_shared.render import emit_document

    return emit_document(doc, output, total_s=total_s, cwd=os.getcwd())


def cmd_init(args: argparse.Namespace) -> int:
    path, created, notes = cfgmod.init_here(os.getcwd(), force=args.force, daemon=not args.no_daemon)
    print(f"{'Initialised' if created else 'Already initialised'}: {path}")
    for note in notes:
        print(note)
    print("Next: cidx index")
    return EXIT_OK


def cmd_handoff(cmd: str, rest: list[str]) -> int:
    from .daemon_process import run_daemon_cli, stop

    if any(a in ("-h", "--help") for a in rest):
        return run_daemon_cli([cmd, *rest], None)
    config_path, cfg = _project()
    if cmd == "clean" and "--all" in rest:
        stop(config_path)
    return run_daemon_cli([cmd, *rest], config_path, cfg)


def cmd_config(args: argparse.Namespace, config_path: str, cfg: dict) -> int:
    if args.show:
        import json

        print(json.dumps(cfg, indent=2))
        return EXIT_OK
    cfg["daemon"]["enabled"] = bool(args.daemon)
    cfgmod.save_config(config_path, cfg)
    if args.daemon:
        print("Daemon mode enabled: queries go to the daemon (started on first query).")
    else:
        from .daemon_process import stop

        stopped = stop(config_path).stopped
        print("Daemon mode disabled: queries run standalone." + (" Stopped the daemon." if stopped else ""))
    return EXIT_OK
