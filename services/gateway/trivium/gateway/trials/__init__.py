"""Trials: the store of case results and summaries the trial runner writes (`/v1/trials`)."""

from trivium.gateway.trials.routes import TrialController
from trivium.gateway.trials.store import TrialNotFoundError, TrialStore

__all__ = ("TrialController", "TrialNotFoundError", "TrialStore")
