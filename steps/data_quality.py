"""DataQuality: Model Monitor baseline of the train split; drift against the approved one."""

from __future__ import annotations

from sagemaker.core.helper.pipeline_variable import RequestType
from sagemaker.core.model_monitor.dataset_format import DatasetFormat
from sagemaker.core.network import NetworkConfig
from sagemaker.mlops.workflow.check_job_config import CheckJobConfig
from sagemaker.mlops.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from sagemaker.mlops.workflow.steps import ProcessingStep

from steps.containers import output_s3_uri
from steps.context import BuildContext
from steps.names import DATA_QUALITY
from steps.security import processing_network
from tabular.names import BASELINE


class _QualityCheckStep(QualityCheckStep):
    """The SDK (3.27, mlops/workflow/_check_job_request.py) puts the NetworkConfig object itself
    into the request, which the definition cannot serialise; send its request form instead."""

    @property
    def arguments(self) -> RequestType:
        request = super().arguments
        network = request.get("NetworkConfig")
        if isinstance(network, NetworkConfig):
            request["NetworkConfig"] = network._to_request_dict()
        return request


RESULTS_OUTPUT = "results"


def build_data_quality_step(ctx: BuildContext, preprocess: ProcessingStep) -> QualityCheckStep:
    spec = ctx.job("data_quality")
    return _QualityCheckStep(
        name=DATA_QUALITY,
        description="Baseline statistics and constraints of the train split; drift check.",
        quality_check_config=DataQualityCheckConfig(
            baseline_dataset=output_s3_uri(preprocess, BASELINE),
            dataset_format=DatasetFormat.csv(header=True),
            output_s3_uri=ctx.output_uri(DATA_QUALITY, RESULTS_OUTPUT),
        ),
        check_job_config=CheckJobConfig(
            role=ctx.cfg.aws.role_arn,
            instance_count=spec.instance_count,
            instance_type=ctx.params.data_quality_instance_type,
            volume_size_in_gb=spec.volume_size_gb,
            max_runtime_in_seconds=spec.max_runtime_seconds,
            base_job_name=f"{ctx.cfg.pipeline.name}-data-quality",
            sagemaker_session=ctx.session,
            network_config=processing_network(ctx.cfg.security),
            volume_kms_key=ctx.cfg.security.volume_kms_key_id,
            output_kms_key=ctx.cfg.security.output_kms_key_id,
        ),
        skip_check=ctx.params.skip_data_quality_check,
        register_new_baseline=ctx.params.register_new_baseline,
        fail_on_violation=ctx.cfg.data_quality.fail_on_violation,
        model_package_group_name=ctx.cfg.registry.model_package_group,
        cache_config=ctx.cache_config,
    )
