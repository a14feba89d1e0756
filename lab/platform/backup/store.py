"""Jobs, restore points and backup policies in SQLite, so they outlive a fabric restart.

The fabric's data volume holds the database (``/var/lib/snaplab/backup.sqlite``): a
trainer who restarts the fabric mid-drill still sees the jobs that ran, and the next
settings sequence number continues where it was (an agent that has seen sequence
number 7 ignores settings numbered 1 again), and the VMs stay on their policies. One
connection shared by every job thread behind a lock; each record is the object's own
JSON, with the columns queries need.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.platform.backup.job import Job, JobStatus
from lab.platform.backup.policy import Policy
from lab.platform.backup.restore_point import RestorePoint

DEFAULT_DB_PATH = Path("/var/lib/snaplab/backup.sqlite")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    ordinal INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL UNIQUE,
    vm      TEXT NOT NULL,
    status  TEXT NOT NULL,
    seq_no  INTEGER,
    record  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_vm ON jobs (vm, ordinal);
CREATE TABLE IF NOT EXISTS restore_points (
    ordinal INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    vm      TEXT NOT NULL,
    job_id  TEXT NOT NULL,
    record  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS restore_points_by_vm ON restore_points (vm, ordinal);
CREATE TABLE IF NOT EXISTS policies (
    name    TEXT PRIMARY KEY,
    record  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS protected_items (
    vm      TEXT PRIMARY KEY,
    policy  TEXT NOT NULL,
    ordinal INTEGER NOT NULL
);
"""


class BackupStore:
    """Persistent jobs and restore points; safe to share between threads."""

    def __init__(self, path: Path | str = DEFAULT_DB_PATH) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        with self._db:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:
            yield self._db

    # ------------------------------------------------------------------ jobs

    @staticmethod
    def _upsert(db: sqlite3.Connection, job: Job) -> None:
        db.execute(
            "INSERT INTO jobs (job_id, vm, status, seq_no, record) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id) DO UPDATE SET "
            "status = excluded.status, seq_no = excluded.seq_no, record = excluded.record",
            (job.job_id, job.vm, str(job.status), job.seq_no, json.dumps(job.to_record())),
        )

    def save_job(self, job: Job) -> None:
        with self._transaction() as db:
            self._upsert(db, job)

    def finish_job(self, job: Job, restore_point: RestorePoint) -> None:
        """Save a completed job and its restore point together (never one alone)."""
        with self._transaction() as db:
            self._upsert(db, job)
            db.execute(
                "INSERT INTO restore_points (id, vm, job_id, record) VALUES (?, ?, ?, ?)",
                (
                    restore_point.id,
                    restore_point.vm,
                    restore_point.job_id,
                    json.dumps(restore_point.to_record()),
                ),
            )

    def job(self, job_id: str) -> Job | None:
        with self._transaction() as db:
            row = db.execute("SELECT record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return Job.from_record(json.loads(row[0])) if row else None

    def jobs(self, vm: str | None = None) -> list[Job]:
        """Newest first."""
        with self._transaction() as db:
            if vm is None:
                rows = db.execute("SELECT record FROM jobs ORDER BY ordinal DESC").fetchall()
            else:
                rows = db.execute(
                    "SELECT record FROM jobs WHERE vm = ? ORDER BY ordinal DESC", (vm,)
                ).fetchall()
        return [Job.from_record(json.loads(row[0])) for row in rows]

    def in_progress(self, vm: str | None = None) -> list[Job]:
        """Jobs still running (or whose worker died with the previous fabric)."""
        query = "SELECT record FROM jobs WHERE status = ?"
        args: tuple[str, ...] = (str(JobStatus.IN_PROGRESS),)
        if vm is not None:
            query += " AND vm = ?"
            args += (vm,)
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY ordinal DESC", args).fetchall()
        return [Job.from_record(json.loads(row[0])) for row in rows]

    def max_seq_no(self, vm: str) -> int | None:
        """The highest settings sequence number any job sent this VM."""
        with self._transaction() as db:
            row = db.execute("SELECT MAX(seq_no) FROM jobs WHERE vm = ?", (vm,)).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    # ------------------------------------------------------------------ restore points

    def restore_points(self, vm: str) -> list[RestorePoint]:
        """Newest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT record FROM restore_points WHERE vm = ? ORDER BY ordinal DESC", (vm,)
            ).fetchall()
        return [RestorePoint.from_record(json.loads(row[0])) for row in rows]

    def count_restore_points(self, vm: str) -> int:
        with self._transaction() as db:
            row = db.execute("SELECT COUNT(*) FROM restore_points WHERE vm = ?", (vm,)).fetchone()
        return int(row[0])

    # ------------------------------------------------------------------ policies

    def save_policy(self, policy: Policy) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO policies (name, record) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                (policy.name, json.dumps(policy.to_record())),
            )

    def policy(self, name: str) -> Policy | None:
        with self._transaction() as db:
            row = db.execute("SELECT record FROM policies WHERE name = ?", (name,)).fetchone()
        return Policy.from_record(json.loads(row[0])) if row else None

    def policies(self) -> list[Policy]:
        with self._transaction() as db:
            rows = db.execute("SELECT record FROM policies ORDER BY name").fetchall()
        return [Policy.from_record(json.loads(row[0])) for row in rows]

    def protect(self, vm: str, policy: str) -> None:
        """Put a VM on a policy (moving it from any other); it joins the policy last."""
        with self._transaction() as db:
            row = db.execute("SELECT COALESCE(MAX(ordinal), 0) FROM protected_items").fetchone()
            db.execute(
                "INSERT INTO protected_items (vm, policy, ordinal) VALUES (?, ?, ?) "
                "ON CONFLICT (vm) DO UPDATE SET policy = excluded.policy, "
                "ordinal = excluded.ordinal",
                (vm, policy, int(row[0]) + 1),
            )

    def unprotect(self, vm: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM protected_items WHERE vm = ?", (vm,))

    def policy_of(self, vm: str) -> str | None:
        with self._transaction() as db:
            row = db.execute("SELECT policy FROM protected_items WHERE vm = ?", (vm,)).fetchone()
        return str(row[0]) if row else None

    def protected_vms(self, policy: str) -> list[str]:
        """The policy's VMs in the order they joined it (the order its runs start them)."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT vm FROM protected_items WHERE policy = ? ORDER BY ordinal", (policy,)
            ).fetchall()
        return [str(row[0]) for row in rows]
