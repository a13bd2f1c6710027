"""Horizon forecasts with intervals, and when a series will cross a threshold.

``Forecaster`` is the port (``atoll.forecast.port``); ``forecaster(kind)`` gives an adapter
(``atoll.forecast.models``, Nixtla's statsforecast); ``forecast_series`` forecasts a stored series
on a grid it chooses, and ``crossing`` says when the forecast passes a threshold
(``atoll.forecast.series``). ``atoll.forecast.evaluate`` scores forecasters (MASE, interval
coverage) by rolling origin, as ``atoll bench forecast`` reports them.
"""

from atoll.forecast.models import DEFAULT, KINDS, forecaster
from atoll.forecast.port import Forecast, Forecaster
from atoll.forecast.series import Crossing, SeriesForecast, crossing, forecast_series, plan_grid

__all__ = [
    "DEFAULT",
    "KINDS",
    "Crossing",
    "Forecast",
    "Forecaster",
    "SeriesForecast",
    "crossing",
    "forecast_series",
    "forecaster",
    "plan_grid",
]
