"""Evaluate: score the test split through the serving code; write evaluation.json, the smoke
sample (test records with their predictions) that deploy sends to the endpoint, and the
reviewer's report (report.html, report.png) with the gate and the DataQuality step's statistics."""

from __future__ import annotations

from sagemaker.core.workflow.functions import Join
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.quality_check_step import QualityCheckStep
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
    DATA_QUALITY_INPUT_DIR,
    DRIFT_BASELINE_INPUT_DIR,
    EVALUATE_SCRIPT,
    EVALUATION_FILE,
    EVALUATION_OUTPUT,
    EVALUATION_OUTPUT_DIR,
    MODEL_INPUT_DIR,
    REPORT_HTML,
    REPORT_IMAGE_PROPERTY,
    REPORT_PACKAGE,
    REPORT_PNG,
    REPORT_PROPERTY,
    SERVING_SCRIPT,
    SMOKE_SAMPLE_FILE,
    SMOKE_SAMPLE_PROPERTY,
    TEST,
    TEST_INPUT_DIR,
)

MODEL_INPUT = "model"
TEST_INPUT = "test"
DATA_QUALITY_INPUT = "data-quality"
DRIFT_BASELINE_INPUT = "drift-baseline"


def evaluation_report() -> PropertyFile:
    """The property file the condition reads its metric from."""
    return PropertyFile(name=EVALUATION_REPORT, output_name=EVALUATION_OUTPUT, path=EVALUATION_FILE)


def build_evaluate_step(
    ctx: BuildContext,
    preprocess: ProcessingStep,
    train: TrainingStep,
    data_quality: QualityCheckStep,
    report: PropertyFile,
) -> ProcessingStep:
    gate = ctx.cfg.gate
    # Property references, never the DataQuality step's configured prefix: after a cache hit they
    # name the files the cached run wrote, so this step's inputs (its cache key) stay the same.
    quality = data_quality.properties
    processor = job_processor(
        ctx, "evaluate", XGBOOST, ctx.params.evaluate_instance_type, EVALUATE_SCRIPT
    )
    step_args = processor.run(
        inputs=[
            processing_input(
                MODEL_INPUT, train.properties.ModelArtifacts.S3ModelArtifacts, MODEL_INPUT_DIR
            ),
            processing_input(TEST_INPUT, output_s3_uri(preprocess, TEST), TEST_INPUT_DIR),
            processing_input(
                DATA_QUALITY_INPUT, quality.CalculatedBaselineStatistics, DATA_QUALITY_INPUT_DIR
            ),
            processing_input(
                DRIFT_BASELINE_INPUT,
                quality.BaselineUsedForDriftCheckStatistics,
                DRIFT_BASELINE_INPUT_DIR,
            ),
            # The serving code beside the script: evaluation scores as the endpoint does.
            code_input(ctx, EVALUATE_SCRIPT, SERVING_SCRIPT, packages=(REPORT_PACKAGE,)),
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
            "--gate-metric",
            gate.metric,
            "--gate-comparison",
            gate.comparison,
            "--gate-threshold",
            ctx.params.metric_threshold.to_string(),
            "--data-quality-dir",
            DATA_QUALITY_INPUT_DIR,
            "--drift-baseline-dir",
            DRIFT_BASELINE_INPUT_DIR,
        ],  # fmt: skip
    )
    return ProcessingStep(
        name=EVALUATE,
        step_args=step_args,
        description=(
            "Score the test split with the serving code; write evaluation.json and the report."
        ),
        property_files=[report],
        cache_config=ctx.cache_config,
        retry_policies=ctx.job_retry_policies(),
    )


def report_uri(evaluate: ProcessingStep) -> Join:
    """The S3 URI of evaluation.json, for the model registry's metrics."""
    return _output_file(evaluate, EVALUATION_FILE)


def package_metadata(evaluate: ProcessingStep) -> dict[str, Join]:
    """The model package's CustomerMetadataProperties: the smoke sample deploy sends, and the
    report (page and image) a reviewer reads."""
    return {
        SMOKE_SAMPLE_PROPERTY: _output_file(evaluate, SMOKE_SAMPLE_FILE),
        REPORT_PROPERTY: _output_file(evaluate, REPORT_HTML),
        REPORT_IMAGE_PROPERTY: _output_file(evaluate, REPORT_PNG),
    }


def _output_file(evaluate: ProcessingStep, name: str) -> Join:
    return Join(on="/", values=[output_s3_uri(evaluate, EVALUATION_OUTPUT), name])
