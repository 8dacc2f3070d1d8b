"""Train: XGBoost in the framework image's script mode, running scripts/train.py."""

from __future__ import annotations

from sagemaker.core.shapes import StoppingCondition
from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
from sagemaker.train.model_trainer import ModelTrainer

from scripts import preprocess as data
from scripts import train as job
from steps.context import BuildContext
from steps.jobs import XGBOOST, image_uri, output_s3_uri
from steps.security import job_networking

STEP_NAME = "Train"
SCRIPT = "train.py"
MODEL_OUTPUT = "model"
CONTENT_TYPE_CSV = "text/csv"
OBJECTIVES = {"binary": ("binary:logistic", "auc"), "regression": ("reg:squarederror", "rmse")}


def hyperparameters(ctx: BuildContext) -> dict[str, str]:
    """The script's arguments plus the framework's script-mode contract (program, code, region).

    The code is a content-addressed sourcedir.tar.gz instead of ModelTrainer's SourceCode, whose
    code channel sits under a timestamped key and would make every build a cache miss.
    """
    objective, eval_metric = OBJECTIVES[ctx.cfg.data.problem_type]
    values = ctx.cfg.training.hyperparameters.model_dump()
    return {
        "objective": objective,
        "eval_metric": eval_metric,
        **{key: str(value) for key, value in values.items()},
        "sagemaker_program": SCRIPT,
        "sagemaker_submit_directory": ctx.code.sourcedir(SCRIPT),
        "sagemaker_region": ctx.cfg.aws.region,
    }


def build_train_step(ctx: BuildContext, preprocess: ProcessingStep) -> TrainingStep:
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
            s3_output_path=ctx.output_uri(STEP_NAME, MODEL_OUTPUT),
            compression_type="GZIP",
            kms_key_id=ctx.cfg.security.output_kms_key_id,
        ),
        sagemaker_session=ctx.session,
    )
    channels = {
        job.TRAIN_CHANNEL: data.TRAIN,
        job.VALIDATION_CHANNEL: data.VALIDATION,
        job.TRANSFORMER_CHANNEL: data.TRANSFORMER,
    }
    step_args = trainer.train(
        input_data_config=[
            InputData(
                channel_name=channel,
                data_source=output_s3_uri(preprocess, output),
                content_type=CONTENT_TYPE_CSV,
            )
            for channel, output in channels.items()
        ]
    )
    return TrainingStep(
        name=STEP_NAME,
        step_args=step_args,
        description="Fit XGBoost on the transformed train split, early-stopped on validation.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )
