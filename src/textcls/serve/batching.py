"""Dynamic batching: concurrent requests for one model are grouped and run through the predictor
once, then answered individually.

A worker task takes the first waiting request and every request queued behind it, up to
``max_batch_size`` texts; when clients are concurrent (the previous batch held several requests)
it also waits up to ``max_delay_ms`` for the batch to fill. The predictor runs in one
dedicated thread per model, so the event loop never blocks and a model never runs concurrently
with itself. ``max_batch_size=1`` turns batching off (requests run one at a time, in order).

That thread is a daemon: a predictor call that is still running when shutdown gives up on it
(``close(timeout)``) cannot keep the process alive, as a ``ThreadPoolExecutor`` thread would
(those are joined at interpreter exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class _Job:
    texts: Sequence[Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class DaemonExecutor(Executor):
    """One daemon thread running submitted calls in order."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._closed:
            raise RuntimeError("the executor is shut down")
        future: Future = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to the awaiting request, never lost
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        self._calls.put(None)
        if wait:
            self._thread.join()


class DynamicBatcher:
    """``await batcher.submit(texts)`` → probabilities [len(texts), labels] for those texts."""

    def __init__(
        self,
        predict_proba: Callable[[Sequence[Any]], np.ndarray],
        max_batch_size: int = 32,
        max_delay_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
        name: str = "model",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.predict_proba = predict_proba
        self.max_batch_size = max_batch_size
        self.max_delay = max(0.0, max_delay_ms) / 1000
        self.on_batch = on_batch
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.executor = DaemonExecutor(f"textcls-{name}")
        self.task: asyncio.Task | None = None
        self.closing = False
        self.pending: set[_Job] = set()  # submitted, not yet answered
        self.last_jobs = 1  # requests in the previous batch: >1 means concurrent clients

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, texts: Sequence[Any]) -> np.ndarray:
        if self.closing:
            raise RuntimeError("the model is being unloaded")
        self.start()
        future = asyncio.get_running_loop().create_future()
        job = _Job(list(texts), future)
        self.pending.add(job)
        future.add_done_callback(lambda _: self.pending.discard(job))
        await self.queue.put(job)
        return await future

    async def _collect(self) -> list[_Job]:
        """The first waiting job plus every job already queued, up to ``max_batch_size`` texts.

        Under load, requests pile up while the previous batch runs, so they batch with no added
        wait. When the last batch held several requests (concurrent clients), the worker also
        waits up to ``max_delay_ms`` until as many have arrived; a lone client never waits."""
        jobs = [await self.queue.get()]
        size = len(jobs[0].texts)
        deadline = jobs[0].queued + (self.max_delay if self.last_jobs > 1 else 0.0)
        while size < self.max_batch_size:
            if not self.queue.empty():
                job = self.queue.get_nowait()
            elif len(jobs) >= self.last_jobs:
                break  # as many requests as last time: the concurrent clients are all here
            else:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            size += len(job.texts)
        self.last_jobs = len(jobs)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            texts = [text for job in jobs for text in job.texts]
            try:
                probabilities = await loop.run_in_executor(self.executor, self.predict_proba, texts)
            except Exception as error:  # one bad batch fails its own requests, never the worker
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            if self.on_batch is not None:
                self.on_batch(len(texts))
            start = 0
            for job in jobs:
                end = start + len(job.texts)
                if not job.future.done():
                    job.future.set_result(probabilities[start:end])
                start = end

    async def close(self, timeout: float | None = None) -> None:
        """Finish the work someone still waits for (at most ``timeout`` seconds), then stop the
        worker. Jobs whose requests were cancelled are not waited for; jobs still unanswered at
        the timeout fail with a RuntimeError, and a predictor call still running is left to its
        daemon thread."""
        self.closing = True
        deadline = None if timeout is None else time.perf_counter() + timeout
        while self.task is not None and self._awaited():
            if deadline is not None and time.perf_counter() >= deadline:
                break
            await asyncio.sleep(0.005)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        for job in list(self.pending):
            if not job.future.done():
                job.future.set_exception(RuntimeError("the model was unloaded before this request ran"))
        self.executor.shutdown(wait=False)

    def _awaited(self) -> bool:
        return any(not job.future.done() for job in self.pending)
