"""An Embedder whose work runs on a Ray cluster: ``cidx index --ray ADDRESS``.

Why an Embedder and not a separate indexing path: the indexer walks, chunks,
consults the embedding cache and publishes generations exactly as it does
locally; only the chunks that still need a vector reach ``embed_documents``,
which here fans them out to a pool of actors (one model per actor) and streams
the vectors back in order. Nothing about the index format knows Ray exists.

Design points
-------------
* Ray is imported only in this module, and only when ``RayEmbedder`` connects:
  the default install and the offline wheelhouse never carry it
  (``pip install 'cidx-daemon[ray]'`` adds it, on the client and on the nodes).
* The pool: one actor per CPU the cluster offers (``num_cpus=1``, one onnxruntime
  thread each, so actors never fight over cores), plus one ``num_gpus=1`` actor per
  GPU. Each actor loads the same embedder *name* as the local configuration, so
  the vectors (and the ``name`` recorded in the index) are those a local run makes.
* Bounded in flight: each actor has at most ``PIPELINE`` batches queued (the next
  one is already there when it finishes), so driver memory is a few batches per
  actor whatever the size of the run.
* Failures: actors restart (``max_restarts``) and their queued tasks are retried
  (``max_task_retries``); a batch whose actor is gone for good goes to another
  actor; with no actor left, or the cluster unreachable, ``EmbedderError`` carries
  one line the CLI prints. Vectors already published by a checkpoint stay.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import EmbedderError, ProgressCallback

#: Chunks per Ray task: large enough that a task's overhead (~1 ms) is noise next to
#: its embedding (~1 s on one thread), small enough to spread a 256-chunk call.
TASK_CHUNKS = 64
#: Batches queued per actor: one running, one waiting, so no actor idles on a round trip.
PIPELINE = 2
#: How long to wait for the pool to load its models (first use on a node may be slow).
READY_TIMEOUT_S = 180.0
#: No batch finishing for this long means the cluster is gone, not slow.
STALL_TIMEOUT_S = 300.0
#: For a host:port address: how long a TCP connect to the head may take before giving up
#: (ray.init itself retries an unreachable address for minutes).
CONNECT_TIMEOUT_S = 5.0

INSTALL_HINT = ("Ray is not installed: pip install 'cidx-daemon[ray]' "
                "(on this machine and on the cluster's nodes)")


class _EmbedActor:
    """Runs on a cluster node: one model, loaded once, embeds batch after batch."""

    def __init__(self, embedder_name: str, threads: int) -> None:
        import ray

        from cidx_daemon.search.embedding import load_embedder

        self.embedder = load_embedder(embedder_name, threads=threads)
        # The node id, not the host name: several nodes may share a host (tests, big machines).
        self.node = ray.get_runtime_context().get_node_id()

    def info(self) -> tuple[str, int, str]:
        return self.embedder.name, self.embedder.dim, self.node

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed_documents(texts)


def import_ray() -> Any:
    """The ray module, or EmbedderError saying which extra to install."""
    # Ray's C++ core logs warnings and per-task errors straight to the driver's stderr
    # (dozens of lines when a node dies); cidx reports failures itself, in one line.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        import ray
    except ImportError:
        raise EmbedderError(INSTALL_HINT) from None
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds, not minutes, when nothing listens at a host:port address."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # "auto", "local" or a form ray.init resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise EmbedderError(f"no Ray cluster at {address}: {exc.strerror or exc}") from None


class RayEmbedder:
    """The Embedder contract, served by a pool of actors on a Ray cluster."""

    def __init__(self, address: str, embedder_name: str, *, max_actors: int | None = None,
                 task_chunks: int = TASK_CHUNKS, note: Callable[[str], None] | None = None) -> None:
        ray = import_ray()
        self._ray = ray
        self.address = address
        self.task_chunks = task_chunks
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     include_dashboard=False, configure_logging=True,
                     ignore_reinit_error=True)
        except Exception as exc:  # ConnectionError, ValueError, RaySystemError...: all mean "no cluster"
            raise EmbedderError(f"cannot connect to the Ray cluster at {address}: {_one_line(exc)}") from None
        try:
            self._actors = self._start_pool(embedder_name, max_actors)
            infos = ray.get([a.info.remote() for a in self._actors], timeout=READY_TIMEOUT_S)
        except EmbedderError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise EmbedderError(f"the Ray cluster at {address} could not load {embedder_name!r}: "
                                f"{_one_line(exc)}") from None
        names = {name for name, _, _ in infos}
        if len(names) != 1:
            self.close()
            raise EmbedderError(f"the Ray cluster's nodes load different models for {embedder_name!r}: "
                                f"{sorted(names)} (install the same cidx-daemon everywhere)")
        self.name: str = infos[0][0]
        self.dim: int = int(infos[0][1])
        self.nodes = len({node for _, _, node in infos})
        #: What the indexer should hand over per call: enough to keep every actor busy.
        self.call_batch = max(256, len(self._actors) * task_chunks * PIPELINE * 2)
        self.texts_done = 0
        self.busy_s = 0.0
        if note is not None:
            note(f"Ray cluster at {address}: {len(self._actors)} actors on {self.nodes} node(s)")

    @property
    def actors(self) -> int:
        return len(self._actors)

    def _start_pool(self, embedder_name: str, max_actors: int | None) -> list[Any]:
        ray = self._ray
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if max_actors is not None:
            gpus = min(gpus, max_actors)
            cpus = min(cpus, max_actors - gpus)
        if cpus + gpus < 1:
            raise EmbedderError(f"the Ray cluster at {self.address} offers no CPU or GPU "
                                "to run an embedder on")
        options = {"max_restarts": 3, "max_task_retries": 3, "scheduling_strategy": "SPREAD"}
        remote = ray.remote(_EmbedActor)
        pool = [remote.options(num_cpus=1, num_gpus=1, **options).remote(embedder_name, 1)
                for _ in range(gpus)]
        pool += [remote.options(num_cpus=1, **options).remote(embedder_name, 1) for _ in range(cpus)]
        return pool

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32,
                        progress: ProgressCallback | None = None) -> np.ndarray:
        """Vectors in the order of ``texts``; batches stream back as actors finish them."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ray = self._ray
        started = time.perf_counter()
        batches = deque((start, list(texts[start:start + self.task_chunks]))
                        for start in range(0, len(texts), self.task_chunks))
        queued: dict[int, int] = {i: 0 for i in range(len(self._actors))}  # actor -> batches queued
        flying: dict[Any, tuple[int, int, list[str]]] = {}  # future -> (actor, start, texts)

        def submit() -> None:
            for actor in sorted(queued, key=queued.__getitem__):
                while batches and queued[actor] < PIPELINE:
                    start, chunk = batches.popleft()
                    flying[self._actors[actor].embed.remote(chunk)] = (actor, start, chunk)
                    queued[actor] += 1

        submit()
        last_done = time.monotonic()
        while flying:
            try:
                done, _ = ray.wait(list(flying), num_returns=1, timeout=5.0)
            except Exception as exc:
                raise self._lost(exc) from None
            if not done:
                if time.monotonic() - last_done > STALL_TIMEOUT_S:
                    raise EmbedderError(f"the Ray cluster at {self.address} finished nothing for "
                                        f"{STALL_TIMEOUT_S:.0f}s; giving up (vectors so far are kept)")
                continue
            future = done[0]
            actor, start, chunk = flying.pop(future)
            try:
                vectors = ray.get(future)
            except ray.exceptions.RayActorError:
                # Restarts exhausted (its node is gone): the batch goes to the others.
                queued.pop(actor, None)
                for f, (a, s, c) in list(flying.items()):
                    if a == actor:
                        del flying[f]
                        batches.appendleft((s, c))
                batches.appendleft((start, chunk))
                if not queued:
                    raise EmbedderError(f"lost the Ray cluster at {self.address}: every actor died "
                                        "(vectors published so far are kept; 'cidx index' resumes)") from None
                submit()
                continue
            except Exception as exc:
                raise self._lost(exc) from None
            queued[actor] -= 1
            out[start:start + len(chunk)] = vectors
            last_done = time.monotonic()
            if progress is not None:
                progress(len(chunk))
            submit()
        self.texts_done += len(texts)
        self.busy_s += time.perf_counter() - started
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def throughput(self) -> float:
        """Texts (chunks and function texts) per second the cluster delivered while it had work."""
        return self.texts_done / self.busy_s if self.busy_s else 0.0

    def _lost(self, exc: BaseException) -> EmbedderError:
        return EmbedderError(f"lost the Ray cluster at {self.address}: {_one_line(exc)} "
                             "(vectors published so far are kept; 'cidx index' resumes)")

    def close(self) -> None:
        """Disconnect; the actors (not detached) end with the driver's job."""
        try:
            self._ray.shutdown()
        except Exception:  # shutting down after a lost cluster must not mask the cause
            pass


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]

