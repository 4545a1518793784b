"""The decision report: a finished trial's roads against the feature's declared requirements,
the framework's rules, and the ROI, to a recommendation (`GET /v1/features/{f}/decision`)."""

from trivium.gateway.decision.report import TrialNotDecidableError, build_decision

__all__ = ("TrialNotDecidableError", "build_decision")
