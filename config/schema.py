"""The whole configuration: one frozen object, one section per key of the YAML.

A new section is a model in a module of its own (like config/data.py) and one field here; its
defaults go into configs/base.yaml, which documents every knob.
"""

from __future__ import annotations

from pydantic import model_validator

from config.data import DataSection, SampleDataSection, is_sample
from config.deploy import DeploySection
from config.deploy_rules import security_problems
from config.fields import Section
from config.gate import Gate, resolve_gate
from config.sections import (
    ApprovalSection,
    AwsSection,
    CacheSection,
    DataQualitySection,
    EvaluationSection,
    ImagesSection,
    JobsSection,
    PipelineSection,
    RegistrySection,
    RetrySection,
    ScheduleSection,
    SecuritySection,
    TrainingSection,
    TransformSection,
)


class Config(Section):
    """The whole configuration; `evaluation` is resolved against `data.problem_type`."""

    pipeline: PipelineSection
    aws: AwsSection
    data: DataSection
    sample_data: SampleDataSection
    images: ImagesSection
    jobs: JobsSection
    training: TrainingSection
    evaluation: EvaluationSection
    data_quality: DataQualitySection
    registry: RegistrySection
    approval: ApprovalSection
    transform: TransformSection
    cache: CacheSection
    schedule: ScheduleSection
    security: SecuritySection
    retry: RetrySection
    deploy: DeploySection  # schema: config/deploy.py; rules: config/deploy_rules.py

    @model_validator(mode="after")
    def _check_gate(self) -> Config:
        self.gate  # noqa: B018 - resolving the gate validates metric, threshold and comparison
        if self.jobs.train.instance_count > self.training.shards:
            raise ValueError(
                f"jobs.train.instance_count {self.jobs.train.instance_count} exceeds "
                f"training.shards {self.training.shards}: each training instance takes whole "
                "files of the train split (ShardedByS3Key), so an instance would get none; "
                "raise training.shards or lower the instance count"
            )
        preprocess = self.jobs.preprocess.instance_count
        uri = self.data.input_uri
        if preprocess > 1 and (uri.lower().endswith(".csv") or is_sample(uri)):
            raise ValueError(
                f"jobs.preprocess.instance_count {preprocess} with data.input_uri {uri!r}, one "
                "file: Profile and Preprocess share the input out as whole files "
                "(ShardedByS3Key), so one instance would read all of it and the others nothing; "
                "point data.input_uri at a prefix holding the data as several CSV files (at "
                "least one per instance), or set the instance count to 1"
            )
        problems = security_problems(
            self.deploy, self.security.enable_network_isolation, self.security.subnets
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def gate(self) -> Gate:
        """The condition's metric, threshold and comparison, defaults resolved per problem type."""
        return resolve_gate(self.data.problem_type, self.evaluation)
