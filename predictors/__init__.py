"""dynnas predictors: what a subnet will score (accuracy) and how fast it will run (latency).

Imports flow ``predictors → supernet`` and ``predictors → hw_profiles``; nothing here imports
``nas``.
"""

from __future__ import annotations

from predictors.accuracy import (
    AccuracyData,
    AccuracyPredictor,
    accuracy_data_path,
    collect_accuracy_data,
    load_or_collect_accuracy,
)
from predictors.dynamic_accuracy import DynamicAccuracyPredictor
from predictors.errors import CalibrationError, PredictorCacheError
from predictors.kernels import Kernel, reference_kernels, subnet_kernels
from predictors.latency import LatencyPredictor, latency_predictor
from predictors.metrics import kendall_tau, rmse, within
from predictors.onnx_io import (
    LatencyStats,
    RelativeTiming,
    TimingSession,
    export_onnx,
    measure_latencies,
    measure_latency,
    run_onnx,
)

__all__ = [
    "AccuracyData",
    "AccuracyPredictor",
    "CalibrationError",
    "DynamicAccuracyPredictor",
    "Kernel",
    "LatencyPredictor",
    "LatencyStats",
    "RelativeTiming",
    "TimingSession",
    "PredictorCacheError",
    "accuracy_data_path",
    "collect_accuracy_data",
    "export_onnx",
    "kendall_tau",
    "latency_predictor",
    "load_or_collect_accuracy",
    "measure_latencies",
    "measure_latency",
    "reference_kernels",
    "rmse",
    "run_onnx",
    "subnet_kernels",
    "within",
]
