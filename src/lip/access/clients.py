"""Who is calling: client keys (from env vars or sha256 hashes), tiers, and slowing down key guessers.

Keys are compared as sha256 digests with ``hmac.compare_digest`` against every client, so the time
taken does not depend on which client, if any, matched. Keys never reach a log or a message.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lip.config.schema import ProxyConfig, TierConfig
from lip.core.errors import Forbidden, RateLimited, Unauthorized
from lip.limits.ratelimit import Quota
from lip.routing.selector import Selector

log = logging.getLogger("lip.access")


@dataclass(frozen=True, slots=True)
class Client:
    name: str
    tier: str | None
    admin: bool
    policy: TierConfig

    @property
    def quota(self) -> Quota:
        return Quota(self.policy.requests_per_minute, self.policy.tokens_per_minute)

    def allows(self, label: str) -> bool:
        """Whether the tier may use ``backend:model``."""
        return any(fnmatch.fnmatchcase(label, pattern) for pattern in self.policy.backends)

    @property
    def default(self) -> Selector | None:
        """The tier's default route for requests that name no backend."""
        text = self.policy.default_backend
        if not text:
            return None
        backend, _, model = text.partition(":")
        return Selector(backend, model or None)

    def check(self, label: str) -> None:
        if not self.allows(label):
            raise Forbidden(f"Client '{self.name}' (tier {self.tier or '-'}) may not use {label}; "
                            f"its tier allows {', '.join(self.policy.backends)}.", param="model",
                            code="model_not_allowed")


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The key as each client protocol sends it: Bearer, x-api-key, x-goog-api-key or ?key= (the first
    that is not empty: an SDK may send an empty Bearer beside the key it was given)."""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return headers.get("x-api-key") or headers.get("x-goog-api-key") or query.get("key") or None


class Authenticator:
    """Maps a presented key to its client; throttles addresses that keep presenting wrong keys."""

    def __init__(self, config: ProxyConfig, environ: Mapping[str, str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clients: list[tuple[bytes, Client]] = []
        self.missing: list[str] = []
        for entry in config.clients:
            if entry.key_env_var is not None:
                value = environ.get(entry.key_env_var, "")
                if not value:
                    self.missing.append(f"client {entry.name}: environment variable {entry.key_env_var} is not set")
                    continue
                digest = hashlib.sha256(value.encode()).digest()
            else:
                digest = bytes.fromhex(entry.key_sha256 or "")
            tier = config.tiers.get(entry.tier or "", TierConfig())
            self._clients.append((digest, Client(entry.name, entry.tier, entry.admin, tier)))
        self.enabled = bool(config.clients)
        self._failures = FailureThrottle(clock)

    def authenticate(self, key: str | None, address: str) -> Client | None:
        """The client, None when no client keys are configured; raises 401 or 429."""
        if not self.enabled:
            return None
        self._failures.check(address)
        found: Client | None = None
        if key:
            digest = hashlib.sha256(key.encode()).digest()
            for expected, client in self._clients:  # every one compared: no early exit
                if hmac.compare_digest(digest, expected) and found is None:
                    found = client
        if found is None:
            self._failures.failed(address)
            raise Unauthorized("Missing or invalid API key for this proxy." if key else
                               "This proxy needs an API key (Authorization: Bearer, x-api-key, "
                               "x-goog-api-key or ?key=).")
        self._failures.succeeded(address)
        return found


class FailureThrottle:
    """After 5 failed keys from one address, each further attempt waits 2^(n-5) s (at most 5 min)."""

    FREE = 5
    CAP = 300.0

    def __init__(self, clock: Callable[[], float], size: int = 50_000) -> None:
        self._clock = clock
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (failures, blocked until)
        self._size = size

    def check(self, address: str) -> None:
        entry = self._seen.get(address)
        if entry is None:
            return
        wait = entry[1] - self._clock()
        if wait > 0:
            raise RateLimited(f"Too many failed API keys from this address; retry in {wait:.0f} s.",
                              code="too_many_failed_keys", retry_after=wait)

    def failed(self, address: str) -> None:
        failures = self._seen.get(address, (0, 0.0))[0] + 1
        blocked = 0.0 if failures < self.FREE else self._clock() + min(self.CAP, 2.0 ** (failures - self.FREE))
        self._seen[address] = (failures, blocked)
        self._seen.move_to_end(address)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        if failures == self.FREE:
            log.warning("address %s presented %d invalid API keys; slowing it down", address, failures)

    def succeeded(self, address: str) -> None:
        self._seen.pop(address, None)
