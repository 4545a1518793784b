"""Trials: one dataset through every road of a feature, scored with the same KPIs.

`trivium trial run` (the CLI) drives `runner.py`, which sends each case through a gateway's
real invoke path; `scoring.py` scores each answer, `statistics.py` gives intervals and paired
tests, `summary.py` builds each arm's KPIs, `report/` renders them. The wire structs are in
`trivium.common.contracts.trials`; the gateway stores what the runner posts.
"""
