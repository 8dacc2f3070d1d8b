"""Preprocess as three steps: profile the CSV, validate and split it, fit the transformer."""

from __future__ import annotations

from sagemaker.core.helper.pipeline_variable import PipelineVariable
from sagemaker.core.shapes import ProcessingInput
from sagemaker.mlops.workflow.steps import ProcessingStep

from config import Config
from steps.containers import (
    SKLEARN,
    code_input,
    job_processor,
    output_s3_uri,
    processing_input,
    processing_output,
)
from steps.context import BuildContext
from steps.names import FIT_TRANSFORMER, PREPROCESS, PROFILE
from tabular.contract import PROCESSING_CONFIG_DIR, S3DataDistribution
from tabular.dialect import Dialect
from tabular.names import (
    DATA_DIR,
    PREPROCESS_OUTPUT_ROOT,
    PREPROCESS_OUTPUTS,
    PREPROCESS_SCRIPT,
    PROFILE_DIR,
    SCORING_DIR,
    SETTINGS_DIR,
    SETTINGS_FILE,
    STAGE_FIT,
    STAGE_PROFILE,
    STAGE_SPLIT,
    STATS,
    STATS_DIR,
    TRANSFORMER,
)
from tabular.names import PROFILE as PROFILE_OUTPUT
from tabular.settings import Settings

DATA_INPUT = "data"
SETTINGS_INPUT = "settings"
SCORING_INPUT = "scoring"
JOB_NAMES = {STAGE_PROFILE: "profile", STAGE_SPLIT: "preprocess", STAGE_FIT: "fit-transformer"}
"""The passes of scripts/preprocess.py (``--stage``) and each one's part of its jobs' names
(``<pipeline>-<part>-<timestamp>``). With PreprocessInstanceCount = N, Profile and Preprocess
run on N instances, each given about 1/N of the input files (ShardedByS3Key, whole files); the
fit runs on one. One instance gets every file, so one definition serves every N."""


def job_settings(cfg: Config) -> Settings:
    """What the job needs to know about the data, from `data:`; it travels as a JSON document,
    so column names and values reach the job as data, whatever characters they hold."""
    data = cfg.data
    return Settings(
        target=data.target,
        problem_type=data.problem_type,
        columns=tuple(data.columns) if data.columns else None,
        positive_class=data.positive_class,
        validation_fraction=data.validation_fraction,
        test_fraction=data.test_fraction,
        seed=data.split_seed,
        dialect=Dialect(
            delimiter=data.delimiter,
            decimal=data.decimal,
            thousands=data.thousands,
            missing_values=tuple(data.missing_values),
        ),
        categorical_columns=tuple(data.categorical_columns),
        drop_columns=tuple(data.drop_columns),
        max_categories=data.max_categories,
        high_cardinality=data.high_cardinality,
        train_shards=cfg.training.shards,
    )


def job_arguments(ctx: BuildContext, stage: str) -> list[str | PipelineVariable]:
    """The job's arguments for one pass (``--stage``, scripts/preprocess.py)."""
    args: list[str | PipelineVariable] = [
        "--stage", stage,
        "--output-root", PREPROCESS_OUTPUT_ROOT,
        "--settings", f"{SETTINGS_DIR}/{SETTINGS_FILE}",
        "--data-version", ctx.params.data_version,
        "--resource-config-dir", PROCESSING_CONFIG_DIR,
    ]  # fmt: skip
    if stage != STAGE_FIT:
        args += ["--input-dir", DATA_DIR]
    if stage != STAGE_PROFILE:
        args += ["--profile-dir", PROFILE_DIR]
    if stage == STAGE_FIT:
        args += ["--stats-dir", STATS_DIR]
    if stage == STAGE_SPLIT and ctx.params.scoring_data_uri is not None:
        args += ["--scoring-dir", SCORING_DIR]
    return args


def _step(
    ctx: BuildContext,
    name: str,
    stage: str,
    inputs: list[ProcessingInput],
    outputs: tuple[str, ...],
    description: str,
    instance_count: int | PipelineVariable,
) -> ProcessingStep:
    processor = job_processor(
        ctx, "preprocess", SKLEARN, ctx.params.preprocess_instance_type, PREPROCESS_SCRIPT,
        instance_count=instance_count, name=JOB_NAMES[stage],
    )  # fmt: skip
    step_args = processor.run(
        inputs=[*inputs, code_input(ctx, PREPROCESS_SCRIPT)],
        outputs=[
            processing_output(ctx, name, output, f"{PREPROCESS_OUTPUT_ROOT}/{output}")
            for output in outputs
        ],
        arguments=job_arguments(ctx, stage),
    )
    return ProcessingStep(
        name=name,
        step_args=step_args,
        description=description,
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )


def _settings_input(ctx: BuildContext) -> ProcessingInput:
    settings = ctx.code.document(SETTINGS_FILE, job_settings(ctx.cfg).to_json().encode())
    return processing_input(SETTINGS_INPUT, settings, SETTINGS_DIR)


def _data_input(ctx: BuildContext) -> ProcessingInput:
    """The input files, shared out whole: about 1/N of them to each of N instances."""
    return processing_input(
        DATA_INPUT, ctx.params.input_data_uri, DATA_DIR, S3DataDistribution.SHARDED_BY_S3_KEY
    )


def build_profile_step(ctx: BuildContext) -> ProcessingStep:
    return _step(
        ctx, PROFILE, STAGE_PROFILE, [_data_input(ctx), _settings_input(ctx)], (PROFILE_OUTPUT,),
        "First pass over the input CSV, each instance its files: feature types, target classes, "
        "rows per split.",
        ctx.params.preprocess_instance_count,
    )  # fmt: skip


def build_preprocess_step(ctx: BuildContext, profile: ProcessingStep) -> ProcessingStep:
    inputs = [
        _data_input(ctx),
        _settings_input(ctx),
        processing_input(PROFILE_OUTPUT, output_s3_uri(profile, PROFILE_OUTPUT), PROFILE_DIR),
    ]
    if ctx.params.scoring_data_uri is not None:
        inputs.append(processing_input(SCORING_INPUT, ctx.params.scoring_data_uri, SCORING_DIR))
    return _step(
        ctx, PREPROCESS, STAGE_SPLIT, inputs, PREPROCESS_OUTPUTS,
        "Validate the input CSV with every instance's profile and split it, each instance its "
        "files; gather the train split's statistics.",
        ctx.params.preprocess_instance_count,
    )  # fmt: skip


def build_fit_step(
    ctx: BuildContext, profile: ProcessingStep, preprocess: ProcessingStep
) -> ProcessingStep:
    inputs = [
        processing_input(PROFILE_OUTPUT, output_s3_uri(profile, PROFILE_OUTPUT), PROFILE_DIR),
        processing_input(STATS, output_s3_uri(preprocess, STATS), STATS_DIR),
        _settings_input(ctx),
    ]
    return _step(
        ctx, FIT_TRANSFORMER, STAGE_FIT, inputs, (TRANSFORMER,),
        "Fit the feature transformer on the train split's statistics, merged across instances.",
        1,
    )  # fmt: skip
