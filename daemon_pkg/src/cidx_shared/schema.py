"""The one request/response schema shared by the stdlib client and the daemon.

Theory of operation
-------------------
CIDX kept three hand-written argument paths (CLI, daemon RPC, standalone) and
flags were renamed or dropped between them. Here every query flag is a row of
``QUERY_OPTIONS``; everything else is derived from that table:

* ``cli_args.add_query_arguments`` builds the argparse flags (client and daemon
  CLIs) and ``cli_args.request_from_namespace`` turns parsed flags into a request;
* ``parse_query_argv`` is the client's fast path for the same flags, without
  argparse (~7 ms of a ~30 ms warm query); it defers to argparse on anything
  unusual, and a property test holds it equal to argparse where it answers;
* ``validate_request`` checks a request and fills defaults. It runs once, in the
  engine: the client only parses (types), the daemon never trusts a client, and
  the standalone path reaches the same engine;
* ``request_to_argv`` turns a request back into argv, so the standalone path
  (``cidx-daemon query ... --json``) receives exactly the same request.

Property tests assert ``parse(request_to_argv(r)) == r`` for random requests and
that the fast path agrees with argparse, so a flag cannot be added to one path and
forgotten in another.

The wire (one crossing per query)
---------------------------------
A query is ONE RPC call after connect: ``query(envelope)`` where the envelope is
the JSON text ``{"protocol": N, "project": ROOT, "request": {...}}``. The protocol
version travels inside the request (as dmypy's does), so there is no handshake:
a daemon of another version answers with a ``protocol_mismatch`` error document,
and every document a daemon sends carries ``"protocol"`` (a reply without it
comes from a daemon older than the envelope). ``project`` lets the daemon refuse
to serve a project that is not its own. The client addresses the daemon's
service object at the well-known ``ROOT_ID_PACK`` rather than asking for it
(rpyc's GETROOT), which would cost a round trip.

The result document (``make_result_document``) is the only thing the engine
returns; ``--json`` prints it unchanged and the human renderer reads it.

Standard library only: the client zipapp carries this module too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: every client start would pay for it
if TYPE_CHECKING:
    from typing import Any

#: Version of the client<->daemon RPC contract (the envelope's ``protocol``).
PROTOCOL_VERSION = 2
#: Version of the JSON result document.
RESULT_SCHEMA_VERSION = 1
#: rpyc id_pack under which every daemon connection holds the service object, so
#: a client calls it without fetching the root first. (name, type id, object id).
ROOT_ID_PACK = ("cidx.service", 0, 0)

MODES = ("semantic", "fts", "hybrid")
MAX_LIMIT = 1000
#: Reciprocal Rank Fusion constant; hybrid fuses windows of FUSION_WINDOW x limit.
RRF_K = 60
FUSION_WINDOW = 5


class RequestError(ValueError):
    """A request that cannot be served as given (the user's fault, exit code 2)."""


class Option:
    """One query flag: its request key, CLI spelling (and short alias), type and meaning.

    A plain slotted class rather than a dataclass: ``dataclasses`` drags in
    ``inspect`` and friends, measurable on the client's cold start.
    """

    __slots__ = ("alias", "choices", "default", "flag", "help", "key", "kind", "maximum", "metavar",
                 "minimum")

    def __init__(self, key: str, flag: str, kind: str, default: Any, help: str,
                 minimum: float | None = None, maximum: float | None = None,
                 metavar: str | None = None, alias: str | None = None,
                 choices: tuple[str, ...] | None = None) -> None:
        self.key = key
        self.flag = flag
        self.kind = kind  # "bool" | "int" | "float" | "list" | "choice"
        self.default = default
        self.help = help
        self.minimum = minimum
        self.maximum = maximum
        self.metavar = metavar
        self.alias = alias
        self.choices = choices


QUERY_OPTIONS: tuple[Option, ...] = (
    Option("fts", "--fts", "bool", False,
           "full-text search only (tantivy): identifiers, exact words, phrases"),
    Option("semantic", "--semantic", "bool", False,
           "semantic search only, by meaning (neither flag, or both: hybrid, the default)"),
    Option("limit", "--limit", "int", 10, "maximum number of results (default 10)",
           1, MAX_LIMIT, "N"),
    Option("language", "--language", "list", (),
           "only these languages, by name (python) or extension (py); repeatable",
           metavar="LANG"),
    Option("exclude_language", "--exclude-language", "list", (),
           "skip these languages; repeatable", metavar="LANG"),
    Option("path_filter", "--path-filter", "list", (),
           "only paths matching this gitignore-style glob; repeatable", metavar="GLOB"),
    Option("exclude_path", "--exclude-path", "list", (),
           "skip paths matching this gitignore-style glob; repeatable", metavar="GLOB"),
    Option("min_score", "--min-score", "float", None,
           "drop results scoring below this (semantic: cosine; fts: BM25; hybrid: the fused score)",
           metavar="S"),
    Option("case_sensitive", "--case-sensitive", "bool", False,
           "full-text words: match case exactly (a --regex is case-sensitive already)"),
    Option("ignore_case", "--ignore-case", "bool", False,
           "--regex: ignore case, like grep -i (words ignore case already)", alias="-i"),
    Option("fuzzy", "--fuzzy", "bool", False, "full-text: allow one typo (edit distance 1)"),
    Option("edit_distance", "--edit-distance", "int", 0,
           "full-text: allow up to N typos per term (0-2)", 0, 2, "N"),
    Option("regex", "--regex", "bool", False,
           "full-text: the query is a regular expression matched per line, like grep "
           "(RE2 syntax: linear time, no look-around or back-references)"),
    Option("snippet_lines", "--snippet-lines", "int", 2,
           "lines of context shown around each result's best line (default 2; 0 = that line only)",
           0, 50, "N"),
)

#: Options that shape only the printed output; never sent to the engine.
OUTPUT_OPTIONS: tuple[Option, ...] = (
    Option("quiet", "--quiet", "bool", False, "print results only, no timing or headers"),
    Option("json", "--json", "bool", False,
           "print the result document as JSON (paths relative to the project root)"),
    Option("jsonl", "--jsonl", "bool", False, "print one JSON object per result, one per line"),
    Option("files_only", "--files-only", "bool", False,
           "print the matching files only, best first (--limit counts files)"),
    Option("color", "--color", "choice", "auto",
           "colour and highlighted matches: auto (on a terminal, unless NO_COLOR is set), always, never",
           metavar="WHEN", choices=("auto", "always", "never")),
    Option("max_tokens", "--max-tokens", "int", None,
           "fit the output in about N tokens (for agents): trim snippets, then drop results, "
           "and say what was dropped", 50, 1_000_000, "N"),
)

_FTS_ONLY = ("case_sensitive", "ignore_case", "fuzzy", "edit_distance", "regex")
#: Options that only the full-text leg reads (the MCP tool picks its mode from them).
FTS_ONLY_KEYS = _FTS_ONLY
_BY_KEY = {o.key: o for o in QUERY_OPTIONS}
REQUEST_KEYS = frozenset(("query", *_BY_KEY))
_BY_FLAG = {spelling: o for o in (*QUERY_OPTIONS, *OUTPUT_OPTIONS)
            for spelling in (o.flag, o.alias) if spelling}
_OUTPUT_KEYS = frozenset(o.key for o in OUTPUT_OPTIONS)


def output_defaults() -> dict[str, Any]:
    return {o.key: o.default for o in OUTPUT_OPTIONS}


def parse_query_argv(argv: list[str]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``cidx query`` arguments -> (raw request, output options), or None: "ask argparse".

    Handles the canonical spellings only (``--flag``, ``-i``, ``--flag=value``, ``--flag
    value``, positional words, ``--``). Several words are one query (``cidx query read a
    file`` searches "read a file"). Anything else (``-h``, abbreviations, unknown flags, a
    value that looks like a flag, a bad number or choice) returns None and argparse parses
    the same argv, with its messages.
    """
    raw: dict[str, Any] = {}
    output = output_defaults()
    words: list[str] = []
    i, n = 0, len(argv)
    while i < n:
        token = argv[i]
        i += 1
        if token == "--":
            words.extend(argv[i:])
            break
        if not token.startswith("-") or token == "-":
            words.append(token)
            continue
        name, eq, value = token.partition("=")
        opt = _BY_FLAG.get(name)
        if opt is None:
            return None
        target = output if opt.key in _OUTPUT_KEYS else raw
        if opt.kind == "bool":
            if eq:
                return None
            target[opt.key] = True
            continue
        if not eq:
            if i >= n or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        if opt.kind == "list":
            raw.setdefault(opt.key, []).append(value)
            continue
        if opt.kind == "choice":
            if value not in opt.choices:  # type: ignore[operator]
                return None
            target[opt.key] = value
            continue
        try:
            number = int(value) if opt.kind == "int" else float(value)
        except ValueError:
            return None
        if number != number or number in (float("inf"), float("-inf")):
            return None
        if opt.key in _OUTPUT_KEYS and not opt.minimum <= number <= opt.maximum:  # type: ignore[operator]
            return None  # argparse words the range error
        target[opt.key] = number
    if not words:
        return None
    raw["query"] = " ".join(words)
    return raw, output


#: ``--files-only`` asks the engine for this many chunks per file it is to list.
FILES_ONLY_WIDEN = 5


def widen_for_files(raw: dict[str, Any], output: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``--files-only --limit N`` lists N files, as ``rg -l`` counts files, not the files of the
    N best chunks (3 chunks of table.py were "1 file" for ``--limit 3``): the engine is asked
    for more chunks, without context lines, and the printer keeps the first N distinct files.
    JSON output is left alone (it prints the chunks, not the file list)."""
    if not output.get("files_only") or output.get("json") or output.get("jsonl"):
        return raw, output
    limit = raw.get("limit", _BY_KEY["limit"].default)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        return raw, output  # validation explains what is wrong with it
    wide = {**raw, "limit": min(MAX_LIMIT, limit * FILES_ONLY_WIDEN), "snippet_lines": 0}
    return wide, {**output, "files_limit": limit}


def validate_request(raw: Any) -> dict[str, Any]:
    """Check a request dict (from argparse or from JSON off the wire) and fill defaults.

    The daemon calls this on every request it receives, so it must reject
    anything odd with a message a user can act on, never an exception trace.
    """
    if not isinstance(raw, dict):
        raise RequestError("request must be a JSON object")
    unknown = sorted(set(raw) - REQUEST_KEYS)
    if unknown:
        raise RequestError(f"unknown request field(s): {', '.join(unknown)}")
    query = raw.get("query")
    if not isinstance(query, str) or not query.strip():
        raise RequestError("the query text is empty")
    check_utf8(query, "the query")
    out: dict[str, Any] = {"query": query}
    for opt in QUERY_OPTIONS:
        value = raw.get(opt.key, opt.default)
        out[opt.key] = _check_value(opt, value)
    _check_combinations(out)
    return out


def check_utf8(text: str, what: str) -> None:
    """Refuse text that carries bytes which are not UTF-8 (a terminal's or argv's lone surrogates):
    they cannot be sent, searched or printed faithfully, and the error must not echo them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"{what} is not valid UTF-8") from None


def undecodable_argument(raw: dict[str, Any]) -> str | None:
    """The first request value that is not valid UTF-8, named as the user typed it (or None)."""
    for key, value in raw.items():
        for text in (value if isinstance(value, list) else (value,)):
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return "the query" if key == "query" else _BY_KEY[key].flag
    return None


def _check_value(opt: Option, value: Any) -> Any:
    name = opt.flag
    if opt.kind == "bool":
        if not isinstance(value, bool):
            raise RequestError(f"{name} must be true or false")
        return value
    if opt.kind == "list":
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise RequestError(f"{name} must be a list of strings")
        items = []
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise RequestError(f"{name} values must be non-empty strings")
            check_utf8(item, name)
            items.append(item.strip())
        return items
    if value is None and opt.default is None:
        return None
    if opt.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{name} must be a whole number")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RequestError(f"{name} must be a number")
    if opt.minimum is not None and value < opt.minimum:
        raise RequestError(f"{name} must be at least {_num(opt.minimum)}, got {value}")
    if opt.maximum is not None and value > opt.maximum:
        raise RequestError(f"{name} must be at most {_num(opt.maximum)}, got {value}")
    return float(value) if opt.kind == "float" else value


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_combinations(req: dict[str, Any]) -> None:
    fts_flags = [k for k in _FTS_ONLY if req[k]]
    if fts_flags and not req["fts"]:
        if req["semantic"]:
            flags = ", ".join(_BY_KEY[k].flag for k in fts_flags)
            verb = "applies" if len(fts_flags) == 1 else "apply"
            raise RequestError(f"{flags} {verb} to full-text search: add --fts for a hybrid search")
        req["fts"] = True  # a full-text-only flag on its own means full-text search
    if not req["fts"] and not req["semantic"]:
        # Neither flag: both legs (hybrid), the mode that finds the right code first on every
        # benchmark set, and the one a just-saved edit reaches before its vectors exist.
        req["fts"] = req["semantic"] = True
    if req["case_sensitive"] and req["ignore_case"]:
        raise RequestError("--case-sensitive and --ignore-case contradict each other")
    if req["fuzzy"] and req["edit_distance"] == 0:
        req["edit_distance"] = 1
    req["fuzzy"] = req["edit_distance"] > 0
    if req["regex"] and req["edit_distance"]:
        raise RequestError("--regex cannot be combined with --fuzzy/--edit-distance")


def case_sensitive(req: dict[str, Any]) -> bool:
    """What case rule the full-text leg applies: a regex is case-sensitive unless
    ``--ignore-case`` (as grep); words ignore case unless ``--case-sensitive``."""
    return not req["ignore_case"] if req["regex"] else req["case_sensitive"]


def request_mode(req: dict[str, Any]) -> str:
    """semantic, fts or hybrid, from the two mode flags."""
    if req["fts"] and req["semantic"]:
        return "hybrid"
    return "fts" if req["fts"] else "semantic"


def request_to_argv(req: dict[str, Any]) -> list[str]:
    """A validated request -> argv that ``add_query_arguments`` parses back to it."""
    argv: list[str] = []
    for opt in QUERY_OPTIONS:
        value = req.get(opt.key, opt.default)
        if value == opt.default or (opt.kind == "list" and not value):
            continue
        if opt.kind == "bool":
            argv.append(opt.flag)
        elif opt.kind == "list":
            for item in value:
                argv.append(f"{opt.flag}={item}")
        else:
            argv.append(f"{opt.flag}={value!r}" if opt.kind == "float" else f"{opt.flag}={value}")
    # "--" keeps a query that starts with "-" from being read as a flag.
    return [*argv, "--", req["query"]]


# --------------------------------------------------------------------------- results


def make_result_document(
    req: dict[str, Any],
    results: list[dict[str, Any]],
    *,
    timing_ms: dict[str, float],
    generation: str | None,
    served_by: str,
) -> dict[str, Any]:
    """The versioned result document: what ``--json`` prints and the renderer reads.

    Each result has: path (project-relative, '/'-separated), start_line,
    end_line (1-based, inclusive, file-absolute), language, score, ranks
    ({leg: rank} 1-based per leg that found it), scores ({leg: score}),
    content (the chunk text) and, for full-text legs, matches
    ([{line, text}] file-absolute) and snippet ({start_line, lines}).
    """
    return {
        "schema": RESULT_SCHEMA_VERSION,
        "query": req["query"],
        "mode": request_mode(req),
        "request": req,
        "generation": generation,
        "served_by": served_by,
        "timing_ms": timing_ms,
        "results": results,
        "error": None,
    }


def make_error_document(code: str, message: str) -> dict[str, Any]:
    """An application error (bad regex, no index yet...): not a crash, never restart for it."""
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}: add it to ERROR_CODES")
    return {"schema": RESULT_SCHEMA_VERSION, "error": {"code": code, "message": message}}


#: Every error code a document may carry, and what it means. ``bad_request`` and
#: ``bad_envelope`` are the user's or client's fault (exit 2); the rest exit 1.
ERROR_CODES = {
    "bad_request": "the request is invalid (usage error)",
    "bad_envelope": "the RPC envelope is malformed (a client bug)",
    "no_index": "the project has not been indexed yet",
    "index_damaged": "the index is damaged and no good generation is left: run 'cidx index --clear'",
    "model": "the embedding model cannot be loaded",
    "internal": "unexpected failure inside the engine",
    "protocol_mismatch": "client and daemon speak different protocol versions",
    "wrong_project": "the daemon on this socket serves another project",
    "busy": "the daemon is alive but did not answer in time",
}
USAGE_ERROR_CODES = frozenset(("bad_request", "bad_envelope"))


def make_envelope(project: str, request: dict[str, Any]) -> dict[str, Any]:
    """What the client sends for one query: see "The wire" above."""
    return {"protocol": PROTOCOL_VERSION, "project": project, "request": request}


def read_envelope(raw: Any) -> tuple[int | None, str | None, Any]:
    """(protocol, project, request) of a decoded envelope; raises RequestError if it is not one."""
    if not isinstance(raw, dict) or "protocol" not in raw:
        raise RequestError("not a cidx request envelope (is the client older than the daemon?)")
    protocol, project = raw.get("protocol"), raw.get("project")
    if type(protocol) is not int:
        raise RequestError("the envelope's protocol must be an integer")
    if project is not None and not isinstance(project, str):
        raise RequestError("the envelope's project must be a path")
    return protocol, project, raw.get("request")
