"""Dynamic batching: concurrent requests for one model are grouped and run through the predictor
once, then answered individually.

A worker task takes the first waiting request and every request queued behind it, up to
``max_batch_size`` texts; when clients are concurrent (the previous batch held several requests)
it also waits up to ``max_delay_ms`` for the batch to fill. The predictor runs in one
dedicated thread per model, so the event loop never blocks and a model never runs concurrently
with itself. ``max_batch_size=1`` turns batching off (requests run one at a time, in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Job:
    texts: Sequence[Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


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
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"textcls-{name}")
        self.task: asyncio.Task | None = None
        self.closing = False
        self.busy = False  # a batch is being predicted
        self.last_jobs = 1  # requests in the previous batch: >1 means concurrent clients

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, texts: Sequence[Any]) -> np.ndarray:
        if self.closing:
            raise RuntimeError("the model is being unloaded")
        self.start()
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Job(list(texts), future))
        return await future

    async def _collect(self) -> list[_Job]:
        """The first waiting job plus every job already queued, up to ``max_batch_size`` texts.

        Under load, requests pile up while the previous batch runs, so they batch with no added
        wait. When the last batch held several requests (concurrent clients), the worker also
        waits up to ``max_delay_ms`` until as many have arrived; a lone client never waits."""
        jobs = [await self.queue.get()]
        self.busy = True  # from here until answered, close() waits for these jobs
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
            finally:
                self.busy = False
            if self.on_batch is not None:
                self.on_batch(len(texts))
            start = 0
            for job in jobs:
                end = start + len(job.texts)
                if not job.future.done():
                    job.future.set_result(probabilities[start:end])
                start = end

    async def close(self) -> None:
        """Finish what is queued, then stop the worker and its thread."""
        self.closing = True
        while self.task is not None and (self.busy or not self.queue.empty()):
            await asyncio.sleep(0.005)
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=True)
