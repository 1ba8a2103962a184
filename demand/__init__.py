"""Anomaly-aware streaming pipeline for retail demand forecasting."""
