"""The typed, frozen configuration every builder takes, loaded once from configs/*.yaml.

A config file is merged over its parent (`extends:`, default `configs/base.yaml`), so a user file
names only what it changes; base.yaml holds every knob with its published default. An invalid
file raises one ConfigError that lists every bad field with its path and what is expected.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import botocore.model
import botocore.session
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from steps.deploy_config import DeploySection, merge
from steps.deploy_rules import security_problems
from steps.sqs import check_queue_url
from tabular.dialect import (
    DECIMAL_MARKS,
    DEFAULT_MISSING_VALUES,
    DELIMITERS,
    THOUSANDS_SEPARATORS,
    WHITESPACE,
    dialect_problems,
)
from tabular.names import (
    DEFAULT_MAX_CATEGORIES,
    DEFAULT_SMOKE_ROWS,
    HIGH_CARDINALITY_POLICIES,
    METRICS,
    REFUSE,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"
PIPELINE_CONFIG = CONFIG_DIR / "pipeline.yaml"
LOCAL_CONFIG = CONFIG_DIR / "local.yaml"

# Values that differ per account come from the environment, not from a committed file.
ENV_OVERRIDES = {
    "PIPELINE_ROLE_ARN": ("aws", "role_arn"),
    "PIPELINE_BUCKET": ("aws", "bucket"),
    "PIPELINE_APPROVAL_QUEUE_URL": ("approval", "queue_url"),
    "PIPELINE_SCHEDULER_ROLE_ARN": ("schedule", "role_arn"),
}

# Direction and range of each metric evaluate.py writes: (higher is better, low, high).
METRIC_BOUNDS: dict[str, tuple[bool, float, float]] = {
    "auc": (True, 0.0, 1.0),
    "accuracy": (True, 0.0, 1.0),
    "f1": (True, 0.0, 1.0),
    "precision": (True, 0.0, 1.0),
    "recall": (True, 0.0, 1.0),
    "log_loss": (False, 0.0, float("inf")),
    "mse": (False, 0.0, float("inf")),
    "rmse": (False, 0.0, float("inf")),
    "mae": (False, 0.0, float("inf")),
    "r2": (True, float("-inf"), 1.0),
}
DEFAULT_METRIC = {"binary": "auc", "regression": "r2"}
DEFAULT_THRESHOLD = {"auc": 0.7, "r2": 0.2}

ProblemType = Literal["binary", "regression"]
ApprovalStatus = Literal["PendingManualApproval", "Approved", "Rejected"]
NonEmpty = Annotated[str, Field(min_length=1)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
YAML_SURPRISES = {True: "true", False: "false", None: "null"}


def _yaml_text(value: Any) -> Any:
    """Text as the user wrote it: YAML turns unquoted yes/no/on/off/NULL/~ into other types."""
    if isinstance(value, bool) or value is None:
        raise ValueError(
            f"YAML read an unquoted value here as {YAML_SURPRISES[value]} (yes, no, on, off, "
            "true, false, null, NULL and ~ are not text in YAML); quote the text you mean, "
            "e.g. 'NULL' or 'yes'"
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(
            f"YAML read this as the number {value!r}; quote it to give the exact text, e.g. "
            f"'{value}'"
        )
    return value


def _column_name(value: str) -> str:
    """A column name as a header gives it: no surrounding whitespace, no line break."""
    if value != value.strip(WHITESPACE):
        raise ValueError(
            f"{value!r} has surrounding whitespace, which is not part of a column name (it is "
            f"removed from the header when the file is read); write {value.strip(WHITESPACE)!r}"
        )
    if re.search(r"[\r\n\x00]", value):
        raise ValueError(f"{value!r} holds a line break or NUL; a column name cannot")
    return value


Text = Annotated[str, BeforeValidator(_yaml_text)]
ColumnName = Annotated[
    str, BeforeValidator(_yaml_text), Field(min_length=1), AfterValidator(_column_name)
]


def _data_uri(schemes: tuple[str, ...]) -> AfterValidator:
    """A data location: s3://bucket/key, file:///absolute/path, or sample://name."""

    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(
                f"{value!r} is not a {' or '.join(s + '://' for s in schemes)} URI; write e.g. "
                "s3://bucket/data.csv or file:///absolute/path/data.csv"
            )
        if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
            raise ValueError(
                f"{value!r} is not an absolute file URI (the part after file:// is read as a "
                "host name); write file:///absolute/path/data.csv, three slashes"
            )
        if parts.scheme == "s3" and (not parts.netloc or not parts.path.strip("/")):
            raise ValueError(f"{value!r} names no object; write s3://bucket/key")
        return value

    return AfterValidator(check)


@cache
def _sagemaker_service_model() -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


@cache
def offered_instance_types(shape: str) -> frozenset[str]:
    """The instance types SageMaker's API accepts for a job kind (from botocore's model)."""
    return frozenset(_sagemaker_service_model().shape_for(shape).enum)


def _offered(shape: str, job: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in offered_instance_types(shape):
            family = value.rsplit(".", 1)[0]
            near = sorted(t for t in offered_instance_types(shape) if t.startswith(family))[:6]
            hint = f"; e.g. {', '.join(near)}" if near else "; e.g. ml.m5.xlarge"
            raise ValueError(f"{value!r} is not an instance type SageMaker offers for {job}{hint}")
        return value

    return AfterValidator(check)


ProcessingInstance = Annotated[str, _offered("ProcessingInstanceType", "processing jobs")]
TrainingInstance = Annotated[str, _offered("TrainingInstanceType", "training jobs")]
TransformInstance = Annotated[str, _offered("TransformInstanceType", "batch transform")]
EndpointInstance = Annotated[str, _offered("ProductionVariantInstanceType", "endpoints")]


def _nonzero_duration(value: str) -> str:
    if value in ("P", "PT") or value.endswith("T"):
        raise ValueError(f"'{value}' is an empty ISO 8601 duration; write e.g. P30D or PT12H")
    return value


IsoDuration = Annotated[
    str,
    Field(pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?$"),
    AfterValidator(_nonzero_duration),
]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineSection(Section):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")]
    description: str


class AwsSection(Section):
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")]
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")]
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")]


class DataSection(Section):
    input_uri: Annotated[str, _data_uri(("s3", "file", "sample"))]
    target: ColumnName
    problem_type: ProblemType
    columns: list[ColumnName] | None = None
    positive_class: Text | None = None
    validation_fraction: Fraction = 0.15
    test_fraction: Fraction = 0.15
    split_seed: int = 42
    scoring_uri: Annotated[str, _data_uri(("s3", "file"))] | None = None
    delimiter: Literal[DELIMITERS] = ","  # type: ignore[valid-type]
    decimal: Literal[DECIMAL_MARKS] = "."  # type: ignore[valid-type]
    thousands: Literal[THOUSANDS_SEPARATORS] | None = None  # type: ignore[valid-type]
    missing_values: list[Text] = list(DEFAULT_MISSING_VALUES)
    categorical_columns: list[ColumnName] = []
    drop_columns: list[ColumnName] = []
    max_categories: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_MAX_CATEGORIES
    high_cardinality: Literal[HIGH_CARDINALITY_POLICIES] = REFUSE  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> DataSection:
        problems = dialect_problems(self.delimiter, self.decimal, self.thousands)
        if problems:
            raise ValueError(
                "data.delimiter, data.decimal and data.thousands do not fit together: "
                + "; ".join(problems)
            )
        if self.target in self.drop_columns:
            raise ValueError(f"data.drop_columns names the target '{self.target}'; remove it")
        both = sorted(set(self.drop_columns) & set(self.categorical_columns))
        if both:
            raise ValueError(
                f"{both} are both in data.drop_columns and data.categorical_columns; keep one"
            )
        if self.columns is not None:
            if self.target not in self.columns:
                raise ValueError(
                    f"target '{self.target}' is not in columns {self.columns}; "
                    "add it to data.columns or fix data.target"
                )
            if len(set(self.columns)) != len(self.columns):
                raise ValueError("data.columns names a column twice; give each a unique name")
            unknown = [
                c for c in [*self.categorical_columns, *self.drop_columns] if c not in self.columns
            ]
            if unknown:
                raise ValueError(f"{unknown} are not in data.columns {self.columns}; fix the names")
        if self.validation_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                "validation_fraction + test_fraction must leave at least 10% for training"
            )
        if self.positive_class is not None and self.problem_type != "binary":
            raise ValueError("positive_class applies to problem_type 'binary' only; remove it")
        return self


class SampleDataSection(Section):
    rows: Annotated[int, Field(ge=100, le=50_000_000)]
    seed: int


@cache
def offered_framework_versions(framework: str, scope: str) -> frozenset[str]:
    """Image versions the installed SDK can name for a framework (its image_uri_config files).

    Read as data, without importing the SDK (whose import needs a region).
    """
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folder = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config"
    document = json.loads((folder / f"{framework}.json").read_text(encoding="utf-8"))
    return frozenset(document.get(scope, {}).get("versions", {}))


def _framework_version(framework: str, scopes: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        offered = frozenset.intersection(
            *(offered_framework_versions(framework, scope) for scope in scopes)
        )
        if offered and value not in offered:
            raise ValueError(
                f"{value!r} is not a {framework} image version SageMaker offers for "
                f"{' and '.join(scopes)}; choose one of {sorted(offered)}"
            )
        return value

    return AfterValidator(check)


class ImagesSection(Section):
    sklearn_version: Annotated[str, _framework_version("sklearn", ("training",))]
    xgboost_version: Annotated[str, _framework_version("xgboost", ("training", "inference"))]
    python_version: Literal["py3"]


class JobSection(Section):
    instance_type: ProcessingInstance
    instance_count: Annotated[int, Field(ge=1, le=100)]
    volume_size_gb: Annotated[int, Field(ge=1, le=16384)]
    max_runtime_seconds: Annotated[int, Field(ge=60, le=2419200)]


class TrainingJobSection(JobSection):
    instance_type: TrainingInstance


class TransformJobSection(JobSection):
    instance_type: TransformInstance


class JobsSection(Section):
    preprocess: JobSection
    data_quality: JobSection
    train: TrainingJobSection
    evaluate: JobSection
    transform: TransformJobSection


class Hyperparameters(Section):
    num_round: Annotated[int, Field(ge=1)]
    max_depth: Annotated[int, Field(ge=1, le=64)]
    eta: Annotated[float, Field(gt=0.0, le=1.0)]
    subsample: Annotated[float, Field(gt=0.0, le=1.0)]
    colsample_bytree: Annotated[float, Field(gt=0.0, le=1.0)]
    min_child_weight: Annotated[float, Field(ge=0.0)]
    reg_lambda: Annotated[float, Field(ge=0.0)]
    early_stopping_rounds: Annotated[int, Field(ge=1)]
    seed: int


class TrainingSection(Section):
    hyperparameters: Hyperparameters


class EvaluationSection(Section):
    metric: str | None = None
    threshold: float | None = None
    comparison: Literal["gte", "lte"] | None = None
    probability_threshold: Fraction = 0.5
    bootstrap_rounds: Annotated[int, Field(ge=0, le=1000)] = 50
    smoke_sample_rows: Annotated[int, Field(ge=1, le=1000)] = DEFAULT_SMOKE_ROWS


class DataQualitySection(Section):
    skip_check: bool
    register_new_baseline: bool
    fail_on_violation: bool


class RegistrySection(Section):
    model_package_group: Annotated[str, Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")]
    approval_status: ApprovalStatus
    inference_instance_types: list[EndpointInstance]
    transform_instance_types: list[TransformInstance]


class ApprovalSection(Section):
    queue_url: Annotated[str, AfterValidator(check_queue_url)]
    local_policy: Literal["auto-approve", "auto-reject", "wait"]
    timeout_seconds: Annotated[int, Field(ge=1)]


class TransformSection(Section):
    max_payload_mb: Annotated[int, Field(ge=1, le=100)]
    strategy: Literal["MultiRecord", "SingleRecord"]
    split_type: Literal["Line", "None"]


class CacheSection(Section):
    enabled: bool
    expire_after: IsoDuration


SCHEDULE_EXPRESSION = (
    r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)"
    r"|cron\(\S+ \S+ \S+ \S+ \S+ \S+\)"
    r"|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$"
)
DATA_VERSION_PARAMETER = "DataVersion"
INPUT_DATA_PARAMETER = "InputDataUri"
SCORING_DATA_PARAMETER = "ScoringDataUri"


class ScheduleSection(Section):
    enabled: bool
    expression: Annotated[str, Field(pattern=SCHEDULE_EXPRESSION)]
    timezone: NonEmpty
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")]
    parameters: dict[str, str | int | float | bool]

    @model_validator(mode="after")
    def _no_pinned_data_version(self) -> ScheduleSection:
        if DATA_VERSION_PARAMETER in self.parameters:
            raise ValueError(
                f"schedule.parameters must not set {DATA_VERSION_PARAMETER}: each scheduled run "
                "passes its scheduled time there so Preprocess re-reads the input instead of "
                "reusing a cached run of the same URI; remove it"
            )
        uri = self.parameters.get(INPUT_DATA_PARAMETER)
        if uri is not None and not str(uri).startswith("s3://"):
            raise ValueError(
                f"schedule.parameters.{INPUT_DATA_PARAMETER} is {uri!r}, but scheduled runs "
                "execute on SageMaker, which reads from S3 only; give an s3:// URI or remove it"
            )
        return self


class SecuritySection(Section):
    enable_network_isolation: bool
    encrypt_inter_container_traffic: bool
    subnets: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]+$")]]
    security_group_ids: list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]+$")]]
    volume_kms_key_id: NonEmpty | None
    output_kms_key_id: NonEmpty | None

    @model_validator(mode="after")
    def _vpc_complete(self) -> SecuritySection:
        if bool(self.subnets) != bool(self.security_group_ids):
            raise ValueError(
                "security.subnets and security.security_group_ids go together: a VPC config "
                "needs both (or neither)"
            )
        return self


class RetryRule(Section):
    exception_types: list[
        Literal[
            "SageMaker.JOB_INTERNAL_ERROR",
            "SageMaker.CAPACITY_ERROR",
            "SageMaker.RESOURCE_LIMIT",
            "Step.SERVICE_FAULT",
            "Step.THROTTLING",
        ]
    ]
    max_attempts: Annotated[int, Field(ge=1, le=20)]
    interval_seconds: Annotated[int, Field(ge=1)]
    backoff_rate: Annotated[float, Field(ge=1.0)]


class RetrySection(Section):
    job: RetryRule
    service: RetryRule

    @model_validator(mode="after")
    def _kinds_fit_their_rule(self) -> RetrySection:
        if any(not t.startswith("SageMaker.") for t in self.job.exception_types):
            raise ValueError("retry.job.exception_types takes SageMaker.* types only")
        if any(not t.startswith("Step.") for t in self.service.exception_types):
            raise ValueError("retry.service.exception_types takes Step.* types only")
        return self


class Config(Section):
    """The whole configuration; `evaluation` is resolved against `data.problem_type`."""

    pipeline: PipelineSection
    aws: AwsSection
    data: DataSection
    sample_data: SampleDataSection
    images: ImagesSection
    jobs: JobsSection
    training: TrainingSection
    evaluation: EvaluationSection
    data_quality: DataQualitySection
    registry: RegistrySection
    approval: ApprovalSection
    transform: TransformSection
    cache: CacheSection
    schedule: ScheduleSection
    security: SecuritySection
    retry: RetrySection
    deploy: DeploySection  # schema and rules: steps/deploy_config.py

    @model_validator(mode="after")
    def _check_gate(self) -> Config:
        self.gate  # noqa: B018 - resolving the gate validates metric, threshold and comparison
        problems = security_problems(
            self.deploy, self.security.enable_network_isolation, self.security.subnets
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def gate(self) -> Gate:
        """The condition's metric, threshold and comparison, defaults resolved per problem type."""
        problem = self.data.problem_type
        ev = self.evaluation
        metric = ev.metric or DEFAULT_METRIC[problem]
        if metric not in METRICS[problem]:
            raise ValueError(
                f"evaluation.metric '{metric}' is not written by evaluate for problem_type "
                f"'{problem}'; choose one of {list(METRICS[problem])}"
            )
        higher_is_better, low, high = METRIC_BOUNDS[metric]
        threshold = ev.threshold if ev.threshold is not None else DEFAULT_THRESHOLD.get(metric)
        if threshold is None:
            raise ValueError(f"evaluation.threshold is required for metric '{metric}'")
        if not low <= threshold <= high:
            raise ValueError(
                f"evaluation.threshold {threshold} is outside the range of '{metric}' "
                f"[{low}, {high}]; pick a value inside it"
            )
        comparison = ev.comparison or ("gte" if higher_is_better else "lte")
        return Gate(metric=metric, threshold=threshold, comparison=comparison)


class Gate(Section):
    """What the CheckMetric condition compares: evaluation.json's metric against a threshold."""

    metric: str
    threshold: float
    comparison: Literal["gte", "lte"]


class ConfigError(ValueError):
    """A config file that cannot be used; the message lists every problem."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {seen[key] + 1}); "
                    "keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(path: Path, exc: yaml.YAMLError, text: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    hint = ""
    if "\t" in text and ("\\t" in problem or "tab" in problem.lower()):
        hint = " YAML indents with spaces, never tabs: replace the tabs with spaces."
    elif "mapping values are not allowed" in problem:
        hint = " Quote a value that holds ': ', or indent it under its key."
    return f"{path}: not valid YAML at {where}{problem}; fix the syntax.{hint}"


def _read_yaml(path: Path, named_by: str) -> dict[str, Any]:
    """One config file as a mapping; every way it can be unusable is a ConfigError.

    ``named_by`` says where the path came from (``--config``, or ``extends`` in a file).
    """
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file; {named_by} a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found; {named_by} an existing file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8; save the "
            "file as UTF-8"
        ) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(path, exc, text)) from None
    if raw is None:
        raise ConfigError(
            f"{path}: the file is empty; a config names at least data.input_uri, data.target "
            "and data.problem_type (see configs/pipeline.yaml)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections (data:, jobs: ...), not a "
            f"{type(raw).__name__}"
        )
    return raw


def _resolve(path: Path, named_by: str, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `extends` forms a cycle through {[str(p) for p in seen]}")
    raw = _read_yaml(path, named_by)
    parent = raw.pop("extends", None)
    if parent is not None and (not isinstance(parent, str) or not parent.strip()):
        raise ConfigError(
            f"{path}: extends must be the path of one config file (relative to this file), "
            f"got {parent!r}"
        )
    if parent is None and path != BASE_CONFIG.resolve():
        parent_path: Path | None = BASE_CONFIG
    elif parent is None:
        parent_path = None
    else:
        parent_path = (path.parent / parent).resolve()
    if parent_path is None:
        return raw
    reference = f"fix `extends: {parent}` in {path}: it must name" if parent else "restore"
    return merge(_resolve(parent_path, reference, (*seen, path)), raw)


def _format_errors(path: Path, error: ValidationError, from_env: dict[str, str]) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the configuration:"]
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling against configs/base.yaml"
        elif item["type"] == "missing":
            message = "required; add it (configs/base.yaml documents every key)"
        got = item.get("input")
        shown = "" if item["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        source = next((f" [set by {v}]" for k, v in from_env.items() if where.startswith(k)), "")
        lines.append(f"  - {where}: {message}{shown}{source}")
    return "\n".join(lines)


def load_config(path: Path | str = PIPELINE_CONFIG, env: dict[str, str] | None = None) -> Config:
    """Load, merge and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    raw = _resolve(path, "pass --config with")
    environ = os.environ if env is None else env
    from_env = {}
    for variable, (section, key) in ENV_OVERRIDES.items():
        if environ.get(variable):
            if not isinstance(raw.get(section, {}), dict):
                break  # the section itself is wrong: validation reports it
            raw.setdefault(section, {})[key] = environ[variable]
            from_env[f"{section}.{key}"] = f"environment variable {variable}"
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc, from_env)) from None
