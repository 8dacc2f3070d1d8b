"""SageMaker's side of every contract this project relies on, written once.

The names SageMaker defines: the container layout and environment a job finds (processing,
training toolkit, inference toolkit), the files it reads a failure from, content types, the
statuses and enums of its API (job, step, execution and approval statuses, step types, retry
exception types), Model Monitor's file and check names, and the shape of a pipeline definition
document.

Every layer imports them from here: the job code inside the container (which is why this module
ships with every job, in the job package), the builders, the CLI, the AWS verbs and the local
runtime that stands in for SageMaker. Standard library only, and nothing of this project: the
names are SageMaker's, so they change when SageMaker's contract does, not when the pipeline does.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

# --------------------------------------------------------------------------- container layout

OPT_ML = "/opt/ml"
PROCESSING_ROOT = f"{OPT_ML}/processing"
"""Where a processing job's inputs and outputs are mounted (each at the LocalPath it names)."""
PROCESSING_CODE_DIR = f"{PROCESSING_ROOT}/input/code"
"""Where the SDK's ScriptProcessor and FrameworkProcessor put a processing job's code."""
PROCESSING_CONFIG_DIR = f"{OPT_ML}/config"
"""A processing job's resourceconfig.json (``current_host``, ``hosts``) and
processingjobconfig.json (its name, ARN and request) are here ("How Amazon
SageMaker Processing Configures Your Processing Container", in "Build Your Own Processing
Container": docs.aws.amazon.com/sagemaker/latest/dg/build-your-own-processing-container.html)."""
CODE_DIR = f"{OPT_ML}/code"
MODEL_DIR = f"{OPT_ML}/model"
INFERENCE_CODE_DIR = f"{MODEL_DIR}/code"
INPUT_DIR = f"{OPT_ML}/input"
INPUT_CONFIG_DIR = f"{INPUT_DIR}/config"
INPUT_DATA_DIR = f"{INPUT_DIR}/data"
OUTPUT_DIR = f"{OPT_ML}/output"
OUTPUT_DATA_DIR = f"{OUTPUT_DIR}/data"
OUTPUT_INTERMEDIATE_DIR = f"{OUTPUT_DIR}/intermediate"

HYPERPARAMETERS_FILE = "hyperparameters.json"
RESOURCE_CONFIG_FILE = "resourceconfig.json"
PROCESSING_JOB_CONFIG_FILE = "processingjobconfig.json"
INPUT_DATA_CONFIG_FILE = "inputdataconfig.json"
MODEL_ARCHIVE = "model.tar.gz"
"""What a training job publishes ``/opt/ml/model`` as, and what a model's ModelDataUrl names."""
OUTPUT_ARCHIVE = "output.tar.gz"

# Why a job failed: the file SageMaker reads, per kind of job.
# * Training: ``/opt/ml/output/failure``; DescribeTrainingJob returns its first 1024 characters
#   as FailureReason ("How Amazon SageMaker AI Processes Training Output",
#   docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html).
# * Processing: ``/opt/ml/output/message``; DescribeProcessingJob returns its first 1 KB as
#   ExitMessage, the field documented for telling why a processing container failed ("Save and
#   Access Metadata Information About Your Processing Job",
#   docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html).
FAILURE_FILE_NAME = "failure"
FAILURE_REASON_FILE_ENV = "SM_FAILURE_REASON_FILE"
"""Batch transform (the local inference-toolkit stand-in) writes why it failed to this file."""
MESSAGE_FILE_NAME = "message"
FAILURE_FILE = f"{OUTPUT_DIR}/{FAILURE_FILE_NAME}"
MESSAGE_FILE = f"{OUTPUT_DIR}/{MESSAGE_FILE_NAME}"
FAILURE_REASON_LIMIT = 1024
"""SageMaker keeps the first 1024 characters of a FailureReason (and of an ExitMessage)."""

# --------------------------------------------------------------------------- environment

SM_OUTPUT_DIR = "SM_OUTPUT_DIR"
SM_MODEL_DIR = "SM_MODEL_DIR"
SM_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
SM_CHANNEL_PREFIX = "SM_CHANNEL_"
"""The training toolkit's ``SM_CHANNEL_<NAME>``: where channel ``<name>`` is mounted."""
SM_INPUT_CONFIG_DIR = "SM_INPUT_CONFIG_DIR"
"""Where the toolkit's ``/opt/ml/input/config`` is (resourceconfig.json among its files)."""
CURRENT_HOST_KEY = "current_host"
HOSTS_KEY = "hosts"
"""resourceconfig.json's keys: this host's name and every host of the job, in order
("How Amazon SageMaker AI Provides Training Information", distributed training configuration:
docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-running-container.html)."""
LOCAL_HOST_ADDRESSES = "SM_LOCAL_HOST_ADDRESSES"
"""Set by the local runtime only: a JSON object of host name -> address, its stand-in for the
cluster's DNS (on SageMaker every host name in resourceconfig.json resolves by DNS)."""

# Training toolkit (sagemaker-training-toolkit), script mode: hyperparameters it reads itself.
HP_PROGRAM = "sagemaker_program"
HP_SUBMIT_DIRECTORY = "sagemaker_submit_directory"
HP_REGION = "sagemaker_region"
HP_LOG_LEVEL = "sagemaker_container_log_level"
HP_PREFIX = "sagemaker_"
TOOLKIT_HYPERPARAMETERS = frozenset(
    {
        HP_PROGRAM, HP_SUBMIT_DIRECTORY, HP_LOG_LEVEL, HP_REGION, "sagemaker_job_name",
        "sagemaker_enable_cloudwatch_metrics", "sagemaker_s3_output",
    }
)  # fmt: skip

# Inference toolkit (sagemaker-inference-toolkit), script mode: the model's environment.
SERVING_PROGRAM = "SAGEMAKER_PROGRAM"
SERVING_SUBMIT_DIRECTORY = "SAGEMAKER_SUBMIT_DIRECTORY"
SERVING_REGION = "SAGEMAKER_REGION"
SERVING_LOG_LEVEL = "SAGEMAKER_CONTAINER_LOG_LEVEL"
DEFAULT_ACCEPT_ENV = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
"""The Accept the inference toolkit uses when a request sends none or ``*/*``."""
DEFAULT_ACCEPT = "application/json"
"""The toolkit's default for :data:`DEFAULT_ACCEPT_ENV` (sagemaker_inference/environment.py)."""

# --------------------------------------------------------------------------- content types

CSV = "text/csv"
JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
ANY = "*/*"
UTF8_TYPES = (JSON, CSV)
"""Content types whose request body the inference toolkit decodes to ``str`` for the user code."""


def media_type(value: str | None) -> str:
    """The bare, lower-case media type of a Content-Type or Accept value (``""`` for none)."""
    return (value or "").split(";")[0].strip().lower()


# --------------------------------------------------------------------------- API enums


class JobStatus(StrEnum):
    """ProcessingJobStatus / TrainingJobStatus / TransformJobStatus of a finished job."""

    COMPLETED = "Completed"
    FAILED = "Failed"


class StepStatus(StrEnum):
    """A pipeline step's status (ListPipelineExecutionSteps' StepStatus)."""

    STARTING = "Starting"
    EXECUTING = "Executing"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"
    NOT_EXECUTED = "NotExecuted"
    """A step on the branch a condition did not take."""


class ExecutionStatus(StrEnum):
    """A pipeline execution's status (PipelineExecutionStatus)."""

    EXECUTING = "Executing"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"


class ApprovalStatus(StrEnum):
    """A model package's ModelApprovalStatus."""

    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


class EndpointStatus(StrEnum):
    """An endpoint's EndpointStatus (DescribeEndpoint)."""

    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"
    OUT_OF_SERVICE = "OutOfService"


class ScheduleStatus(StrEnum):
    """A monitoring schedule's MonitoringScheduleStatus."""

    PENDING = "Pending"
    FAILED = "Failed"
    SCHEDULED = "Scheduled"
    STOPPED = "Stopped"


class InferenceExperimentStatus(StrEnum):
    """A shadow test's Status (DescribeInferenceExperiment)."""

    CREATING = "Creating"
    CREATED = "Created"
    UPDATING = "Updating"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    STARTING = "Starting"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"


class StepType(StrEnum):
    """The ``Type`` of a step in a pipeline definition."""

    PROCESSING = "Processing"
    TRAINING = "Training"
    TRANSFORM = "Transform"
    QUALITY_CHECK = "QualityCheck"
    MODEL = "Model"
    REGISTER_MODEL = "RegisterModel"
    CALLBACK = "Callback"
    CONDITION = "Condition"
    FAIL = "Fail"


class S3DataType(StrEnum):
    """How an S3 data source selects its objects (the local runtime serves S3Prefix)."""

    S3_PREFIX = "S3Prefix"
    MANIFEST_FILE = "ManifestFile"
    AUGMENTED_MANIFEST_FILE = "AugmentedManifestFile"


class S3DataDistribution(StrEnum):
    """``S3DataDistributionType``: every host of a job gets every object, or about 1/N of them
    (whole objects, by key; one host gets them all)."""

    FULLY_REPLICATED = "FullyReplicated"
    SHARDED_BY_S3_KEY = "ShardedByS3Key"


class InputMode(StrEnum):
    """How a job reads an input: copied before it starts (File) or streamed."""

    FILE = "File"
    PIPE = "Pipe"
    FAST_FILE = "FastFile"


class SplitType(StrEnum):
    """``TransformInput.SplitType``: how an input object is cut into records."""

    LINE = "Line"
    NONE = "None"
    RECORD_IO = "RecordIO"
    TF_RECORD = "TFRecord"


class BatchStrategy(StrEnum):
    """``BatchStrategy``: how many records go into one request."""

    MULTI_RECORD = "MultiRecord"
    SINGLE_RECORD = "SingleRecord"


class AssembleWith(StrEnum):
    """``TransformOutput.AssembleWith``: how responses are put together in the output."""

    LINE = "Line"
    NONE = "None"


class JoinSource(StrEnum):
    """``DataProcessing.JoinSource``: whether output records follow their input record."""

    INPUT = "Input"
    NONE = "None"


NO_COMPRESSION = "None"
"""A data source's CompressionType when its objects are staged as they are."""

JOB_STEP_TYPES = frozenset(
    {StepType.PROCESSING, StepType.TRAINING, StepType.TRANSFORM, StepType.QUALITY_CHECK}
)
"""Steps that run a SageMaker job (and publish its outputs)."""


class JobRetryType(StrEnum):
    """SageMakerJobStepRetryPolicy exception types: faults of the job, not of its code."""

    JOB_INTERNAL_ERROR = "SageMaker.JOB_INTERNAL_ERROR"
    CAPACITY_ERROR = "SageMaker.CAPACITY_ERROR"
    RESOURCE_LIMIT = "SageMaker.RESOURCE_LIMIT"


class StepRetryType(StrEnum):
    """StepRetryPolicy exception types: faults of the Pipelines service."""

    SERVICE_FAULT = "Step.SERVICE_FAULT"
    THROTTLING = "Step.THROTTLING"


# Callback steps: the message SageMaker sends to the step's SQS queue.
CALLBACK_TOKEN = "token"
CALLBACK_EXECUTION_ARN = "pipelineExecutionArn"
CALLBACK_ARGUMENTS = "arguments"
CALLBACK_STATUS = "status"

# --------------------------------------------------------------------------- Model Monitor

STATISTICS_FILE = "statistics.json"
CONSTRAINTS_FILE = "constraints.json"
VIOLATIONS_FILE = "constraint_violations.json"
DATA_QUALITY_CHECK = "DATA_QUALITY"
"""A QualityCheck step's CheckType for a data-quality baseline and drift check."""


class ViolationCheck(StrEnum):
    """``constraint_check_type`` of a Model Monitor violation ("Schema for Violations")."""

    DATA_TYPE = "data_type_check"
    COMPLETENESS = "completeness_check"
    BASELINE_DRIFT = "baseline_drift_check"
    MISSING_COLUMN = "missing_column_check"
    EXTRA_COLUMN = "extra_column_check"
    CATEGORICAL_VALUES = "categorical_values_check"
    NON_NEGATIVE = "non_negative_check"


# --------------------------------------------------------------------------- definition


def definition_steps(
    definition: Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, bool]]]:
    """A pipeline definition's steps by name, condition branches included, and for each step
    inside a branch: (its Condition step, True for IfSteps / False for ElseSteps)."""
    steps: dict[str, dict[str, Any]] = {}
    branch_of: dict[str, tuple[str, bool]] = {}
    pending = list(definition["Steps"])
    while pending:
        step = pending.pop(0)
        steps[step["Name"]] = step
        if step["Type"] == StepType.CONDITION:
            for branch, key in ((True, "IfSteps"), (False, "ElseSteps")):
                for inner in step["Arguments"].get(key, []):
                    branch_of[inner["Name"]] = (step["Name"], branch)
                    pending.append(inner)
    return steps, branch_of
