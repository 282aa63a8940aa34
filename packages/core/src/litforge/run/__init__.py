"""One run from the command line: LitforgeCLI and what every run needs. Internal layout; use the
names ``litforge`` exports.

cli.py            LitforgeCLI, cli_main
arguments.py      the --run.* options and the data -> model links
rundir.py         the run folder and its config.yaml
checkpoints.py    best and last checkpoints; checkpoint_io.py: atomic writes
safety.py         SaveOnInterrupt, StopOnNonFinite; resume.py: RngState
budget.py         --run.time_budget and --run.precision=auto
loggers.py        W&B (offline without credentials), TensorBoard, CSV
outputs.py        results.json, predictions.pt, the closing summary
runs.py           status.json, and the table of a project's runs
messages.py       what a user typed wrong, in one line
debug.py          --run.debug presets
lookahead.py      Lookahead (an optional training callback)
"""
