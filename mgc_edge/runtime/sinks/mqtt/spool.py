"""The on-disk spool of messages on their way to the broker: an append-only log of segment files with a size
and an age limit, read in order by one sender and resumable after the process restarts.

Each record is one line, `TIME<TAB>TOPIC<TAB>PAYLOAD` (payloads are compact JSON, topics have no tab), in
`NNNNNNNNNNNN.log` segments. `cursor.json` holds the position up to which the broker has acknowledged every
record; a restarted process starts reading there (records after it may be sent twice: the events' `run` and
`seq` let a subscriber drop them). A torn last line (a crash mid-write) is cut off on open. When the spool is
over its size, whole segments go, oldest first, and their unsent records are counted as dropped; a record older
than the age limit is dropped when it is read. Lines are flushed to the OS as they are written (a killed
process loses nothing); `sync()` fsyncs the segment and the cursor (the sender calls it about once a second,
never the classifying loop).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mgc_edge.errors import UserError
from mgc_edge.fileio import write_json

CURSOR = "cursor.json"
LOCK = "lock"
SEGMENT_DIVISOR = 8  # a segment is at most 1/8 of the size limit: a full spool drops an eighth at a time
MAX_SEGMENT_BYTES = 8 * 1024 * 1024
Position = tuple[int, int]  # (segment number, byte offset in it)


@dataclass(frozen=True)
class Record:
    """One message read from the spool; `end` is where the next one starts (ack it once the broker has it)."""

    end: Position
    time: float
    topic: str
    payload: bytes


class SpoolBusy(UserError):
    """Another running process owns this spool."""


def _take(folder: Path) -> IO[bytes]:
    """An exclusive lock on the spool for this process (released when it ends, however it ends)."""
    owner = open(folder / LOCK, "ab")
    try:
        fcntl.flock(owner.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner.close()
        raise SpoolBusy(
            f"The MQTT spool {folder} is in use by another running command; give this one its own "
            "--publish-spool (or another --box)."
        ) from None
    return owner


def _name(number: int) -> str:
    return f"{number:012d}.log"


class Spool:
    """The spool in `folder`, opened (or created) and resumed at its cursor. Thread-safe: the loop appends,
    the sender reads, acknowledges and syncs."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        max_age_s: float,
        notify: Callable[[str], None] = lambda _m: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder, self.max_bytes, self.max_age_s = Path(folder), max_bytes, max_age_s
        self.notify, self.clock = notify, clock
        self.segment_bytes = max(4096, min(MAX_SEGMENT_BYTES, max_bytes // SEGMENT_DIVISOR))
        self.folder.mkdir(parents=True, exist_ok=True)
        self._owner = _take(self.folder)
        self._lock = threading.Lock()
        self.dropped = 0  # records lost to the size or age limit
        self._said_full = False
        self._dirty = False
        self._committed = self._read_cursor()
        numbers = sorted(int(p.stem) for p in self.folder.glob("*.log") if p.stem.isdigit())
        for number in [n for n in numbers if n < self._committed[0]]:
            (self.folder / _name(number)).unlink(missing_ok=True)
        self._segments: dict[int, list[int]] = {}  # number -> [bytes, records, records read]
        for number in [n for n in numbers if n >= self._committed[0]]:
            self._segments[number] = self._scan(number)
        if not self._segments:
            self._segments[max(self._committed[0], 0)] = [0, 0, 0]
        self._write_number = max(self._segments)
        self._writer: IO[bytes] = open(self.folder / _name(self._write_number), "ab")
        self._read: Position = (
            self._committed if self._committed[0] in self._segments else (min(self._segments), 0)
        )
        if self._read[0] in self._segments and self._read[1] > 0:
            self._segments[self._read[0]][2] = self._lines_before(self._read)
        self._reader: IO[bytes] | None = None
        self._reader_number = -1

    # -- opening ---------------------------------------------------------------------------------------------
    def _read_cursor(self) -> Position:
        try:
            data = json.loads((self.folder / CURSOR).read_text(encoding="utf-8"))
            return int(data["segment"]), int(data["offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, 0

    def _scan(self, number: int) -> list[int]:
        """[bytes, records, 0] of a segment, its torn last line (no newline) cut off."""
        path = self.folder / _name(number)
        data = path.read_bytes()
        whole = data.rfind(b"\n") + 1
        if whole < len(data):
            with open(path, "r+b") as f:
                f.truncate(whole)
        return [whole, data.count(b"\n", 0, whole), 0]

    def _lines_before(self, position: Position) -> int:
        with open(self.folder / _name(position[0]), "rb") as f:
            return f.read(position[1]).count(b"\n")

    # -- the loop's side -------------------------------------------------------------------------------------
    def append(self, topic: str, payload: str) -> None:
        """Add one message (never blocks on the network; a line written to the OS)."""
        line = f"{self.clock():.3f}\t{topic}\t{payload}\n".encode()
        with self._lock:
            if (
                self._segments[self._write_number][0] + len(line) > self.segment_bytes
                and self._segments[self._write_number][0]
            ):
                self._rotate()
            self._writer.write(line)
            self._writer.flush()
            entry = self._segments[self._write_number]
            entry[0] += len(line)
            entry[1] += 1
            self._dirty = True
            self._enforce_size()

    def _rotate(self) -> None:
        self._writer.close()
        self._write_number += 1
        self._segments[self._write_number] = [0, 0, 0]
        self._writer = open(self.folder / _name(self._write_number), "ab")

    def _enforce_size(self) -> None:
        while sum(s[0] for s in self._segments.values()) > self.max_bytes and len(self._segments) > 1:
            oldest = min(self._segments)
            size, records, read = self._segments.pop(oldest)
            lost = records - read if oldest >= self._read[0] else 0
            self.dropped += lost
            if self._read[0] <= oldest:
                self._read = (min(self._segments), 0)
            if self._reader_number == oldest and self._reader is not None:
                self._reader.close()
                self._reader, self._reader_number = None, -1
            (self.folder / _name(oldest)).unlink(missing_ok=True)
            if lost and not self._said_full:
                self._said_full = True
                self.notify(
                    f"The MQTT spool in {self.folder} is full ({self.max_bytes / 2**20:g} MiB): the oldest "
                    "unsent events are dropped (counted in the summary)."
                )

    # -- the sender's side -----------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Records written and not yet read by the sender."""
        with self._lock:
            return sum(s[1] - s[2] for n, s in self._segments.items() if n >= self._read[0])

    def next(self) -> Record | None:
        """The next unread record, or None when every record has been read; expired ones are skipped."""
        with self._lock:
            while True:
                number, offset = self._read
                entry = self._segments.get(number)
                if entry is None:
                    return None
                if offset >= entry[0]:
                    if number >= self._write_number:
                        return None
                    self._read = (number + 1, 0) if number + 1 in self._segments else (min(self._segments), 0)
                    if self._read[0] <= number:
                        return None
                    continue
                if self._reader_number != number:
                    if self._reader is not None:
                        self._reader.close()
                    self._reader, self._reader_number = open(self.folder / _name(number), "rb"), number
                assert self._reader is not None
                self._reader.seek(offset)
                line = self._reader.readline()
                if not line.endswith(b"\n"):
                    return None  # not all of it flushed yet
                self._read = (number, offset + len(line))
                entry[2] += 1
                stamp, topic, payload = line[:-1].split(b"\t", 2)
                if self.clock() - float(stamp) > self.max_age_s:
                    self.dropped += 1
                    continue
                return Record(self._read, float(stamp), topic.decode(), payload)

    def commit(self, position: Position) -> None:
        """Every record before `position` reached the broker: read segments before it can go."""
        with self._lock:
            if position <= self._committed:
                return
            self._committed = position
            for number in [n for n in self._segments if n < position[0]]:
                self._segments.pop(number)
                if self._reader_number == number and self._reader is not None:
                    self._reader.close()
                    self._reader, self._reader_number = None, -1
                (self.folder / _name(number)).unlink(missing_ok=True)
            self._dirty = True

    def sync(self) -> None:
        """fsync the segment being written and store the cursor (atomically), if anything changed."""
        with self._lock:
            if not self._dirty:
                return
            self._dirty = False
            os.fsync(self._writer.fileno())
            segment, offset = self._committed
        write_json(self.folder / CURSOR, {"segment": segment, "offset": offset})

    def close(self) -> None:
        self.sync()
        with self._lock:
            self._writer.close()
            if self._reader is not None:
                self._reader.close()
            self._owner.close()
