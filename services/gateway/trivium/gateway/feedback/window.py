"""What one feedback event adds to the `/v1/stats` window (see `FEEDBACK_STATS`).

Each answer counts once per kind: a replacing event adds its own contribution and takes back
the one it replaced, when that one is still in the window."""

from __future__ import annotations

from trivium.gateway.feedback.schemas import FeedbackKind

__all__ = ("contribution", "deltas")


def contribution(kind: FeedbackKind, value: bool | int | str) -> dict[str, int]:
    if kind == "completed":
        return {"qcn": 1, "qcp": int(value is True)}
    if kind == "rating":
        rating = int(value)
        return {"qsn": 1, "qsp": int(rating >= 4), "qrn": 1, "qrs": rating}
    if kind == "thumbs":
        return {"qsn": 1, "qsp": int(value == "up")}
    if kind == "corrected":
        return {"qx": 1}
    return {"qe": int(value is True)}


def deltas(
    kind: FeedbackKind, value: bool | int | str, previous: bool | int | str | None
) -> dict[str, int]:
    """`previous`: the replaced event's value if it still counts in the window, else None."""
    added = contribution(kind, value)
    if previous is None:
        return added
    for stat, n in contribution(kind, previous).items():
        added[stat] = added.get(stat, 0) - n
    return {stat: n for stat, n in added.items() if n}
