"""``cidx-daemon``: the engine's one-shot command line (and ``serve`` for the daemon).

Error rules: one line on stderr, exit 2 for usage errors, 1 for runtime
errors, no traceback unless ``--debug``. With ``--json``, a query that fails
prints the error document on stdout too, so the stdlib client's standalone
fallback renders errors exactly as it renders the daemon's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from cidx_shared import config as cfgmod
from cidx_shared.cli_args import CliParser, add_query_arguments, output_from_namespace, request_from_namespace
from cidx_shared.render import EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, emit_document
from cidx_shared.schema import RequestError

from . import __version__


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


#: Set by the client when it hands a command over (``cidx index``): usage lines then
#: name the command the user typed, not this one.
PROG_ENV = "CIDX_PROG"


def _chunk_workers(ray: Any) -> int:
    """Processes that read and chunk a big scan (forked: this command is single-threaded while
    it scans), except beside a Ray client, whose gRPC threads must not be forked."""
    return 1 if ray is not None else max(1, min(4, os.cpu_count() or 1))


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=os.environ.get(PROG_ENV) or "cidx-daemon",
                description="cidx engine: index a repository; semantic, full-text and hybrid search.")
    p.add_argument("--version", action="version", version=f"cidx-daemon {__version__}")
    p.add_argument("--config", type=Path, default=None,
                   help="path to .code-indexer/config.json (default: nearest one above the cwd)")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=CliParser)
    sub.required = True

    s = sub.add_parser("init", help="create .code-indexer/config.json in the current directory")
    s.add_argument("--force", action="store_true", help="create a separate project inside another one")

    s = sub.add_parser("index", help="index the project (incremental: only changed files are embedded)")
    s.add_argument("--clear", action="store_true",
                   help="rebuild from scratch (also repairs a damaged index)")
    s.add_argument("--no-embed", action="store_true",
                   help="full text only for now: leave new chunks' vectors pending "
                        "(a later index embeds them)")
    s.add_argument("--quiet", action="store_true",
                   help="no progress (a bar on a terminal, else a line every 10 s on stderr)")
    s.add_argument("--json", action="store_true", help="print the index statistics as JSON")
    s.add_argument("--progress-json", action="store_true",
                   help="report progress as JSON lines on stderr instead of a bar (for programs "
                        "driving the index, such as cidx mcp)")
    ray = s.add_mutually_exclusive_group()
    ray.add_argument("--ray", metavar="ADDRESS", default=None,
                     help="embed on a Ray cluster (e.g. 10.0.0.5:6379 or auto; default: index.ray_address "
                          "in ~/.config/cidx/config.json); needs cidx-daemon[ray]")
    ray.add_argument("--no-ray", action="store_true",
                     help="embed locally even if the user config names a cluster")

    s = sub.add_parser("query",
                       help="search the index (hybrid by default; --semantic or --fts for one leg only)")
    add_query_arguments(s)

    s = sub.add_parser("export", help="write the index to one file another copy of the project can import")
    s.add_argument("file", type=Path, help="the archive to write (a tar file)")

    s = sub.add_parser("import", help="make an exported index this project's index (nothing is re-embedded)")
    s.add_argument("file", type=Path, help="an archive written by 'cidx export'")

    s = sub.add_parser("status", help="index state: files, chunks, generation, model, size, staleness")
    s.add_argument("--json", action="store_true", help="print as JSON")

    s = sub.add_parser("clean", help="delete the index (keeps config.json)")
    s.add_argument("--all", action="store_true", help="delete the whole .code-indexer directory")

    # Defined here, not in daemon.server: importing the server pulls in rpyc, which
    # every one-shot command (a standalone query above all) would then pay for.
    s = sub.add_parser("serve", help="run the warm per-project daemon (usually started by cidx)")
    s.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                   help="path to .code-indexer/config.json (default: nearest one above the cwd)")
    s.add_argument("--detach", action="store_true",
                   help="run in the background; return once the socket accepts connections")
    s.add_argument("--ready-fd", type=int, default=None, metavar="FD",
                   help="write one readiness line ('ready PID' / 'running ...' / 'error ...') to FD")
    return p


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    # How to run this same command again (``--ray`` runs it in a child): the interpreter and its
    # flags, then the script, zipapp or ``-m cidx_daemon`` the user ran.
    args.rerun = list(sys.orig_argv) if argv is None else [sys.executable, "-m", "cidx_daemon", *argv]
    try:
        return _dispatch(args, started)
    except CliError as exc:
        _say(f"error: {exc}")
        return exc.code
    except (RequestError, cfgmod.ConfigError) as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:  # `cidx status | head -3`: the reader has what it wanted
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())  # the interpreter's last flush must not fail either
        os.close(null)
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            raise
        _say(f"error: {type(exc).__name__}: {exc} (run with --debug for details)")
        return EXIT_RUNTIME


def _say(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def _dispatch(args: argparse.Namespace, started: float) -> int:
    if args.command == "init":
        return cmd_init(args)
    if args.command == "serve":
        from cidx_daemon.server.server import run_serve

        return run_serve(args)
    config_path = _config_path(args)
    handler = {"index": cmd_index, "query": cmd_query, "status": cmd_status, "clean": cmd_clean,
               "export": cmd_export, "import": cmd_import}
    return handler[args.command](args, config_path, started)


def _config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        if not args.config.is_file():
            raise CliError(f"no config at {args.config}", EXIT_USAGE)
        return args.config.absolute()
    found = cfgmod.find_config()
    if found is None:
        raise CliError(f"no .code-indexer/config.json in {os.getcwd()} or above: run 'cidx init'",
                       EXIT_USAGE)
    return Path(found)


def cmd_init(args: argparse.Namespace) -> int:
    path, created, notes = cfgmod.init_here(os.getcwd(), force=args.force)
    if not created:
        cfgmod.load_config(path)  # report a broken config now rather than at index time
    print(f"{'Initialised' if created else 'Already initialised'}: {path}")
    for note in notes:
        print(note)
    print("Next: cidx index")
    return EXIT_OK


def cmd_index(args: argparse.Namespace, config_path: Path, started: float) -> int:
    from cidx_daemon.index.generation import IndexLockedError
    from cidx_daemon.index.indexer import index_project
    from cidx_daemon.search.embedding import EmbedderError

    embed = not args.no_embed
    address = _ray_address(args) if embed else None
    marker = os.environ.pop(RAY_CHILD_ENV, None)
    if address is not None and marker is None:
        return _index_in_child(args.rerun, address)
    ray = None
    try:
        if args.progress_json:
            from cidx_daemon.progress_json import JsonLinesProgress

            lines = JsonLinesProgress()
            ray = _connect_ray(address, config_path, lines.note)
            stats = index_project(config_path, clear=args.clear, embed=embed, progress=lines,
                                  embedder_factory=_pool_factory(ray), workers=_chunk_workers(ray))
            lines.finish()
        elif args.quiet or args.json:
            ray = _connect_ray(address, config_path, None)
            stats = index_project(config_path, clear=args.clear, embed=embed,
                                  embedder_factory=_pool_factory(ray), workers=_chunk_workers(ray))
        else:
            # without a terminal rich draws nothing (and is not imported: ~40 ms): a log or an
            # agent gets lines instead
            if sys.stderr.isatty():
                from cidx_daemon.progress import RichProgress as Display
            else:
                from cidx_daemon.progress_lines import PlainProgress as Display  # type: ignore[assignment]
            with Display() as progress:
                ray = _connect_ray(address, config_path, progress.note)
                stats = index_project(config_path, clear=args.clear, embed=embed, progress=progress,
                                      embedder_factory=_pool_factory(ray), workers=_chunk_workers(ray))
    except (IndexLockedError, EmbedderError) as exc:
        raise CliError(str(exc)) from None
    finally:
        if ray is not None:
            ray.close()
        if marker is not None:  # we got to say how it ended: the parent stays quiet
            Path(marker).write_text("done\n")
    if ray is not None and not args.json:
        rate = f" at {ray.throughput():,.1f} texts/s" if ray.texts_done else ""
        print(f"Ray: {ray.texts_done} texts (chunks and function texts) embedded by {ray.actors} "
              f"actors on {ray.nodes} node(s){rate}")
    if args.json:
        print(json.dumps(stats.to_json(), indent=2))
        return EXIT_OK
    skipped = sum(stats.skipped.values())
    if stats.unchanged:
        print(f"Index is up to date: {stats.files} files, {stats.chunks} chunks in {stats.generation} "
              f"(checked in {stats.timings_s['total']:.1f}s)")
    else:
        n_sigs = stats.signatures_embedded
        signatures = f" and {n_sigs} function texts" if n_sigs else ""
        print(f"Indexed {stats.files} files, {stats.chunks} chunks into {stats.generation} "
              f"({stats.embedded} chunks{signatures} embedded, {stats.cache_hits} from the embedding cache, "
              f"{stats.reused_files} files unchanged, "
              f"{stats.deleted_files} removed, {skipped} skipped) in {stats.timings_s['total']:.1f}s")
    if stats.pending:
        print(f"Pending: {stats.pending} chunks not embedded yet (searchable by full text; "
              "'cidx index' embeds them)")
    if stats.skipped:
        print("Skipped: " + ", ".join(f"{n} {why}" for why, n in sorted(stats.skipped.items())))
    return EXIT_OK


#: Set for the child ``_index_in_child`` runs: a file it writes once it has ended on its own terms.
RAY_CHILD_ENV = "CIDX_RAY_CHILD_MARKER"


def _index_in_child(argv: list[str], address: str) -> int:
    """Run this ``index --ray`` in a child process and report what Ray would not.

    When the node the driver is attached to dies, Ray's core worker ends the process
    from C++ (exit 1, no Python exception, nothing said): only a parent can then tell
    the user what happened. The child inherits the terminal (progress bars), and writes
    the marker file whenever it ends normally, its own error line included.
    """
    import subprocess
    import tempfile

    from cidx_daemon.search.embedding.ray_pool import import_ray

    try:
        import_ray()  # no Ray here: say so now, in one line, rather than from the child
    except Exception as exc:
        raise CliError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="cidx-ray-") as scratch:
        marker = Path(scratch) / "ended"
        child = subprocess.Popen(argv, env={**os.environ, RAY_CHILD_ENV: str(marker)})
        try:
            code = child.wait()
        except KeyboardInterrupt:  # the child got it too (same process group): let it finish its line
            code = child.wait()
        if code != 0 and not marker.exists():
            raise CliError(f"lost the Ray cluster at {address}: the Ray runtime ended the indexer "
                           f"(exit {code}); full-text search works, vectors published so far are kept, "
                           "and 'cidx index' embeds the rest")
        return code


def _ray_address(args: argparse.Namespace) -> str | None:
    """--ray, else the user's ``index.ray_address``; --no-ray wins over both."""
    if args.no_ray:
        return None
    if args.ray is not None:
        if not args.ray.strip():
            raise CliError("--ray needs an address, e.g. 10.0.0.5:6379 or auto", EXIT_USAGE)
        return args.ray.strip()
    return (cfgmod.load_user_config().get("index") or {}).get("ray_address")


def _connect_ray(address: str | None, config_path: Path, note: Any) -> Any:
    """Connect before anything is published, so a cluster that is not there changes nothing."""
    if address is None:
        return None
    from cidx_daemon.search.embedding.ray_pool import RayEmbedder

    name = cfgmod.load_config(config_path)["index"]["embedder"]
    return RayEmbedder(address, name, note=note)


def _pool_factory(ray: Any) -> Any:
    """The indexer's embedder factory: the connected pool, or None for the local default."""
    if ray is None:
        return None
    return lambda name: ray


def cmd_query(args: argparse.Namespace, config_path: Path, started: float) -> int:
    req = request_from_namespace(args)
    from cidx_daemon.search.engine import Engine

    doc = Engine(config_path, served_by="standalone").query(req)
    return emit_document(doc, output_from_namespace(args), total_s=time.perf_counter() - started,
                         cwd=os.getcwd())


def cmd_status(args: argparse.Namespace, config_path: Path, started: float) -> int:
    from cidx_daemon.index.staleness import stale_files
    from cidx_daemon.search.engine import Engine

    info = Engine(config_path).status()
    if info.get("indexed"):
        info["stale"] = stale_files(config_path)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"Project:    {info['project_root']}")
    if not info.get("indexed"):
        for problem in info.get("damage", []):
            print(f"Damage:     {problem}")
        print("Index:      " + ("damaged, nothing usable (run 'cidx index --clear')" if info.get("damage")
                                 else "none yet (run 'cidx index')"))
        return EXIT_OK
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["indexed_at"]))
    stale = info["stale"]
    for problem in info.get("damage", []):
        print(f"Damage:     {problem}")
    print(f"Generation: {info['generation']} (indexed {when})")
    pending = info["pending"]["embed"]
    texts = info["pending"].get("function_texts", 0)
    print(f"Files:      {info['files']}   Chunks: {info['chunks']}"
          + (f"   Pending: {pending} not embedded yet" if pending else "")
          + (f"   Function texts: {texts} chunks' to embed (by the next 'cidx index' or the daemon)"
             if texts else ""))
    print(f"Model:      {info['model']}")
    print(f"Size:       {info['size_bytes'] / 1e6:.1f} MB")
    changes = stale["changed"] + stale["added"] + stale["deleted"]
    print(f"Staleness:  {'up to date' if not changes else f'{changes} file(s) changed since indexing'}"
          + (f" ({stale['changed']} changed, {stale['added']} new, {stale['deleted']} deleted;"
             " run 'cidx index')" if changes else ""))
    return EXIT_OK


def cmd_export(args: argparse.Namespace, config_path: Path, started: float) -> int:
    from cidx_daemon.index.portable import PortableError, export_generation

    try:
        manifest = export_generation(config_path, args.file)
    except PortableError as exc:
        raise CliError(str(exc)) from None
    meta = manifest["meta"]
    size = args.file.stat().st_size
    print(f"Exported {manifest['generation']} ({meta['files']} files, {meta['chunks']} chunks, "
          f"{meta['embedded']} embedded with {meta['model']}) to {args.file} ({size / 1e6:.1f} MB)")
    return EXIT_OK


def cmd_import(args: argparse.Namespace, config_path: Path, started: float) -> int:
    from cidx_daemon.index.portable import PortableError, import_generation

    try:
        gen = import_generation(config_path, args.file)
    except PortableError as exc:
        raise CliError(str(exc)) from None
    print(f"Imported {args.file} as {gen.name} ({len(gen.table.files)} files, {len(gen)} chunks); "
          "'cidx index' (or a running daemon) now brings it up to date with this copy, re-embedding "
          "only what differs")
    return EXIT_OK


def cmd_clean(args: argparse.Namespace, config_path: Path, started: float) -> int:
    from cidx_daemon.index.generation import index_lock

    cdir = cfgmod.config_dir(config_path)
    with index_lock(cdir):
        target = cdir / cfgmod.INDEX_DIR
        if target.exists():
            shutil.rmtree(target)
    if args.all:
        shutil.rmtree(cdir)
        print(f"Removed {cdir}")
    else:
        print(f"Removed the index in {target}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
