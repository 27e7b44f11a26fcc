"""Curation and dataset writing on a Ray cluster (docs/datasets.md#running-on-a-cluster-ray).

Ray (https://docs.ray.io) is an optional extra, `pip install -e ".[scale]"`: a well-kept engine
that schedules tasks over the CPUs of many machines, retries a task whose worker died, and
ships arguments and results, so this module only chooses what a task is. `RayCluster` connects
to a cluster (or starts one on this machine) and maps a function over tasks, one CPU per task;
the driver (the process that called it) gets every result back. Callers pass plain paths: every
worker must see the source videos at the same absolute path (a shared file system).

* `RayCluster.imap_unordered`: `(index, result)` as tasks finish (`datasets.curate.parallel_map`
  uses it for every stage, the analysis included).
* `RayCluster.imap`: results in task order with a bounded number of tasks in flight
  (`datasets.writer.write_partition` writes the clips in order, as a local run does).
"""

from __future__ import annotations

import re
import signal
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from datasets.curate import _init_worker

RAY_INSTALL = "pip install -e '.[scale]'"
ADDRESS_FORMS = "auto, local, HOST:PORT or ray://HOST:PORT"
_ADDRESS = re.compile(r"(auto|local|(ray://)?[\w.\-\[\]:]+:\d+)")
T = TypeVar("T")


class NotShared(FileNotFoundError):
    """A Ray worker cannot see a file the driver named: storage is not shared."""


def _run_task(fn: Callable[..., T], task: tuple) -> T:
    """The body of every Ray task: one thread for torch and OpenCV, as local workers run
    (`datasets.curate._init_worker`), then `fn(*task)`; a missing file becomes `NotShared`."""
    _init_worker()
    try:
        return fn(*task)
    except FileNotFoundError as e:
        raise NotShared(
            f"{e.filename or e} is missing on Ray node {socket.gethostname()}: every node must "
            "see the source videos at the same path (docs/datasets.md#running-on-a-cluster-ray)"
        ) from None


def check_address(address: str) -> None:
    """ValueError naming `ray` unless `address` is one of `ADDRESS_FORMS` (Ray not needed)."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"`ray` must be {ADDRESS_FORMS}, got {address!r}")


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """ConnectionError unless something accepts TCP connections at `[ray://]HOST:PORT`."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConnectionError(e.strerror or type(e).__name__) from None


class RayCluster:
    """A connection to a Ray cluster at `address`: `auto` (the cluster this machine belongs to,
    started with `ray start`), `local` (a new one on this machine only), `HOST:PORT` (the head
    node's GCS, port 6379 by default) or `ray://HOST:PORT` (Ray Client, port 10001).

    Use it as a context manager: it connects on entry (reusing a connection this process already
    has, e.g. a test's `ray.init`) and disconnects on exit if it connected. ValueError naming
    `ray` for a malformed address or without Ray installed; ConnectionError if no cluster
    answers.
    """

    def __init__(self, address: str, num_cpus: int | None = None):
        check_address(address)
        try:
            import ray
        except ImportError:
            raise ValueError(f"`ray` needs Ray: {RAY_INSTALL}") from None
        self.address = address
        self.num_cpus = num_cpus  # only for `local`: CPUs of the cluster it starts
        self._ray = ray
        self._remote: Any = None
        self._connected_here = False

    def __enter__(self) -> RayCluster:
        ray = self._ray
        if not ray.is_initialized():
            self._connect()
            self._connected_here = True
        self._remote = ray.remote(num_cpus=1)(_run_task)
        return self

    def __exit__(self, *exc) -> None:
        if self._connected_here:
            self._ray.shutdown()
            self._connected_here = False

    def _connect(self) -> None:
        ray = self._ray
        in_main = threading.current_thread() is threading.main_thread()
        sigterm = signal.getsignal(signal.SIGTERM) if in_main else None
        options: dict[str, Any] = {"address": self.address, "logging_level": "warning"}
        if self.address == "local":
            options.update(include_dashboard=False, num_cpus=self.num_cpus)
        try:
            if self.address not in ("auto", "local"):
                _check_reachable(self.address)  # ray.init retries a silent address for minutes
            ray.init(**options)
        except ConnectionError as e:
            reason = str(e).replace("`", "'")  # Ray's words: no parameter names for the CLI
            raise ConnectionError(
                f"`ray` {self.address}: no Ray cluster answers ({reason}); start one with "
                "`ray start --head` (docs/datasets.md#running-on-a-cluster-ray) or use `ray` local"
            ) from None
        finally:
            if in_main and sigterm is not None:  # ray.init replaces it; keep Ctrl-C semantics
                signal.signal(signal.SIGTERM, sigterm)

    @property
    def cpus(self) -> int:
        """CPUs of the cluster now (1 task runs per CPU)."""
        return max(1, int(self._ray.cluster_resources().get("CPU", 1)))

    def _submit(self, fn: Callable[..., T], task: tuple) -> Any:
        if self._remote is None:
            raise RuntimeError("use `with RayCluster(address) as cluster:` before mapping")
        return self._remote.remote(fn, task)

    def imap_unordered(self, fn: Callable[..., T], tasks: list[tuple]) -> Iterator[tuple[int, T]]:
        """`(index, fn(*task))` as tasks finish anywhere on the cluster. All tasks are queued at
        once (Ray schedules them as CPUs free up, and an autoscaler sees the whole demand);
        leaving the loop early cancels those not yet finished."""
        ray = self._ray
        index = {}
        for i, task in enumerate(tasks):
            index[self._submit(fn, task)] = i
        pending = list(index)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    yield index[ref], ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref)

    def imap(self, fn: Callable[..., T], tasks: list[tuple], window: int = 0) -> Iterator[T]:
        """`fn(*task)` in task order, at most `window` tasks in flight (default: twice the
        cluster's CPUs), so that results waiting for an earlier one cannot pile up. Leaving the
        loop early cancels the tasks in flight."""
        ray = self._ray
        window = window or 2 * self.cpus
        pending: deque = deque()
        try:
            for task in tasks:
                pending.append(self._submit(fn, task))
                if len(pending) >= window:
                    yield ray.get(pending.popleft())
            while pending:
                yield ray.get(pending.popleft())
        finally:
            for ref in pending:
                ray.cancel(ref)
