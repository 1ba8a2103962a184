"""Event contracts and generator, DMS decoding, Kinesis producer, local stack."""
