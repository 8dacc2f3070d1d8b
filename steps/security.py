"""Network isolation, VPC, KMS keys and inter-container encryption, in each SDK's own shape."""

from __future__ import annotations

from sagemaker.core.network import NetworkConfig
from sagemaker.core.training.configs import Networking

from config import SecuritySection


def processing_network(security: SecuritySection) -> NetworkConfig:
    """For processing and quality-check jobs."""
    return NetworkConfig(
        enable_network_isolation=security.enable_network_isolation,
        security_group_ids=list(security.security_group_ids) or None,
        subnets=list(security.subnets) or None,
        encrypt_inter_container_traffic=security.encrypt_inter_container_traffic,
    )


def job_networking(security: SecuritySection) -> Networking:
    """For the training job and the model (VpcConfig, EnableNetworkIsolation)."""
    return Networking(
        security_group_ids=list(security.security_group_ids) or None,
        subnets=list(security.subnets) or None,
        enable_network_isolation=security.enable_network_isolation,
        enable_inter_container_traffic_encryption=security.encrypt_inter_container_traffic,
    )
