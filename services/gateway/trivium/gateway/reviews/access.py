"""Who may read a review: a reviewer (scope `review`) sees the case; the caller who got the
202 (scope `invoke`, the same key; anyone in `auth.mode: open`) sees only the outcome."""

from __future__ import annotations

from dataclasses import dataclass

from trivium.common.errors import TriviumError
from trivium.gateway.callers.auth import ANONYMOUS, Authenticator, Caller

__all__ = ("Reader", "reader_of")


@dataclass(frozen=True, slots=True)
class Reader:
    caller: Caller
    reviewer: bool

    def owns(self, owner: str) -> bool:
        """The review's owner is the key that invoked ('' in open mode)."""
        record = self.caller.record
        return owner == (record.id if record is not None else "")


async def reader_of(auth: Authenticator, authorization: str | None, actor: str) -> Reader:
    if auth.mode == "open":
        try:
            return Reader(await auth.for_route(authorization, "review", actor), True)
        except TriviumError:
            if authorization:
                raise
            return Reader(ANONYMOUS, False)
    caller = await auth.authenticate(authorization)
    if "review" in caller.scopes:
        return Reader(caller, True)
    if "invoke" not in caller.scopes:
        auth.require(caller, "review")
    return Reader(caller, False)
