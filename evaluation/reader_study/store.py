"""Answers in SQLite: one row per reader × case, written the moment a reader submits.

WAL journal with ``synchronous=FULL`` means a committed answer survives the server being killed.
Answers are final: a second answer for the same reader and case is refused (the UNIQUE constraint
decides, so concurrent double submissions cannot both land). A blinded read is not revised after
the reader has seen later cases, as on a paper reading form.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    reader_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    call TEXT NOT NULL CHECK (call IN ('real', 'synthetic')),
    confidence INTEGER NOT NULL CHECK (confidence BETWEEN 1 AND 5),
    diagnosis TEXT NOT NULL CHECK (diagnosis IN ('normal', 'metastasis', 'amyloidosis')),
    grade INTEGER CHECK (grade IS NULL OR grade BETWEEN 1 AND 3),
    answered_at TEXT NOT NULL,
    UNIQUE (reader_id, case_id)
);
"""


@dataclass(frozen=True)
class Answer:
    """One reader's reading of one case."""

    reader_id: str
    case_id: str
    call: str
    confidence: int
    diagnosis: str
    grade: int | None = None
    answered_at: str = ""


class AnswerStore:
    """Thread-safe access to ``answers.sqlite``: every call opens its own short-lived connection."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA busy_timeout=30000")
            yield connection
        finally:
            connection.close()

    def add(self, answer: Answer) -> bool:
        """Store an answer; ``False`` when this reader already answered this case (nothing changes)."""
        stamp = answer.answered_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._connect() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    answer.reader_id,
                    answer.case_id,
                    answer.call,
                    int(answer.confidence),
                    answer.diagnosis,
                    answer.grade,
                    stamp,
                ),
            )
            return cursor.rowcount == 1

    def answered_cases(self, reader_id: str) -> set[str]:
        with self._connect() as connection:
            rows = connection.execute("SELECT case_id FROM answers WHERE reader_id = ?", (reader_id,))
            return {row[0] for row in rows}

    def progress(self) -> dict[str, tuple[int, str]]:
        """Reader id → (answers stored, time of the last one); readers without answers are absent."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT reader_id, COUNT(*), MAX(answered_at) FROM answers GROUP BY reader_id"
            )
            return {row[0]: (int(row[1]), row[2]) for row in rows}

    def all_answers(self) -> list[Answer]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT reader_id, case_id, call, confidence, diagnosis, grade, answered_at FROM answers "
                "ORDER BY reader_id, answered_at"
            )
            return [Answer(*row) for row in rows]
