"""Partitions on a Dask cluster: a territory's pieces (partitioning/towns.py) as tasks, the
join at the end; and where the cluster comes from (a ``LocalCluster`` of worker processes
sized to the machine, or the scheduler at an address).

The engine never runs in the calling process: a piece is one task (``partition_piece``),
placed by the scheduler on any worker, retried on another when its worker dies (Dask's own
rule: ``distributed.scheduler.allowed-failures``), and a task that keeps killing workers
fails the partition with :class:`WorkerLost`. A piece's data reaches a worker once: the
caller scatters the pieces it cut (the CLI), or a task cuts them where the territory is read
(the service's jobs read the store on a worker); a piece lost with its worker is sent
again. The grids never depend on the number of workers.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gis.errors import ComputeUnavailable
from partitioning.engine import PartitionResult
from partitioning.params import PartitionParams
from partitioning.towns import Piece, PieceResult, Split, join, partition_piece

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

log = logging.getLogger("gridmap.cluster")
#: Times a piece whose scattered data was lost with its worker is sent again.
RESEND = 3
#: Nice value of the threads that run the service's engine tasks (the web server stays
#: responsive on a machine shared with its workers; GRIDMAP_DASK_NICE); the CLI's run at 0.
SERVICE_NICE = 10
#: How often (s) a driver waiting for the pieces looks at them (and checks for a stop).
POLL_S = 0.05
#: Streamed pieces a worker holds at a time: one running, the next one waiting.
DEPTH = 2

Progress = Callable[[str, float, int, int], None]


class Cancelled(Exception):
    """The partition was stopped (cancelled, timed out, or its server is stopping)."""


class WorkerLost(Exception):
    """A piece's task could not finish: the workers running it died (each retry too)."""


class ClusterLost(Exception):
    """The scheduler is unreachable (it stopped, or the network is down)."""


def machine_workers() -> int:
    """Worker processes for a LocalCluster sized to the machine: the CPUs this process may
    use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


async def warm_up() -> None:
    """Run on each worker as it is reached (a coroutine: Dask runs only those without
    waiting for them): unpickling this function imported the engine (partitioning.towns and
    geopandas, ~0.7 s), so the first piece does not wait for it."""


#: Modules a LocalCluster's worker processes start with (loaded once, in the process they
#: are forked from).
PRELOAD = ("distributed", "partitioning.towns")
#: What Dask's nanny sets for a worker process it spawns (``distributed.nanny.
#: pre-spawn-environ``), which a forked worker takes from its parent instead.
WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1",
                  "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _fork_workers() -> None:
    """Start worker processes from a fork server that has loaded Dask and the engine
    (:data:`PRELOAD`) once, instead of spawning each as a new interpreter that loads them
    again: on the 2-core machine the cluster is ready ~1 s sooner while the territory is
    read beside it, and the workers share the loaded code's memory. Not where the platform
    has no fork server (Windows, macOS keep Dask's default)."""
    import multiprocessing

    import dask

    if sys.platform != "linux" or "forkserver" not in multiprocessing.get_all_start_methods():
        return
    for key, value in WORKER_ENVIRON.items():   # (read when the fork server starts)
        os.environ.setdefault(key, value)
    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    from distributed.utils import get_mp_context

    get_mp_context().set_forkserver_preload(list(PRELOAD))


def start_local_cluster(workers: int = 0, memory_limit: str | float = "auto"
                        ) -> LocalCluster:
    """A scheduler in this process and ``workers`` worker processes (0: one per CPU), one
    thread each: the engine holds the GIL, so processes, not threads, run pieces side by
    side. The workers are forked from a process that has loaded the engine
    (:func:`_fork_workers`)."""
    import dask
    from distributed import LocalCluster

    _fork_workers()
    # Dask's statistical profiler samples each task's stack every 10 ms, holding the GIL
    # the engine needs: the 53 pieces of the 1.4 M district took 25.9 s on one worker with
    # it, 20.3 s without (same run). Its only use is the dashboard's profile page.
    dask.config.set({"distributed.worker.profile.enabled": False})
    n = workers if workers > 0 else machine_workers()
    return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                        memory_limit=memory_limit, dashboard_address=":0",
                        scheduler_port=0, silence_logs=logging.WARNING)


@dataclass
class Compute:
    """The cluster a process sends its work to: an existing scheduler (``address``) or a
    LocalCluster started on first use (and closed with :meth:`close`)."""

    address: str = ""
    workers: int = 0
    _client: Client | None = None
    _cluster: LocalCluster | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Client:
        """The client (connecting, or starting the LocalCluster, on first use);
        :class:`ComputeUnavailable` when the scheduler cannot be reached."""
        with self._lock:
            if self._client is None or self._client.status in ("closed", "closing"):
                from distributed import Client

                try:
                    if self.address:
                        self._client = Client(self.address, timeout="10s",
                                              set_as_default=False)
                    else:
                        self._cluster = start_local_cluster(self.workers)
                        self._client = Client(self._cluster, set_as_default=False)
                    # The workers load the engine now, while the caller reads the
                    # territory (not waited for), not when the first piece reaches them.
                    with contextlib.suppress(Exception):
                        self._client.run(warm_up, wait=False)
                except (OSError, TimeoutError) as exc:
                    where = self.address or "a new LocalCluster"
                    raise ComputeUnavailable(
                        f"计算集群不可用 the Dask scheduler at {where} could not be reached "
                        f"({exc}): start it (docs/scale.md) or set GRIDMAP_DASK_SCHEDULER"
                    ) from exc
            return self._client

    @property
    def scheduler(self) -> str:
        """The scheduler's address (starting the LocalCluster if it is the one)."""
        return str(self.client().scheduler_info()["address"])

    def run(self, fn: Callable[..., Any], *args: Any, timeout: float | None = None,
            **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on a worker; its result (its exception raised here)."""
        future = self.client().submit(fn, *args, pure=False, **kwargs)
        try:
            return future.result(timeout=timeout)
        finally:
            future.release()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
            if self._cluster is not None:
                with contextlib.suppress(Exception):
                    self._cluster.close()
            self._client = self._cluster = None


_shared: dict[tuple[str, int], Compute] = {}
_shared_lock = threading.Lock()


def shared_compute(address: str = "", workers: int = 0) -> Compute:
    """The one :class:`Compute` of this process for a scheduler address (or for a
    LocalCluster of ``workers``): every app and command of the process shares it, and it
    is closed when the process exits."""
    with _shared_lock:
        compute = _shared.get((address, workers))
        if compute is None:
            compute = _shared[(address, workers)] = Compute(address, workers)
            if len(_shared) == 1:
                atexit.register(_close_shared)
        return compute


def _close_shared() -> None:
    with _shared_lock:
        for compute in _shared.values():
            compute.close()
        _shared.clear()


def lower_priority(nice: int) -> None:
    """Run this thread (a worker's task thread) at least at ``nice``."""
    if nice <= 0 or getattr(_niced, "value", 0) >= nice:
        return
    with contextlib.suppress(OSError, AttributeError):
        # Linux applies a nice value per thread: this thread, not the worker's others.
        os.setpriority(os.PRIO_PROCESS, 0, max(os.getpriority(os.PRIO_PROCESS, 0), nice))
    _niced.value = nice


_niced = threading.local()


def run_piece(piece: Piece, params: PartitionParams, stop: str | None = None,
              nice: int = 0) -> PieceResult:
    """A piece's task: the engine on it (its thread at ``nice``), stopped early when the
    event ``stop`` is set."""
    lower_priority(nice)
    worker = ""
    check: Callable[[], None] | None = None
    with contextlib.suppress(ValueError, ImportError):
        from distributed import Event, get_worker

        worker = str(get_worker().address)
        if stop:
            event = Event(stop)

            def check() -> None:
                if event.is_set():
                    raise Cancelled(f"stopped ({stop})")
    result = partition_piece(piece, params, check)
    result.worker = worker
    return result


def split_keys(split: Split) -> list[tuple[str, int]]:
    """(key, households) of each piece, in order (small: sent back to the driver)."""
    return list(split.sizes)


def split_crs(split: Split) -> Any:
    return split.crs


def piece_of(split: Split, i: int) -> Piece:
    return split.piece(i)


@dataclass
class Run:
    """The futures of one partition on the cluster, and how it went."""

    client: Client
    name: str
    futures: list[Future] = field(default_factory=list)
    stop_event: str = ""
    resent: int = 0

    def cancel(self) -> None:
        """Cancel every task of the run still pending; running pieces stop at their next
        progress report."""
        with contextlib.suppress(Exception):
            from distributed import Event

            Event(self.stop_event, client=self.client).set()
        with contextlib.suppress(Exception):
            self.client.cancel(self.futures, force=True)

    def release(self) -> None:
        with contextlib.suppress(Exception):
            from distributed import Event

            Event(self.stop_event, client=self.client).clear()
        with contextlib.suppress(Exception):
            self.client.cancel(self.futures, force=True)
        self.futures.clear()


def new_run(client: Client, name: str | None = None) -> Run:
    name = name or uuid.uuid4().hex[:12]
    return Run(client, name, stop_event=f"gridmap-stop-{name}")


def run_pieces(run: Run, pieces: Sequence[Future] | None, sizes: Sequence[tuple[str, int]],
               params: PartitionParams, *, progress: Progress | None = None,
               stop: Callable[[], bool] | None = None, deadline: float | None = None,
               resend: Callable[[int, str | None], Future] | None = None, nice: int = 0,
               fetch: bool = False) -> list[Any]:
    """Submit a task per piece (the biggest first) and wait for all of them; the futures of
    their results (kept on the workers), or with ``fetch`` the results themselves, each
    fetched as soon as its piece ends (a worker lost later takes no finished piece with
    it). ``stop()`` is polled while waiting (True:
    :class:`Cancelled`), ``deadline`` is a ``time.monotonic()`` limit (:class:`TimeoutError`),
    ``resend(i, worker)`` scatters piece ``i`` to ``worker`` (any, when None), also again
    when its data was lost with a worker.

    ``pieces`` None: the pieces are streamed with ``resend``. Each worker is sent at most
    :data:`DEPTH` pieces at a time (one running, the next waiting), the next piece to the
    worker with the fewest, so the pieces go to whichever worker is free first and both
    finish together (pieces placed all at once ended up to 1.5 s apart); and a piece is
    cut only when it is sent."""
    from distributed.client import FutureCancelledError

    client = run.client
    if pieces is None and resend is None:
        raise ValueError("run_pieces: without the pieces' futures, resend must send them")
    total = len(sizes)
    queue = deque(sorted(range(total), key=lambda i: -sizes[i][1]))
    pending: dict[Future, int] = {}
    placed: dict[Future, str] = {}          # a streamed piece's task -> its data's worker
    load: dict[str, int] = {}               # streamed pieces on each worker, not finished

    def submit(i: int, worker: str | None = None) -> None:
        key, households = sizes[i]
        if pieces is not None:
            source, where = pieces[i], {}
        else:
            assert resend is not None
            source = resend(i, worker)
            where = {"workers": [worker], "allow_other_workers": True} if worker else {}
        fut = client.submit(run_piece, source, params, run.stop_event, nice,
                            key=f"gridmap-{run.name}-piece-{key}-{run.resent}",
                            priority=int(households), pure=False, **where)
        run.futures.append(fut)
        pending[fut] = i
        if worker:
            placed[fut] = worker
            load[worker] = load.get(worker, 0) + 1

    def workers() -> None:
        """The live workers (a worker may leave, a restarted one has a new address, and a
        cluster may grow while the pieces run)."""
        live = set(client.scheduler_info().get("workers", {}))
        for gone in set(load) - live:
            del load[gone]
        for new in live - set(load):
            load[new] = 0

    def feed() -> None:
        if pieces is None and queue:
            workers()
        while queue:
            if pieces is not None:
                submit(queue.popleft())
                continue
            worker = min(load, key=lambda w: (load[w], w)) if load else None
            if worker is not None and load[worker] >= DEPTH:
                return
            submit(queue.popleft(), worker)

    feed()
    done: dict[int, Any] = {}
    sends = [0] * total
    while pending:
        if stop is not None and stop():
            raise Cancelled("stopped")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError("the partition ran out of time")
        ready = [f for f in pending if f.done()]
        if not ready:
            time.sleep(POLL_S)
            continue
        for fut in ready:
            i = pending.pop(fut)
            worker = placed.pop(fut, None)
            if worker in load:
                load[worker] -= 1
            exc: BaseException | None = None
            if fut.status == "finished":
                if not fetch:
                    done[i] = fut
                else:
                    try:
                        done[i] = fut.result(timeout=60)
                    except Exception as err:  # (its worker died before it was sent back)
                        exc = err
                    else:
                        fut.release()
                if i in done:
                    if progress is not None:
                        progress(sizes[i][0], len(done) / total, len(done), total)
                    continue
            exc = exc or _exception(fut)
            lost = fut.status in ("cancelled", "lost", "finished") or \
                isinstance(exc, FutureCancelledError | KeyError | CancelledError)
            if lost and resend is not None and sends[i] < RESEND:
                sends[i] += 1
                run.resent += 1
                log.warning("piece %s lost with its worker: sending it again", sizes[i][0])
                workers()
                submit(i, min(load, key=lambda w: (load[w], w)) if load else None)
                continue
            if _is_killed(exc):
                raise WorkerLost(
                    f"the workers computing town {sizes[i][0]} died while they ran it "
                    f"(killed, or out of memory), also when it was retried: {exc}") from exc
            if exc is not None:
                raise exc
            raise WorkerLost(f"the task of town {sizes[i][0]} was lost ({fut.status})")
        feed()
    return [done[i] for i in range(total)]


def _exception(fut: Future) -> BaseException | None:
    try:
        return fut.exception(timeout=5)
    except BaseException as exc:  # (a cancelled future raises here)
        return exc


def _is_killed(exc: BaseException | None) -> bool:
    return exc is not None and type(exc).__name__ == "KilledWorker"


def join_results(crs: Any, params: PartitionParams, split_s: float,
                 *results: PieceResult) -> PartitionResult:
    """The join as a task: the pieces' results as one partition."""
    return join(list(results), crs, params, split_s=split_s)


def partition_on_cluster(client: Client, split: Split, params: PartitionParams, *,
                         progress: Progress | None = None,
                         stop: Callable[[], bool] | None = None,
                         timeout_s: float = 0.0, nice: int = 0) -> PartitionResult:
    """The pieces of ``split`` (cut in this process) partitioned on the cluster and joined
    here: the CLI's and the benchmark's way. Each piece is scattered to a worker once, just
    before its task is submitted (the biggest first); a lazy split
    (``split_territory(..., lazy=True)``) cuts each piece only then, so the workers start
    on the first pieces while the rest are being cut."""
    started = time.perf_counter()
    run = new_run(client)
    try:
        sizes = list(split.sizes)

        def resend(i: int, worker: str | None) -> Future:
            piece = split.piece(i)
            if worker:
                with contextlib.suppress(Exception):   # (gone since: any worker then)
                    return client.scatter(piece, workers=[worker], hash=False)
            return client.scatter(piece, hash=False)

        deadline = time.monotonic() + timeout_s if timeout_s > 0 else None
        results = run_pieces(run, None, sizes, params, progress=progress, stop=stop,
                             deadline=deadline, resend=resend, nice=nice, fetch=True)
        result = join(results, split.crs, params, started=started, split_s=split.seconds)
        result.report["resent_pieces"] = run.resent
        return result
    except BaseException:
        run.cancel()
        raise
    finally:
        run.release()


def worker_memory(client: Client) -> dict[str, int]:
    """Each worker's proportional set size now (bytes; Linux), by address."""
    def pss() -> int:
        try:
            with open("/proc/self/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    return {str(k): int(v) for k, v in client.run(pss).items()}
