"""dynnas predictors: what a subnet will score (accuracy) and how fast it will run (latency).

Imports flow ``predictors → supernet`` and ``predictors → hw_profiles``; nothing here imports
``nas``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public name -> the module that defines it. Loaded on first use (PEP 562), so importing one
# submodule (e.g. ``predictors.reference_graphs`` for ``dynnas profile``, where only onnxruntime is
# installed) does not import torch through the package.
_EXPORTS = {
    "AccuracyData": "accuracy", "AccuracyPredictor": "accuracy", "accuracy_data_path": "accuracy",
    "collect_accuracy_data": "accuracy", "load_or_collect_accuracy": "accuracy",
    "DynamicAccuracyPredictor": "dynamic_accuracy",
    "CalibrationError": "errors", "PredictorCacheError": "errors",
    "Kernel": "kernels", "subnet_kernels": "kernels", "reference_kernels": "reference_graphs",
    "LatencyPredictor": "latency", "latency_predictor": "latency",
    "kendall_tau": "metrics", "rmse": "metrics", "within": "metrics",
    "LatencyStats": "onnx_io", "RelativeTiming": "onnx_io", "TimingSession": "onnx_io", "export_onnx": "onnx_io",
    "measure_latencies": "onnx_io", "measure_latency": "onnx_io", "run_onnx": "onnx_io",
}

if TYPE_CHECKING:
    from predictors.accuracy import (
        AccuracyData,
        AccuracyPredictor,
        accuracy_data_path,
        collect_accuracy_data,
        load_or_collect_accuracy,
    )
    from predictors.dynamic_accuracy import DynamicAccuracyPredictor
    from predictors.errors import CalibrationError, PredictorCacheError
    from predictors.kernels import Kernel, subnet_kernels
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
    from predictors.reference_graphs import reference_kernels


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'predictors' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"predictors.{module}"), name)
    globals()[name] = value  # once loaded, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
