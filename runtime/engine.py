"""Runs a SageMaker pipeline definition on this machine, step by step as the service would.

The engine reads the same JSON document that is published. Job steps run as host processes
under the SageMaker container contracts; what each step type does is its executor's
(runtime.executors, one per type behind a table), which this module calls. The engine
schedules (steps whose inputs are ready run concurrently), retries per the steps'
RetryPolicies and caches: cacheable steps are looked up by their resolved cache-key attributes.
The execution's record (statuses, step records, parameters) is runtime.execution's.

What a step published is recorded (LocalS3.manifest) with its cache entry and its record: a
cache entry, or a succeeded step of a resumed execution, whose outputs are gone or changed is
not reused, the step runs again (and so do the steps after it). Execution state is written
whole (runtime.files) and each execution keeps a small reserve of disk space, so that a disk
that fills during a run still ends in a Failed execution with its reason, which ``--retry``
resumes once space is freed. One process runs an execution at a time (a lock file).

Just over 500 lines: the scheduler's loop, its resume, lock, disk reserve and cache lookups act
on one execution's state under one lock; the work of the steps lives in runtime.executors.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runtime.execution import (
    EXECUTING,
    FAILED,
    NO_HOOKS,
    NOT_STARTED,
    SKIPPED,
    STOPPED,
    SUCCEEDED,
    Execution,
    Hooks,
    StepRecord,
    expire_after_seconds,
    parameter_values,
    processing_output_file,
    published_uris,
)
from runtime.executors import EXECUTORS, QUALITY_FLAGS, StepCall, StepFailure
from runtime.expressions import (
    ResolutionError,
    Scope,
    evaluate_condition,
    resolve,
    step_dependencies,
)
from runtime.files import (
    WorkspaceError,
    fault_message,
    is_fault,
    reported,
    require_writable,
    write_atomic,
)
from runtime.jobs import discard_warm_starts, expect_jobs, prime_warm_starts
from runtime.jobs.process import STOP_POLL_SECONDS, stop_children, stop_on_signals
from runtime.state import LocalState, StateError
from runtime.store import LocalS3
from tabular.contract import StepType, definition_steps

# What SageMaker compares to decide a cache hit, per step type (its documented cache keys).
CACHE_KEYS: dict[str, tuple[str, ...]] = {
    StepType.PROCESSING: ("AppSpecification", "Environment", "ProcessingInputs"),
    StepType.TRAINING: (
        "AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig",
        "DebugRuleConfigurations", "Environment", "HyperParameters", "InputDataConfig",
    ),
    StepType.TRANSFORM: ("DataProcessing", "Environment", "ModelName", "TransformInput"),
    StepType.QUALITY_CHECK: ("AppSpecification", "Environment", "ProcessingInputs"),
}  # fmt: skip
RESERVE_BYTES = 1 << 20
"""Disk space each running execution holds back (a file of zeros), freed to record its end
when the disk fills: execution.json and the run's summary take a few tens of kilobytes."""
RESERVE_FILE, LOCK_FILE = ".reserve", ".lock"
JOB_TYPES = (StepType.PROCESSING, StepType.TRAINING, StepType.TRANSFORM, StepType.QUALITY_CHECK)
JOB_INTERNAL_ERROR, SERVICE_FAULT = "SageMaker.JOB_INTERNAL_ERROR", "Step.SERVICE_FAULT"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _write_json(path: Path, document: Any) -> None:
    text = json.dumps(document, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(path, text, durable=True)


class LocalPipelineRunner:
    """Executes pipeline definitions in a workspace: artifact store, state, executions."""

    def __init__(self, workspace: Path, region: str, max_parallel: int = 2) -> None:
        self.workspace = workspace
        self.region = region
        self.store = LocalS3(workspace / "s3")
        self.state = LocalState(workspace / "state.db", region, self.store)
        self.max_parallel = max_parallel

    def require_writable(self) -> None:
        """Refuse a workspace this process cannot write, before anything is written."""
        require_writable(self.workspace)

    def execution_dir(self, execution_id: str) -> Path:
        return self.workspace / "executions" / execution_id

    def load(self, execution_id: str) -> tuple[Execution, dict[str, Any]]:
        """A recorded execution and the definition it ran."""
        folder = self.execution_dir(execution_id)
        if not (folder / "execution.json").is_file():
            raise ValueError(f"no local execution {execution_id!r} under {folder.parent}")
        raw = json.loads((folder / "execution.json").read_text())
        definition = json.loads((folder / "definition.json").read_text())
        records = raw.pop("steps")
        steps = {name: StepRecord(**records[name]) for name in definition_steps(definition)[0]}
        return Execution(**raw, steps=steps), definition

    def start(
        self,
        pipeline: str,
        definition: dict[str, Any],
        parameters: dict[str, Any],
        hooks: Hooks = NO_HOOKS,
        retry_of: str | None = None,
    ) -> Execution:
        """Run an execution to its end (or resume `retry_of` from its failed steps)."""
        if retry_of:
            execution, definition = self.load(retry_of)
            execution.status, execution.end, execution.failure_reason = EXECUTING, None, None
        else:
            execution_id = uuid.uuid4().hex[:12]
            steps, _ = definition_steps(definition)
            execution = Execution(
                execution_id=execution_id,
                pipeline=pipeline,
                status=EXECUTING,
                parameters=parameter_values(definition, parameters),
                start=_now(),
                steps={name: StepRecord(name, step["Type"]) for name, step in steps.items()},
            )
            path = self.execution_dir(execution_id) / "definition.json"
            with reported(path, "run again (nothing ran)"):
                _write_json(path, definition)
        _Run(self, execution, definition, hooks).run(resumed=bool(retry_of))
        return execution


class _Run:
    """One execution in progress."""

    def __init__(
        self,
        runner: LocalPipelineRunner,
        execution: Execution,
        definition: dict[str, Any],
        hooks: Hooks,
    ) -> None:
        self.runner = runner
        self.execution = execution
        self.definition = definition
        self.hooks = hooks
        self.steps, self.branch_of = definition_steps(definition)
        self.lock = threading.Lock()
        self.folder = runner.execution_dir(execution.execution_id)
        self.failed = False  # a step failed: start nothing new
        self.stopping = threading.Event()  # SIGTERM or Ctrl-C: stop the jobs, record Stopped
        self.fault: str | None = None  # the workspace failed the run (disk full, read-only)
        self.scope = Scope(
            parameters=execution.parameters,
            execution={
                "PipelineExecutionId": execution.execution_id,
                "PipelineExecutionArn": self.execution_arn,
                "PipelineName": execution.pipeline,
                "PipelineArn": self.execution_arn.rsplit("/execution/", 1)[0],
                "StartDateTime": execution.start,
                "CurrentDateTime": execution.start,
            },
            properties=self._properties,
            property_file=self._property_file,
        )

    @property
    def execution_arn(self) -> str:
        return (
            f"arn:aws:sagemaker:{self.runner.region}:000000000000:pipeline/"
            f"{self.execution.pipeline}/execution/{self.execution.execution_id}"
        )

    # Graph ------------------------------------------------------------------------------------

    def dependencies(self, name: str) -> set[str]:
        step = self.steps[name]
        found = step_dependencies({k: v for k, v in step.items() if k not in ("Arguments",)})
        if step["Type"] == StepType.CONDITION:
            found |= step_dependencies(step["Arguments"].get("Conditions", []))
        else:
            found |= step_dependencies(step.get("Arguments", {}))
        found |= set(step.get("DependsOn", []))
        if name in self.branch_of:
            found.add(self.branch_of[name][0])
        return found - {name}

    def _enabled(self, name: str) -> bool | None:
        """Whether a step's branch was taken: True, False, or None while undecided."""
        if name not in self.branch_of:
            return True
        condition, branch = self.branch_of[name]
        record = self.execution.steps[condition]
        if record.status != SUCCEEDED:
            return None if record.status in (NOT_STARTED, EXECUTING) else False
        return (record.properties.get("Outcome") == "True") == branch and bool(
            self._enabled(condition)
        )

    def _properties(self, name: str) -> dict[str, Any]:
        record = self.execution.steps.get(name)
        if record is None or record.status != SUCCEEDED:
            raise ResolutionError(
                f"step {name} has not succeeded, its properties are not available"
            )
        return record.properties

    def _property_file(self, step: str, file_name: str) -> Any:
        spec = next(
            (
                f
                for f in self.steps[step].get("PropertyFiles", [])
                if f["PropertyFileName"] == file_name
            ),
            None,
        )
        if spec is None:
            raise ResolutionError(f"step {step} declares no property file {file_name}")
        path = processing_output_file(
            self.runner.store, self._properties(step), spec["OutputName"], spec["FilePath"]
        )
        if not path.is_file():
            raise ResolutionError(
                f"property file {file_name}: {spec['FilePath']} is not in {step}'s output "
                f"{spec['OutputName']!r} (local store: {path}): the job did not write it, or it "
                "was removed since; run the pipeline again (a step whose outputs are gone runs "
                "again)"
            )
        return json.loads(path.read_text())

    # Loop -------------------------------------------------------------------------------------

    def save(self) -> None:
        with self.lock:
            _write_json(self.folder / "execution.json", self.execution.to_json())

    def _resume_hint(self) -> str:
        return f"resume with --retry {self.execution.execution_id}"

    def _save_or_note(self) -> None:
        """Save; a file-system fault stops the run (nothing new starts) instead of raising."""
        try:
            self.save()
        except OSError as error:
            if not is_fault(error):
                raise
            if self.fault is None:
                self.fault = (
                    "could not save the execution state: "
                    f"{fault_message(error, self.folder / 'execution.json', self._resume_hint())}"
                )

    def run(self, resumed: bool = False) -> None:
        with self._claimed():
            if resumed:
                self._revalidate()
            with reported(
                self.folder / "execution.json",
                self._resume_hint() if resumed else "run again (nothing ran)",
                self.execution.execution_id if resumed else None,
            ):
                self.save()
            prime_warm_starts()
            try:
                with stop_on_signals(self.stopping):
                    self._loop()
            finally:
                discard_warm_starts()
            self._finish()

    def _loop(self) -> None:
        running: dict[Future[None], str] = {}
        pool = ThreadPoolExecutor(max_workers=self.runner.max_parallel)
        try:
            while True:
                if not self.failed and self.fault is None and not self.stopping.is_set():
                    starting = self._ready(set(running.values()))
                    for name in starting:
                        record = self.execution.steps[name]
                        record.status, record.start = EXECUTING, _now()
                        self._notify(record)
                        # before its job asks for a start
                        expect_jobs(self._jobs_to_come(), self._jobs_next())
                        running[pool.submit(self._execute, name)] = name
                    if starting:
                        self._save_or_note()  # what runs now, as ListPipelineExecutionSteps shows
                if self.stopping.is_set():
                    raise KeyboardInterrupt("stop requested (SIGTERM or Ctrl-C)")
                if not running:
                    break
                # In slices: the signal handler only sets self.stopping (stop_on_signals).
                done, _ = wait(running, timeout=STOP_POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    future.result()
                    if self.execution.steps[name].status == FAILED:
                        self.failed = True
                if done:
                    self._save_or_note()
        except KeyboardInterrupt:
            self.stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            while not all(future.done() for future in running):
                stop_children()  # again for a job whose thread started it meanwhile
                wait(running, timeout=STOP_POLL_SECONDS)
            self.execution.status, self.execution.end = STOPPED, _now()
            self.execution.failure_reason = "interrupted; " + self._resume_hint()
            for record in self.execution.steps.values():
                if record.status == EXECUTING:
                    record.status, record.failure_reason = STOPPED, "interrupted"
            self._save_or_note()
            raise
        pool.shutdown(wait=True)

    def _jobs_to_come(self) -> int:
        """Job steps not started yet (at most: some will be cache hits, some never run): warm
        job starts are prepared for these, none after the last."""
        return sum(
            1
            for name, record in self.execution.steps.items()
            if record.status == NOT_STARTED and self.steps[name]["Type"] in JOB_TYPES
        )

    def _jobs_next(self) -> int:
        """Job steps not started yet whose upstream jobs have all started (at most
        ``max_parallel``): the jobs that may start at the same moment next, each of which finds a
        warm process prepared (after Preprocess: FitTransformer and DataQuality)."""
        ready = sum(
            1
            for name, record in self.execution.steps.items()
            if record.status == NOT_STARTED
            and self.steps[name]["Type"] in JOB_TYPES
            and all(
                self.execution.steps[upstream].status != NOT_STARTED
                for upstream in self._upstream_jobs(name)
            )
        )
        return min(ready, self.runner.max_parallel)

    def _upstream_jobs(self, name: str) -> set[str]:
        """The job steps ``name`` waits for: its dependencies, followed through the steps that
        are not jobs (a condition, a registration: they take no time)."""
        found: set[str] = set()
        seen: set[str] = set()
        pending = list(self.dependencies(name))
        while pending:
            step = pending.pop()
            if step in seen or step not in self.steps:
                continue
            seen.add(step)
            if self.steps[step]["Type"] in JOB_TYPES:
                found.add(step)
            else:
                pending.extend(self.dependencies(step))
        return found

    @contextmanager
    def _claimed(self) -> Iterator[None]:
        """Hold the execution's lock and its disk reserve while it runs."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lock_path, reserve = self.folder / LOCK_FILE, self.folder / RESERVE_FILE
        with reported(lock_path):
            handle = lock_path.open("a")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WorkspaceError(
                    f"execution {self.execution.execution_id} is running in another process "
                    f"(it holds {lock_path}): wait for it to end, or stop it (Ctrl-C) and then "
                    "resume it with --retry."
                ) from None
            with reported(reserve, f"run again (with at least {RESERVE_BYTES >> 20} MiB free)"):
                if not reserve.is_file() or reserve.stat().st_size != RESERVE_BYTES:
                    write_atomic(reserve, bytes(RESERVE_BYTES), durable=True)
            yield
        finally:
            reserve.unlink(missing_ok=True)
            handle.close()

    def _revalidate(self) -> None:
        """Resuming: steps to run again are those that did not succeed, those whose outputs are
        gone (or changed) since, and every step after one of them."""
        again: dict[str, str | None] = {}
        for name, record in self.execution.steps.items():
            if record.status != SUCCEEDED:
                again[name] = None
            else:
                problem = self._gone(record)
                if problem is not None:
                    again[name] = f"its earlier result cannot be reused: {problem}"
        dependents: dict[str, set[str]] = {name: set() for name in self.steps}
        for name in self.steps:
            for upstream in self.dependencies(name):
                dependents.setdefault(upstream, set()).add(name)
        pending = list(again)
        while pending:
            for follower in dependents.get(pending.pop(), set()):
                if follower not in again:
                    again[follower] = None
                    pending.append(follower)
        for name, note in again.items():
            record = self.execution.steps[name]
            self.execution.steps[name] = StepRecord(name, record.type, note=note)

    def _gone(self, record: StepRecord) -> str | None:
        """Why a succeeded step's result is no longer there, or None when it is."""
        state = self.runner.state
        try:
            if record.type in JOB_TYPES:
                if not record.outputs and published_uris(record.type, record.properties):
                    return "no record of its outputs (recorded by an earlier version)"
                changed = self.runner.store.changed(record.outputs)
                return changed[0] if changed else None
            if record.type == "RegisterModel":
                state.package(record.properties["ModelPackageArn"])
            if record.type == "Model":
                state.model(record.properties["ModelName"])
        except StateError as error:
            return str(error)
        return None

    def _ready(self, running: set[str]) -> list[str]:
        ready = []
        for name, record in self.execution.steps.items():
            if record.status != NOT_STARTED or name in running:
                continue
            enabled = self._enabled(name)
            if enabled is False:
                record.status = SKIPPED
                continue
            if enabled is None:
                continue
            deps = self.dependencies(name)
            if all(self.execution.steps[d].status == SUCCEEDED for d in deps):
                ready.append(name)
        return ready

    def _finish(self) -> None:
        failures = [r for r in self.execution.steps.values() if r.status == FAILED]
        self.execution.end = _now()
        if self.fault is not None:
            self.execution.status = FAILED
            first = min(failures, key=lambda r: r.end or "") if failures else None
            step = f" (step {first.name} failed: {first.failure_reason})" if first else ""
            self.execution.failure_reason = self.fault + step
        elif failures:
            self.execution.status = FAILED
            first = min(failures, key=lambda r: r.end or "")
            self.execution.failure_reason = f"Step {first.name} failed: {first.failure_reason}"
        else:
            self.execution.status = SUCCEEDED
        try:
            self.save()
        except OSError as error:
            if not is_fault(error):
                raise
            # The disk filled: give back the execution's reserve, then record how it ended.
            (self.folder / RESERVE_FILE).unlink(missing_ok=True)
            path = self.folder / "execution.json"
            with reported(path, self._resume_hint(), self.execution.execution_id):
                self.save()

    def _notify(self, record: StepRecord) -> None:
        if self.hooks.on_step:
            self.hooks.on_step(record)

    # One step ---------------------------------------------------------------------------------

    def _execute(self, name: str) -> None:
        record = self.execution.steps[name]
        step = self.steps[name]
        started = time.monotonic()
        try:
            self._attempts(name, step, record)
            record.status = SUCCEEDED
        except (StepFailure, ResolutionError, StateError, ValueError, WorkspaceError) as exc:
            record.status, record.failure_reason = FAILED, str(exc)
        except Exception as exc:  # noqa: BLE001 - a runtime fault becomes the step's failure
            record.status = FAILED
            record.failure_reason = f"InternalError: {type(exc).__name__}: {exc}"
        if record.status == FAILED and self.stopping.is_set():  # its job was stopped with the run
            record.status, record.failure_reason = STOPPED, f"interrupted ({record.failure_reason})"
        record.end = _now()
        record.seconds = round(time.monotonic() - started, 3)
        self._notify(record)

    def _attempts(self, name: str, step: dict[str, Any], record: StepRecord) -> None:
        """Run the step, retrying per its RetryPolicies on the failure kinds they name."""
        policies = step.get("RetryPolicies", [])
        while True:
            record.attempts += 1
            try:
                self._run_step(name, step, record)
                return
            except OSError as exc:
                # A fault of the runtime itself (disk, staging), not of the job's code: the kind
                # of failure SageMaker retries as an internal error.
                kind = JOB_INTERNAL_ERROR if step["Type"] in JOB_TYPES else SERVICE_FAULT
                policy = next((p for p in policies if kind in p["ExceptionType"]), None)
                if policy is None or record.attempts >= policy.get("MaxAttempts", 1):
                    what = fault_message(exc, then=self._resume_hint()) if is_fault(exc) else exc
                    raise StepFailure(f"{kind}: {what}") from None
                delay = policy.get("IntervalSeconds", 1) * policy.get("BackoffRate", 2.0) ** (
                    record.attempts - 1
                )
                if self.stopping.wait(min(delay, 60)):
                    raise StepFailure(f"{kind}: {exc} (not retried: the run was stopped)") from None

    def _run_step(self, name: str, step: dict[str, Any], record: StepRecord) -> None:
        kind = step["Type"]
        if kind == StepType.CONDITION:
            outcome = all(
                evaluate_condition(c, self.scope) for c in step["Arguments"]["Conditions"]
            )
            record.properties = {"Outcome": str(outcome)}
            return
        if kind == StepType.FAIL:
            message = resolve(step["Arguments"].get("ErrorMessage", ""), self.scope)
            raise StepFailure(str(message))
        arguments = resolve(step.get("Arguments", {}), self.scope)
        extras = {k: resolve(step.get(k), self.scope) for k in QUALITY_FLAGS if k in step}
        key = self._cache_key(kind, arguments, extras, step)
        store = self.runner.store
        if key is not None:
            record.cacheable = True
            config = step["CacheConfig"]
            changed: list[str] = []

            def usable(outputs: dict[str, Any]) -> bool:
                changed.extend(found := store.changed(outputs))
                return not found

            hit = self.runner.state.cache_lookup(
                self.execution.pipeline,
                name,
                key,
                expire_after_seconds(config.get("ExpireAfter")),
                usable,
            )
            if hit is not None:
                record.cache_hit, record.cache_source = True, hit.execution_id
                record.properties, record.outputs = hit.properties, hit.outputs
                return
            if changed:
                record.note = f"cached result not reused: {changed[0]}"
        executor = EXECUTORS.get(kind)
        if executor is None:
            raise StepFailure(f"step type {kind} is not supported by the local runtime")
        record.properties = executor(
            StepCall(
                name=name,
                step=step,
                arguments=arguments,
                extras=extras,
                record=record,
                job_name=self._job_name(name),
                sandbox=self._sandbox(name),
                store=store,
                state=self.runner.state,
                region=self.runner.region,
                execution_id=self.execution.execution_id,
                execution_arn=self.execution_arn,
                hooks=self.hooks,
                stopping=self.stopping,
            )
        )
        record.outputs = store.manifest(published_uris(kind, record.properties))
        if key is not None:
            self.runner.state.cache_store(
                self.execution.pipeline,
                name,
                key,
                self.execution.execution_id,
                record.properties,
                record.outputs,
            )

    def _cache_key(
        self, kind: str, arguments: dict[str, Any], extras: dict[str, Any], step: dict[str, Any]
    ) -> str | None:
        config = step.get("CacheConfig") or {}
        if not config.get("Enabled") or kind not in CACHE_KEYS:
            return None
        material = {k: arguments.get(k) for k in CACHE_KEYS[kind]}
        material.update(extras)
        material["Type"] = kind
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def _job_name(self, name: str) -> str:
        return f"pipelines-{self.execution.execution_id}-{name}".lower()[:63]

    def _sandbox(self, name: str) -> Path:
        """A fresh directory per attempt: an interrupted attempt's leftovers are never reused."""
        return self.folder / "steps" / name / f"attempt-{uuid.uuid4().hex[:8]}"
