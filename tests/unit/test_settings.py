"""The one Settings object: forecasting knobs from the environment and Glue arguments, holiday calendars."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from core.holidays import check_country, holidays
from core.settings import Settings
from forecast_orchestrator.ensemble_backend import ensemble_config
from glue_jobs.runtime import settings_from_args


def test_forecasting_knobs_reach_the_ensemble_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMAND_FORECAST_MODELS", "LightGBM, AutoETS")
    monkeypatch.setenv("DEMAND_BACKTEST_WINDOWS", "2")
    monkeypatch.setenv("DEMAND_GLOBAL_TREES", "400")
    config = ensemble_config(Settings(forecast_jobs=1), use_spark=True)
    assert config.models == ("LightGBM", "AutoETS") and config.backtest_windows == 2 and config.use_spark
    assert config.global_model.trees == 400 and config.global_model.threads == 1 and config.n_jobs == 1


def test_glue_job_arguments_name_the_same_settings():
    settings = settings_from_args({"forecast_models": "LightGBM,SeasonalNaive", "global_leaves": "63", "country": "gb"})
    assert settings.forecast_models == ("LightGBM", "SeasonalNaive") and settings.global_leaves == 63
    assert settings.country == "GB"
    assert ensemble_config(Settings()).models is None  # the default candidates


def test_bad_knobs_are_refused_with_the_reason():
    with pytest.raises(ValidationError, match="backtest_windows"):
        Settings(backtest_windows=0)
    with pytest.raises(ValidationError, match="no holiday calendar for country 'XX'"):
        Settings(country="XX")
    with pytest.raises(ValueError, match="GB has the subdivisions ENG, NIR, SCT, WLS"):
        check_country("GB-XYZ")


def test_holiday_calendars_cover_countries_and_their_subdivisions():
    year = (date(2010, 1, 1), date(2010, 12, 31))
    uk, scotland = holidays("GB", *year), holidays("gb-sct", *year)
    assert date(2010, 12, 27) in uk  # Christmas Day observed on the Monday
    assert date(2010, 11, 30) in scotland and date(2010, 11, 30) not in uk  # St Andrew's Day
    assert date(2023, 10, 3) in holidays("DE", date(2023, 1, 1), date(2023, 12, 31))
    assert len(holidays("US-CA", date(2024, 1, 1), date(2024, 12, 31))) >= 10


def test_outlier_thresholds_from_the_environment_and_the_flink_property(monkeypatch):
    from core.settings import OutlierSettings

    monkeypatch.setenv("DEMAND_OUTLIER__SPIKE_VS_DAY", "6")
    assert Settings().outlier.spike_vs_day == 6.0 and Settings().outlier.price_ratio == OutlierSettings().price_ratio
    assert OutlierSettings.model_validate_json('{"price_ratio": 4}').price_ratio == 4.0  # outlier.thresholds
    with pytest.raises(ValidationError, match="spike_vs_dya"):
        OutlierSettings.model_validate_json('{"spike_vs_dya": 4}')  # a misspelt name is refused, not ignored
