"""Test-wide setup, loaded before any test module: nothing may reach AWS or the network.

Fixtures for the definition, publishing and the local runtime, and the job-script fixtures
(``job_*``): tiny synthetic data sets run through the real jobs (preprocess -> train ->
model.tar.gz), once per test session and problem type.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer
from offline_guard import install

# No test may find real credentials: moto's fake ones are set per test where needed.
for _variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_variable, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
# Every test builds its definition (pipelines/saved.py): none reuses another run's saved build
# from the checkout's build/ folder; tests/unit/pipelines/test_saved.py points it elsewhere.
os.environ["PIPELINE_SAVED_DEFINITIONS"] = "off"

from config import PIPELINE_CONFIG, Config, load_config  # noqa: E402
from pipelines.document import BuiltPipeline  # noqa: E402
from scripts import preprocess, train  # noqa: E402
from tabular import names  # noqa: E402


@pytest.fixture(scope="session")
def base_config() -> Config:
    return load_config(PIPELINE_CONFIG, env={})


@pytest.fixture(scope="session")
def build(base_config: Config) -> Callable[..., BuiltPipeline]:
    """The definition builder, the SDK prepared as the CLI prepares it (pipelines/sdk.py).

    Nothing prepares the SDK for the whole suite: a test that builds asks for this fixture.
    """
    from pipelines.sdk import prepare_sdk

    prepare_sdk(base_config)
    from pipelines.definition import build as build_definition

    return build_definition


@pytest.fixture(scope="session")
def built(base_config: Config, build: Callable[..., BuiltPipeline]) -> BuiltPipeline:
    return build(base_config)


@pytest.fixture(scope="session")
def definition(built) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(built.definition)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials for moto; moto intercepts every call before it leaves the process."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    yield


@pytest.fixture
def aws(aws_credentials: None, base_config: Config) -> Iterator[boto3.Session]:
    """A moto account with the configured artifact bucket: SageMaker, S3, SQS, Scheduler."""
    with mock_aws():
        session = boto3.Session(region_name=base_config.aws.region)
        session.client("s3").create_bucket(Bucket=base_config.aws.bucket)
        yield session


JOB_TARGET = {"binary": "churn", "regression": "price"}
JOB_OBJECTIVE = {"binary": "binary:logistic", "regression": "reg:squarederror"}


@pytest.fixture
def no_network() -> Iterator[None]:
    """Fail the test if anything tried to connect or resolve a name, in any thread
    (tests/offline_guard.py)."""
    guard = install()
    guard.attempts.clear()
    guard.armed = True
    try:
        yield
    finally:
        guard.armed = False
    assert guard.attempts == [], "network access attempted:\n" + "\n".join(guard.attempts)


@pytest.fixture
def moto_server() -> Iterator[str]:
    """moto's HTTP server on a free local port: "127.0.0.1:<port>"."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"{host}:{port}"
    finally:
        server.stop()


SMALL_RUN = """\
extends: {local}
sample_data: {{rows: 3000, seed: 11}}
training:
  hyperparameters: {{num_round: 30, early_stopping_rounds: 10}}
# 3000 rows: the test AUC moves by about +-0.05 with the draw, so the gate sits well below it
# (these runs test the graph; the gate's own tests set MetricThreshold).
evaluation: {{bootstrap_rounds: 5, threshold: 0.6}}
"""


@pytest.fixture
def small_run_config(tmp_path: Path) -> Path:
    """A config file for a quick local run of the whole graph on 3000 built-in rows."""
    from config import LOCAL_CONFIG

    path = tmp_path / "small.yaml"
    path.write_text(SMALL_RUN.format(local=LOCAL_CONFIG), encoding="utf-8")
    return path


def synthetic_frame(problem_type: str, rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Two numeric and two categorical features with gaps, and a learnable target."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.integers(0, 10, size=rows)
    color = rng.choice(["red", "green", "blue"], size=rows)
    plan = rng.choice(["basic", "pro"], size=rows)
    signal = 1.5 * x1 + 0.2 * x2 + (color == "red") - (plan == "pro")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "color": color, "plan": plan})
    if problem_type == "binary":
        noisy = signal + rng.normal(scale=0.5, size=rows)
        frame[JOB_TARGET["binary"]] = np.where(noisy > np.median(noisy), "yes", "no")
    else:
        frame[JOB_TARGET["regression"]] = 10 + 3 * signal + rng.normal(scale=0.3, size=rows)
    frame.loc[::17, "x1"] = np.nan
    frame.loc[::13, "color"] = np.nan
    return frame


def training_argv(problem_type: str, data: Path, work: Path) -> list[str]:
    """train.py command line of a small, fast run on preprocess outputs under ``data``."""
    return [
        "--train", str(data / names.TRAIN),
        "--validation", str(data / names.VALIDATION),
        "--transformer", str(data / names.TRANSFORMER),
        "--model-dir", str(work / "model"),
        "--output-data-dir", str(work / "output-data"),
        "--objective", JOB_OBJECTIVE[problem_type],
        "--num_round", "40",
        "--eta", "0.3",
        "--max_depth", "3",
        "--early_stopping_rounds", "10",
    ]  # fmt: skip


@pytest.fixture
def job_frame() -> Callable[..., pd.DataFrame]:
    """Build a synthetic data set: ``job_frame(problem_type, rows=400, seed=0)``."""
    return synthetic_frame


@pytest.fixture
def job_csv_dir(tmp_path: Path) -> Callable[..., Path]:
    """Write text, bytes or a DataFrame as ``<tmp>/input/<name>``; return the input dir."""

    def write(content: str | bytes | pd.DataFrame, name: str = "data.csv") -> Path:
        folder = tmp_path / "input"
        folder.mkdir(exist_ok=True)
        path = folder / name
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return folder

    return write


@pytest.fixture(scope="session")
def job_training_argv() -> Callable[[str, Path, Path], list[str]]:
    """``job_training_argv(problem_type, data_root, work_dir)``: a fast train.py command line."""
    return training_argv


@pytest.fixture(scope="session")
def job_prepared(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Run preprocess.main once per problem type; return its output root."""
    cache: dict[str, Path] = {}

    def run(problem_type: str) -> Path:
        if problem_type not in cache:
            root = tmp_path_factory.mktemp(f"prepared-{problem_type}")
            synthetic_frame(problem_type).to_csv(root / "data.csv", index=False)
            code = preprocess.main(
                [
                    "--input-dir",
                    str(root / "data.csv"),
                    "--output-root",
                    str(root / "output"),
                    "--target",
                    JOB_TARGET[problem_type],
                    "--problem-type",
                    problem_type,
                ]  # fmt: skip
            )
            assert code == 0
            cache[problem_type] = root / "output"
        return cache[problem_type]

    return run


@pytest.fixture(scope="session")
def job_trained(
    job_prepared: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """Run train.main once per problem type on the prepared splits; return the model dir."""
    cache: dict[str, Path] = {}

    def run(problem_type: str) -> Path:
        if problem_type not in cache:
            work = tmp_path_factory.mktemp(f"trained-{problem_type}")
            code = train.main(training_argv(problem_type, job_prepared(problem_type), work))
            assert code == 0
            cache[problem_type] = work / "model"
        return cache[problem_type]

    return run


@pytest.fixture(scope="session")
def job_model_archive(
    job_trained: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """Tar a trained model dir as SageMaker does; return the dir holding model.tar.gz."""
    cache: dict[str, Path] = {}

    def build(problem_type: str) -> Path:
        if problem_type not in cache:
            folder = tmp_path_factory.mktemp(f"archive-{problem_type}")
            with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
                for path in sorted(job_trained(problem_type).iterdir()):
                    tar.add(path, arcname=path.name)
            cache[problem_type] = folder
        return cache[problem_type]

    return build


@pytest.fixture(scope="session")
def job_scripts_dir() -> Path:
    """The repository's scripts/ directory (the serving code evaluate.py imports)."""
    return Path(preprocess.__file__).resolve().parent


@pytest.fixture(scope="session")
def job_served(
    job_model_archive: Callable[[str], Path],
    job_prepared: Callable[[str], Path],
    job_scripts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    """The binary model as an endpoint serves it (the serving handler) with the smoke sample the
    Evaluate job recorded for it (tests/deploy_support.py)."""
    from deploy_support import trained_model

    return trained_model(
        job_model_archive("binary"),
        job_prepared("binary") / preprocess.TEST,
        job_scripts_dir,
        tmp_path_factory.mktemp("served"),
    )
