"""The mirror's documents: the transformations applied to mirrored requests, and the chaos
budget that decides how much of them production can afford.

A transformation set (``--transform FILE``) lists what happens to the mirrored copy of a
request on its way to the shadow; production never sees any of it. Each transformation has
a ``share`` (the fraction of mirrored requests it applies to, at full budget level) and an
``intensity`` whose unit depends on its kind::

    name: shadow-v2
    seed: 7
    transformations:
      - {id: nudge, kind: payload_nudge, share: 0.2, intensity: 0.05}
      - {id: swap, kind: payload_swap, share: 0.1, intensity: 1}
      - {id: errors, kind: error, share: 0.05, status: 503}
      - {id: slow, kind: delay, share: 0.1, intensity: 0.2}
      - {id: throttle, kind: rate_limit, share: 1.0, intensity: 20}
      - {id: narrow, kind: bandwidth_limit, intensity: 64}

A budget (``--budget FILE``) declares production's SLO and the burn-rate thresholds at which
the transformations rise, shrink and stop::

    slo_target: 0.99
    interval_seconds: 2
    raise_below: 1.0
    shrink_above: 2.0
    stop_at: 5.0
    step: 0.25
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from twin.bounds import MAX_NAME_LENGTH, Int, Name, PeriodSeconds, Probability, Seed
from twin.io import DocProblem, load_model, register_union_tags

MAX_TRANSFORMATIONS = 50
"""Most transformations one set may hold."""

MAX_DELAY_SECONDS = 60.0
"""Longest delay a transformation may add to a mirrored request."""

MAX_SWAPS = 10
"""Most field-value swaps one payload_swap makes in one request body."""

MAX_FIELDS = 100
"""Most field names a payload transformation may be restricted to."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Transformation(_Doc):
    id: Name = Field(description="unique within the set; runtime keys, metrics and the mark use it")
    share: Probability = Field(
        description="fraction of mirrored requests it applies to, at budget level 1 (0..1)"
    )


class PayloadNudge(_Transformation):
    """Small value changes: every numeric value of the JSON body (of the fields named in
    ``fields``, at any depth, when given) is multiplied by ``1 + u * intensity``, u uniform
    in [-1, 1] from the set's seeded generator; integers stay integers."""

    kind: Literal["payload_nudge"]
    intensity: float = Field(
        gt=0.0, le=1.0, allow_inf_nan=False, description="largest relative change (0..1]"
    )
    fields: list[Name] = Field(
        default_factory=list,
        max_length=MAX_FIELDS,
        description="fields to change (any depth); empty: every numeric one",
    )


class PayloadSwap(_Transformation):
    """Field swaps: the values of ``intensity`` pairs of fields of the JSON body (numbers and
    strings, at any depth; among ``fields`` when given) trade places, chosen by the set's
    seeded generator."""

    kind: Literal["payload_swap"]
    intensity: Int = Field(ge=1, le=MAX_SWAPS, description="pairs swapped per request")
    fields: list[Name] = Field(
        default_factory=list,
        max_length=MAX_FIELDS,
        description="fields that may be swapped (any depth); empty: any scalar one",
    )


class SyntheticError(_Transformation):
    """The shadow never sees the request: Envoy's fault filter answers ``status`` itself."""

    kind: Literal["error"]
    status: Int = Field(default=503, ge=400, le=599, description="HTTP status answered")


class Delay(_Transformation):
    """Envoy's fault filter holds the request ``intensity`` seconds before forwarding it."""

    kind: Literal["delay"]
    intensity: float = Field(
        gt=0.0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description=f"delay in seconds (0..{MAX_DELAY_SECONDS:g}]",
    )


class RateLimit(_Transformation):
    """Throttling: a token bucket of ``intensity`` requests per second (Envoy's local rate
    limit); requests over it get 429. ``share`` is the fraction it is enforced on."""

    kind: Literal["rate_limit"]
    intensity: Int = Field(ge=1, le=1_000_000, description="requests per second allowed")


class Bandwidth(_Transformation):
    """A bandwidth limit on request and response bodies (Envoy's bandwidth limit filter).
    Envoy can only switch it on or off at run time: it is on while the budget level is
    above 0 and ``share`` is above 0."""

    kind: Literal["bandwidth_limit"]
    share: Probability = Field(default=1.0, description="0 switches it off; otherwise on")
    intensity: Int = Field(ge=1, le=10_000_000, description="KiB per second")


Transformation = Annotated[
    PayloadNudge | PayloadSwap | SyntheticError | Delay | RateLimit | Bandwidth,
    Field(discriminator="kind"),
]

register_union_tags(
    "payload_nudge", "payload_swap", "error", "delay", "rate_limit", "bandwidth_limit"
)


class TransformSet(_Doc):
    """What happens to mirrored requests on their way to the shadow (never to production).

    Payload transformations are mutually exclusive (a request gets at most one), so their
    shares may add up to at most 1; the others stack."""

    name: Name = Field(description="marks every mirrored request: x-shadow-transformed: NAME")
    seed: Seed = Field(default=1, description="seeds the payload transformations' generator")
    description: str | None = Field(default=None, max_length=10 * MAX_NAME_LENGTH)
    transformations: list[Transformation] = Field(
        default_factory=list, max_length=MAX_TRANSFORMATIONS
    )

    def cross_check(self) -> None:
        """Ids are unique; payload shares add up to at most 1; one bandwidth limit at most."""
        seen: set[str] = set()
        for i, t in enumerate(self.transformations):
            if t.id in seen:
                raise DocProblem(("transformations", i, "id"), f"duplicate id {t.id!r}")
            seen.add(t.id)
        total = 0.0
        for i, t in enumerate(self.transformations):
            if isinstance(t, PayloadNudge | PayloadSwap):
                total += t.share
                if total > 1.0 + 1e-9:
                    raise DocProblem(
                        ("transformations", i, "share"),
                        f"payload shares add up to {total:g} > 1 (a request gets one at most)",
                    )
        bw = [i for i, t in enumerate(self.transformations) if isinstance(t, Bandwidth)]
        if len(bw) > 1:
            raise DocProblem(("transformations", bw[1]), "one bandwidth transformation at most")

    @classmethod
    def load_file(cls, path: str | Path) -> TransformSet:
        """Read and check a transformation document (one-line errors with the line)."""
        return load_model(cls, path)


class Budget(_Doc):
    """Production's SLO and how transformations follow its burn rate.

    Every ``interval_seconds`` the controller reads production's requests and 5xx answers
    since the last evaluation, and computes the burn rate, ``error ratio / (1 -
    slo_target)``. Below ``raise_below`` the level rises by ``step``; at or above
    ``shrink_above`` it falls by ``step``; at or above ``stop_at`` it drops to 0 at once, and
    it stays 0 until the burn is back below ``raise_below``. The stop condition is also
    checked ``checks_per_interval`` times per interval over the trailing interval. The level
    (0..1) scales every transformation's share (and a delay's duration)."""

    slo_target: float = Field(
        default=0.99,
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="production's availability objective (share of non-5xx answers)",
    )
    interval_seconds: PeriodSeconds = Field(default=5.0, description="evaluation interval (s)")
    raise_below: float = Field(
        default=1.0, ge=0.0, le=1e6, allow_inf_nan=False, description="burn rate to raise under"
    )
    shrink_above: float = Field(
        default=2.0, gt=0.0, le=1e6, allow_inf_nan=False, description="burn rate to shrink at"
    )
    stop_at: float = Field(
        default=5.0, gt=0.0, le=1e6, allow_inf_nan=False, description="burn rate to stop at"
    )
    step: Probability = Field(default=0.25, description="level change per evaluation (0..1)")
    start_level: Probability = Field(default=0.25, description="level at start (0..1)")
    max_level: Probability = Field(default=1.0, description="highest level (0..1)")
    checks_per_interval: Int = Field(
        default=4,
        ge=1,
        le=100,
        description="stop checks per interval, each over the trailing interval, so a breach "
        "stops the transformations within one interval, not at the next full evaluation",
    )
    min_requests: Int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="fewer production requests in an interval: the level holds (no evidence)",
    )

    def cross_check(self) -> None:
        """Thresholds are ordered: raise_below <= shrink_above <= stop_at."""
        if self.raise_below > self.shrink_above:
            raise DocProblem(("raise_below",), "must be at most shrink_above")
        if self.shrink_above > self.stop_at:
            raise DocProblem(("shrink_above",), "must be at most stop_at")
        if self.start_level > self.max_level:
            raise DocProblem(("start_level",), "must be at most max_level")

    @classmethod
    def load_file(cls, path: str | Path) -> Budget:
        """Read and check a budget document (one-line errors with the line)."""
        return load_model(cls, path)


__all__ = [
    "Bandwidth",
    "Budget",
    "Delay",
    "PayloadNudge",
    "PayloadSwap",
    "RateLimit",
    "SyntheticError",
    "TransformSet",
    "Transformation",
]
