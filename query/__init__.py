"""Athena layer: table catalog, named queries, and the query runners (Athena on AWS, DuckDB locally)."""
