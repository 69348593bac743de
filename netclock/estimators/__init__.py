"""Slave-side time estimators behind one interface, and a name → factory registry.

Pure package. ``window`` is netclock's own (:mod:`netclock.estimators.window`); ``gst`` and
``pi`` are faithful references (GStreamer's GstClock regression, linuxptp's PI servo with its
software-timestamping constants) used by the simulator and ``bench/estimators.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from netclock.estimators.base import Estimator, TwoWaySample
from netclock.estimators.gst import GstEstimator
from netclock.estimators.pi import PiConfig, PiEstimator
from netclock.estimators.window import WindowConfig, WindowEstimator, default_window_config

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "GstEstimator",
    "PiConfig",
    "PiEstimator",
    "TwoWaySample",
    "WindowConfig",
    "WindowEstimator",
    "create_estimator",
    "default_window_config",
]

#: name → factory(interval_s). The interval matters to the PI servo's gains only.
ESTIMATORS: dict[str, Callable[[float], Estimator]] = {
    "window": lambda interval_s: WindowEstimator(default_window_config(interval_s)),
    "gst": lambda interval_s: GstEstimator(),
    "pi": lambda interval_s: PiEstimator(interval_s),
}


def create_estimator(name: str, interval_s: float) -> Estimator:
    try:
        factory = ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; choose from {sorted(ESTIMATORS)}") from None
    return factory(interval_s)
