"""The client zipapp as build.py writes it: contents, shebang, bytecode, isolated start.

The archive is built afresh into a temporary directory by build.py's own code,
so these tests never judge a stale dist/ and need no network.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from helpers import load_build_script

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ROOT = ROOT / "client_zipapp"
SHARED_ROOT = ROOT / "daemon_pkg" / "src"
#: The zipapp's packages: the client and the stdlib-only package it shares with the daemon.
ZIPAPP_PACKAGES = ((CLIENT_ROOT, "cidx"), (SHARED_ROOT, "cidx_shared"))


@pytest.fixture(scope="module")
def build() -> ModuleType:
    return load_build_script()


@pytest.fixture(scope="module")
def real_python(build: ModuleType) -> str:
    return build.resolve_python(None)


@pytest.fixture(scope="module")
def pyz(build: ModuleType, real_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build.build_zipapp(tmp_path_factory.mktemp("zipapp") / "cidx.pyz", real_python)


def client_version() -> str:
    tree = ast.parse((CLIENT_ROOT / "cidx" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("cidx/__init__.py defines no __version__")


def launcher(pyz: Path) -> tuple[str, bytes]:
    """(the interpreter the /bin/sh launcher names, the launcher's bytes: everything before the zip)."""
    data = pyz.read_bytes()
    prefix = data[:data.index(b"PK\x03\x04")]
    lines = prefix.decode().splitlines()
    assert lines[0] == "#!/bin/sh", lines[0]
    assignment = next(line for line in lines if line.startswith("P="))
    return shlex.split(assignment[2:])[0], prefix


# --------------------------------------------------------------------------- contents


def test_zipapp_holds_the_client_package_and_nothing_else(pyz: Path) -> None:
    sources = {
        path.relative_to(root).as_posix()
        for root, package in ZIPAPP_PACKAGES
        for path in (root / package).rglob("*.py")
        if not {"__pycache__", "tests", "test"} & set(path.parts)
    }
    expected = {"__main__.py", "__main__.pyc"} | sources | {name + "c" for name in sources}
    names = zipfile.ZipFile(pyz).namelist()
    assert len(names) == len(set(names))
    assert set(names) == expected
    assert "cidx/__main__.py" in names and "cidx/cli.py" in names
    assert "cidx_shared/__init__.py" in names and "cidx_shared/schema.py" in names


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Absolute module names a tree imports anywhere, including inside functions.

    Relative imports stay inside the package and are skipped; literal
    `importlib.import_module("x")` / `__import__("x")` calls count as imports.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _is_dynamic_import(func: ast.expr) -> bool:
    return (isinstance(func, ast.Name) and func.id in {"__import__", "import_module"}) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os, json.decoder", ["os", "json.decoder"]),
        ("def f():\n    import numpy\n", ["numpy"]),
        ("from . import config\nfrom .schema import X\nfrom cidx import cli", ["cidx"]),
        ("import importlib\nimportlib.import_module('rich')", ["importlib", "rich"]),
        ("__import__('rpyc')", ["rpyc"]),
    ],
)
def test_import_scanner_sees_every_kind_of_import(source: str, expected: list[str]) -> None:
    assert [name for _, name in imported_modules(ast.parse(source))] == expected


def test_zipapp_code_imports_only_the_standard_library(pyz: Path) -> None:
    offenders = []
    with zipfile.ZipFile(pyz) as archive:
        for name in archive.namelist():
            if not name.endswith(".py"):
                continue
            for lineno, module in imported_modules(ast.parse(archive.read(name), name)):
                top = module.partition(".")[0]
                if top not in ("cidx", "cidx_shared") and top not in sys.stdlib_module_names:
                    offenders.append(f"{name}:{lineno}: {module}")
    assert offenders == []


# --------------------------------------------------------------------------- shebang and start


def test_launcher_names_a_real_interpreter_with_isolation_flags(pyz: Path) -> None:
    interpreter, prefix = launcher(pyz)
    assert os.path.isabs(interpreter)
    with open(interpreter, "rb") as handle:
        magic = handle.read(4)
    # A pyenv shim or wrapper is a script: it would re-exec python for 100+ ms per call.
    assert not magic.startswith(b"#!"), f"{interpreter} is a script"
    if sys.platform.startswith("linux"):
        assert magic == b"\x7fELF"
    exec_line = next(line for line in prefix.decode().splitlines() if line.startswith("exec "))
    assert ' -I -S -c ' in exec_line and "runpy" not in exec_line


def _probe(prefix: bytes, tmp_path: Path, body: str) -> Path:
    """An archive with the very same launcher and a ``cidx.__main__.run`` of our own."""
    probe = tmp_path / "probe.pyz"
    with probe.open("wb") as handle:
        handle.write(prefix)
        with zipfile.ZipFile(handle, "w") as archive:
            archive.writestr("cidx/__init__.py", "")
            archive.writestr("cidx/__main__.py", body)
    probe.chmod(0o755)
    return probe


def test_launcher_starts_isolated_without_site_or_runpy(pyz: Path, tmp_path: Path) -> None:
    """Run a probe archive under the very same launcher through the kernel and /bin/sh."""
    _, prefix = launcher(pyz)
    body = ("import sys\ndef run():\n    print(sys.flags.isolated, sys.flags.no_site, 'runpy' in sys.modules,"
            " sys.argv)\n")
    probe = _probe(prefix, tmp_path, body)
    out = subprocess.run([str(probe), "a b", "--c"], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    assert out.split(" ", 3)[:3] == ["1", "1", "False"]
    assert out.strip().endswith(f"[{str(probe)!r}, 'a b', '--c']")


def test_launcher_falls_back_to_python3_on_path(pyz: Path, tmp_path: Path) -> None:
    interpreter, prefix = launcher(pyz)
    moved = prefix.replace(shlex.quote(interpreter).encode(), b"/nonexistent/python3.11")
    probe = _probe(moved, tmp_path, "import sys\ndef run():\n    print('ran', sys.flags.isolated)\n")
    path = os.path.dirname(interpreter) + os.pathsep + "/usr/bin:/bin"
    out = subprocess.run([str(probe)], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env={**os.environ, "PATH": path})
    assert out.stdout.split() == ["ran", "1"]


def test_zipapp_is_executable_and_runs_directly(pyz: Path, tmp_path: Path) -> None:
    assert os.access(pyz, os.X_OK)
    proc = subprocess.run([str(pyz), "--version"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"cidx {client_version()}"), proc.stderr


@pytest.mark.parametrize("which", ["real interpreter", "python3 on PATH"])
def test_version_runs_isolated_without_site(pyz: Path, real_python: str, which: str, tmp_path: Path) -> None:
    """`python3 -I -S cidx.pyz` must work: no site-packages, no PYTHONPATH, no source tree.

    Through `python3` on PATH (possibly a shim or another version, whose .pyc
    magic differs) zipimport falls back to the sources, which must still work.
    """
    python = real_python if which == "real interpreter" else shutil.which("python3")
    if python is None:
        pytest.skip("no python3 on PATH")
    proc = subprocess.run([python, "-I", "-S", str(pyz), "--version"], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"cidx {client_version()}"), proc.stderr


# --------------------------------------------------------------------------- bytecode


def test_every_pyc_was_compiled_from_the_source_beside_it(pyz: Path) -> None:
    """Unchecked-hash .pyc files are never compared to their source at import: the build must be right.

    Hash-based .pyc layout: magic (4), flags (4: bit 0 hash-based, bit 1 check source), source hash (8).
    """
    with zipfile.ZipFile(pyz) as archive:
        pycs = [name for name in archive.namelist() if name.endswith(".pyc")]
        for name in pycs:
            data, source = archive.read(name), archive.read(name[:-1])
            assert data[:4] == importlib.util.MAGIC_NUMBER, name
            assert int.from_bytes(data[4:8], "little") == 0b01, f"{name}: not unchecked-hash"
            assert data[8:16] == importlib.util.source_hash(source), f"{name}: stale"
    assert len(pycs) == len([n for n in zipfile.ZipFile(pyz).namelist() if n.endswith(".py")])


# Runs the archive as `python -I -S cidx.pyz --version` does, then imports every
# client module, and reports where each came from. zipimport tries `mod.pyc`
# first and sets __file__ to it when it used it; a rejected .pyc (wrong magic,
# bad flags) silently falls back to compiling `mod.py`.
LOADED_FROM = """
import json, posix, runpy, sys, importlib
pyz, report, modules = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
sys.argv = [pyz, "--version"]
def _exit(code):  # the client leaves with posix._exit; this probe must go on to report
    raise SystemExit(code)
posix._exit = _exit
try:
    runpy.run_path(pyz, run_name="__main__")
except SystemExit:
    pass
ran = sorted(name for name in sys.modules if name == "cidx" or name.startswith("cidx."))
sys.path.insert(0, pyz)  # run_path took it off again
for name in modules:
    importlib.import_module(name)
files = {name: sys.modules[name].__file__ for name in modules}
with open(report, "w") as handle:
    json.dump({"ran": ran, "files": files}, handle)
"""


def test_zipimport_loads_the_precompiled_bytecode(pyz: Path, real_python: str, tmp_path: Path) -> None:
    names = [n for n in zipfile.ZipFile(pyz).namelist() if n.startswith("cidx/") and n.endswith(".py")]
    modules = [n[:-3].replace("/", ".").removesuffix(".__init__") for n in names]
    report = tmp_path / "report.json"
    subprocess.run([real_python, "-I", "-S", "-c", LOADED_FROM, str(pyz), str(report), ",".join(modules)],
                   cwd=tmp_path, check=True, capture_output=True)
    loaded = json.loads(report.read_text())
    assert {"cidx", "cidx.cli"} <= set(loaded["ran"]), "the entry point did not go through cidx.cli"
    from_source = {name: path for name, path in loaded["files"].items() if not path.endswith(".pyc")}
    assert from_source == {}
    assert all(path.startswith(str(pyz) + os.sep) for path in loaded["files"].values())
