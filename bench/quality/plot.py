"""Speed vs quality chart: NDCG@10 on the dev set against warm query latency (needs matplotlib).

    <venv with matplotlib>/bin/python bench/quality/plot.py results.json quality.png

Run by ``run.py`` in a bench-only venv (``~/.cache/cidx-bench/venv-plot``) so the
test venv never gets matplotlib. cidx's points are this run's dev-set NDCG@10 and
in-process engine p50; the peers' are their published NDCG@10 on the same eight
repos and their published warm p50 (semble's machine, semble's all-language
benchmark), so the horizontal comparison is indicative only, as the footnote says.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from quality import peers

CIDX_COLOUR = "#c0392b"
PEER_COLOUR = "#5b7fa6"
#: Label offsets (points) for points that sit close together.
OFFSETS = {"CodeRankEmbed hybrid": (7, 5), "CodeRankEmbed": (7, -12), "cidx hybrid": (8, 5),
           "cidx semantic": (8, -13), "cidx fts": (8, 4)}


def _ms(v: float, _pos: object) -> str:
    return f"{v:g} ms"


def main(results_json: str, png: str) -> int:
    doc = json.loads(Path(results_json).read_text())
    dev = doc["sets"]["dev"]
    lat = doc["latency"]["dev"]
    fig, ax = plt.subplots(figsize=(9, 5.6))
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    ax.grid(color="#eeeeee", linewidth=0.7)
    ax.set_axisbelow(True)
    for name in peers.PEERS:
        if name not in peers.QUERY_P50_MS:
            continue
        x, y = peers.QUERY_P50_MS[name], peers.NDCG10_MEAN[name]
        ax.scatter(x, y, s=70, color=PEER_COLOUR, edgecolors="white", zorder=3)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=OFFSETS.get(name, (7, -3)), fontsize=9,
                    color=PEER_COLOUR)
    for mode in ("semantic", "fts", "hybrid"):
        if mode not in lat:
            continue
        x, y = lat[mode]["p50"], dev["overall"][mode]
        ax.scatter(x, y, s=90, color=CIDX_COLOUR, marker="D", edgecolors="white", zorder=4)
        ax.annotate(f"cidx {mode}", (x, y), textcoords="offset points", xytext=OFFSETS[f"cidx {mode}"],
                    fontsize=9.5, color=CIDX_COLOUR, fontweight="bold")
    ax.set_xscale("log")
    ax.set_xlim(0.1, 1000)
    ax.xaxis.set_major_formatter(FuncFormatter(_ms))
    ax.set_ylim(0.1, 1.0)
    ax.set_xlabel("warm query latency, p50 (log scale)")
    ax.set_ylabel("NDCG@10, mean over 8 Python repos")
    commit = (doc["environment"].get("commit") or "")[:10]
    ax.set_title(f"cidx search quality vs latency ({doc['generated_at'][:10]}, {commit})", fontsize=11.5)
    fig.text(0.01, 0.01,
             "cidx: in-process Engine.query, 2 CPUs, this run. Peers: published NDCG@10 on the same repos; "
             "latency from semble's\nbenchmarks (plot.py warm p50; CodeRankEmbed hybrid from its README), "
             "measured on semble's machine over its all-language set.",
             fontsize=7.5, color="#666666")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(png, dpi=130)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
