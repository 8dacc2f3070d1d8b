"""CreateModel and BatchScore: the approved model scores the test split (or a scoring input)."""

from __future__ import annotations

from sagemaker.core.transformer import Transformer
from sagemaker.mlops.workflow.callback_step import CallbackStep
from sagemaker.mlops.workflow.model_step import ModelStep
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep, TransformStep

from steps.containers import output_s3_uri
from steps.context import BuildContext
from steps.names import BATCH_SCORE, CREATE_MODEL
from steps.register import serving_model
from tabular.contract import CSV, AssembleWith, JoinSource
from tabular.names import SCORING

PREDICTIONS_OUTPUT = "predictions"


def build_create_model_step(
    ctx: BuildContext, train: TrainingStep, approval: CallbackStep
) -> ModelStep:
    return ModelStep(
        name=CREATE_MODEL,
        step_args=serving_model(ctx, train).build(),
        depends_on=[approval],
        retry_policies=ctx.service_retry_policies(),
    )


def build_batch_score_step(
    ctx: BuildContext, preprocess: ProcessingStep, create_model: ModelStep
) -> TransformStep:
    spec = ctx.job("transform")
    transformer = Transformer(
        model_name=create_model.properties.ModelName,
        instance_count=spec.instance_count,
        instance_type=ctx.params.transform_instance_type,
        strategy=ctx.cfg.transform.strategy,
        assemble_with=AssembleWith.LINE,
        accept=CSV,
        max_payload=ctx.cfg.transform.max_payload_mb,
        output_path=ctx.output_uri(BATCH_SCORE, PREDICTIONS_OUTPUT),
        base_transform_job_name=f"{ctx.cfg.pipeline.name}-batch-score",
        sagemaker_session=ctx.session,
        output_kms_key=ctx.cfg.security.output_kms_key_id,
        volume_kms_key=ctx.cfg.security.volume_kms_key_id,
    )
    # Preprocess read data.scoring_uri (if set) with the training data's rules and wrote it in
    # the form the serving code reads: what reaches the model was checked before training.
    step_args = transformer.transform(
        data=output_s3_uri(preprocess, SCORING),
        content_type=CSV,
        split_type=ctx.cfg.transform.split_type,
        join_source=JoinSource.INPUT,
    )
    return TransformStep(
        name=BATCH_SCORE,
        step_args=step_args,
        description="Batch-score with the approved model; predictions follow their input rows.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )
