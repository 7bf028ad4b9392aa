"""Group commit for the plan log: one writer thread, one transaction for every plan waiting to be stored.

Each durable commit costs a sync to disk (SQLite `synchronous=FULL`: a few ms), the same for one
record or fifty. Committing each plan on its own caps the service at one plan per sync; here the
writer takes every record that queued while the previous commit ran and stores them together, so
under load the syncs are shared and throughput grows with concurrency, while a lone plan still
commits at once. Each caller's future resolves only after the transaction holding its record has
committed: a plan is still never acknowledged before it is durable.

The writer also remembers whether its last commit failed (`failing`): what /readyz reads to say the plan
log cannot record plans, at no cost to a plan beyond one assignment per commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from service.app.store import PlanRecord

Store = Callable[[list[PlanRecord]], list[PlanRecord]]


class GroupWriter:
    """Stores records handed to `submit` through `store_many`, batching whatever is waiting."""

    def __init__(self, store_many: Store, max_batch: int = 64, name: str = "meridian-write"):
        self._store_many = store_many
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[PlanRecord, Future] | None] = queue.SimpleQueue()
        self._failure: tuple[int, str] | None = None    # (failures so far, why the last one failed)
        self._failures = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, rec: PlanRecord) -> Future:
        """From any thread: a future of the stored record (or of the one already holding its
        idempotency key), resolved once the transaction holding it has committed. A solver thread
        submits its plan itself, so the commit starts without a round trip through the event loop."""
        fut: Future[PlanRecord] = Future()
        self._queue.put((rec, fut))
        return fut

    async def write(self, rec: PlanRecord) -> PlanRecord:
        """`submit`, awaited on the event loop."""
        return await asyncio.wrap_future(self.submit(rec))

    @property
    def failing(self) -> tuple[int, str] | None:
        """While the last commit failed and none has succeeded since: how many commits have failed so far
        and why the last did (its exception's type and first line); else None."""
        return self._failure

    def recovered(self, failures: int) -> None:
        """A write made outside the writer (readiness's probe) committed after `failures` commits had
        failed: the plan log takes writes again. Forgets the failure, unless another commit failed since
        (it would be hidden otherwise)."""
        with self._lock:
            if self._failure is not None and self._failure[0] == failures:
                self._failure = None

    def close(self) -> None:
        """Store what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            try:
                stored = self._store_many([rec for rec, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter learns of the failure
                self._failed(exc)
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            self._failure = None
            for (_, fut), rec in zip(batch, stored, strict=True):
                fut.set_result(rec)

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._failures += 1
            self._failure = (self._failures, describe(exc))


def describe(exc: BaseException) -> str:
    """An exception in one short line: its type and the first line of the database's own words (a
    SQLAlchemy error's `orig`, without the SQL and the link that follow it)."""
    lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
