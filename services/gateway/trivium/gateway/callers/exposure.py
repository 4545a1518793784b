"""The exposure rule: a gateway reachable from other hosts must check who calls it.

Bound to anything but loopback, `trivium gateway serve` refuses to start in `keys` mode
without an admin credential (`gateway.admin_tokens`) or a shared pepper
(`gateway.auth.pepper`); `auth.mode: open` must be set explicitly to serve without keys
(the default is `keys`, so open is always a choice), and is logged as a warning.
"""

from __future__ import annotations

import logging

from trivium.common.http.exposure import InsecureExposureError, is_loopback
from trivium.gateway.config import GatewaySection

__all__ = ("InsecureExposureError", "check_exposure", "is_loopback")

log = logging.getLogger(__name__)


def check_exposure(section: GatewaySection) -> None:
    """Raise naming the setting to add when the gateway would be exposed unguarded."""
    if is_loopback(section.host):
        return
    if section.auth.mode == "open":
        log.warning(
            "auth.mode is open on a non-loopback host: anyone who reaches it may call it",
            extra={"host": section.host},
        )
        return
    if not section.admin_tokens:
        raise InsecureExposureError(
            f"host {section.host} is not loopback and no admin credential is set: set "
            'gateway.admin_tokens (TRIVIUM_GATEWAY__ADMIN_TOKENS=\'{"ops": "<token>"}\'), '
            "or gateway.auth.mode: open to serve without keys",
            field="gateway.admin_tokens",
        )
    if section.auth.pepper is None:
        raise InsecureExposureError(
            f"host {section.host} is not loopback and no key pepper is set: set "
            "gateway.auth.pepper (TRIVIUM_GATEWAY__AUTH__PEPPER), the same on every replica",
            field="gateway.auth.pepper",
        )
