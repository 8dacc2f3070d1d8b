"""Durable local state in one SQLite file: Model Registry, models, step cache and callbacks.

Every change is one transaction, so an interrupted run leaves the state as it was before or after
the change, and two runs in the same workspace serialise on the database lock instead of
clobbering each other.

The file is checked when it is opened: a damaged file (truncated, overwritten, not SQLite), a
database of another program or of a newer version of this one, a read-only or full disk each
raise :class:`runtime.files.WorkspaceError` naming the file and the fix, never a traceback. A
workspace on a read-only disk can still be read (the registry listed); writing to it is refused.
A state file of an earlier version is upgraded in place.

Like the service, the local registry refuses to register, create or approve a model whose
artifacts are not there (CreateModel: "Could not find model data at ..."): every ``S3Uri``,
``ModelDataUrl`` and ``SAGEMAKER_SUBMIT_DIRECTORY`` a request names must exist in the store.

Just over 500 lines: one class over one database file, whose tables share one schema, one
version check and one transaction discipline; split by table, that discipline would be repeated.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from runtime.files import NO_PERMISSION, READ_ONLY, WorkspaceError, fault_message
from runtime.store import LocalS3, StoreError
from tabular.contract import ApprovalStatus

ACCOUNT = "000000000000"

APPLICATION_ID = 0x54585042
"""``PRAGMA application_id`` of this package's state files (a database of another program has
another, or tables this one does not know)."""
SCHEMA_VERSION = 2
"""``PRAGMA user_version``: 0 before versions were recorded, 2 since the step cache records
each entry's outputs."""
LOCK_TIMEOUT_SECONDS = 60.0
REFERENCE_KEYS = frozenset({"S3Uri", "ModelDataUrl", "SAGEMAKER_SUBMIT_DIRECTORY"})
"""Request fields that name an artifact which must exist before it is registered or served."""

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
    execution_id TEXT NOT NULL, finished REAL NOT NULL, properties TEXT NOT NULL,
    outputs TEXT);
CREATE INDEX IF NOT EXISTS step_cache_lookup ON step_cache (pipeline, step, cache_key);
CREATE TABLE IF NOT EXISTS callbacks (
    token TEXT PRIMARY KEY, execution_id TEXT NOT NULL, step TEXT NOT NULL,
    queue_url TEXT, message TEXT NOT NULL, status TEXT NOT NULL,
    outputs TEXT, failure_reason TEXT, created REAL NOT NULL, answered REAL);
"""
TABLES = {
    "model_package_groups": ("name", "description", "created"),
    "model_packages": (
        "arn", "group_name", "version", "status", "approval_description", "execution_id",
        "created", "updated", "request",
    ),
    "models": ("name", "execution_id", "created", "request"),
    "step_cache": (
        "pipeline", "step", "cache_key", "execution_id", "finished", "properties", "outputs"
    ),
    "callbacks": (
        "token", "execution_id", "step", "queue_url", "message", "status", "outputs",
        "failure_reason", "created", "answered",
    ),
}  # fmt: skip
UPGRADES = {"step_cache": {"outputs": "ALTER TABLE step_cache ADD COLUMN outputs TEXT"}}
"""Columns later versions added, and how a state file of version 0 gets them."""


class CallbackStatus(StrEnum):
    """A callback of the local queue: waiting for its answer, or answered either way."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class StateError(ValueError):
    """A request the local services refuse, with the reason and the fix."""


@dataclass(frozen=True)
class CacheHit:
    execution_id: str
    finished: float
    properties: dict[str, Any]
    outputs: dict[str, Any]


@dataclass(frozen=True)
class Callback:
    token: str
    execution_id: str
    step: str
    message: dict[str, Any]
    status: CallbackStatus
    outputs: dict[str, str]
    failure_reason: str | None


class LocalState:
    """The local stand-ins for the Model Registry, CreateModel, step caching and callbacks.

    With a ``store``, requests that name artifacts are checked against it (see the module).
    """

    def __init__(self, path: Path, region: str = "us-east-1", store: LocalS3 | None = None) -> None:
        self.path = path
        self.region = region
        self.store = store
        if path.is_dir():
            raise WorkspaceError(
                f"{path} is a directory, but it is where the local state database (Model "
                f"Registry, step cache, approvals) lives: move it away (`mv {path} "
                f"{path}.moved`) and run again; a new, empty state is created."
            )
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            # A read-only disk (or folder) can still be read; any other fault is reported.
            if error.errno not in READ_ONLY | NO_PERMISSION:
                raise WorkspaceError(fault_message(error, folder)) from None
        self.read_only = not os.access(folder, os.W_OK)
        if self.read_only:
            return
        with self._transaction(write=True) as db:
            self._check(db)

    # Opening and checking -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_SECONDS, isolation_level=None)
            _wait_for_wal(db)
            return db
        if not self.path.is_file():
            # Nothing has run in this read-only workspace: an empty registry.
            db = sqlite3.connect(":memory:", isolation_level=None)
            db.executescript(SCHEMA)
            return db
        # A read-only disk cannot hold the WAL index; `immutable` reads the file as it is
        # (https://www.sqlite.org/uri.html#uriimmutable).
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        self._check(db)
        return db

    def _check(self, db: sqlite3.Connection) -> None:
        """Refuse a damaged or foreign database; upgrade one of an earlier version."""
        (integrity,) = db.execute("PRAGMA quick_check(1)").fetchone()
        if integrity != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {integrity}")
        (application,) = db.execute("PRAGMA application_id").fetchone()
        (version,) = db.execute("PRAGMA user_version").fetchone()
        found = {
            table: tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))
            for (table,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
        if application not in (0, APPLICATION_ID) or set(found) - set(TABLES):
            raise WorkspaceError(
                f"{self.path} is a SQLite database of another program (tables "
                f"{sorted(found)}), not the local state of this package: move it away (`mv "
                f"{self.path} {self.path}.other`) and run again, or use another workspace."
            )
        if version > SCHEMA_VERSION:
            raise WorkspaceError(
                f"{self.path} was written by a newer version of this package (state version "
                f"{version}, this one reads up to {SCHEMA_VERSION}): run that version, or use "
                "another workspace for this one."
            )
        for table, columns in found.items():
            expected = TABLES[table]
            upgraded = tuple(c for c in expected if c not in UPGRADES.get(table, {}))
            if columns != expected and not (version < SCHEMA_VERSION and columns == upgraded):
                raise WorkspaceError(
                    f"{self.path}: table {table} has the columns {list(columns)}, not "
                    f"{list(expected)}; the file is not this package's local state. Move it "
                    f"away (`mv {self.path} {self.path}.other`) and run again."
                )
        if self.read_only or (version == SCHEMA_VERSION and application == APPLICATION_ID):
            return
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        for table, added in UPGRADES.items():
            for column, statement in added.items():
                if table in found and column not in found[table]:
                    db.execute(statement)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _fault(self, error: sqlite3.Error) -> WorkspaceError | None:
        """The WorkspaceError for a SQLite error of the file or the disk; None for others."""
        name = getattr(error, "sqlite_errorname", "") or ""
        moved = f"`mv {self.path} {self.path}.damaged`"
        if name == "SQLITE_FULL" or "disk is full" in str(error):
            return WorkspaceError(
                f"no space left on the device holding {self.path} ({error}): free space there "
                f"(`df -h {self.path.parent}`); the state is as it was before the change."
            )
        if name.startswith("SQLITE_READONLY"):
            return WorkspaceError(
                f"{self.path} cannot be written ({error}): remount the workspace read-write, "
                "make the file writable for this user, or use another workspace."
            )
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return WorkspaceError(
                f"{self.path} stayed locked by another process for {LOCK_TIMEOUT_SECONDS:.0f} s "
                f"({error}): wait for the other run or approval to finish, then try again."
            )
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR")) or (
            type(error) is sqlite3.DatabaseError
        ):
            return WorkspaceError(
                f"{self.path} is damaged ({error}). It holds the local Model Registry, step "
                f"cache and approvals. Move it away ({moved}) and run again: a new, empty state "
                "is created and every step runs again (the artifacts under s3/ are kept)."
            )
        if name.startswith("SQLITE_CANTOPEN"):
            return WorkspaceError(
                f"{self.path} cannot be opened ({error}): check that its folder exists and is "
                "readable and writable for this user, or use another workspace."
            )
        return None

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        if write and self.read_only:
            raise WorkspaceError(
                f"{self.path.parent} is read-only for this process, so the local state "
                f"{self.path.name} cannot change: remount the workspace read-write, give this "
                "user write access, or use another workspace."
            )
        try:
            db = self._connect()
        except sqlite3.Error as error:
            raise (self._fault(error) or error) from None
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as error:
            raise (self._fault(error) or error) from None
        finally:
            db.close()

    def _require_artifacts(self, request: dict[str, Any], what: str, fix: str) -> None:
        """Refuse a request that names an artifact the store does not hold."""
        if self.store is None:
            return
        missing = []
        for field, uri in _references(request):
            try:
                present = bool(self.store.objects(uri))
            except StoreError:
                continue  # not a location of this store (e.g. a real S3 bucket elsewhere)
            if not present:
                missing.append(f"{field} {uri!r} (local store: {self.store.path(uri)})")
        if missing:
            raise StateError(f"{what}: {'; '.join(missing)} does not exist. {fix}")

    # Model Registry -------------------------------------------------------------------------

    def ensure_group(self, name: str, description: str = "") -> bool:
        """Create a model package group if absent; True when it was created."""
        with self._transaction(write=True) as db:
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
        status = request.get("ModelApprovalStatus") or ApprovalStatus.PENDING
        if status not in set(ApprovalStatus):
            raise StateError(
                f"ModelApprovalStatus {status!r} is not one of {', '.join(ApprovalStatus)}"
            )
        self._require_artifacts(
            request,
            "RegisterModel",
            "Nothing was registered. Run the pipeline again: a step whose outputs are gone runs "
            "again instead of being reused from the cache.",
        )
        now = time.time()
        with self._transaction(write=True) as db:
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
        approved = [
            p for p in self.packages(group) if p["ModelApprovalStatus"] == ApprovalStatus.APPROVED
        ]
        return approved[0] if approved else None

    def set_approval(self, arn: str, status: str, description: str = "") -> dict[str, Any]:
        """UpdateModelPackage(ModelApprovalStatus, ApprovalDescription)."""
        if status not in set(ApprovalStatus):
            raise StateError(
                f"approval status {status!r} is not one of {', '.join(ApprovalStatus)}"
            )
        if status == ApprovalStatus.APPROVED:
            self._require_artifacts(
                self.package(arn),
                f"model package {arn} cannot be approved",
                "Reject it, then run the pipeline again to register a complete version.",
            )
        with self._transaction(write=True) as db:
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
        """CreateModel; a model the same execution created before (an earlier attempt of a
        resumed step) is replaced, one of another execution is refused as the service does."""
        self._require_artifacts(
            request,
            f"CreateModel {name}",
            "Run the pipeline again: a step whose outputs are gone runs again instead of being "
            "reused from the cache.",
        )
        with self._transaction(write=True) as db:
            row = db.execute("SELECT execution_id FROM models WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != execution_id:
                raise StateError(f"Cannot create already existing model {name!r}")
            db.execute(
                "INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)",
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
        self,
        pipeline: str,
        step: str,
        key: str,
        max_age_seconds: float | None,
        usable: Callable[[dict[str, Any]], bool],
    ) -> CacheHit | None:
        """The most recent successful run of this step with the same key, within the expiry,
        whose recorded outputs are still ``usable`` (an entry without a record is not)."""
        oldest = 0.0 if max_age_seconds is None else time.time() - max_age_seconds
        with self._transaction() as db:
            rows = db.execute(
                "SELECT execution_id, finished, properties, outputs FROM step_cache "
                "WHERE pipeline = ? AND step = ? AND cache_key = ? AND finished >= ? "
                "ORDER BY finished DESC",
                (pipeline, step, key, oldest),
            ).fetchall()
        for execution_id, finished, properties, outputs in rows:
            if outputs is not None and usable(json.loads(outputs)):
                return CacheHit(execution_id, finished, json.loads(properties), json.loads(outputs))
        return None

    def cache_store(
        self,
        pipeline: str,
        step: str,
        key: str,
        execution_id: str,
        properties: dict[str, Any],
        outputs: dict[str, Any],
    ) -> None:
        """Record a successful step with what it published (see LocalS3.manifest)."""
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO step_cache VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    pipeline, step, key, execution_id, time.time(), json.dumps(properties),
                    json.dumps(outputs),
                ),
            )  # fmt: skip

    # Callbacks --------------------------------------------------------------------------------

    def open_callback(
        self, token: str, execution_id: str, step: str, queue_url: str, message: dict[str, Any]
    ) -> None:
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO callbacks VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL)",
                (
                    token,
                    execution_id,
                    step,
                    queue_url,
                    json.dumps(message),
                    CallbackStatus.PENDING,
                    time.time(),
                ),  # fmt: skip
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
            Callback(
                r[0],
                r[1],
                r[2],
                json.loads(r[3]),
                CallbackStatus(r[4]),
                json.loads(r[5] or "{}"),
                r[6],
            )
            for r in rows
        ]

    def answer_callback(
        self, token: str, outputs: dict[str, str] | None = None, failure_reason: str | None = None
    ) -> Callback:
        """SendPipelineExecutionStepSuccess (outputs) or ...Failure (failure_reason)."""
        status = CallbackStatus.FAILED if failure_reason is not None else CallbackStatus.SUCCEEDED
        with self._transaction(write=True) as db:
            cursor = db.execute(
                "UPDATE callbacks SET status = ?, outputs = ?, failure_reason = ?, answered = ? "
                "WHERE token = ? AND status = ?",
                (
                    status,
                    json.dumps(outputs or {}),
                    failure_reason,
                    time.time(),
                    token,
                    CallbackStatus.PENDING,
                ),  # fmt: skip
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


def _references(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field path, URI) of every artifact a request names (see REFERENCE_KEYS)."""
    if isinstance(value, dict):
        for key, item in value.items():
            field = f"{where}.{key}" if where else str(key)
            if key in REFERENCE_KEYS and isinstance(item, str) and "://" in item:
                yield field, item
            else:
                yield from _references(item, field)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, f"{where}[{index}]")


def _wait_for_wal(db: sqlite3.Connection) -> None:
    """Switch ``db`` to WAL, waiting while another process holds the file.

    Changing the journal mode takes an exclusive lock without calling the busy handler, so
    two runs starting at once on a new state.db can get SQLITE_BUSY at once instead of after
    the connection's timeout (https://www.sqlite.org/wal.html#sometimes_queries_return_sqlite_busy_in_wal_mode).
    """
    deadline = time.monotonic() + LOCK_TIMEOUT_SECONDS
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            name = getattr(error, "sqlite_errorname", "") or ""
            if not name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
