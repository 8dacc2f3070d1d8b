"""Preprocess: read the CSV, validate, split train/validation/test, fit the feature transformer."""

from __future__ import annotations

from sagemaker.core.helper.pipeline_variable import PipelineVariable
from sagemaker.mlops.workflow.steps import ProcessingStep

from config import Config
from steps.containers import SKLEARN, code_input, job_processor, processing_input, processing_output
from steps.context import BuildContext
from steps.names import PREPROCESS
from tabular.dialect import Dialect
from tabular.names import (
    DATA_DIR,
    PREPROCESS_OUTPUT_ROOT,
    PREPROCESS_OUTPUTS,
    PREPROCESS_SCRIPT,
    SCORING_DIR,
    SETTINGS_DIR,
    SETTINGS_FILE,
)
from tabular.settings import Settings

DATA_INPUT = "data"
SETTINGS_INPUT = "settings"
SCORING_INPUT = "scoring"


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


def job_arguments(ctx: BuildContext) -> list[str | PipelineVariable]:
    args: list[str | PipelineVariable] = [
        "--input-dir", DATA_DIR,
        "--output-root", PREPROCESS_OUTPUT_ROOT,
        "--settings", f"{SETTINGS_DIR}/{SETTINGS_FILE}",
        "--data-version", ctx.params.data_version,
    ]  # fmt: skip
    if ctx.params.scoring_data_uri is not None:
        args += ["--scoring-dir", SCORING_DIR]
    return args


def build_preprocess_step(ctx: BuildContext) -> ProcessingStep:
    processor = job_processor(
        ctx, "preprocess", SKLEARN, ctx.params.preprocess_instance_type, PREPROCESS_SCRIPT
    )
    settings = ctx.code.document(SETTINGS_FILE, job_settings(ctx.cfg).to_json().encode())
    inputs = [
        processing_input(DATA_INPUT, ctx.params.input_data_uri, DATA_DIR),
        processing_input(SETTINGS_INPUT, settings, SETTINGS_DIR),
    ]
    if ctx.params.scoring_data_uri is not None:
        inputs.append(processing_input(SCORING_INPUT, ctx.params.scoring_data_uri, SCORING_DIR))
    step_args = processor.run(
        inputs=[*inputs, code_input(ctx, PREPROCESS_SCRIPT)],
        outputs=[
            processing_output(ctx, PREPROCESS, name, f"{PREPROCESS_OUTPUT_ROOT}/{name}")
            for name in PREPROCESS_OUTPUTS
        ],
        arguments=job_arguments(ctx),
    )
    return ProcessingStep(
        name=PREPROCESS,
        step_args=step_args,
        description="Validate the input CSV, split it and fit the feature transformer.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )
