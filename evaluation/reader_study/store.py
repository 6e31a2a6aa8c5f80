"""Answers, sessions and access tokens in SQLite, written the moment they change.

WAL journal with ``synchronous=FULL`` means a committed answer survives the server being killed.
Answers are final: a second answer for the same reader and case is refused (the UNIQUE constraint
decides, so concurrent double submissions cannot both land). A blinded read is not revised after
the reader has seen later cases, as on a paper reading form; only its "flag for review" can change.

Sessions live here, not in cookies: the cookie carries a random id whose hash is the row key, so
signing out, idling past the limit or rotating the reader's token deletes the row and any copy of the
cookie stops working, restart or not. Token hashes start from ``study.json`` and are replaced here
when the admin rotates a token.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
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
    seconds REAL,
    flagged INTEGER NOT NULL DEFAULT 0 CHECK (flagged IN (0, 1)),
    UNIQUE (reader_id, case_id)
);
CREATE TABLE IF NOT EXISTS shown (
    reader_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    shown_at REAL NOT NULL,
    PRIMARY KEY (reader_id, case_id)
);
CREATE TABLE IF NOT EXISTS tokens (
    owner TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL,
    issued_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_sha256 TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Answer:
    """One reader's reading of one case; ``seconds`` from first display to answer, measured by the server."""

    reader_id: str
    case_id: str
    call: str
    confidence: int
    diagnosis: str
    grade: int | None = None
    answered_at: str = ""
    seconds: float | None = None
    flagged: bool = False


@dataclass(frozen=True)
class Session:
    """A signed-in reader (or the admin) and the CSRF token of their forms."""

    owner: str
    csrf: str


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

    # answers -----------------------------------------------------------------------------------

    def mark_shown(self, reader_id: str, case_id: str) -> None:
        """Record when a case was first shown to a reader (later displays keep the first time)."""
        with self._connect() as connection:
            connection.execute(
                "INSERT OR IGNORE INTO shown VALUES (?, ?, ?)", (reader_id, case_id, time.time())
            )

    def add(self, answer: Answer) -> bool:
        """Store an answer; ``False`` when this reader already answered this case (nothing changes).

        Without an explicit ``seconds``, the time since the case was first shown is recorded.
        """
        stamp = answer.answered_at or _now()
        with self._connect() as connection:
            seconds = answer.seconds
            if seconds is None:
                row = connection.execute(
                    "SELECT shown_at FROM shown WHERE reader_id = ? AND case_id = ?",
                    (answer.reader_id, answer.case_id),
                ).fetchone()
                seconds = round(time.time() - row[0], 3) if row else None
            cursor = connection.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answer.reader_id,
                    answer.case_id,
                    answer.call,
                    int(answer.confidence),
                    answer.diagnosis,
                    answer.grade,
                    stamp,
                    seconds,
                    int(answer.flagged),
                ),
            )
            return cursor.rowcount == 1

    def set_flag(self, reader_id: str, case_id: str, flagged: bool) -> bool:
        """Flag or unflag a case this reader answered; ``False`` when there is no such answer."""
        with self._connect() as connection:
            cursor = connection.execute(
                "UPDATE answers SET flagged = ? WHERE reader_id = ? AND case_id = ?",
                (int(flagged), reader_id, case_id),
            )
            return cursor.rowcount == 1

    def answers_of(self, reader_id: str) -> dict[str, Answer]:
        """This reader's answers by case id."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT reader_id, case_id, call, confidence, diagnosis, grade, answered_at, seconds, "
                "flagged FROM answers WHERE reader_id = ?",
                (reader_id,),
            )
            return {row[1]: Answer(*row[:8], bool(row[8])) for row in rows}

    def progress(self) -> dict[str, tuple[int, str, int]]:
        """Reader id → (answers stored, time of the last one, flagged); readers without answers are absent."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT reader_id, COUNT(*), MAX(answered_at), SUM(flagged) FROM answers GROUP BY reader_id"
            )
            return {row[0]: (int(row[1]), row[2], int(row[3])) for row in rows}

    def all_answers(self) -> list[Answer]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT reader_id, case_id, call, confidence, diagnosis, grade, answered_at, seconds, "
                "flagged FROM answers ORDER BY reader_id, answered_at"
            )
            return [Answer(*row[:8], bool(row[8])) for row in rows]

    # tokens and sessions -----------------------------------------------------------------------

    def init_tokens(self, hashes: Mapping[str, str]) -> None:
        """Seed the token table from ``study.json`` (owners already present keep a rotated token)."""
        with self._connect() as connection:
            connection.executemany(
                "INSERT OR IGNORE INTO tokens VALUES (?, ?, ?)",
                [(owner, digest, _now()) for owner, digest in hashes.items()],
            )

    def token_hashes(self) -> dict[str, str]:
        with self._connect() as connection:
            return dict(connection.execute("SELECT owner, token_sha256 FROM tokens"))

    def rotate_token(self, owner: str, token_sha256: str) -> None:
        """Replace ``owner``'s token and end all of ``owner``'s sessions in one transaction."""
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute(
                "UPDATE tokens SET token_sha256 = ?, issued_at = ? WHERE owner = ?",
                (token_sha256, _now(), owner),
            )
            connection.execute("DELETE FROM sessions WHERE owner = ?", (owner,))
            connection.execute("COMMIT")

    def open_session(self, owner: str) -> tuple[str, Session]:
        """A new session for ``owner``: the cookie value (only its hash is stored) and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(owner, secrets.token_urlsafe(24))
        now = time.time()
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (_digest(session_id), owner, session.csrf, now, now),
            )
        return session_id, session

    def session(self, session_id: str, idle_seconds: float) -> Session | None:
        """The live session for a cookie value, its idle clock restarted; expired sessions are deleted."""
        now = time.time()
        with self._connect() as connection:
            connection.execute("DELETE FROM sessions WHERE last_seen < ?", (now - idle_seconds,))
            row = connection.execute(
                "SELECT owner, csrf FROM sessions WHERE id_sha256 = ?", (_digest(session_id),)
            ).fetchone()
            if row is None:
                return None
            connection.execute(
                "UPDATE sessions SET last_seen = ? WHERE id_sha256 = ?", (now, _digest(session_id))
            )
            return Session(*row)

    def close_session(self, session_id: str) -> None:
        with self._connect() as connection:
            connection.execute("DELETE FROM sessions WHERE id_sha256 = ?", (_digest(session_id),))
