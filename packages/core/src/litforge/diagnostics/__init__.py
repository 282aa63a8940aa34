"""Diagnostics: optional callbacks that draw what a model gets right and wrong, and the one media
path they draw through (PNG/CSV files in the run folder and every logger). Internal layout; use
the names ``litforge`` exports.

extremes.py      Extremes: the k highest- and lowest-error examples
uncertainty.py   Uncertainty: calibration of class probabilities
confusion.py     ConfusionMatrix
regression.py    Regression: predicted against true, residuals
base.py          EpochCallback: collect per batch, gather across ranks, emit on rank 0
media.py         images, grids, tables and figures, sent to loggers and files
"""
