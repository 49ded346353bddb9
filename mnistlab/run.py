"""A training run as the pages see it, and the checks a stored run must pass before any page shows it.

A run's record comes back from a registry row or a checkpoint file, either of which a full disk can damage or a
person can forge. ``checked`` rebuilds a ``Run`` only from fields of the right type and range (an unknown status, a
spec that does not parse, an epoch whose accuracy is text...) and raises ``RecordError`` otherwise, so that one bad
record is left out of every page instead of breaking them all.

Whether a run counts for the challenge is never read from the record: it is judged again from the run's own spec
and config (``rules.judge``), and a run restored from a checkpoint file counts only once its weights have been
re-evaluated to the accuracy its history claims (``origin``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import records, rules
from .arch import ArchSpec, SpecError, count_params
from .records import RecordError

STATUSES = ("queued", "running", "finished", "cancelled", "failed", "interrupted")
ACTIVE = ("queued", "running")
# Where a run's record came from: trained by a server ("trained"); rebuilt from a checkpoint file ("restored"),
# then re-evaluated on the test set: its history confirmed ("verified") or contradicted ("mismatch").
ORIGINS = ("trained", "restored", "verified", "mismatch")
COUNTS = ("trained", "verified")  # the origins whose runs can count for the challenge
RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # also the checkpoint's file name: no path can hide in one
MAX_TEXT = 2000  # characters of a stored error message or device name shown on a page


@dataclass
class Run:
    """One training run: what the registry holds, plus live progress while it is active."""

    id: str
    owner: str  # the browser session that submitted it: "my runs" and the one-job rule
    student_name: str  # the name the student typed; always shown as plain text
    name: str  # the network's name
    spec: dict[str, Any]
    config: dict[str, Any]
    params: int
    epochs: int  # planned; ``epochs_done`` says how many completed
    status: str = "queued"
    device: str = ""
    precision: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    checkpoint_path: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    origin: str = "trained"
    # live only, never stored:
    queue_position: int | None = None  # 1 = next to run; None when not queued
    batch: int = 0
    batches: int = 0
    stage: str = ""  # "training" or "evaluating" while it runs
    # (epochs done as a fraction, e.g. 1.5 = half-way through epoch 2; that batch's training loss): the curve that
    # moves within an epoch, ~50 points an epoch
    batch_losses: list[tuple[float, float]] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    @property
    def progress(self) -> float:
        """Fraction of all batches done, 0..1."""
        if self.status == "finished":
            return 1.0
        if not self.epochs or not self.batches:
            return self.epochs_done / self.epochs if self.epochs else 0.0
        return min(1.0, (self.epochs_done * self.batches + self.batch) / (self.epochs * self.batches))

    @property
    def final_test_accuracy(self) -> float | None:
        """The last epoch's test accuracy of a finished run (never a best-epoch pick)."""
        return self.history[-1]["test_accuracy"] if self.history and self.status == "finished" else None

    @property
    def train_seconds(self) -> float:
        return sum(h["seconds"] for h in self.history)

    def verdict(self) -> rules.Verdict:
        """Each challenge rule and whether this run meets it (the accuracy first, once it has finished)."""
        return _verdict(json.dumps(self.spec, sort_keys=True), json.dumps(self.config, sort_keys=True),
                        self.final_test_accuracy)

    @property
    def challenge_eligible(self) -> bool:
        """Every rule but the accuracy met, judged from the run's own spec and config, and a record that can be
        trusted (trained here, or restored and re-evaluated): the leaderboard's filter."""
        return self.origin in COUNTS and self.verdict().eligible


@lru_cache(maxsize=1024)
def _verdict(spec_json: str, config_json: str, final: float | None) -> rules.Verdict:
    """Judging builds the network (to look for nn.Linear in it): cached, since a page judges every run each second."""
    return rules.judge(ArchSpec.from_dict(json.loads(spec_json)),
                       rules.TrainingRecord.from_config(json.loads(config_json)), final)


def checked(fields: dict[str, Any], history: Any) -> Run:
    """A Run from a stored record's fields and its epochs, each checked; RecordError names the first bad field."""
    run_id = fields.get("id")
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise RecordError("its id is not one the server makes")
    spec, config = fields.get("spec"), fields.get("config")
    try:
        parsed = ArchSpec.from_dict(spec)
        planned = rules.TrainingRecord.from_config(config)
    except (SpecError, ValueError) as e:
        raise RecordError(f"its network or settings are damaged ({e})") from None
    status, origin = fields.get("status"), fields.get("origin", "trained")
    if status not in STATUSES or origin not in ORIGINS:
        raise RecordError("its status is not one the server writes")
    epochs_run = records.history(history)
    if len(epochs_run) > planned.epochs or (status == "finished" and len(epochs_run) != planned.epochs):
        raise RecordError(f"it records {len(epochs_run)} epochs of {planned.epochs}")
    return Run(id=run_id, owner=_text(fields.get("owner")), student_name=_text(fields.get("student_name")),
               name=parsed.name, spec=parsed.to_dict(), config=config, params=count_params(parsed),
               epochs=planned.epochs,
               status=status, device=_text(fields.get("device")), precision=_text(fields.get("precision")),
               history=epochs_run, error=_text(fields.get("error")) or None,
               submitted_at=_time(fields.get("submitted_at")) or 0.0, started_at=_time(fields.get("started_at")),
               ended_at=_time(fields.get("ended_at")), origin=origin)


def _text(v: Any, longest: int = MAX_TEXT) -> str:
    """Stored text as plain text: anything else becomes empty, and it is cut to ``longest`` characters."""
    if not isinstance(v, str):
        return ""
    return v[:longest].encode("utf-8", "replace").decode("utf-8")


def _time(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e11:
        return None
    return float(v)
