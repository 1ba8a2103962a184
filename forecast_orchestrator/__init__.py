"""Forecast workflow: state machine, handlers, forecasting backends."""
