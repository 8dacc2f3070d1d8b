"""A host-process runtime for SageMaker pipeline definitions: no Docker, no AWS."""
