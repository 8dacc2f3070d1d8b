"""Local stand-ins for SageMaker hosting: the model server of an inference container and the
router of an endpoint with production variants."""
