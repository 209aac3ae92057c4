"""WooCommerce deliveries kept on disk while Redis does not answer (WooCommerce never retries): one file per delivery,
written to a temporary name, fsynced and renamed, so a file that exists is whole; drained oldest first once Redis
answers. Several server processes share the folder: each takes a file by renaming it, so one imports it. A file that
cannot be imported for another reason than the store being away is moved to `failed/`, so it never holds back the
ones after it."""
from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)
STALE_TAKE_SECONDS = 300  # a file taken by a process that died is taken again after this


class Spool:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def keep(self, record: dict) -> str:
        """Write one delivery durably; returns its name."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
        temporary = self.folder / f".{name}.tmp"
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(record, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(temporary, self.folder / name)
        descriptor = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)  # the rename itself survives a crash
        finally:
            os.close(descriptor)
        return name

    def pending(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        now = time.time()
        stale = [p for p in self.folder.glob("*.json.taken-*") if now - p.stat().st_mtime > STALE_TAKE_SECONDS]
        for path in stale:
            try:
                os.rename(path, path.with_name(path.name.split(".taken-")[0]))
            except OSError:
                pass
        return sorted(self.folder.glob("*.json"))

    def drain(self, handle: Callable[[dict], object], away: tuple[type[BaseException], ...] = ()) -> int:
        """Hand each kept delivery to `handle`, oldest first, removing it once handled. An `away` error (Redis away
        again) stops the drain with the file kept; any other moves that file to `failed/` (logged by name, never its
        content) and the drain goes on. Returns how many were handled."""
        handled = 0
        for path in self.pending():
            taken = path.with_name(f"{path.name}.taken-{os.getpid()}")
            try:
                os.rename(path, taken)
            except FileNotFoundError:
                continue  # another process took it
            try:
                handle(json.loads(taken.read_text(encoding="utf-8")))
            except away:
                os.rename(taken, path)
                raise
            except Exception as exc:
                failed = self.folder / "failed"
                failed.mkdir(exist_ok=True)
                os.rename(taken, failed / path.name)
                log.error("spool: delivery %s could not be imported (%s); moved to %s for an operator (the rest go "
                          "on)", path.name, type(exc).__name__, failed)
                continue
            taken.unlink()
            handled += 1
        return handled
