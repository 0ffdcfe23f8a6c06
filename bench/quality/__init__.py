"""Search-quality benchmark for cidx: semble's NDCG@10 on annotated repos, stdlib MRR@10, latency.

Run ``python bench/quality/run.py --help``. Every import of cidx itself lives in
``cidx_adapter`` so the engine can move without touching the rest.
"""
