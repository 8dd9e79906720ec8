"""``twin serve``: the authenticated HTTP API for chaos results, simulations, incidents and
live OTLP telemetry, and for reading failure modes, chaos results, alerts and changes.

The one network-facing part of the twin, so every input is bounded before it is read and
every refusal is a problem+json answer with nothing stored: :mod:`.auth` (hashed bearer
tokens with scopes), :mod:`.ratelimit` (a token bucket per token), :mod:`.limits` (body size
while streaming, JSON depth and keys), :mod:`.problems` (RFC 9457, one handler),
:mod:`.models` (the contract, from which the OpenAPI document is generated),
:mod:`.writer` (group commit: acknowledged only after the transaction), :mod:`.metrics`
(Prometheus exposition) and :mod:`.app` (the routes). :mod:`.run` starts uvicorn.
"""

from twin.serve.app import ServeConfig, create_app

__all__ = ["ServeConfig", "create_app"]
