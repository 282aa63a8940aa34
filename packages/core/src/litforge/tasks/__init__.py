"""Kinds of task: the structs that flow through a model, the model bases, their metrics, and the
contract a task's data module meets. Internal layout; use the names ``litforge`` exports.

structs.py     Example / Prediction / Loss and the kinds' subclasses
model.py       BaseModel: the train / val / test / predict steps, logging, optimizer
bases.py       Classifier, Regressor, Segmenter: loss, metrics and per-example error per kind
metrics.py     the default TorchMetrics of each kind, fed from structs
contracts.py   TaskData: what a data module gives the model, the diagnostics and the CLI
"""
