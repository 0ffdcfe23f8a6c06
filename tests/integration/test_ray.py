"""``cidx index --ray``: a real two-node Ray cluster gives the index a local run gives.

The cluster (a head and one worker node, separate ``ray start`` processes) runs in
private network and PID namespaces (``unshare -n -p -f --mount-proc``): outside one,
Ray binds the machine's interface address and probes a public DNS address; inside,
only 127.0.0.1 exists. The PID namespace scopes ``ray stop`` to this cluster (outside
it, ``ray stop`` would end every Ray process on the machine) and ends everything the
cluster started when the script exits. ``-r`` (a user namespace) is added when not root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from helpers import PYTHON, daemon_cli, env, write_project

pytest.importorskip("ray", reason="Ray is not installed (pip install 'cidx-daemon[ray]')")

from cidx_daemon import cli as daemon_cli_module
from cidx_daemon.index import generation as gens

RAY = Path(PYTHON).with_name("ray")
PORT = 6391
QUERIES = ["parse a json document", "open a url with timeout", "sort a list in place",
           "exponential backoff retry", "escape a string"]


def _unshare_argv() -> list[str] | None:
    """unshare's flags for private net + PID namespaces, or None when this machine forbids them."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    argv = ["unshare", *([] if os.geteuid() == 0 else ["-r"]), "-n", "-p", "-f", "--mount-proc"]
    probe = subprocess.run([*argv, "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30)
    return argv if probe.returncode == 0 else None


def _corpus(root: Path) -> Path:
    """The sample project plus the stdlib's json package: ~90 chunks, several languages."""
    write_project(root)
    shutil.copytree(Path(sysconfig.get_paths()["stdlib"]) / "json", root / "json",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


CLUSTER_SCRIPT = """\
set -u
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0
# An embedding cache of its own: the local index filled the session's, and a hit never
# reaches the embedder (Ray included), so with that one the cluster would embed nothing.
export CIDX_CACHE_DIR="{cache}"
"{ray}" start --head --port={port} --num-cpus=1 --include-dashboard=false --disable-usage-stats \
    --temp-dir="{tmp}" > "{out}/head.log" 2>&1 || {{ echo head failed; cat "{out}/head.log"; exit 3; }}
"{ray}" start --address=127.0.0.1:{port} --num-cpus=1 > "{out}/worker.log" 2>&1 \
    || {{ echo worker failed; cat "{out}/worker.log"; exit 3; }}
cd "{project}"
"{python}" -m cidx_daemon index --ray 127.0.0.1:{port} > "{out}/ray.stdout" 2> "{out}/ray.stderr"
echo $? > "{out}/ray.rc"
# Again from scratch: now every chunk is in the cache, so none goes to the cluster.
"{python}" -m cidx_daemon index --clear --ray 127.0.0.1:{port} > "{out}/again.stdout" 2> "{out}/again.stderr"
"{python}" -m cidx_daemon --debug index --ray 127.0.0.1:1 --clear > "{out}/bad.stdout" 2> "{out}/bad.stderr"
echo $? > "{out}/bad.rc"
# Lose the cluster mid-run: once the full-text-first generation is out (embedding has
# begun), kill the head's GCS and every raylet.
cd "{lost}"
"{python}" -m cidx_daemon init > /dev/null
("{python}" -m cidx_daemon index --quiet --ray 127.0.0.1:{port} > "{out}/lost.stdout" 2> "{out}/lost.stderr";
 echo $? > "{out}/lost.rc") &
n=0
until ls .code-indexer/index 2>/dev/null | grep -q '^gen-'; do
    n=$((n + 1)); [ $n -gt 600 ] && break; sleep 0.1
done
sleep 1
for d in /proc/[0-9]*; do
    case "$(cat "$d/comm" 2>/dev/null)" in gcs_server|raylet) kill -9 "${{d#/proc/}}" 2>/dev/null;; esac
done
wait
"{ray}" stop --force > /dev/null 2>&1
exit 0
"""


def _init_fp32(project: Path) -> None:
    """The fp32 model: its vectors do not depend on how chunks are batched. The int8 default's
    do (its activations are quantized per batch: re-batching the same chunks locally moves
    them to cosine ~0.99), so with it no split of the work, Ray's or another, could match a
    local run to 0.999."""
    daemon_cli("init", cwd=project)
    config = project / ".code-indexer" / "config.json"
    data = json.loads(config.read_text())
    data.setdefault("index", {})["embedder"] = "minilm-fp32"
    config.write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    unshare = _unshare_argv()
    if unshare is None:
        pytest.skip("unshare -n -p cannot create private namespaces here "
                    "(needed to run Ray on 127.0.0.1 only)")
    base = tmp_path_factory.mktemp("ray")
    local, remote, out = _corpus(base / "local"), _corpus(base / "remote"), base / "out"
    lost = base / "lost"  # ~600 chunks: ~20 s of embedding on two one-CPU nodes
    shutil.copytree(Path(sysconfig.get_paths()["stdlib"]) / "email", lost / "email",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out.mkdir()
    for project in (local, remote):
        _init_fp32(project)
    daemon_cli("index", "--quiet", cwd=local)
    # Ray's session directory holds Unix sockets: keep its path short (108-byte limit).
    tmp = Path("/tmp") / f"cidx-ray-{os.getpid()}"
    script = CLUSTER_SCRIPT.format(ray=RAY, port=PORT, tmp=tmp, out=out, project=remote, python=PYTHON,
                                  lost=lost, cache=base / "ray-cache")
    try:
        proc = subprocess.run([*unshare, "sh", "-c", script], env=env(), capture_output=True, text=True,
                              timeout=900)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert proc.returncode == 0, f"cluster script failed:\n{proc.stdout}\n{proc.stderr}"
    return {"local": local, "remote": remote, "out": out, "lost": lost}


def _live(project: Path) -> gens.Generation:
    gen = gens.open_live(project / ".code-indexer" / "index", with_fts=False)[0]
    assert gen is not None
    return gen


def test_ray_index_matches_a_local_index(cluster_run: dict[str, Path]) -> None:
    out = cluster_run["out"]
    assert (out / "ray.rc").read_text().strip() == "0", (out / "ray.stderr").read_text()
    stdout = (out / "ray.stdout").read_text()
    local, remote = _live(cluster_run["local"]), _live(cluster_run["remote"])
    texts = len(remote) + len(remote.signatures or ())  # each chunk, and its functions' signatures
    assert f"Ray: {texts} texts (chunks and function texts) embedded by 2 actors on 2 node(s)" \
        in stdout, stdout
    again = (out / "again.stdout").read_text()
    assert "Ray: 0 texts (chunks and function texts) embedded by 2 actors" in again, \
        again + (out / "again.stderr").read_text()
    assert remote.n_embedded == len(remote) == len(local) > 50
    assert remote.table.texts() == local.table.texts()
    assert [local.table.file_of(r).path for r in range(len(local))] == \
        [remote.table.file_of(r).path for r in range(len(remote))]
    assert remote.meta["model"] == local.meta["model"]
    a, b = np.asarray(local.vectors), np.asarray(remote.vectors)
    cosine = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() >= 0.999, f"worst chunk cosine {cosine.min():.5f}"
    for q in QUERIES:
        hits = []
        for project in (cluster_run["local"], cluster_run["remote"]):
            doc = json.loads(daemon_cli("query", q, "--json", "--limit", "5", cwd=project).stdout)
            hits.append([(h["path"], h["start_line"]) for h in doc["results"]])
        assert hits[0] == hits[1], q


def test_unreachable_cluster_is_one_line_and_keeps_the_index(cluster_run: dict[str, Path]) -> None:
    out = cluster_run["out"]
    assert (out / "bad.rc").read_text().strip() == "1"
    stderr = (out / "bad.stderr").read_text().strip()
    assert stderr.startswith("error: no Ray cluster at 127.0.0.1:1"), stderr
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr
    # --clear did not happen: the generation the last good run published is still live, whole.
    gen = _live(cluster_run["remote"])
    assert gen.n_embedded == len(gen) > 50
    ray_gen = (out / "again.stdout").read_text().split(" into ")[1].split()[0]
    assert gen.name == ray_gen


def test_without_ray_installed_one_line_says_which_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path)
    daemon_cli("init", cwd=tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    code = daemon_cli_module.main(["--config", str(tmp_path / ".code-indexer" / "config.json"),
                                   "index", "--quiet", "--ray", "auto"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.splitlines() == [err] and "pip install 'cidx-daemon[ray]'" in err
    assert not (tmp_path / ".code-indexer" / "index").exists() or _no_generation(tmp_path)


def _no_generation(project: Path) -> bool:
    return gens.open_live(project / ".code-indexer" / "index", with_fts=False)[0] is None


def test_user_config_names_the_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    """index.ray_address in ~/.config/cidx/config.json is used without --ray; --no-ray overrides it."""
    write_project(tmp_path / "p")
    daemon_cli("init", cwd=tmp_path / "p")
    user = tmp_path / "xdg" / "cidx"
    user.mkdir(parents=True)
    (user / "config.json").write_text(json.dumps({"index": {"ray_address": "127.0.0.1:1"}}))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = str(tmp_path / "p" / ".code-indexer" / "config.json")
    assert daemon_cli_module.main(["--config", config, "index", "--quiet"]) == 1
    # (from the child process that runs a Ray index: hence capfd)
    assert capfd.readouterr().err.strip().startswith("error: no Ray cluster at 127.0.0.1:1")
    assert daemon_cli_module.main(["--config", config, "index", "--quiet", "--no-ray", "--no-embed"]) == 0


def test_cluster_lost_mid_run_is_one_line_and_leaves_a_sound_index(cluster_run: dict[str, Path]) -> None:
    out = cluster_run["out"]
    assert (out / "lost.rc").read_text().strip() == "1"
    stderr = (out / "lost.stderr").read_text()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: lost the Ray cluster at 127.0.0.1:"), stderr
    assert "Traceback" not in stderr
    # What was published stays live and whole: every chunk searchable by full text, the
    # vectors pending (or those a checkpoint published) for the next 'cidx index'.
    gen = _live(cluster_run["lost"])
    assert len(gen) > 300 and gen.n_embedded < len(gen)
    doc = json.loads(daemon_cli("query", "--fts", "Message", "--json", cwd=cluster_run["lost"]).stdout)
    assert doc["results"]


def test_ray_stays_out_of_the_default_install() -> None:
    """Ray is an extra: the daemon's modules never import it, and the offline wheelhouse lacks it."""
    code = ("import sys, cidx_daemon.cli, cidx_daemon.index.indexer, cidx_daemon.search.embedding, "
            "cidx_daemon.search.engine; sys.exit('ray' in sys.modules)")
    assert subprocess.run([PYTHON, "-c", code], env=env(), timeout=120).returncode == 0
    wheelhouse = Path(__file__).resolve().parents[2] / "dist" / "wheelhouse"
    if wheelhouse.is_dir():
        assert not [w.name for w in wheelhouse.glob("*.whl") if w.name.lower().startswith("ray-")]
