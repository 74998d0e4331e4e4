"""Independent runs of a study on an existing Dask distributed cluster (`--cluster ADDRESS`).

`echorand sim participation` and `echorand sim consensus --seeds N` send each run to the
cluster's workers (`dask-scheduler` / `dask-worker`, or any `distributed` deployment that
has echorand installed) instead of local processes. A run is a pure function of its
configuration and seed, and the results are put back in their order, so a cluster gives
the same results as local processes for the same seeds. Needs the `cluster` extra
(`pip install 'echorand[cluster]'`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["ClusterError", "run_on_cluster"]

T = TypeVar("T")
R = TypeVar("R")


class ClusterError(RuntimeError):
    """No cluster at the address, or no Dask distributed installed."""


def _client(address: str, timeout: float) -> Any:
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(
            "--cluster needs Dask distributed: pip install 'echorand[cluster]'"
        ) from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"no Dask scheduler at {address}: {e}") from None


def run_on_cluster(
    address: str,
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    on_result: Callable[[int, R], None] | None = None,
    timeout: float = 30.0,
) -> tuple[list[R], int]:
    """(`[fn(item) for item in items]` computed on the cluster's workers, the number of
    workers). `on_result(index, result)` is called as each run finishes, in any order."""
    from distributed import as_completed

    client = _client(address, timeout)
    try:
        workers = len(client.scheduler_info().get("workers", {}))
        futures = client.map(fn, list(items), pure=False)
        index = {future.key: i for i, future in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        for future in as_completed(futures):
            i = index[future.key]
            results[i] = future.result()
            if on_result is not None:
                on_result(i, results[i])
        return results, workers
    finally:
        client.close()
