"""Evaluate: score the test split through the serving code; write evaluation.json and the smoke
sample (test records with their predictions) that deploy sends to the endpoint."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep

from steps.containers import (
    XGBOOST,
    code_input,
    job_processor,
    output_s3_uri,
    processing_input,
    processing_output,
)
from steps.context import BuildContext
from steps.names import EVALUATE, EVALUATION_REPORT
from tabular.names import (
    EVALUATE_SCRIPT,
    EVALUATION_FILE,
    EVALUATION_OUTPUT,
    EVALUATION_OUTPUT_DIR,
    MODEL_INPUT_DIR,
    SERVING_SCRIPT,
    SMOKE_SAMPLE_FILE,
    TEST,
    TEST_INPUT_DIR,
)

MODEL_INPUT = "model"
TEST_INPUT = "test"


def evaluation_report() -> PropertyFile:
    """The property file the condition reads its metric from."""
    return PropertyFile(name=EVALUATION_REPORT, output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE)


def build_evaluate_step(
    ctx: BuildContext, preprocess: ProcessingStep, train: TrainingStep, report: PropertyFile
) -> ProcessingStep:
    processor = job_processor(
        ctx, "evaluate", XGBOOST, ctx.params.evaluate_instance_type, EVALUATE_SCRIPT
    )
    step_args = processor.run(
        inputs=[
            processing_input(
                MODEL_INPUT, train.properties.ModelArtifacts.S3ModelArtifacts, MODEL_INPUT_DIR
            ),
            processing_input(TEST_INPUT, output_s3_uri(preprocess, TEST), TEST_INPUT_DIR),
            # The serving code beside the script: evaluation scores as the endpoint does.
            code_input(ctx, EVALUATE_SCRIPT, SERVING_SCRIPT),
        ],
        outputs=[processing_output(ctx, EVALUATE, EVALUATION_OUTPUT, EVALUATION_OUTPUT_DIR)],
        arguments=[
            "--model-dir",
            MODEL_INPUT_DIR,
            "--test-dir",
            TEST_INPUT_DIR,
            "--output-dir",
            EVALUATION_OUTPUT_DIR,
            "--problem-type",
            ctx.cfg.data.problem_type,
            "--threshold-probability",
            str(ctx.cfg.evaluation.probability_threshold),
            "--bootstrap-rounds",
            str(ctx.cfg.evaluation.bootstrap_rounds),
            "--smoke-rows",
            str(ctx.cfg.evaluation.smoke_sample_rows),
        ],  # fmt: skip
    )
    return ProcessingStep(
        name=EVALUATE,
        step_args=step_args,
        description="Score the test split with the serving code; write evaluation.json.",
        property_files=[report],
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )


def report_uri(evaluate: ProcessingStep) -> Join:
    """The S3 URI of evaluation.json, for the model registry's metrics."""
    return _output_file(evaluate, EVALUATION_FILE)


def smoke_sample_uri(evaluate: ProcessingStep) -> Join:
    """The S3 URI of smoke_sample.json, recorded with the model package for deploy."""
    return _output_file(evaluate, SMOKE_SAMPLE_FILE)


def _output_file(evaluate: ProcessingStep, name: str) -> Join:
    return Join(on="/", values=[output_s3_uri(evaluate, EVALUATION_OUTPUT), name])
