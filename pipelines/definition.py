"""The graph: every step built by its builder, wired by property references."""

from __future__ import annotations

import logging
from pathlib import Path

from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.mlops.workflow.pipeline import Pipeline

from config import Config
from config.paths import SCRIPTS_DIR
from pipelines.document import BuiltPipeline, canonical_json
from pipelines.sdk import pipeline_session
from steps.approval import build_approval_step
from steps.batch_score import build_batch_score_step, build_create_model_step
from steps.check_metric import build_check_metric_step, metric_value
from steps.code import CodeStore
from steps.context import BuildContext, Parameters
from steps.data_quality import build_data_quality_step
from steps.evaluate import build_evaluate_step, evaluation_report, package_metadata, report_uri
from steps.preprocess import build_fit_step, build_preprocess_step, build_profile_step
from steps.register import build_register_step
from steps.train import build_train_step


def create_pipeline(
    cfg: Config, session: PipelineSession, scripts_dir: Path = SCRIPTS_DIR
) -> tuple[Pipeline, CodeStore]:
    ctx = BuildContext(
        cfg=cfg,
        session=session,
        params=Parameters.from_config(cfg),
        code=CodeStore(cfg.aws.bucket, cfg.aws.prefix, scripts_dir),
    )
    report = evaluation_report()
    profile = build_profile_step(ctx)
    preprocess = build_preprocess_step(ctx, profile)
    fit = build_fit_step(ctx, profile, preprocess)
    data_quality = build_data_quality_step(ctx, preprocess)
    train = build_train_step(ctx, preprocess, fit)
    evaluate = build_evaluate_step(ctx, preprocess, train, data_quality, report)
    register = build_register_step(
        ctx, train, data_quality, report_uri(evaluate), package_metadata(evaluate)
    )
    approval = build_approval_step(ctx, register, metric_value(ctx, evaluate, report))
    create_model = build_create_model_step(ctx, train, approval)
    batch_score = build_batch_score_step(ctx, preprocess, create_model)
    check_metric = build_check_metric_step(
        ctx, evaluate, report, if_steps=[register, approval, create_model, batch_score]
    )
    pipeline = Pipeline(
        name=cfg.pipeline.name,
        parameters=ctx.params.all(),
        steps=[profile, preprocess, fit, data_quality, train, evaluate, check_metric],
        sagemaker_session=session,
    )
    return pipeline, ctx.code


def build(
    cfg: Config, session: PipelineSession | None = None, scripts_dir: Path = SCRIPTS_DIR
) -> BuiltPipeline:
    """Build the pipeline offline: no AWS call, no credentials needed.

    `scripts_dir` is where the job code is read from (tests point it at an edited copy).
    """
    # The SDK narrates every build at INFO ("Model has been created", "Popping out ..."): what it
    # leaves out of the definition shows in the golden snapshot instead.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        if session is None:
            session = pipeline_session(cfg)
        pipeline, code = create_pipeline(cfg, session, scripts_dir)
        definition = canonical_json(pipeline.definition())
    finally:
        logging.disable(previous)
    return BuiltPipeline(pipeline=pipeline, definition=definition, code=code.artifacts)
