"""The local runtime of the AWS APIs: a moto server on 127.0.0.1 and the pipeline's resources on it."""
