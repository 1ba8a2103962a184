"""Glue PySpark jobs: build_forecast_inputs, enrich_forecast."""
