"""Markdown from the results document: summary tables, then every query's target landings.

Rendering reads only the JSON document, so ``run.py --render results.json`` can
redo the tables of an old run without searching anything.
"""

from __future__ import annotations

import math
from typing import Any

from . import peers

MODE_ORDER = ("hybrid", "semantic", "fts")


def _f(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _modes(doc: dict[str, Any]) -> list[str]:
    return [m for m in MODE_ORDER if m in doc["args"]["modes"]]


def dev_section(s: dict[str, Any], modes: list[str]) -> str:
    head = ["repo", *(f"cidx {m}" for m in modes), *peers.PEERS, "cidx hybrid (README 12-01)"]
    rows = []
    for repo, scores in s["per_repo"].items():
        peer = peers.NDCG10.get(repo, {})
        rows.append([repo, *(_f(scores[m]) for m in modes), *(_f(peer.get(p)) for p in peers.PEERS),
                     _f(peers.CIDX_README.get(repo, {}).get("hybrid"))])
    complete = set(s["per_repo"]) == set(peers.NDCG10)
    mean_peer = peers.NDCG10_MEAN if complete else {
        p: sum(peers.NDCG10[r][p] for r in s["per_repo"] if r in peers.NDCG10) / max(1, len(s["per_repo"]))
        for p in peers.PEERS}
    rows.append(["**mean**", *(f"**{_f(s['overall'][m])}**" for m in modes),
                 *(_f(mean_peer[p]) for p in peers.PEERS), "0.686" if complete else "–"])
    out = ["## Development set: NDCG@10 (8 Python repos, semble's annotations)", "",
           _table(head, rows), ""]
    if not complete:
        out += ["(a subset of the repos: the peer means are over the same subset)", ""]
    for key, title in (("by_category", "annotation categories (missing = uncategorised)"),
                       ("by_semble_category", "semble's categories (missing ones inferred from the text, "
                                              "as semble's data.py does)")):
        rows = [[cat, str(v["n"]), *(_f(v[m]) for m in modes)] for cat, v in s[key].items()]
        out += [f"By category, {title}; pooled over queries:", "",
                _table(["category", "queries", *modes], rows), ""]
    out += [dedup_note(s, modes)]
    return "\n".join(out)


def dedup_note(s: dict[str, Any], modes: list[str]) -> str:
    """The what-if that points at the first ranking fix: one chunk per file."""
    if "overall_dedup" not in s:
        return ""
    rows = [[m, _f(s["overall"][m]), _f(s["overall_dedup"][m])] for m in modes]
    return "\n".join([
        "Diagnostic (not a score): mean NDCG@10 had the results kept only the best chunk of each file "
        "(from a limit-100 query):", "", _table(["mode", "as returned", "best chunk per file"], rows), ""])


def heldout_section(s: dict[str, Any], modes: list[str]) -> str:
    rows = []
    for repo, scores in s["per_repo"].items():
        c = s["corpora"][repo]
        rows.append([repo, c["language"], c["source"], f"{c['queries_scored']}/{c['queries']}",
                     c["targets_present"], str(c.get("chunks", "?")), *(_f(scores[m]) for m in modes)])
    rows.append(["**mean**", "", "", "", "", "", *(f"**{_f(s['overall'][m])}**" for m in modes)])
    lang_rows = [[lang, str(v["repos"]), *(_f(v[m]) for m in modes)] for lang, v in s["by_language"].items()]
    cat_rows = [[cat, str(v["n"]), *(_f(v[m]) for m in modes)] for cat, v in s["by_category"].items()]
    return "\n".join([
        "## Held-out languages: NDCG@10 (semble's annotations, corpora from registries)", "",
        _table(["repo", "language", "corpus", "queries scored", "targets present", "chunks", *modes], rows),
        "",
        "A query none of whose targets exists in the corpus (an older release) is not scored.", "",
        _table(["language", "repos", *modes], lang_rows), "",
        _table(["category", "queries", *modes], cat_rows), "", dedup_note(s, modes)])


def stdlib_section(s: dict[str, Any], modes: list[str], heldout: bool = False) -> str:
    c = s["corpus"]
    rows = [[m, _f(s["mrr"][m]), _f(s["hit_rate"][m]), peers.STDLIB_PRIOR.get(m, "")] for m in modes]
    title = "Stdlib docstring -> function, held-out files" if heldout else "Stdlib docstring -> function"
    return "\n".join([
        f"## {title}: MRR@10", "",
        f"{c['queries']} queries over {c['files']} files ({c['functions']} functions, "
        f"{c['bytes'] / 1e6:.1f} MB, {c.get('chunks', '?')} chunks) of Python {s['python']}'s "
        "standard library; "
        "the queried docstrings are blanked in the corpus."
        + (" None of these files is in the stdlib set above (another seed): never tuned on." if heldout
           else ""), "",
        _table(["mode", "MRR@10", "hit@10", "prior measurement (similar set)"], rows), ""])


def latency_section(lat: dict[str, Any], modes: list[str]) -> str:
    rows = []
    for set_name, per_mode in lat.items():
        for m in modes:
            v = per_mode.get(m)
            if v:
                rows.append([set_name, m, str(v["n"]), _f(v["p50"], 1), _f(v["p95"], 1),
                             _f(v.get("embed_p50"), 1)])
    return "\n".join([
        "## Engine latency (in-process `Engine.query`, warm, limit 10)", "",
        _table(["set", "mode", "queries", "p50 ms", "p95 ms", "embed p50 ms"], rows), "",
        "Peers' published warm p50 for comparison: "
        + ", ".join(f"{k} {v:g} ms" for k, v in peers.QUERY_P50_MS.items())
        + f" ({peers.LATENCY_SOURCE}).", ""])


def _cell(targets: list[dict[str, Any]]) -> str:
    parts = []
    for t in targets:
        if not t["present"]:
            parts.append("∅")
        elif t["rank"]:
            parts.append(str(t["rank"]))
        elif t["deep_rank"]:
            parts.append(f"({t['deep_rank']})")
        else:
            parts.append("–")
    primary = [p for p, t in zip(parts, targets, strict=True) if t["primary"]]
    secondary = [p for p, t in zip(parts, targets, strict=True) if not t["primary"]]
    return " ".join(primary) + (" / " + " ".join(secondary) if secondary else "")


def landings_section(title: str, queries: list[dict[str, Any]], modes: list[str]) -> str:
    """One row per query: each target's rank per mode (primary / secondary)."""
    out = [f"## Where each target landed: {title}", "",
           "Per mode, the rank of each target in the top 10 (primary targets, then `/` secondary ones); "
           "`(n)` = not in the top 10 but at rank n of a limit-100 query; `–` = not in the top 100; "
           "`∅` = the target is not in the corpus. Score = NDCG@10 (MRR term for the stdlib set).", ""]
    by_query: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for q in queries:
        by_query.setdefault((q["repo"], q["query"]), {})[q["mode"]] = q
    repos = list(dict.fromkeys(r for r, _ in by_query))
    for repo in repos:
        rows = []
        for (r, text), per_mode in by_query.items():
            if r != repo:
                continue
            any_q = next(iter(per_mode.values()))
            targets = ", ".join(t["label"] for t in any_q["targets"])
            row = [text.replace("|", "\\|"), any_q["category"], targets]
            for m in modes:
                q = per_mode.get(m)
                row.append(f"{_cell(q['targets'])} ({q['score']:.2f})" if q else "")
            rows.append(row)
        out += [f"### {repo}", "", _table(["query", "category", "targets", *modes], rows), ""]
    return "\n".join(out)


def render(doc: dict[str, Any], *, landings: bool = True) -> str:
    modes = _modes(doc)
    env = doc["environment"]
    head = [
        "# cidx search-quality benchmark", "",
        f"- {doc['generated_at']}, commit {env.get('commit')}"
        + (" (uncommitted changes)" if env.get("dirty") else ""),
        f"- engine: {env.get('engine', {}).get('packages')} "
        f"(fingerprint {env.get('engine_fingerprint', '')[:12]}), model {env.get('model')}",
        f"- Python {env.get('python_version')}; {env.get('cpus')} CPUs; load average at the end "
        f"{env.get('load_end')}; run took {doc['elapsed_s'] / 60:.1f} min",
        "",
    ]
    parts = ["\n".join(head)]
    sets = doc["sets"]
    if "dev" in sets:
        parts.append(dev_section(sets["dev"], modes))
    if "heldout" in sets:
        parts.append(heldout_section(sets["heldout"], modes))
    if "stdlib" in sets:
        parts.append(stdlib_section(sets["stdlib"], modes))
    if "stdlib-heldout" in sets:
        parts.append(stdlib_section(sets["stdlib-heldout"], modes, heldout=True))
    if doc.get("latency"):
        parts.append(latency_section(doc["latency"], modes))
    parts.append(indexing_section(doc))
    if doc.get("failures"):
        parts.append("## Failures\n\n" + "\n".join(f"- {f}" for f in doc["failures"]) + "\n")
    if landings:
        for key, title in (("dev", "development set"), ("heldout", "held-out languages")):
            if key in sets:
                parts.append(landings_section(title, sets[key]["queries"], modes))
        for key, title in (("stdlib", "stdlib set"), ("stdlib-heldout", "stdlib held-out set")):
            if key in sets:
                parts.append(stdlib_misses(sets[key]["queries"], modes, title))
    return "\n".join(parts).rstrip() + "\n"


def indexing_section(doc: dict[str, Any]) -> str:
    rows = []
    for set_name, s in doc["sets"].items():
        for name, c in s.get("corpora", {}).items():
            rate = c["chunks"] / c["index_s"] if c.get("index_s") else float("nan")
            rows.append([set_name, name, str(c.get("files", "?")), str(c.get("chunks", "?")),
                         _f(c.get("index_s"), 0), _f(rate, 1),
                         "built now" if c.get("built_now") else "cached"])
    head = ["set", "corpus", "files", "chunks", "index s", "chunks/s", ""]
    return "\n".join(["## Indexes", "", _table(head, rows), ""])


def stdlib_misses(queries: list[dict[str, Any]], modes: list[str], title: str = "stdlib set") -> str:
    """The stdlib set is 400 queries: list each query's rank per mode compactly."""
    by_query: dict[str, dict[str, dict[str, Any]]] = {}
    for q in queries:
        by_query.setdefault(q["query"], {})[q["mode"]] = q
    rows = []
    for text, per_mode in by_query.items():
        any_q = next(iter(per_mode.values()))
        rows.append([text.replace("|", "\\|"), f"`{any_q['targets'][0]['label']}` {any_q['category']}",
                     *(_cell(per_mode[m]["targets"]) if m in per_mode else "" for m in modes)])
    return "\n".join([f"## Where each target landed: {title}", "",
                      _table(["query", "function", *modes], rows), ""])
