"""`.code-indexer/config.json`: where it is, what it holds, and the files beside it.

Rules
-----
* The project is the directory holding `.code-indexer/`; the nearest one
  walking up from the working directory wins.
* Every runtime file lives next to the config: `daemon.sock`, `daemon.lock`,
  `daemon.log`, `daemon-restarts.json`, `index/`. Nothing is derived from the
  process (no PID files, no /tmp paths), so client and daemon always agree.
* Unknown keys are kept on save (a newer version may have written them);
  invalid values are reported naming the key, e.g. ``daemon.ttl_minutes``.
* Writes are atomic: write aside, then ``os.replace``.
* Trust, as git's ``safe.directory``: a `.code-indexer/` or config that belongs
  to another uid, or that others may write, is refused with one line saying so.
  A project's config is data: it never names a program to run (the daemon
  command comes from the user's own config, ``user_config_path()``).
* The client's hot path (find, load) uses ``os.path`` and plain strings:
  ``pathlib`` costs ~4.7 ms to import (it pulls in ``urllib.parse`` and
  ``ipaddress``). Helpers the daemon uses return ``Path`` and import it lazily.

Shared verbatim with the daemon package (symlink): standard library only.
"""

from __future__ import annotations

import os

from . import jsontext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

CONFIG_DIR = ".code-indexer"
CONFIG_FILE = "config.json"
SOCKET_NAME = "daemon.sock"
LOCK_NAME = "daemon.lock"
LOG_NAME = "daemon.log"
BUDGET_NAME = "daemon-restarts.json"
INDEX_DIR = "index"
CONFIG_VERSION = 1

DEFAULTS: dict[str, dict[str, Any]] = {
    "index": {
        "max_file_bytes": 1_048_576,
        "exclude": [],
        "embedder": "minilm",
        "chunk_max_chars": 800,
        "skip_secrets": True,
        "secret_patterns": None,
    },
    "daemon": {
        "enabled": True,
        "ttl_minutes": 10,
        "auto_shutdown_on_idle": True,
        "retry_delays_ms": [100, 500, 1000, 2000],
        "command": None,
        "watch": True,
        "restart_window_minutes": 10,
        "max_restarts": 2,
    },
}


class ConfigError(ValueError):
    """The config file is missing, unreadable or holds an invalid value."""


def find_config(start: str | os.PathLike[str] | None = None) -> str | None:
    """Walk up from ``start`` (default cwd) to the nearest `.code-indexer/config.json`."""
    here = os.path.abspath(os.fspath(start) if start is not None else os.getcwd())
    while True:
        candidate = os.path.join(here, CONFIG_DIR, CONFIG_FILE)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def project_root(config_path: str | os.PathLike[str]) -> Path:
    from pathlib import Path

    return Path(config_path).parent.parent


def config_dir(config_path: str | os.PathLike[str]) -> Path:
    from pathlib import Path

    return Path(config_path).parent


def sibling(config_path: str | os.PathLike[str], name: str) -> str:
    """A runtime file next to the config (socket, log, budget), as a plain string."""
    return os.path.join(os.path.dirname(os.fspath(config_path)), name)


def default_config() -> dict[str, Any]:
    cfg: dict[str, Any] = {"version": CONFIG_VERSION}
    for section, values in DEFAULTS.items():
        cfg[section] = jsontext.loads(jsontext.dumps(values))
    return cfg


def check_owned(path: str, what: str, st: os.stat_result | None = None) -> None:
    """Refuse ``path`` unless it belongs to us and only we may write it (ConfigError)."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    uid = os.geteuid()
    if st.st_uid != uid:
        raise ConfigError(f"refusing {what} {path}: it belongs to uid {st.st_uid}, not to you (uid {uid})")
    if st.st_mode & 0o022:
        raise ConfigError(f"refusing {what} {path}: others may write it (mode {st.st_mode & 0o777:o}); "
                          f"run: chmod go-w {path}")


def load_config(config_path: Path) -> dict[str, Any]:
    """Read, check ownership, validate and fill defaults. Raises ConfigError with a one-line reason."""
    path = os.fspath(config_path)
    try:
        with open(path, encoding="utf-8") as fh:
            check_owned(os.path.dirname(path), "the index directory")
            check_owned(path, "the config", os.fstat(fh.fileno()))
            raw = jsontext.loads(fh.read())
    except FileNotFoundError:
        raise ConfigError(f"no config at {config_path} (run 'cidx init')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {config_path}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # bad JSON (JSONDecodeError is a ValueError)
        raise ConfigError(f"{config_path} is not valid JSON: {exc}") from None
    return validate_config(raw, source=str(config_path))


def user_config_path() -> str:
    """The user's own cidx settings: ``$XDG_CONFIG_HOME/cidx/config.json``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "cidx", "config.json")


def load_user_config() -> dict[str, Any]:
    """The user's config (``{}`` when absent). It may name the daemon command and the Ray
    cluster ``cidx index`` embeds on (``index.ray_address``): both are the user's choice, never a
    project's, so they live here; it is checked like a project config: ours, not writable by
    others, valid."""
    path = user_config_path()
    try:
        with open(path, encoding="utf-8") as fh:
            check_owned(path, "the user config", os.fstat(fh.fileno()))
            raw = jsontext.loads(fh.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    daemon = raw.get("daemon", {})
    if not isinstance(daemon, dict):
        raise ConfigError(f"{path}: 'daemon' must be an object")
    if "command" in daemon:
        _check("daemon", "command", daemon["command"], path)
    index = raw.get("index", {})
    if not isinstance(index, dict):
        raise ConfigError(f"{path}: 'index' must be an object")
    ray_address = index.get("ray_address")
    if ray_address is not None and (not isinstance(ray_address, str) or not ray_address.strip()):
        raise ConfigError(f"{path}: index.ray_address must be null or a Ray address such as "
                          f"\"10.0.0.5:6379\" or \"auto\", got {_shown(ray_address)}")
    return raw


def validate_config(raw: Any, source: str = "config") -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a JSON object")
    cfg = dict(raw)
    for section, defaults in DEFAULTS.items():
        given = cfg.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{source}: '{section}' must be an object")
        merged = {**jsontext.loads(jsontext.dumps(defaults)), **given}
        for key, value in merged.items():
            if key in defaults:
                _check(section, key, value, source)
        cfg[section] = merged
    cfg.setdefault("version", CONFIG_VERSION)
    return cfg


def _shown(value: Any) -> str:
    try:
        return jsontext.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _check(section: str, key: str, value: Any, source: str) -> None:
    name = f"{section}.{key}"

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {name} must be {expected}, got {_shown(value)}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if key in ("enabled", "auto_shutdown_on_idle", "skip_secrets", "watch"):
        if not isinstance(value, bool):
            raise bad("true or false")
    elif key in ("ttl_minutes", "restart_window_minutes"):
        # value - value == 0 rejects NaN and the infinities without importing math
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                or value - value != 0):
            raise bad("a positive number")
    elif key in ("max_file_bytes", "chunk_max_chars"):
        if not is_int(value) or value < 64:
            raise bad("a whole number >= 64")
    elif key == "max_restarts":
        if not is_int(value) or not 0 <= value <= 10:
            raise bad("a whole number from 0 to 10")
    elif key == "retry_delays_ms":
        if (not isinstance(value, list) or not value
                or not all(is_int(v) and 0 <= v <= 60_000 for v in value)):
            raise bad("a non-empty list of milliseconds (0..60000)")
    elif key == "exclude":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of gitignore-style patterns")
    elif key == "secret_patterns":
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise bad("null (the built-in list) or a list of gitignore-style patterns")
    elif key == "command":
        if value is not None and (not isinstance(value, list) or not value
                                  or not all(isinstance(v, str) and v for v in value)):
            raise bad("null or a non-empty list of strings (argv)")
    elif key == "embedder" and not isinstance(value, str):
        raise bad("a string")


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    """Write aside then rename, so a reader never sees half a file."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)  # a leftover temp file keeps its old mode otherwise
            fh.write(jsontext.dumps(data, indent=2))
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_config(config_path: Path, cfg: dict[str, Any]) -> None:
    validate_config(cfg, source=str(config_path))
    write_json_atomic(config_path, cfg)


def init_here(root: str, *, force: bool = False, daemon: bool = True) -> tuple[str, bool, list[str]]:
    """``cidx init``: (config path, created?, notes for the user). Shared by both CLIs.

    Refuses to create a project inside another one (its index already covers this
    directory, and two daemons would index the same files) unless ``force``. Adds
    `.code-indexer/` to git's ``info/exclude`` when the directory is in a git work tree:
    the index is tens of MB one ``git add -A`` away from a commit.
    """
    root = os.path.abspath(root)
    path = os.path.join(root, CONFIG_DIR, CONFIG_FILE)
    existed = os.path.isfile(path)
    if not existed and not force:
        enclosing = find_config(os.path.dirname(root))
        if enclosing is not None:
            outer = os.path.dirname(os.path.dirname(enclosing))
            raise ConfigError(f"{root} is inside the cidx project at {outer}, whose index covers it: "
                              "run cidx there, or 'cidx init --force' for a separate index here")
    init_project(root)
    notes: list[str] = []
    if not existed and not daemon:
        cfg = load_config(path)
        cfg["daemon"]["enabled"] = False
        save_config(path, cfg)
    excluded = exclude_from_git(root)
    if excluded:
        notes.append(f"Added {CONFIG_DIR}/ to {excluded}")
    return path, not existed, notes


def exclude_from_git(root: str) -> str | None:
    """Add ``/<root relative to the work tree>/.code-indexer/`` to git's info/exclude; returns
    the file written, or None (not in a git work tree, already there, or not writable)."""
    top = root
    while not os.path.exists(os.path.join(top, ".git")):
        parent = os.path.dirname(top)
        if parent == top:
            return None
        top = parent
    git = os.path.join(top, ".git")
    try:
        if os.path.isfile(git):  # a linked worktree or submodule: "gitdir: <path>"
            with open(git, encoding="utf-8") as fh:
                pointer = fh.read().strip()
            if not pointer.startswith("gitdir:"):
                return None
            git = os.path.normpath(os.path.join(top, pointer[len("gitdir:"):].strip()))
            common = os.path.join(git, "commondir")
            if os.path.isfile(common):
                with open(common, encoding="utf-8") as fh:
                    git = os.path.normpath(os.path.join(git, fh.read().strip()))
        rel = os.path.relpath(root, top).replace(os.sep, "/")
        line = "/" + ("" if rel == "." else rel + "/") + CONFIG_DIR + "/"
        exclude = os.path.join(git, "info", "exclude")
        current = ""
        if os.path.isfile(exclude):
            with open(exclude, encoding="utf-8", errors="replace") as fh:
                current = fh.read()
        if line in current.splitlines():
            return None
        os.makedirs(os.path.dirname(exclude), exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as fh:
            fh.write(("" if not current or current.endswith("\n") else "\n") + line + "\n")
        return exclude
    except OSError:
        return None


def init_project(root: Path) -> Path:
    """Create `.code-indexer/` (0700) and a default config unless one exists; return its path."""
    from pathlib import Path

    cdir = Path(root) / CONFIG_DIR
    cdir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(cdir, 0o700)
    path = cdir / CONFIG_FILE
    if not path.exists():
        write_json_atomic(path, default_config())
    return path
