"""Preprocess: read the CSV, validate, split train/validation/test, fit the feature transformer."""

from __future__ import annotations

from sagemaker.core.helper.pipeline_variable import PipelineVariable
from sagemaker.mlops.workflow.steps import ProcessingStep

from scripts import preprocess as job
from steps.context import BuildContext
from steps.jobs import SKLEARN, processing_input, processing_output, script_processor

STEP_NAME = "Preprocess"
SCRIPT = "preprocess.py"
DATA_INPUT = "data"


def job_arguments(ctx: BuildContext) -> list[str | PipelineVariable]:
    data = ctx.cfg.data
    args: list[str | PipelineVariable] = [
        "--input-dir", job.INPUT_DIR,
        "--output-root", job.OUTPUT_ROOT,
        "--target", data.target,
        "--problem-type", data.problem_type,
        "--validation-fraction", str(data.validation_fraction),
        "--test-fraction", str(data.test_fraction),
        "--seed", str(data.split_seed),
        "--data-version", ctx.params.data_version,
    ]  # fmt: skip
    if data.columns:
        args += ["--columns", ",".join(data.columns)]
    if data.positive_class is not None:
        args += ["--positive-class", data.positive_class]
    return args


def build_preprocess_step(ctx: BuildContext) -> ProcessingStep:
    processor = script_processor(ctx, "preprocess", SKLEARN, ctx.params.preprocess_instance_type)
    step_args = processor.run(
        code=ctx.code.script(SCRIPT),
        inputs=[processing_input(DATA_INPUT, ctx.params.input_data_uri, job.INPUT_DIR)],
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
