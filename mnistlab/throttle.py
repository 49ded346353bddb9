"""A brake on guessing a secret: wrong guesses are counted per session, per client (its address) and for the whole
server over a sliding window, and a guess waits while a count it belongs to is at its limit.

A reload makes a new session, so the client's count is what holds a guesser back; the server-wide count stops many
clients guessing together, but applies only to clients that have guessed wrong themselves, so that a class trying
its luck cannot lock the teacher out of the Teacher page.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

SERVER = "server"


class GuessThrottle:
    def __init__(self, per_session: int = 5, per_client: int = 10, per_server: int = 30, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.limits = {"session": per_session, "client": per_client, "server": per_server}
        self.window, self.clock = window, clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, session: str, client: str) -> float:
        """Seconds until a guess from ``session`` at ``client`` may be checked; 0 when it may be now."""
        with self._lock:
            now = self.clock()
            waits = [self._wait(f"s:{session}", self.limits["session"], now),
                     self._wait(f"c:{client}", self.limits["client"], now)]
            if self._recent(f"c:{client}", now):  # the server-wide brake holds only clients that guessed wrong
                waits.append(self._wait(SERVER, self.limits["server"], now))
            return max(waits)

    def failed(self, session: str, client: str) -> None:
        """Count a wrong guess from ``session`` at ``client``."""
        keys = (f"s:{session}", f"c:{client}", SERVER)
        with self._lock:
            now = self.clock()
            for key in [k for k in self._failures if k not in keys]:
                if not self._recent(key, now):
                    del self._failures[key]  # forget idle sessions: the table stays as small as the window's count
            for key in keys:
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


# One per server process, outside Streamlit's caches: any browser can ask the server to clear those.
shared = GuessThrottle()
