"""Rebuild the benchmark repositories from package registries, laid out so annotation paths resolve.

semble annotated git checkouts; only package registries are reachable here, so each
corpus is the released package of (about) the same version: a PyPI wheel, an npm
tarball, or a Debian ``-dev`` package that ships the source (Go under
``/usr/share/gocode``, Rust crates under ``/usr/share/cargo/registry``). A spec
(``data/corpora.json``) says where the package's directory goes inside the project
directory, so that ``src/flask/app.py`` in an annotation is ``src/flask/app.py`` in
the index, and what semble indexed (its ``benchmark_root``) is all we index.

Downloads and materialised trees are cached; a tree is rebuilt when its spec
changes. Debian packages are installed only with ``--apt-install`` (root): a
benchmark should not change the machine unasked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPECS = HERE / "data" / "corpora.json"
#: Never part of a corpus: caches, compiled extension modules, Cython build stamps (aiohttp's
#: ``.hash/``). What is left matches the dev set README's file counts (aiohttp 64, fastapi 53 with
#: its ``.agents/`` docs) and reproduces the README's cidx figures.
_SKIP_DIRS = ("__pycache__", ".hash")
_SKIP_SUFFIXES = (".pyc", ".so", ".pyd", ".dylib")
#: Bump when the layout rules above change: cached trees are then rebuilt.
LAYOUT_VERSION = 3


class CorpusUnavailable(Exception):
    """The corpus cannot be built on this machine (package missing, registry refused)."""


@dataclass(frozen=True)
class CorpusSpec:
    name: str
    set: str  # "dev" | "heldout"
    language: str
    source: dict[str, str]
    copy: tuple[tuple[str, str], ...]  # (from inside the package, to inside the project)
    annotations: str  # path relative to data/ ("" = the shared dev-set directory)
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def digest(self) -> str:
        doc = {"spec": self.raw, "layout": LAYOUT_VERSION}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> str:
        s = self.source
        if s["kind"] == "deb":
            return f"Debian {s['package']} {s['version']}"
        return f"{s['kind']} {s['package']}=={s['version']}"


def load_specs(path: Path = SPECS) -> list[CorpusSpec]:
    out = []
    for raw in json.loads(path.read_text(encoding="utf-8"))["corpora"]:
        out.append(CorpusSpec(
            name=raw["name"], set=raw["set"], language=raw["language"], source=raw["source"],
            copy=tuple((c["from"], c["to"]) for c in raw["copy"]), annotations=raw.get("annotations", ""),
            note=raw.get("note", ""), raw=raw))
    return out


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise CorpusUnavailable(f"{' '.join(argv)}: exit {proc.returncode}: {tail}")
    return proc


# ----------------------------------------------------------------------------- fetching packages


def _pypi_root(spec: CorpusSpec, downloads: Path) -> Path:
    """The unpacked wheel (``pip download --no-deps NAME==VER``)."""
    pkg, ver = spec.source["package"], spec.source["version"]
    unpacked = downloads / f"pypi-{pkg}-{ver}"
    if (unpacked / ".complete").exists():
        return unpacked
    dl = downloads / f"pypi-{pkg}-{ver}.dl"
    shutil.rmtree(dl, ignore_errors=True)
    dl.mkdir(parents=True)
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
          "-d", str(dl), f"{pkg}=={ver}"])
    wheels = sorted(dl.glob("*.whl"))
    if not wheels:
        raise CorpusUnavailable(f"pip download {pkg}=={ver} gave no wheel")
    shutil.rmtree(unpacked, ignore_errors=True)
    with zipfile.ZipFile(wheels[0]) as zf:
        zf.extractall(unpacked)
    (unpacked / ".complete").write_text(wheels[0].name)
    shutil.rmtree(dl, ignore_errors=True)
    return unpacked


def _npm_root(spec: CorpusSpec, downloads: Path) -> Path:
    """The unpacked tarball of ``npm pack NAME@VER`` (its files are under ``package/``)."""
    pkg, ver = spec.source["package"], spec.source["version"]
    safe = pkg.replace("/", "_").replace("@", "")
    unpacked = downloads / f"npm-{safe}-{ver}"
    if (unpacked / ".complete").exists():
        return unpacked
    if shutil.which("npm") is None:
        raise CorpusUnavailable("npm is not installed")
    dl = downloads / f"npm-{safe}-{ver}.dl"
    shutil.rmtree(dl, ignore_errors=True)
    dl.mkdir(parents=True)
    _run(["npm", "pack", "--silent", f"{pkg}@{ver}"], cwd=dl)
    tarballs = sorted(dl.glob("*.tgz"))
    if not tarballs:
        raise CorpusUnavailable(f"npm pack {pkg}@{ver} gave no tarball")
    shutil.rmtree(unpacked, ignore_errors=True)
    with tarfile.open(tarballs[0]) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(unpacked, filter="data")
        else:  # Python < 3.11.4: refuse members that would escape
            for member in tf.getmembers():
                if member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise CorpusUnavailable(f"unsafe path in {tarballs[0].name}: {member.name}")
            tf.extractall(unpacked)
    (unpacked / ".complete").write_text(tarballs[0].name)
    shutil.rmtree(dl, ignore_errors=True)
    return unpacked


def deb_version(package: str) -> str | None:
    """The installed version of a Debian package, or None."""
    if shutil.which("dpkg-query") is None:
        return None
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                          capture_output=True, text=True, check=False)
    if proc.returncode or "installed" not in proc.stdout.split("\t")[0]:
        return None
    return proc.stdout.split("\t")[1]


def _deb_root(spec: CorpusSpec, apt_install: bool) -> Path:
    """A directory that a Debian package installed (installing it first with --apt-install)."""
    pkg, want = spec.source["package"], spec.source["version"]
    have = deb_version(pkg)
    if have is None:
        if not apt_install:
            raise CorpusUnavailable(f"Debian package {pkg} is not installed "
                                    f"(apt-get install {pkg}, or pass --apt-install)")
        if os.geteuid() != 0:
            raise CorpusUnavailable(f"--apt-install needs root to install {pkg}")
        say(f"    apt-get install {pkg}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        proc = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg],
                              capture_output=True, text=True, check=False, env=env)
        if proc.returncode:
            raise CorpusUnavailable(f"apt-get install {pkg} failed: {proc.stderr.strip()[-300:]}")
        have = deb_version(pkg)
    if have != want:
        say(f"    warning: {pkg} {have} installed, the annotations were checked against {want}")
    root = Path(spec.source["path"])
    if not root.is_dir():
        raise CorpusUnavailable(f"{pkg} {have} has no {root}")
    return root


# ----------------------------------------------------------------------------- laying out


def _ignore(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n in _SKIP_DIRS or n.endswith(_SKIP_SUFFIXES) or n.endswith(".dist-info")]


def materialise(spec: CorpusSpec, cache: Path, *, apt_install: bool = False) -> Path:
    """The corpus as a project directory (cached); raises CorpusUnavailable."""
    dest = cache / "corpora" / spec.name
    stamp = cache / "corpora" / f"{spec.name}.stamp.json"
    if dest.is_dir() and stamp.exists() and json.loads(stamp.read_text()).get("spec") == spec.digest():
        return dest
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    kind = spec.source["kind"]
    if kind == "pypi":
        root = _pypi_root(spec, downloads)
    elif kind == "npm":
        root = _npm_root(spec, downloads)
    elif kind == "deb":
        root = _deb_root(spec, apt_install)
    else:
        raise CorpusUnavailable(f"unknown source kind {kind!r}")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for src_rel, dst_rel in spec.copy:
        src = (root / src_rel).resolve()
        if not src.is_dir():
            raise CorpusUnavailable(f"{spec.describe()} has no directory {src_rel}")
        target = tmp / dst_rel if dst_rel not in ("", ".") else tmp
        shutil.copytree(src, target, ignore=_ignore, dirs_exist_ok=True, symlinks=False)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    info = {"spec": spec.digest(), "source": spec.describe(), "files": count_files(dest)}
    if kind == "deb":
        info["installed_version"] = deb_version(spec.source["package"])
    stamp.write_text(json.dumps(info, indent=1))
    return dest


def count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file())


def tree_digest(root: Path) -> str:
    """Content hash of a directory tree (paths and bytes; mtimes ignored)."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def stamp_info(spec: CorpusSpec, cache: Path) -> dict[str, Any]:
    stamp = cache / "corpora" / f"{spec.name}.stamp.json"
    return json.loads(stamp.read_text()) if stamp.exists() else {}
