"""The bottom layer: contracts, settings, tables, object store and AWS clients. It imports nothing of ours above it."""
