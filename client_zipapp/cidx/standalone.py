"""Standalone mode: the daemon package's one-shot query, rendered by the client.

The request goes through ``schema.request_to_argv`` (the inverse of the
parser, property-tested), the engine answers with the same JSON document the
daemon would send, and the client renders it with the same code: output is
identical in both modes apart from the timing line.
"""

from __future__ import annotations

import json
import subprocess

from cidx_shared.schema import request_to_argv

from .daemon_process import daemon_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class StandaloneError(RuntimeError):
    pass


def run_query(cfg: dict, config_path: str, req: dict[str, Any]) -> dict[str, Any]:
    argv = [*daemon_command(cfg), "--config", str(config_path), "query", "--json", *request_to_argv(req)]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except OSError as exc:
        raise StandaloneError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(proc.stdout)
        if not isinstance(doc, dict) or "schema" not in doc:
            raise ValueError("not a result document")
        return doc
    except ValueError:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise StandaloneError(
            f"standalone query failed (exit {proc.returncode}): {tail[-1] if tail else 'no output'}"
        ) from None
