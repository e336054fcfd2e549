"""Early stopping for alignment training: dev retrieval at the aligned layer every N steps, best adapter kept.

The score is the mean over languages of retrieval accuracy (both directions) among each language's dev pairs, by
raw cosine (what midalign-analyze measures, whatever space the loss takes its cosine in), at
step 0 (the base model: the LoRA update starts at exactly zero) and every `every` optimizer steps and at the last
step. Whenever it beats the best so far the adapter is saved to OUT/best; after `patience` scores without
improvement training stops. The run's final adapter is the best one, so a run whose training never helps dev
retrieval ends with the zero update (the base model) instead of a worse adapter. Other metrics the scorer returns
(the same retrieval with each language's states centred, as midalign-analyze --center) are logged beside it.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState

from midalign import distributed

logger = logging.getLogger(__name__)

DEV_COLUMNS = ("step", "lang", "retrieval_acc", "centered_retrieval_acc")
SELECTION = "retrieval_acc"  # the metric that picks the best step


@dataclass
class DevMonitor:
    """Called after every optimizer step (`Trainer.train(on_step=...)`); returns whether to stop."""

    score: Callable[[], dict[str, dict[str, float]]]  # {metric: {lang: value}} on dev (main process only)
    save: Callable[[int], None]  # save the current adapter as the best (main process only)
    every: int
    patience: int
    last_step: int
    path: Path
    state: PartialState
    best: float = -math.inf
    best_step: int | None = None
    since_best: int = 0
    history: list[tuple[int, str, float]] = field(default_factory=list)  # (step, lang, selection metric)
    extra: dict[tuple[int, str], dict[str, float]] = field(default_factory=dict)  # the other metrics
    started: bool = False

    def due(self, step: int) -> bool:
        """Whether dev retrieval is scored after optimizer step `step`."""
        return step == 0 or step % self.every == 0 or step == self.last_step

    def __call__(self, step: int) -> bool:
        if not self.started:  # a resumed run redoes the steps after its checkpoint: their scores go
            self.started = True
            if self.state.is_main_process:
                self.forget_from(step)
        if not self.due(step):
            return False
        stop = False
        if self.state.is_main_process:
            metrics = self.score()
            scores = metrics[SELECTION]
            mean = sum(scores.values()) / len(scores)
            self.history += [(step, lang, value) for lang, value in scores.items()] + [(step, "mean", mean)]
            for metric, values in metrics.items():
                if metric != SELECTION:
                    for lang, value in {**values, "mean": sum(values.values()) / len(values)}.items():
                        self.extra.setdefault((step, lang), {})[metric] = value
            self._write()
            self._recount()
            if self.best_step == step:
                self.save(step)
            stop = self.patience > 0 and self.since_best >= self.patience and step < self.last_step
            logger.info(
                "dev retrieval at step %d: %.4f (best %.4f at step %d)%s",
                step, mean, self.best, self.best_step, "; stopping early" if stop else "",
            )  # fmt: skip
        return bool(distributed.broadcast(self.state, stop))

    def _write(self) -> None:
        with self.path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(DEV_COLUMNS)
            for step, lang, value in self.history:
                other = self.extra.get((step, lang), {})
                writer.writerow([step, lang, f"{value:.6g}", *(_cell(other.get(name)) for name in DEV_COLUMNS[3:])])

    def _recount(self) -> None:
        """Best score, its step and the scores since, from the history of mean scores."""
        self.best, self.best_step, self.since_best = -math.inf, None, 0
        for step, lang, value in self.history:
            if lang != "mean":
                continue
            if value > self.best:
                self.best, self.best_step, self.since_best = value, step, 0
            else:
                self.since_best += 1

    def restore(self) -> None:
        """Take up the scores an interrupted run wrote (steps redone after its checkpoint are scored again)."""
        if not self.path.exists():
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        self.history = [(int(r["step"]), r["lang"], float(r[SELECTION])) for r in rows]
        self.extra = {
            (int(r["step"]), r["lang"]): {name: float(r[name]) for name in DEV_COLUMNS[3:] if r.get(name)} for r in rows
        }
        self._recount()

    def forget_from(self, step: int) -> None:
        """Drop the scores of step `step` on, then recount the best."""
        self.history = [row for row in self.history if row[0] < step]
        self.extra = {key: value for key, value in self.extra.items() if key[0] < step}
        if self.history:
            self._write()
        else:
            self.path.unlink(missing_ok=True)
        self._recount()

    def result(self) -> dict:
        """What the run's record says about the selection."""
        means = [(step, value) for step, lang, value in self.history if lang == "mean"]
        return {
            "best_step": self.best_step,
            "dev_retrieval_best": None if self.best_step is None else round(self.best, 6),
            "dev_retrieval_start": means[0][1] if means else None,
            "stopped_early": bool(means) and means[-1][0] < self.last_step,
            "adapter": "best dev step" if self.best_step is not None else "last step",
        }


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
