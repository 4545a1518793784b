"""The exposure rule for a service's admin writes: reachable from other hosts, it must ask
who writes.

Bound to anything but loopback, a service with no admin credential refuses to start unless
`insecure: true` is set explicitly (trusted networks only); the refusal names the settings.
The gateway applies its own, stricter rule to caller keys (`trivium.gateway.callers`).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping

from trivium.common.errors import InvalidInputError

__all__ = ("InsecureExposureError", "is_loopback", "require_admin_credential")

log = logging.getLogger(__name__)


class InsecureExposureError(InvalidInputError):
    code = "insecure_exposure"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_admin_credential(
    section: str, host: str, admin_tokens: Mapping[str, object], insecure: bool
) -> None:
    """Raise, naming `<section>.admin_tokens` and `<section>.insecure`, when `host` is reachable
    from other machines and nothing guards the admin writes."""
    if is_loopback(host) or admin_tokens:
        return
    if insecure:
        log.warning(
            f"{section}.insecure is set on a non-loopback host: anyone who reaches it may write",
            extra={"host": host},
        )
        return
    env = f"TRIVIUM_{section.upper()}__ADMIN_TOKENS"
    raise InsecureExposureError(
        f"host {host} is not loopback and no admin credential is set: set {section}.admin_tokens "
        f'({env}=\'{{"ops": "<token>"}}\'), or {section}.insecure: true to serve writes '
        "without one (trusted networks only)",
        field=f"{section}.admin_tokens",
    )
