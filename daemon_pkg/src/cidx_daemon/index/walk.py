"""Find the files of a project worth indexing, and read them as normalised text.

Choices, made once here so every index agrees:

* Ignore rules follow git: ``.gitignore`` files at every level (deeper files win, the last
  matching line in a file wins, ``!`` re-includes, a directory that is ignored is never
  entered, so nothing below it can be re-included), ``.git/info/exclude`` below them, and
  ``.cidxignore`` files (same syntax), which outrank the ``.gitignore`` of their directory.
  ``extra_ignores`` are gitignore lines relative to the root, and outrank every file. The user's global
  ``core.excludesFile`` is not read: the index must not depend on who builds it.
* ``.git``, ``.code-indexer`` and ``__pycache__`` (directories, or a submodule's ``.git``
  file) and ``*.pyc`` files are always skipped, silently, like ignored paths. Only the
  main repository's ``.git/info/exclude`` is read (not a linked worktree's).
* Symlinks are never followed, and are reported to ``on_skip``: a link that stays inside
  the project would index its target twice (the target is walked under its own path), one
  that leaves it would index someone else's files, and not following also makes link loops
  impossible. Directories are additionally guarded by (st_dev, st_ino), so a bind mount of a
  directory into its own subtree cannot loop either.
* A file whose name is not valid UTF-8 (Linux names are bytes) is indexed under its name
  with U+FFFD for the bad bytes (its path must travel through JSON and reach a
  terminal), while reading uses the real name. Two names that become the same this way
  are rare; the second is skipped and reported.
* Secrets are not indexed by default: files matching ``SECRET_PATTERNS`` (``.env``, keys,
  certificates, credential files of clouds and package managers, ``.ssh/``...) are
  skipped and reported as ``"secret"``, so they never reach an index or a search result.
  ``index.skip_secrets: false`` or ``index.secret_patterns`` (a replacement list) override.
* A text file of unrecognised type is indexed with language ``"text"``.

Anything unreadable is reported to ``on_skip`` and skipped; the walk itself never fails on
a project's contents (only a missing root raises).
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pathspec

from cidx_daemon.languages import TEXT, language_for_path

__all__ = ["SkipHandler", "SourceFile", "check_paths", "content_hash", "read_source", "walk_project",
           "walk_settings"]

SkipHandler = Callable[[str, str], None]
"""Called with (rel_path, reason) for each file or directory left out for a reason other than ignore rules."""

#: Files that hold credentials more often than code (gitignore syntax). Examples and
#: templates of ``.env`` are kept: they are documentation.
SECRET_PATTERNS = (
    ".env", ".env.*", "!.env.example", "!.env.sample", "!.env.template", "!.env.dist",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "*.p8", "*.ppk", "*.kdbx",
    "id_rsa", "id_rsa.*", "id_dsa", "id_dsa.*", "id_ecdsa", "id_ecdsa.*", "id_ed25519", "id_ed25519.*",
    ".ssh/", ".aws/", ".gnupg/", ".azure/", ".kube/config", ".docker/config.json", ".config/gcloud/",
    "credentials", "credentials.*", "*.credentials", "*credentials*.json", "service-account*.json",
    "secrets.*", "*.secret", "*.secrets", ".secrets",
    ".npmrc", ".yarnrc.yml", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".htpasswd", ".pgpass",
    ".vault-token", "*.tfstate", "*.tfstate.*", "*.tfvars",
)
SECRET_REASON = "secret (not indexed: index.skip_secrets)"

SNIFF_BYTES = 8192
"""How much of a file is checked for NUL bytes: git's own binary heuristic uses the same window."""

# Of any type: in a submodule or linked worktree ".git" is a file pointing at the real one.
ALWAYS_SKIPPED_NAMES = frozenset({".git", ".code-indexer", "__pycache__"})
IGNORE_FILES = (".gitignore", ".cidxignore")  # lowest precedence first

# Skipped on the name alone, without opening the file. Not exhaustive: the NUL sniff catches
# the rest; this only saves reading the head of large, common binaries.
_BINARY_EXTENSION_GROUPS = (
    "png jpg jpeg gif bmp ico icns webp tif tiff psd heic avif",  # images
    "mp3 mp4 m4a m4v mov avi mkv webm wav flac ogg opus aac wma wmv",  # media
    "zip gz tgz bz2 xz zst lz4 7z rar tar jar war ear whl egg apk ipa dmg iso deb rpm",  # archives
    "so dll dylib a lib o obj exe bin elf class pyc pyo pyd wasm dex",  # compiled code
    "pdf doc docx xls xlsx ppt pptx odt ods odp ttf otf woff woff2 eot",  # documents, fonts
    "sqlite sqlite3 db mdb pkl pickle npy npz h5 hdf5 parquet onnx pt pth ckpt safetensors tflite",  # data
)
BINARY_EXTENSIONS = frozenset(" ".join(_BINARY_EXTENSION_GROUPS).split())

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class SourceFile:
    """A file chosen for indexing, with the stat data incremental indexing compares."""

    rel_path: str
    abs_path: Path
    size: int
    mtime_ns: int
    language: str


def _is_binary(head: bytes) -> bool:
    """NUL in the first bytes means binary, except in UTF-16 text, which announces itself with a BOM."""
    return b"\0" in head[:SNIFF_BYTES] and not head.startswith(_UTF16_BOMS)


def read_source(abs_path: Path) -> str | None:
    """The file as text with ``\\n`` line ends, or None if it is binary.

    Undecodable bytes become U+FFFD instead of failing: one stray Latin-1 byte should not
    hide a whole file from search. A BOM is dropped so it never reaches chunk text.

    Raises:
        OSError: if the file cannot be read.
    """
    data = abs_path.read_bytes()
    if _is_binary(data):
        return None
    if data.startswith(_UTF16_BOMS):
        text = data.decode("utf-16", errors="replace")
    else:
        text = data.decode("utf-8-sig", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def content_hash(text: str) -> str:
    """A short stable digest of file text: enough to tell a changed file from a touched one."""
    return hashlib.blake2b(text.encode("utf-8", errors="surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True)
class _Rules:
    """Patterns from one ignore file, matched against paths relative to its directory."""

    base: str  # '' for the root, else 'dir/sub/'
    spec: pathspec.GitIgnoreSpec

    def verdict(self, rel_path: str, is_dir: bool) -> bool | None:
        """True ignored, False re-included by a negation, None when no pattern speaks.

        Only called for paths under ``base``: a directory's rules join the stack on entry.
        """
        relative = rel_path[len(self.base) :] + ("/" if is_dir else "")
        return self.spec.check_file(relative).include


def _is_ignored(rel_path: str, is_dir: bool, layers: Sequence[_Rules], extra: _Rules | None) -> bool:
    """Ask the rule layers from highest precedence down; the first that has an opinion decides."""
    ordered = reversed(layers) if extra is None else (extra, *reversed(layers))
    for rules in ordered:
        verdict = rules.verdict(rel_path, is_dir)
        if verdict is not None:
            return verdict
    return False


def _display_name(name: str) -> str:
    """A printable, JSON-safe rendering of a possibly undecodable file name."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def _replaced(name: str) -> str:
    """The name with U+FFFD for bytes that are not UTF-8: safe for JSON and terminals."""
    return os.fsencode(name).decode("utf-8", errors="replace")


def _is_valid_utf8(name: str) -> bool:
    """False when the OS name carried bytes that Python smuggled in as lone surrogates."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sort_key(entry: os.DirEntry[str]) -> str:
    """Sort directories as 'name/' so a depth-first walk yields paths in plain string order."""
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
    except OSError:
        is_dir = False
    return entry.name + "/" if is_dir else entry.name


class _Walker:
    """One walk's state: the root, the limits and the directories already entered."""

    def __init__(
        self, root: Path, max_file_bytes: int, extra_ignores: Sequence[str], on_skip: SkipHandler | None,
        secret_patterns: Sequence[str], known: Mapping[str, tuple[int, int, str]] | None = None,
    ) -> None:
        self.root = root
        self.known = known
        self.max_file_bytes = max_file_bytes
        self.on_skip: SkipHandler = on_skip or (lambda _path, _reason: None)
        self.visited: set[tuple[int, int]] = set()
        self.extra = _Rules("", pathspec.GitIgnoreSpec.from_lines(extra_ignores)) if extra_ignores else None
        self.secrets = (_Rules("", pathspec.GitIgnoreSpec.from_lines(secret_patterns)) if secret_patterns
                        else None)
        self.shown: set[str] = set()

    def walk(self) -> Iterator[SourceFile]:
        if not self.root.is_dir():
            raise NotADirectoryError(str(self.root))
        base_layers: tuple[_Rules, ...] = ()
        exclude = self._load_rules(self.root / ".git" / "info" / "exclude", ".git/info/exclude", "")
        if exclude is not None:
            base_layers = (exclude,)
        yield from self._walk_tree(base_layers)

    def _walk_tree(self, base_layers: tuple[_Rules, ...]) -> Iterator[SourceFile]:
        """Depth-first with an explicit stack: a deep tree must not hit the recursion limit."""
        stack: list[tuple[Iterator[os.DirEntry[str]], str, tuple[_Rules, ...]]] = []
        self._enter(stack, self.root, "", base_layers)
        while stack:
            entries, prefix, layers = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            rel_path = prefix + (entry.name if _is_valid_utf8(entry.name) else _replaced(entry.name))
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as err:
                self.on_skip(rel_path, _reason(err))
                continue
            is_dir = stat.S_ISDIR(mode)
            if entry.name in ALWAYS_SKIPPED_NAMES or (not is_dir and entry.name.endswith(".pyc")):
                continue
            if _is_ignored(rel_path, is_dir, layers, self.extra):
                continue
            if self.secrets is not None and self.secrets.verdict(rel_path, is_dir):
                self.on_skip(rel_path, SECRET_REASON)
                continue
            if is_dir:
                self._enter(stack, Path(entry.path), rel_path + "/", layers)
            elif stat.S_ISLNK(mode):
                self.on_skip(rel_path, self._symlink_reason(Path(entry.path)))
            elif not stat.S_ISREG(mode):
                self.on_skip(rel_path, "not a regular file")
            elif rel_path in self.shown:  # two undecodable names that read the same
                self.on_skip(prefix + _display_name(entry.name), "file name is not valid UTF-8 and "
                             "reads like another one")
            else:
                source = self._source_file(entry, rel_path)
                if source is not None:
                    self.shown.add(rel_path)
                    yield source

    def _enter(
        self,
        stack: list[tuple[Iterator[os.DirEntry[str]], str, tuple[_Rules, ...]]],
        path: Path,
        prefix: str,
        layers: tuple[_Rules, ...],
    ) -> None:
        """Push a directory's sorted entries and its ignore rules, unless it cannot or must not be walked."""
        shown = prefix.rstrip("/") or "."
        try:
            dir_stat = path.stat()
            key = (dir_stat.st_dev, dir_stat.st_ino)
            if key in self.visited:
                self.on_skip(shown, "directory already walked (filesystem loop)")
                return
            self.visited.add(key)
            with os.scandir(path) as scan:
                entries = sorted(scan, key=_sort_key)
        except OSError as err:
            self.on_skip(shown, _reason(err))
            return
        names = {entry.name for entry in entries}
        for ignore_file in IGNORE_FILES:
            if ignore_file in names:
                rules = self._load_rules(path / ignore_file, prefix + ignore_file, prefix)
                if rules is not None:
                    layers = (*layers, rules)
        stack.append((iter(entries), prefix, layers))

    def _load_rules(self, path: Path, rel_path: str, base: str) -> _Rules | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            self.on_skip(rel_path, f"ignore file not read: {_reason(err)}")
            return None
        lines = data.decode("utf-8-sig", errors="replace").splitlines()
        return _Rules(base, pathspec.GitIgnoreSpec.from_lines(lines))

    def _symlink_reason(self, link: Path) -> str:
        try:
            target = link.resolve(strict=True)
        except (OSError, RuntimeError):
            return "symlink is broken or loops"
        if target == self.root or self.root in target.parents:
            return "symlink (its target is indexed under its own path)"
        return "symlink points outside the project"

    def check(self, rel_path: str) -> SourceFile | None:
        """The walk's verdict on one path, without walking: the file as the walk would yield
        it, or None (absent, ignored, skipped). For a watcher that knows what changed.

        Every ancestor directory is checked as the walk would have entered it: ignore files
        along the way join the rule layers, and an ignored directory hides all below it.
        """
        parts = rel_path.split("/")
        if any(part in ALWAYS_SKIPPED_NAMES for part in parts) or parts[-1].endswith(".pyc"):
            return None
        layers = self._base_layers()
        prefix = ""
        for name in parts[:-1]:
            here = self.root / prefix
            layers = self._with_ignore_files(here, prefix, layers)
            dir_rel = prefix + name
            if _is_ignored(dir_rel, True, layers, self.extra):
                return None
            if self.secrets is not None and self.secrets.verdict(dir_rel, True):
                return None
            try:
                if not stat.S_ISDIR(os.lstat(self.root / dir_rel).st_mode):
                    return None  # a symlinked or vanished directory is not walked
            except OSError:
                return None
            prefix = dir_rel + "/"
        layers = self._with_ignore_files(self.root / prefix, prefix, layers)
        if _is_ignored(rel_path, False, layers, self.extra):
            return None
        if self.secrets is not None and self.secrets.verdict(rel_path, False):
            self.on_skip(rel_path, SECRET_REASON)
            return None
        path = self.root / rel_path
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if not stat.S_ISREG(mode):
            return None
        return self._source_file_at(path, parts[-1], rel_path)

    def _base_layers(self) -> tuple[_Rules, ...]:
        exclude = self._load_rules(self.root / ".git" / "info" / "exclude", ".git/info/exclude", "")
        return (exclude,) if exclude is not None else ()

    def _with_ignore_files(self, directory: Path, prefix: str,
                           layers: tuple[_Rules, ...]) -> tuple[_Rules, ...]:
        for ignore_file in IGNORE_FILES:
            rules = self._load_rules(directory / ignore_file, prefix + ignore_file, prefix)
            if rules is not None:
                layers = (*layers, rules)
        return layers

    def _source_file(self, entry: os.DirEntry[str], rel_path: str) -> SourceFile | None:
        """Stat and sniff one regular file; None (after reporting why) if it is not indexable text.

        A file ``known`` as text of the same size and mtime is not opened: its head was
        sniffed when it was indexed. A rescan of an unchanged project then reads no file
        data at all (Django: 5,421 opens saved; after a reboot each was a disk read)."""
        seen = self.known.get(rel_path) if self.known is not None else None
        if seen is not None:
            st = entry.stat(follow_symlinks=False)
            size, mtime_ns, language = seen
            # the path alone must name the language (not a shebang, which needs the head)
            if (st.st_size == size and st.st_mtime_ns == mtime_ns and size <= self.max_file_bytes
                    and (language_for_path(rel_path, None) or TEXT) == language):
                return SourceFile(rel_path=rel_path, abs_path=Path(entry.path), size=size,
                                  mtime_ns=mtime_ns, language=language)
        return self._source_file_at(Path(entry.path), entry.name, rel_path)

    def _source_file_at(self, path: Path, name: str, rel_path: str) -> SourceFile | None:
        extension = name.rpartition(".")[2].lower() if "." in name[1:] else ""
        if extension in BINARY_EXTENSIONS:
            self.on_skip(rel_path, "binary")
            return None
        try:
            file_stat = os.lstat(path)
            if file_stat.st_size > self.max_file_bytes:
                self.on_skip(rel_path, f"larger than {self.max_file_bytes} bytes")
                return None
            with open(path, "rb") as handle:
                head = handle.read(SNIFF_BYTES)
        except OSError as err:
            self.on_skip(rel_path, _reason(err))
            return None
        if _is_binary(head):
            self.on_skip(rel_path, "binary")
            return None
        first_line = None
        if head.startswith(b"#!"):
            first_line = head.split(b"\n", 1)[0][:256].decode("utf-8", errors="replace")
        return SourceFile(
            rel_path=rel_path,
            abs_path=path,
            size=file_stat.st_size,
            mtime_ns=file_stat.st_mtime_ns,
            language=language_for_path(rel_path, first_line) or TEXT,
        )


def _reason(err: OSError) -> str:
    """A short lowercase reason ('permission denied') rather than the whole exception text."""
    if isinstance(err, PermissionError):
        return "permission denied"
    if isinstance(err, FileNotFoundError):
        return "vanished during the walk"
    return (err.strerror or type(err).__name__).lower()


def check_paths(
    root: Path,
    rel_paths: Iterable[str],
    *,
    max_file_bytes: int = 1_048_576,
    extra_ignores: Sequence[str] = (),
    on_skip: SkipHandler | None = None,
    secret_patterns: Sequence[str] = SECRET_PATTERNS,
) -> dict[str, SourceFile | None]:
    """For each path, what a full walk would make of it (see ``_Walker.check``), without
    walking the tree: a watcher's cheap answer to "these files changed"."""
    walker = _Walker(Path(root).resolve(strict=True), max_file_bytes, extra_ignores, on_skip,
                     secret_patterns)
    return {rel: walker.check(rel) for rel in rel_paths}


def walk_settings(icfg: dict[str, Any]) -> dict[str, Any]:
    """``walk_project`` keyword arguments from a config's ``index`` section (one reading for all)."""
    patterns: Sequence[str] = ()
    if icfg.get("skip_secrets", True):
        patterns = SECRET_PATTERNS if icfg.get("secret_patterns") is None else icfg["secret_patterns"]
    return {"max_file_bytes": icfg["max_file_bytes"], "extra_ignores": icfg["exclude"],
            "secret_patterns": patterns}


def walk_project(
    root: Path,
    *,
    max_file_bytes: int = 1_048_576,
    extra_ignores: Sequence[str] = (),
    on_skip: SkipHandler | None = None,
    secret_patterns: Sequence[str] = SECRET_PATTERNS,
    known: Mapping[str, tuple[int, int, str]] | None = None,
) -> Iterator[SourceFile]:
    """Yield the indexable files under ``root`` in ascending ``rel_path`` order.

    The order is plain string order of the '/'-joined paths, so two walks of the same tree
    can be merged or diffed without sorting. ``known``: rel_path -> (size, mtime_ns,
    language) of files an index already holds; those that did not change are not opened.

    Raises:
        FileNotFoundError, NotADirectoryError: if ``root`` is not an existing directory.
    """
    return _Walker(Path(root).resolve(strict=True), max_file_bytes, extra_ignores, on_skip,
                   secret_patterns, known).walk()
