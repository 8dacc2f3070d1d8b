"""Train: XGBoost in the framework image's script mode, running scripts/train.py."""

from __future__ import annotations

from sagemaker.core.shapes import Channel, DataSource, S3DataSource, StoppingCondition
from sagemaker.core.training.configs import Compute, OutputDataConfig
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
from sagemaker.train.model_trainer import ModelTrainer

from steps.containers import XGBOOST, image_uri, output_s3_uri
from steps.context import BuildContext
from steps.names import TRAIN as STEP
from steps.security import job_networking
from tabular.contract import (
    CSV,
    HP_PROGRAM,
    HP_REGION,
    HP_SUBMIT_DIRECTORY,
    InputMode,
    S3DataDistribution,
    S3DataType,
)
from tabular.names import (
    DEFAULT_EVAL_METRIC,
    OBJECTIVES,
    PARQUET,
    TRAIN,
    TRAIN_SCRIPT,
    TRANSFORMER,
    VALIDATION,
)

MODEL_OUTPUT = "model"
CHANNELS = (TRAIN, VALIDATION, TRANSFORMER)
"""Train's channels, each fed by the output of the same name (Preprocess's, FitTransformer's)."""
CONTENT_TYPES = {TRAIN: PARQUET, VALIDATION: PARQUET, TRANSFORMER: CSV}
"""The splits are Parquet files; the transformer channel keeps the type it always had."""
DISTRIBUTION = {
    TRAIN: S3DataDistribution.SHARDED_BY_S3_KEY,
    VALIDATION: S3DataDistribution.FULLY_REPLICATED,
    TRANSFORMER: S3DataDistribution.FULLY_REPLICATED,
}
"""With TrainInstanceCount = N, each instance gets about 1/N of the train split's files and all
of the validation split and transformer (one instance: everything), so one definition serves
every N: the hosts train one model together (scripts/train.py)."""


def hyperparameters(ctx: BuildContext) -> dict[str, str]:
    """The script's arguments plus the framework's script-mode contract (program, code, region).

    The code is a content-addressed sourcedir.tar.gz instead of ModelTrainer's SourceCode, whose
    code channel sits under a timestamped key and would make every build a cache miss.
    """
    problem = ctx.cfg.data.problem_type
    values = ctx.cfg.training.hyperparameters.model_dump()
    return {
        "objective": OBJECTIVES[problem][0],
        "eval_metric": DEFAULT_EVAL_METRIC[problem],
        **{key: str(value) for key, value in values.items()},
        "keep_batches": str(ctx.cfg.training.keep_batches).lower(),
        HP_PROGRAM: TRAIN_SCRIPT,
        HP_SUBMIT_DIRECTORY: ctx.code.sourcedir(TRAIN_SCRIPT),
        HP_REGION: ctx.cfg.aws.region,
    }


def build_train_step(
    ctx: BuildContext, preprocess: ProcessingStep, fit: ProcessingStep
) -> TrainingStep:
    """Train's channels: the splits from Preprocess, the transformer from FitTransformer."""
    sources = {TRAIN: preprocess, VALIDATION: preprocess, TRANSFORMER: fit}
    spec = ctx.job("train")
    trainer = ModelTrainer(
        training_image=image_uri(ctx, XGBOOST, "training"),
        role=ctx.cfg.aws.role_arn,
        base_job_name=f"{ctx.cfg.pipeline.name}-train",
        compute=Compute(
            instance_type=ctx.params.train_instance_type,
            instance_count=ctx.params.train_instance_count,
            volume_size_in_gb=spec.volume_size_gb,
            volume_kms_key_id=ctx.cfg.security.volume_kms_key_id,
        ),
        networking=job_networking(ctx.cfg.security),
        stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.max_runtime_seconds),
        hyperparameters=hyperparameters(ctx),
        output_data_config=OutputDataConfig(
            s3_output_path=ctx.output_uri(STEP, MODEL_OUTPUT),
            compression_type="GZIP",
            kms_key_id=ctx.cfg.security.output_kms_key_id,
        ),
        sagemaker_session=ctx.session,
    )
    step_args = trainer.train(
        input_data_config=[
            Channel(
                channel_name=channel,
                data_source=DataSource(
                    s3_data_source=S3DataSource(
                        s3_data_type=S3DataType.S3_PREFIX,
                        s3_uri=output_s3_uri(sources[channel], channel),
                        s3_data_distribution_type=DISTRIBUTION[channel],
                    )
                ),
                content_type=CONTENT_TYPES[channel],
                input_mode=InputMode.FILE,
            )
            for channel in CHANNELS
        ]
    )
    return TrainingStep(
        name=STEP,
        step_args=step_args,
        description="Fit XGBoost on the transformed train split, early-stopped on validation.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )
