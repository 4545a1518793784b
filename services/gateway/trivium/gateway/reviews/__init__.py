"""The human review queue: flagged, withheld, held and sampled answers, and reviewers' decisions."""

from trivium.gateway.reviews.queue import ReviewQueue
from trivium.gateway.reviews.routes import ReviewController
from trivium.gateway.reviews.store import ReviewStore

__all__ = ("ReviewController", "ReviewQueue", "ReviewStore")
