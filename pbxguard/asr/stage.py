"""The transcript stage in the daemon: which verdicts it looks at, its worker threads, its time budget."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pbxguard.asr import Transcript
from pbxguard.asr.engines import Engine
from pbxguard.asr.evidence import REVISABLE, revised
from pbxguard.screener.verdict import Verdict

log = logging.getLogger("pbxguard.transcript")

BLANK_CHECKED = ("silence",)  # dead air: is there really no word?


class TranscriptStage:
    """`revise(verdict, samples)`: the verdict, with the transcript's evidence when the stage ran in time.

    `workers` threads (the engines' C code releases the GIL); at most that many transcripts at once: a call
    that finds them all busy goes on without one rather than queue behind them (a burst must not delay every
    verdict by the budget)."""

    def __init__(self, engine: Engine, workers: int = 1, budget_ms: float = 800.0, unsure_below: float = 0.85,
                 store_words: bool = False) -> None:
        self.engine = engine
        self.workers = workers
        self.budget_ms = budget_ms
        self.unsure_below = unsure_below
        self.store_words = store_words
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pbxguard-transcript")
        self.running = 0

    def wanted(self, verdict: Verdict) -> bool:
        """Only where the transcript can change the decision, or check a blank call."""
        if verdict.proven:
            return False
        return (verdict.label in REVISABLE and verdict.confidence < self.unsure_below) or verdict.label in BLANK_CHECKED

    def transcribe(self, samples: np.ndarray) -> Transcript:
        start = time.thread_time()
        words = self.engine.transcribe(samples)
        return Transcript(words, self.engine.name, 1000.0 * (time.thread_time() - start))

    def revise_now(self, verdict: Verdict, samples: np.ndarray) -> Verdict:
        """In this thread, no budget: for `pbxguard eval`."""
        return revised(verdict, self.transcribe(samples), self.store_words) if self.wanted(verdict) else verdict

    async def revise(self, verdict: Verdict, samples: np.ndarray) -> Verdict:
        if not self.wanted(verdict) or not len(samples):
            return verdict
        if self.running >= self.workers:
            return self._without(verdict, "busy")
        self.running += 1
        job = asyncio.get_running_loop().run_in_executor(self.executor, self.transcribe, samples)
        job.add_done_callback(self._finished)
        try:
            transcript = await asyncio.wait_for(asyncio.shield(job), self.budget_ms / 1000.0)
        except TimeoutError:
            return self._without(verdict, "late")
        except Exception as exc:  # an engine error must not cost the call its verdict
            log.error("transcript: %s failed: %s", self.engine.name, exc)
            return self._without(verdict, "error")
        return revised(verdict, transcript, self.store_words)

    def _finished(self, _job: asyncio.Future) -> None:
        self.running -= 1

    def _without(self, verdict: Verdict, why: str) -> Verdict:
        return dataclasses.replace(verdict, evidence={**verdict.evidence, "transcript": {"engine": self.engine.name,
                                                                                          "skipped": why}})

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
