"""Group commit: the writes of many concurrent requests in one transaction.

Each request hands its :class:`~twin.store.documents.Write` to the writer and waits. One task
takes everything that is waiting (up to ``max_batch``), stores it in one transaction on a
worker thread (the event loop keeps accepting requests meanwhile), and only then wakes the
requests, which answer. So a request is acknowledged only after the commit that holds it,
and under load the cost of a commit is shared by every request that arrived while the last
one ran. If a batch fails, its writes are retried one by one, so one bad write cannot fail
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from twin.store import Store
from twin.store.documents import Write, write_batch

log = logging.getLogger("twin.serve")


class Writer:
    """The process's single writer task and its queue."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 256,
        on_commit: Callable[[list[Write]], None] | None = None,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.on_commit = on_commit
        self._queue: asyncio.Queue[tuple[Write, asyncio.Future[Write]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="twin-serve-writer")

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._queue is not None:
            while not self._queue.empty():
                await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def submit(self, write: Write) -> Write:
        """Store ``write``; returns it with its statuses once committed (raises what the
        database raised if it could not be)."""
        if self._queue is None:
            raise RuntimeError("the writer is not started")
        fut: asyncio.Future[Write] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((write, fut))
        # a client that goes away does not cancel the write: it is committed, or not, whole
        return await asyncio.shield(fut)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            writes = [w for w, _ in batch]
            errors = await asyncio.to_thread(self._commit, writes)
            self.batches += 1
            for (w, fut), err in zip(batch, errors, strict=True):
                if fut.done():
                    continue
                if err is None:
                    fut.set_result(w)
                else:
                    fut.set_exception(err)

    def _commit(self, writes: list[Write]) -> list[BaseException | None]:
        try:
            write_batch(self.store, writes)
            done: list[BaseException | None] = [None] * len(writes)
        except Exception as exc:
            if len(writes) == 1:
                log.exception("a write failed")
                done = [exc]
            else:
                log.warning("a batch of %d writes failed; writing them one by one", len(writes))
                done = []
                for w in writes:
                    try:
                        write_batch(self.store, [w])
                        done.append(None)
                    except Exception as exc:
                        log.exception("a write failed")
                        done.append(exc)
        if self.on_commit is not None:
            self.on_commit([w for w, e in zip(writes, done, strict=True) if e is None])
        return done


__all__ = ["Writer"]
