"""Which servers are alive: each holds an exclusive lock on a file of its own for as long as it lives.

The OS drops a process's locks when it dies, even by SIGKILL, so a starting server can tell the runs a dead server
left behind (recover them) from those a live one is still training (leave them alone), with no heartbeat to miss.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,200}")  # what ServerLock names a server: a plain file name

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class ServerLock:
    def __init__(self, folder: Path):
        self.folder = folder
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:60] or "host"
        self.server = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # this server's name: a plain file name
        self._file = None

    def _path(self, server: str) -> Path:
        return self.folder / f"{server}.lock"

    def hold(self) -> None:
        """Take this server's lock (once); an OSError says why it cannot be taken, and leaves no file behind."""
        if self._file is not None:
            return
        self.folder.mkdir(exist_ok=True)
        f = open(self._path(self.server), "a+")
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                self._path(self.server).unlink(missing_ok=True)
                raise
        self._file = f

    def release(self) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        self._path(self.server).unlink(missing_ok=True)

    def alive(self, server: object) -> bool:
        """Whether the server that wrote a row still runs; a dead one's lock file is removed."""
        if server == self.server:
            return True
        if not isinstance(server, str) or not NAME.fullmatch(server):
            return False  # a damaged row names no server that could be alive
        if fcntl is None:  # no flock (Windows): only this process's own stores are known to be alive
            return False
        path = self._path(server)
        try:
            with open(path, "a+") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # we got it: its owner is gone
        except BlockingIOError:
            return True
        except OSError:
            return False
        path.unlink(missing_ok=True)
        return False
