"""Preprocess: read the CSV, validate, split train/validation/test, fit the feature transformer."""

from __future__ import annotations

from sagemaker.core.helper.pipeline_variable import PipelineVariable
from sagemaker.mlops.workflow.steps import ProcessingStep

from scripts import preprocess as job
from steps.config import Config
from steps.context import BuildContext
from steps.jobs import SKLEARN, code_input, job_processor, processing_input, processing_output
from tabular.dialect import Dialect

STEP_NAME = "Preprocess"
SCRIPT = "preprocess.py"
DATA_INPUT = "data"
SETTINGS_INPUT = "settings"
SCORING_INPUT = "scoring"


def job_settings(cfg: Config) -> job.Settings:
    """What the job needs to know about the data, from `data:`; it travels as a JSON document,
    so column names and values reach the job as data, whatever characters they hold."""
    data = cfg.data
    return job.Settings(
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
    )


def job_arguments(ctx: BuildContext) -> list[str | PipelineVariable]:
    args: list[str | PipelineVariable] = [
        "--input-dir", job.INPUT_DIR,
        "--output-root", job.OUTPUT_ROOT,
        "--settings", f"{job.SETTINGS_DIR}/{job.SETTINGS_FILE}",
        "--data-version", ctx.params.data_version,
    ]  # fmt: skip
    if ctx.params.scoring_data_uri is not None:
        args += ["--scoring-dir", job.SCORING_INPUT_DIR]
    return args


def build_preprocess_step(ctx: BuildContext) -> ProcessingStep:
    processor = job_processor(
        ctx, "preprocess", SKLEARN, ctx.params.preprocess_instance_type, SCRIPT
    )
    settings = ctx.code.document(job.SETTINGS_FILE, job_settings(ctx.cfg).to_json().encode())
    inputs = [
        processing_input(DATA_INPUT, ctx.params.input_data_uri, job.INPUT_DIR),
        processing_input(SETTINGS_INPUT, settings, job.SETTINGS_DIR),
    ]
    if ctx.params.scoring_data_uri is not None:
        inputs.append(
            processing_input(SCORING_INPUT, ctx.params.scoring_data_uri, job.SCORING_INPUT_DIR)
        )
    step_args = processor.run(
        inputs=[*inputs, code_input(ctx, SCRIPT)],
        outputs=[
            processing_output(ctx, STEP_NAME, name, f"{job.OUTPUT_ROOT}/{name}")
            for name in job.OUTPUT_NAMES
        ],
        arguments=job_arguments(ctx),
    )
    return ProcessingStep(
        name=STEP_NAME,
        step_args=step_args,
        description="Validate the input CSV, split it and fit the feature transformer.",
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )
