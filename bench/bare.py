"""The pipeline's jobs run bare: the same scripts, arguments and files, no pipeline around them.

Arguments, environment and code objects are read from the built definition (the document
`make run-local` executes), so this baseline follows the graph as it changes. Each job gets the
directory layout of its container contract (`<sandbox>/opt/ml/...`, as runtime.jobs lays it
out) and the inputs the pipeline would stage, hard-linked as the local artifact store stages
them. Left out is the orchestration: engine, state database, cache, launcher process, log pump,
uploads. The jobs run one after another (the pipeline may overlap DataQuality with Train).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from config.paths import ROOT
from runtime.execution import parameter_values
from runtime.expressions import ResolutionError, Scope, resolve
from runtime.files import extract_tar
from runtime.jobs import container_path, map_container_value
from runtime.jobs.contract import SHARED_HOST_DEFAULTS
from runtime.jobs.process import launcher_argv
from tabular.contract import (
    FAILURE_FILE,
    FAILURE_REASON_FILE_ENV,
    INPUT_DATA_DIR,
    MODEL_ARCHIVE,
    MODEL_DIR,
    OUTPUT_DATA_DIR,
    OUTPUT_DIR,
    STATISTICS_FILE,
    definition_steps,
)

OUTPUT_REFERENCE = re.compile(
    r"^Steps\.([A-Za-z0-9_-]+)\.ProcessingOutputConfig\.Outputs\['([^']+)'\]"
)
MODEL_REFERENCE = re.compile(r"^Steps\.([A-Za-z0-9_-]+)\.ModelArtifacts\.S3ModelArtifacts$")
STATISTICS_REFERENCE = re.compile(
    r"^Steps\.([A-Za-z0-9_-]+)\.(CalculatedBaselineStatistics|BaselineUsedForDriftCheckStatistics)$"
)
"""The quality check's statistics Evaluate reads: on a first run (no approved baseline) the
baseline used for the drift check is the one it calculated, as in a fresh workspace."""
SAGEMAKER_HP_PREFIX = "sagemaker_"
LOG_TAIL_LINES = 20
# The training toolkit's SM_* paths train.py reads (the rest of SM_TRAINING_ENV it ignores).
TRAINING_PATHS = (
    ("SM_MODEL_DIR", MODEL_DIR),
    ("SM_OUTPUT_DATA_DIR", OUTPUT_DATA_DIR),
    ("SM_OUTPUT_DIR", OUTPUT_DIR),
)


class BareRunError(RuntimeError):
    """A bare job failed, or the definition no longer has the shape this baseline reads."""


@dataclass
class BareRun:
    """Wall seconds per job (staging and archiving included) and in total."""

    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: dict[str, int] = field(default_factory=dict)


def _link_tree(source: Path, target: Path) -> None:
    """Every file under ``source`` (or ``source`` itself) hard-linked under ``target``."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    if not files:
        raise BareRunError(f"{source}: nothing to stage (the job that writes it did not)")
    for file in files:
        destination = target / (file.name if source.is_file() else file.relative_to(source))
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(file, destination)
        except OSError:
            shutil.copyfile(file, destination)


def _run(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], what: str) -> int:
    """Run a job to its end; return its peak RSS in bytes (``ru_maxrss``, KiB on Linux).

    Through the local runtime's launcher (runtime/jobs/process.py), as the runtime starts a
    job: a child's ``ru_maxrss`` starts at the high-water mark of the process it was started
    from (exec keeps it), so a job started straight from this process (the SDK imported, the
    definition built: about 356 MiB) reported at least that much whatever it held itself
    (``/bin/true`` started from a 500 MiB process reports 511 MiB). Forked from the small
    launcher, the job reports its own peak.
    """
    log = cwd / "job.log"
    report_read, report_write = os.pipe()
    try:
        with log.open("ab") as out:
            try:
                process = subprocess.Popen(
                    launcher_argv(report_write, argv),
                    cwd=cwd,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                    pass_fds=(report_write,),
                )
            finally:
                os.close(report_write)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = code = os.waitstatus_to_exitcode(status)
        report = b"".join(iter(lambda: os.read(report_read, 64), b"")).strip()
    finally:
        os.close(report_read)
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise BareRunError(f"bare {what} exited with {code}; end of {log}:\n" + "\n".join(tail))
    return (int(report) if report.isdigit() else usage.ru_maxrss) * 1024


class _Bare:
    """One bare sequence: a root directory with a sandbox per job."""

    def __init__(
        self, definition: dict[str, Any], code: Mapping[str, bytes], csv: Path, root: Path
    ) -> None:
        self.steps, _ = definition_steps(definition)
        self.code = code
        self.csv = csv
        self.root = root
        self.python = sys.executable
        self.scope = Scope(
            parameters=parameter_values(definition, {"InputDataUri": csv.resolve().as_uri()}),
            execution={},
            properties=self._no_properties,
            property_file=lambda step, _name: self._no_properties(step),
        )
        self.outputs: dict[tuple[str, str], Path] = {}  # (step, output name) -> directory
        self.models: dict[str, Path] = {}  # training step -> model.tar.gz
        self.statistics: dict[str, Path] = {}  # quality check step -> statistics.json
        # The host's environment with the thread settings the local runtime gives its jobs.
        self.env: dict[str, str] = {**SHARED_HOST_DEFAULTS, **os.environ}
        self.peak_rss: dict[str, int] = {}

    @staticmethod
    def _no_properties(step: str) -> dict[str, Any]:
        raise ResolutionError(f"the bare run resolves parameters only, not Steps.{step}")

    def step(self, name: str) -> dict[str, Any]:
        if name not in self.steps:
            raise BareRunError(f"the definition has no step {name!r}; update bench/bare.py")
        return self.steps[name]

    def sandbox(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True)
        return path

    def stage(self, uri: Any, target: Path, where: str) -> None:
        """Place what ``uri`` names under ``target``: a code object, the data or a job output."""
        if isinstance(uri, str):
            self.stage_code(uri, target, where)
            return
        reference = uri.get("Get") if isinstance(uri, dict) else None
        if reference == "Parameters.InputDataUri":
            _link_tree(self.csv, target)
            return
        output = OUTPUT_REFERENCE.match(reference or "")
        if output and (output.group(1), output.group(2)) in self.outputs:
            _link_tree(self.outputs[(output.group(1), output.group(2))], target)
            return
        model = MODEL_REFERENCE.match(reference or "")
        if model and model.group(1) in self.models:
            _link_tree(self.models[model.group(1)], target)
            return
        statistics = STATISTICS_REFERENCE.match(reference or "")
        if statistics and statistics.group(1) in self.statistics:
            _link_tree(self.statistics[statistics.group(1)], target)
            return
        raise BareRunError(f"{where}: the bare run cannot stage {uri!r}; update bench/bare.py")

    def stage_code(self, uri: str, target: Path, where: str) -> None:
        """A code object the definition names (the built bytes): a file, a prefix or a tarball."""
        if uri in self.code and uri.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(self.code[uri])) as tar:
                extract_tar(tar, target)
            return
        matches = {
            u: p for u, p in self.code.items() if u == uri or u.startswith(uri.rstrip("/") + "/")
        }
        if not matches:
            raise BareRunError(f"{where}: no code object at {uri!r} in the built definition")
        for found, payload in matches.items():
            relative = (
                PurePosixPath(found).name if found == uri else found[len(uri.rstrip("/")) + 1 :]
            )
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(payload)

    # Jobs -------------------------------------------------------------------------------------

    def processing(self, name: str) -> None:
        """A processing job: inputs staged, entrypoint run with its mapped arguments."""
        args = self.step(name)["Arguments"]
        sandbox = self.sandbox(name)
        for item in args.get("ProcessingInputs", []):
            s3 = item["S3Input"]
            target = container_path(sandbox, s3["LocalPath"])
            self.stage(s3["S3Uri"], target, f"{name} input {item['InputName']}")
        for output in args["ProcessingOutputConfig"]["Outputs"]:
            local = container_path(sandbox, output["S3Output"]["LocalPath"])
            local.mkdir(parents=True, exist_ok=True)
            self.outputs[(name, output["OutputName"])] = local
        app = args["AppSpecification"]
        _, *entry = app["ContainerEntrypoint"]  # the image's python3 -> this interpreter
        command = [
            *entry,
            *(str(a) for a in resolve(app.get("ContainerArguments", []), self.scope)),
        ]
        argv = [self.python, *(map_container_value(sandbox, a) for a in command)]
        environment = args.get("Environment") or {}
        env = {**self.env, **{k: map_container_value(sandbox, v) for k, v in environment.items()}}
        self.peak_rss[name] = _run(argv, cwd=sandbox, env=env, what=name)

    def data_quality(self, name: str) -> None:
        """The quality check's analyzer on the train split, without a baseline (a first run)."""
        args = self.step(name)["Arguments"]
        sandbox = self.sandbox(name)
        (source,) = args["ProcessingInputs"]
        dataset = sandbox / "dataset"
        self.stage(source["S3Input"]["S3Uri"], dataset, name)
        header = (
            json.loads(args["Environment"]["dataset_format"]).get("csv", {}).get("header", True)
        )
        argv = [self.python, "-m", "runtime.monitor", "--dataset", str(dataset)]
        argv += ["--output-dir", str(sandbox / "results")]
        if not header:
            argv.append("--no-header")
        env = {**self.env, "PYTHONPATH": str(ROOT)}
        self.peak_rss[name] = _run(argv, cwd=sandbox, env=env, what=name)
        self.statistics[name] = sandbox / "results" / STATISTICS_FILE

    def training(self, name: str) -> None:
        """Script mode: code in /opt/ml/code, channels, ``--key value`` hyperparameters, SM_*."""
        args = self.step(name)["Arguments"]
        sandbox = self.sandbox(name)
        hyperparameters = {
            k: str(v) for k, v in resolve(args["HyperParameters"], self.scope).items()
        }
        code_dir = container_path(sandbox, "/opt/ml/code")
        self.stage_code(hyperparameters["sagemaker_submit_directory"], code_dir, name)
        env = {**self.env, **(args.get("Environment") or {})}
        for channel in args["InputDataConfig"]:
            target = container_path(sandbox, f"{INPUT_DATA_DIR}/{channel['ChannelName']}")
            self.stage(channel["DataSource"]["S3DataSource"]["S3Uri"], target, name)
            env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(target)
        for variable, path in TRAINING_PATHS:
            container_path(sandbox, path).mkdir(parents=True, exist_ok=True)
            env[variable] = str(container_path(sandbox, path))
        argv = [self.python, hyperparameters["sagemaker_program"]]
        for key in sorted(k for k in hyperparameters if not k.startswith(SAGEMAKER_HP_PREFIX)):
            argv += [f"--{key}", hyperparameters[key]]
        self.peak_rss[name] = _run(argv, cwd=code_dir, env=env, what=name)
        archive = sandbox / "artifacts" / MODEL_ARCHIVE  # what the container publishes
        archive.parent.mkdir()
        model_dir = container_path(sandbox, MODEL_DIR)
        with tarfile.open(archive, "w:gz") as tar:
            for member in sorted(model_dir.rglob("*")):
                tar.add(member, arcname=member.relative_to(model_dir).as_posix(), recursive=False)
        self.models[name] = archive

    def transform(self, name: str, model_step: str) -> None:
        """``python -m runtime.serving.batch`` with the model CreateModel describes."""
        args = self.step(name)["Arguments"]
        container = self.step(model_step)["Arguments"]["PrimaryContainer"]
        sandbox = self.sandbox(name)
        model_dir = container_path(sandbox, MODEL_DIR)
        self.stage(container["ModelDataUrl"], sandbox / "artifacts", name)
        with tarfile.open(sandbox / "artifacts" / MODEL_ARCHIVE) as tar:
            extract_tar(tar, model_dir)
        environment = container["Environment"]
        code_dir = container_path(sandbox, "/opt/ml/code")
        self.stage_code(environment["SAGEMAKER_SUBMIT_DIRECTORY"], code_dir, name)
        transform_input = args["TransformInput"]
        input_root = sandbox / "transform" / "input"
        self.stage(transform_input["DataSource"]["S3DataSource"]["S3Uri"], input_root, name)
        output_dir = sandbox / "transform" / "output"
        output_dir.mkdir(parents=True)
        spec = {
            "model_dir": str(model_dir),
            "code_dir": str(code_dir),
            "program": environment["SAGEMAKER_PROGRAM"],
            "input_files": [str(p) for p in sorted(input_root.rglob("*")) if p.is_file()],
            "input_root": str(input_root),
            "output_dir": str(output_dir),
            "content_type": transform_input["ContentType"],
            "accept": args["TransformOutput"]["Accept"],
            "split_type": transform_input["SplitType"],
            "batch_strategy": args["BatchStrategy"],
            "max_payload_bytes": int(args["MaxPayloadInMB"] * 1024 * 1024),
            "assemble_with": args["TransformOutput"]["AssembleWith"],
            "join_source": args["DataProcessing"]["JoinSource"],
        }
        request = sandbox / "request.json"
        request.write_text(json.dumps(spec, indent=2))
        env = {**self.env, **environment, "PYTHONPATH": str(ROOT)}
        env[FAILURE_REASON_FILE_ENV] = str(container_path(sandbox, FAILURE_FILE))
        argv = [self.python, "-m", "runtime.serving.batch", "--request", str(request)]
        self.peak_rss[name] = _run(argv, cwd=sandbox, env=env, what=name)


def run_bare(
    definition: dict[str, Any],
    code: Mapping[str, bytes],
    csv: Path,
    root: Path,
    only: Sequence[str] | None = None,
) -> BareRun:
    """Profile, Preprocess, FitTransformer, DataQuality, Train, Evaluate and BatchScore's jobs,
    bare and in order (one host each).

    ``code`` maps each code object's S3 URI to its bytes (what `make upsert` uploads);
    ``only`` runs the first jobs of that sequence, up to the last one it names.
    """
    # The step modules import the SDK, which needs the region first (pipelines.sdk).
    from steps import names as steps

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    bare = _Bare(definition, code, csv, root)
    jobs: list[tuple[str, Callable[[], None]]] = [
        (steps.PROFILE, lambda: bare.processing(steps.PROFILE)),
        (steps.PREPROCESS, lambda: bare.processing(steps.PREPROCESS)),
        (steps.FIT_TRANSFORMER, lambda: bare.processing(steps.FIT_TRANSFORMER)),
        (steps.DATA_QUALITY, lambda: bare.data_quality(steps.DATA_QUALITY)),
        (steps.TRAIN, lambda: bare.training(steps.TRAIN)),
        (steps.EVALUATE, lambda: bare.processing(steps.EVALUATE)),
        (
            steps.BATCH_SCORE,
            lambda: bare.transform(steps.BATCH_SCORE, steps.CREATE_MODEL),
        ),
    ]
    if only:
        names = [name for name, _ in jobs]
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise BareRunError(f"no bare job {unknown}; the jobs are {names}")
        jobs = jobs[: max(names.index(n) for n in only) + 1]
    result = BareRun()
    started = time.perf_counter()
    for name, job in jobs:
        begin = time.perf_counter()
        job()
        result.steps[name] = time.perf_counter() - begin
    result.seconds = time.perf_counter() - started
    result.peak_rss_bytes = dict(bare.peak_rss)
    return result
