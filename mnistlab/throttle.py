"""A brake on guessing a secret: wrong guesses are counted per session and for the whole server over a sliding
window, and a guess is refused while either count is at its limit.

Per session alone is not enough (a reload makes a new session), and per server alone would let one student lock
the teacher out for long; both together slow a guesser to ``per_server`` tries a window, whatever they do.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

SERVER = ""  # the key of the server-wide count


class GuessThrottle:
    def __init__(self, per_session: int = 5, per_server: int = 30, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.limits = {"session": per_session, "server": per_server}
        self.window, self.clock = window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, session: str) -> float:
        """Seconds until ``session`` may guess again; 0 when it may now."""
        with self._lock:
            now = self.clock()
            return max(self._wait(session, self.limits["session"], now),
                       self._wait(SERVER, self.limits["server"], now))

    def failed(self, session: str) -> None:
        """Count a wrong guess from ``session``."""
        with self._lock:
            now = self.clock()
            for key in [k for k in self._failures if k not in (session, SERVER)]:
                if not self._recent(key, now):
                    del self._failures[key]  # forget idle sessions: the table stays as small as the window's count
            for key in (session, SERVER):
                self._failures[key] = self._recent(key, now)
                self._failures[key].append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        """``key``'s failures within the window (an empty deque, not stored, for a key with none)."""
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._recent(key, now)
        return 0.0 if len(times) < limit else times[-limit] + self.window - now
