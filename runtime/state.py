"""Durable local state in one SQLite file: Model Registry, models, step cache and callbacks.

Every change is one transaction, so an interrupted run leaves the state as it was before or after
the change, and two runs in the same workspace serialise on the database lock instead of
clobbering each other.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT = "000000000000"
PENDING = "PendingManualApproval"
APPROVED = "Approved"
REJECTED = "Rejected"

SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name TEXT PRIMARY KEY, description TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS model_packages (
    arn TEXT PRIMARY KEY, group_name TEXT NOT NULL, version INTEGER NOT NULL,
    status TEXT NOT NULL, approval_description TEXT, execution_id TEXT,
    created REAL NOT NULL, updated REAL NOT NULL, request TEXT NOT NULL,
    UNIQUE (group_name, version));
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY, execution_id TEXT, created REAL NOT NULL, request TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS step_cache (
    pipeline TEXT NOT NULL, step TEXT NOT NULL, cache_key TEXT NOT NULL,
    execution_id TEXT NOT NULL, finished REAL NOT NULL, properties TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS step_cache_lookup ON step_cache (pipeline, step, cache_key);
CREATE TABLE IF NOT EXISTS callbacks (
    token TEXT PRIMARY KEY, execution_id TEXT NOT NULL, step TEXT NOT NULL,
    queue_url TEXT, message TEXT NOT NULL, status TEXT NOT NULL,
    outputs TEXT, failure_reason TEXT, created REAL NOT NULL, answered REAL);
"""


class StateError(ValueError):
    """A request the local services refuse, with the reason and the fix."""


@dataclass(frozen=True)
class CacheHit:
    execution_id: str
    finished: float
    properties: dict[str, Any]


@dataclass(frozen=True)
class Callback:
    token: str
    execution_id: str
    step: str
    message: dict[str, Any]
    status: str  # pending | succeeded | failed
    outputs: dict[str, str]
    failure_reason: str | None


class LocalState:
    """The local stand-ins for the Model Registry, CreateModel, step caching and callbacks."""

    def __init__(self, path: Path, region: str = "us-east-1") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.region = region
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    # Model Registry -------------------------------------------------------------------------

    def ensure_group(self, name: str, description: str = "") -> bool:
        """Create a model package group if absent; True when it was created."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO model_package_groups VALUES (?, ?, ?)",
                (name, description, time.time()),
            )
            return cursor.rowcount == 1

    def register_package(self, request: dict[str, Any], execution_id: str) -> dict[str, Any]:
        """CreateModelPackage in a group: the next version, with the requested approval status."""
        group = request.get("ModelPackageGroupName")
        if not group:
            raise StateError("RegisterModel: ModelPackageGroupName is required for a version")
        status = request.get("ModelApprovalStatus") or PENDING
        if status not in (PENDING, APPROVED, REJECTED):
            raise StateError(
                f"ModelApprovalStatus {status!r} is not one of {PENDING}, {APPROVED}, {REJECTED}"
            )
        now = time.time()
        with self._transaction() as db:
            if not db.execute(
                "SELECT 1 FROM model_package_groups WHERE name = ?", (group,)
            ).fetchone():
                raise StateError(
                    f"model package group {group!r} does not exist; create it first "
                    "(the local run creates the configured group before it starts)"
                )
            (latest,) = db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM model_packages WHERE group_name = ?",
                (group,),
            ).fetchone()
            version = latest + 1
            arn = (
                f"arn:aws:sagemaker:{self.region}:{ACCOUNT}:model-package/{group.lower()}/{version}"
            )
            db.execute(
                "INSERT INTO model_packages VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?)",
                (arn, group, version, status, execution_id, now, now, json.dumps(request)),
            )
        return self.package(arn)

    def package(self, arn: str) -> dict[str, Any]:
        """DescribeModelPackage."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT arn, group_name, version, status, approval_description, execution_id, "
                "created, updated, request FROM model_packages WHERE arn = ?",
                (arn,),
            ).fetchone()
        if row is None:
            raise StateError(f"model package {arn!r} does not exist")
        return _package(row)

    def packages(self, group: str | None = None) -> list[dict[str, Any]]:
        """ListModelPackages (newest first), optionally in one group."""
        query = (
            "SELECT arn, group_name, version, status, approval_description, execution_id, "
            "created, updated, request FROM model_packages"
        )
        with self._transaction() as db:
            if group is None:
                rows = db.execute(query + " ORDER BY group_name, version DESC").fetchall()
            else:
                rows = db.execute(
                    query + " WHERE group_name = ? ORDER BY version DESC", (group,)
                ).fetchall()
        return [_package(row) for row in rows]

    def latest_approved(self, group: str) -> dict[str, Any] | None:
        approved = [p for p in self.packages(group) if p["ModelApprovalStatus"] == APPROVED]
        return approved[0] if approved else None

    def set_approval(self, arn: str, status: str, description: str = "") -> dict[str, Any]:
        """UpdateModelPackage(ModelApprovalStatus, ApprovalDescription)."""
        if status not in (APPROVED, REJECTED, PENDING):
            raise StateError(f"approval status {status!r} is not one of {APPROVED}, {REJECTED}")
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE model_packages SET status = ?, approval_description = ?, updated = ? "
                "WHERE arn = ?",
                (status, description, time.time(), arn),
            )
            if cursor.rowcount != 1:
                raise StateError(f"model package {arn!r} does not exist")
        return self.package(arn)

    # Models -----------------------------------------------------------------------------------

    def create_model(self, name: str, request: dict[str, Any], execution_id: str) -> None:
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone():
                raise StateError(f"Cannot create already existing model {name!r}")
            db.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?)",
                (name, execution_id, time.time(), json.dumps(request)),
            )

    def model(self, name: str) -> dict[str, Any]:
        with self._transaction() as db:
            row = db.execute("SELECT request FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StateError(f"model {name!r} does not exist")
        request: dict[str, Any] = json.loads(row[0])
        return request

    # Step cache -------------------------------------------------------------------------------

    def cache_lookup(
        self, pipeline: str, step: str, key: str, max_age_seconds: float | None
    ) -> CacheHit | None:
        """The most recent successful run of this step with the same key, within the expiry."""
        oldest = 0.0 if max_age_seconds is None else time.time() - max_age_seconds
        with self._transaction() as db:
            row = db.execute(
                "SELECT execution_id, finished, properties FROM step_cache WHERE pipeline = ? "
                "AND step = ? AND cache_key = ? AND finished >= ? ORDER BY finished DESC LIMIT 1",
                (pipeline, step, key, oldest),
            ).fetchone()
        return None if row is None else CacheHit(row[0], row[1], json.loads(row[2]))

    def cache_store(
        self, pipeline: str, step: str, key: str, execution_id: str, properties: dict[str, Any]
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO step_cache VALUES (?, ?, ?, ?, ?, ?)",
                (pipeline, step, key, execution_id, time.time(), json.dumps(properties)),
            )

    # Callbacks --------------------------------------------------------------------------------

    def open_callback(
        self, token: str, execution_id: str, step: str, queue_url: str, message: dict[str, Any]
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO callbacks VALUES (?, ?, ?, ?, ?, 'pending', NULL, NULL, ?, NULL)",
                (token, execution_id, step, queue_url, json.dumps(message), time.time()),
            )

    def callbacks(
        self, execution_id: str | None = None, status: str | None = None
    ) -> list[Callback]:
        query = (
            "SELECT token, execution_id, step, message, status, outputs, failure_reason "
            "FROM callbacks"
        )
        clauses, args = [], []
        if execution_id is not None:
            clauses.append("execution_id = ?")
            args.append(execution_id)
        if status is not None:
            clauses.append("status = ?")
            args.append(status)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._transaction() as db:
            rows = db.execute(query + " ORDER BY created", args).fetchall()
        return [
            Callback(r[0], r[1], r[2], json.loads(r[3]), r[4], json.loads(r[5] or "{}"), r[6])
            for r in rows
        ]

    def answer_callback(
        self, token: str, outputs: dict[str, str] | None = None, failure_reason: str | None = None
    ) -> Callback:
        """SendPipelineExecutionStepSuccess (outputs) or ...Failure (failure_reason)."""
        status = "failed" if failure_reason is not None else "succeeded"
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE callbacks SET status = ?, outputs = ?, failure_reason = ?, answered = ? "
                "WHERE token = ? AND status = 'pending'",
                (status, json.dumps(outputs or {}), failure_reason, time.time(), token),
            )
            if cursor.rowcount != 1:
                raise StateError(f"callback {token!r} is not pending; nothing was answered")
        (answered,) = [c for c in self.callbacks() if c.token == token]
        return answered


def _package(row: tuple[Any, ...]) -> dict[str, Any]:
    arn, group, version, status, description, execution_id, created, updated, request = row
    return {
        **json.loads(request),
        "ModelPackageArn": arn,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelApprovalStatus": status,
        "ApprovalDescription": description,
        "ExecutionId": execution_id,
        "CreationTime": created,
        "LastModifiedTime": updated,
    }
