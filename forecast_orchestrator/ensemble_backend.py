"""The `statsforecast` backend (the open ensemble, forecast_orchestrator/ensemble.py) as workflow steps:
synchronous, artefacts in the object store. ensemble_on_glue.py registers it (imported only when used: pandas and
the models) and, on AWS, runs its steps that read datasets in a Glue job.

A predictor is the per-series model selection and its backtest metrics, kept under
`predictors/<predictor_id>/` in the forecast-export bucket, so a champion kept by the accuracy gate can
forecast a later run's data.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pandas as pd

from core.object_store import ObjectStore
from core.settings import Settings
from forecast_orchestrator import whatif
from forecast_orchestrator.backends import DONE, progress_key
from forecast_orchestrator.drivers import driver_table
from forecast_orchestrator.ensemble import EnsembleConfig, EnsembleModel, Report, TrainResult, complete_selection
from forecast_orchestrator.export import write_coherent, write_drivers, write_export
from forecast_orchestrator.global_model import FittedGlobalModel, GlobalModelConfig
from forecast_orchestrator.series import ForecastInputs, load_inputs
from forecast_orchestrator.totals import coherent_totals

PROGRESS_EVERY_S = 2.0  # a step's progress file is rewritten at most this often (and at the end)


def ensemble_config(settings: Settings, use_spark: bool = False) -> EnsembleConfig:
    """The ensemble's knobs from the one Settings object (environment, CLI flags, Glue job arguments)."""
    return EnsembleConfig(
        quantiles=tuple(settings.quantiles),
        backtest_windows=settings.backtest_windows,
        models=settings.forecast_models or None,
        n_jobs=settings.forecast_jobs,
        use_spark=use_spark,
        shrink=settings.ensemble_shrink,
        global_model=GlobalModelConfig(
            trees=settings.global_trees,
            learning_rate=settings.global_learning_rate,
            leaves=settings.global_leaves,
            min_leaf=settings.global_min_leaf,
            threads=settings.forecast_jobs,
        ),
    )


class EnsembleBackend:
    name = "statsforecast"

    def __init__(self, settings: Settings, store: ObjectStore, config: EnsembleConfig | None = None):
        self.settings = settings
        self.store = store
        self.bucket = settings.names.bucket("forecast-export")
        self.model = EnsembleModel(config or ensemble_config(settings))
        self._inputs: dict[str, ForecastInputs] = {}
        self.on_progress: Report | None = None  # the CLI shows progress here as well

    def _reporter(self, run: dict[str, Any]) -> Report:
        """Progress of a step to the object store (the workflow's status reads it) and to on_progress."""
        last = [0.0]

        def report(progress: dict[str, Any]) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or progress["series_done"] >= progress["series_total"]:
                last[0] = now
                self.store.put(self.bucket, progress_key(run["run_id"]), json.dumps(progress).encode())
            if self.on_progress is not None:
                self.on_progress(progress)

        return report

    def _load(self, run: dict[str, Any]) -> ForecastInputs:
        key = run["manifest_key"]
        if key not in self._inputs:
            self._inputs = {key: load_inputs(self.store, run["bucket"], key)}
        return self._inputs[key]

    def _put_frame(self, key: str, frame: pd.DataFrame) -> None:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        self.store.put(self.bucket, key, buf.getvalue())

    def _get_frame(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.store.get(self.bucket, key)))

    def import_datasets(self, run: dict[str, Any]) -> dict[str, Any]:
        inputs = self._load(run)
        return {"status": DONE, "imported": {"series": int(inputs.target["unique_id"].nunique())}}

    def train_predictor(self, run: dict[str, Any]) -> dict[str, Any]:
        trained = self.model.train(self._load(run), self._reporter(run))
        base = f"predictors/{trained.predictor_id}/"
        self._put_frame(base + "metrics.parquet", trained.metrics)
        self._put_frame(base + "selection.parquet", trained.selection)
        if trained.backtest is not None:
            self._put_frame(base + "backtest.parquet", trained.backtest)
        return {"status": DONE, "predictor_id": trained.predictor_id}

    def _predictor(self, predictor_id: str) -> TrainResult:
        base = f"predictors/{predictor_id}/"
        backtest = base + "backtest.parquet"  # predictors kept before the coherent totals have none
        return TrainResult(
            predictor_id=predictor_id,
            metrics=self._get_frame(base + "metrics.parquet"),
            selection=self._get_frame(base + "selection.parquet"),
            backtest=self._get_frame(backtest) if self.store.exists(self.bucket, backtest) else None,
        )

    def get_accuracy(self, run: dict[str, Any]) -> dict[str, Any]:
        metrics = self._predictor(run["predictor_id"]).metrics
        summary = metrics[(metrics["window"].astype(str) == "summary") & (metrics["model"] == "ensemble")]
        row = summary.iloc[0]
        keep = [c for c in metrics.columns if c not in ("window", "model")]
        return {"status": DONE, "accuracy": {c: float(row[c]) for c in keep if pd.notna(row[c])}}

    def create_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        """The forecast, and (when the global model forecasts) the scenario model the what-if scores on."""
        inputs, predictor = self._load(run), self._predictor(run["forecast_predictor"])
        fitted: list[FittedGlobalModel] = []
        forecast = self.model.forecast(inputs, predictor, self._reporter(run), keep=fitted.append)
        key = f"runs/{run['run_id']}/forecast.parquet"
        self._put_frame(key, forecast)
        answer: dict[str, Any] = {"status": DONE, "forecast_key": key}
        if fitted:
            selection = complete_selection(predictor.selection, inputs.target["unique_id"].unique())
            scenario = whatif.build_model(run["run_id"], inputs.frequency, inputs.horizon, fitted[0], inputs.future(),
                                          inputs.metadata, selection)  # fmt: skip
            answer["scenario_model_key"] = scenario.save(self.store, self.bucket)
            self._put_frame(f"runs/{run['run_id']}/drivers.parquet", driver_table(scenario))
        if self.settings.coherent_totals:
            answer["coherent_totals"] = self._coherent_totals(run, inputs, forecast)
        return answer

    def _coherent_totals(self, run: dict[str, Any], inputs: ForecastInputs, forecast: pd.DataFrame) -> str:
        """Every level's coherent forecast and the reconciliation's backtest table under runs/<run_id>/. The
        method is chosen on this run's own predictor's backtest (the windows of this run's data)."""
        backtest = self._predictor(run["predictor_id"]).backtest
        if backtest is None:
            return "skipped: the predictor kept no backtest"
        try:
            totals = coherent_totals(self.model, self.settings.totals_models, inputs, forecast, backtest,
                                     self._reporter(run))  # fmt: skip
        except ValueError as error:  # the aggregates too short to backtest: the items' forecast stands alone
            return f"skipped: {error}"
        self._put_frame(f"runs/{run['run_id']}/coherent.parquet", totals.forecast)
        self._put_frame(f"runs/{run['run_id']}/coherent-accuracy.parquet", totals.accuracy)
        return totals.method

    def export_forecast(self, run: dict[str, Any]) -> dict[str, Any]:
        prefix = f"exports/{run['run_id']}/"
        keys = write_export(
            self.store,
            self.bucket,
            prefix,
            self._get_frame(run["forecast_key"]),
            self._predictor(run["forecast_predictor"]),
            run["manifest"],
        )
        with_location = bool(run["manifest"].get("with_location", False))
        drivers = f"runs/{run['run_id']}/drivers.parquet"
        if self.store.exists(self.bucket, drivers):
            keys["drivers"] = write_drivers(self.store, self.bucket, prefix, self._get_frame(drivers), with_location)
        coherent = f"runs/{run['run_id']}/coherent.parquet"
        if self.store.exists(self.bucket, coherent):
            accuracy = self._get_frame(f"runs/{run['run_id']}/coherent-accuracy.parquet")
            keys |= write_coherent(self.store, self.bucket, prefix, self._get_frame(coherent), accuracy)
        return {"status": DONE, "export": {"bucket": self.bucket, "prefix": prefix, "keys": keys}}

    # Synchronous: the checks are never reached, but the interface has them.
    def check_import(self, run: dict[str, Any]) -> dict[str, Any]:
        return {"status": DONE}

    check_training = check_forecast = check_export = check_import
