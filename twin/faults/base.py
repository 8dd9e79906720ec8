"""What every fault kind shares: the document fields, the intensity contract, and the two
narrow interfaces through which a fault acts on an engine.

A fault kind is one class (one module in this package). The class owns everything that is
particular to the kind, so adding a kind is adding one module (the package finds it):

- its document fields and their validation (the ``kind:`` tag is a one-value ``Literal``);
- the targets it accepts (:class:`Targets`);
- its intensity (:class:`Intensity`): which number says how hard it hits, in which unit, in
  which valid range, how it scales, and the conversions ``(kind, intensity) -> document``
  (:meth:`FaultBase.document`) and back (:meth:`FaultBase.intensity_of`);
- the words that name it in incident reports and in chaos tools' fault names;
- its effect on the request-level engine (:class:`RequestEngine`) and on the fluid engine
  (:class:`FluidEngine`). Engines implement these protocols; a fault never sees more of an
  engine than them.

Overlapping faults compose inside the engines' implementations of the protocols, with the
rules the protocols document: slow-down factors multiply, probabilities combine as
independent events, the tightest bandwidth wins, and each cause of a replica being down is
counted so it comes back when the last one ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from twin.bounds import (
    MAX_FACTOR,
    MAX_MULTIPLIER,
    MAX_SECONDS,
    MIN_PERIOD_SECONDS,
    Finite,
    PositiveSeconds,
    Probability,
    Rate,
    Seconds,
    Seed,
    check_name,
    check_reference,
)
from twin.distributions import Dist
from twin.topology import Topology

Fraction = Probability

SERVICE = "service"
"""Target: a service name."""
EDGE = "edge"
"""Target: a call edge ``"a->b"``."""
PLACEMENT = "placement"
"""Target: ``host:NAME`` or ``zone:NAME``, every service placed there."""
ENTRY = "entry"
"""Target: a workload entry (``service`` or ``service:operation``)."""


class _Doc(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sampling(_Doc):
    """Repeat a fault at random: gaps, durations and intensity scale drawn with a seed.

    Occurrences fall inside the fault's own window (``start`` .. ``start + duration``). The
    intensity draw multiplies the fault's intensity (probabilities are capped at 1, and every
    scaled intensity stays within its field's range). ``interval``'s mean is at least
    ``MIN_PERIOD_SECONDS`` (0.01 s) and at most ``MAX_SECONDS``, ``duration``'s and
    ``intensity``'s at most ``MAX_SECONDS`` and ``MAX_MULTIPLIER``: occurrences are drawn one
    by one, and a gap of nanoseconds would ask for billions of them.
    """

    interval: Dist = Field(description="seconds between the end of one occurrence and the next")
    duration: Dist = Field(description="seconds each occurrence lasts")
    intensity: Dist | None = Field(default=None, description="multiplier of the fault's intensity")
    seed: Seed | None = Field(default=None, description="default: the scenario seed")

    @model_validator(mode="after")
    def _advances(self) -> Sampling:
        gap = self.interval.expected()
        if not MIN_PERIOD_SECONDS <= gap <= MAX_SECONDS:
            raise ValueError(
                f"`interval` must have a mean in [{MIN_PERIOD_SECONDS:g}, {MAX_SECONDS:g}] "
                f"seconds, got {gap:g}"
            )
        if self.duration.expected() > MAX_SECONDS:
            raise ValueError(f"`duration` must have a mean of at most {MAX_SECONDS:g} seconds")
        if self.intensity is not None and self.intensity.expected() > MAX_MULTIPLIER:
            raise ValueError(f"`intensity` must have a mean of at most {MAX_MULTIPLIER:g}")
        return self


@dataclass(frozen=True)
class Picker:
    """How a user interface offers the intensity (one slider), in display units."""

    label: str
    low: float
    high: float
    default: float
    step: float
    help: str


@dataclass(frozen=True)
class Intensity:
    """How hard a fault of a kind hits, as one number.

    ``unit`` says what one unit means; for most kinds the number is the value of one document
    field (``field``), but not always (an outage's intensity is the share of replicas down, a
    traffic fault's the extra rate as a multiple of the entry's own). ``low``/``high`` is the
    valid range (``low_open``: ``low`` itself excluded). ``typical`` is what a campaign uses
    when it is given no intensity, ``sample`` the range a seeded random campaign draws from
    (``sample_log``: log-uniformly). ``lower_is_worse``: the fault hurts more as the number
    falls (a bandwidth cap). A user interface shows ``value / display_scale`` in
    ``picker``'s units.
    """

    unit: str
    low: float
    high: float
    typical: float
    sample: tuple[float, float]
    picker: Picker
    field: str | None = None
    low_open: bool = False
    sample_log: bool = False
    lower_is_worse: bool = False
    display_scale: float = 1.0

    def clamp(self, x: float) -> float:
        """``x`` brought into the valid range (an open lower end becomes just above it)."""
        lo = self.low + 1e-6 if self.low_open else self.low
        return float(min(self.high, max(lo, x)))


@dataclass(frozen=True)
class Targets:
    """What a fault of a kind may be aimed at (see :data:`SERVICE`, :data:`EDGE`, ...)."""

    service: bool = True
    edge: bool = False
    placement: bool = False
    entry: bool = False

    def describe(self) -> str:
        words = [
            w
            for w, on in (
                ("a service", self.service),
                ('an edge "a->b"', self.edge),
                ("host:NAME / zone:NAME", self.placement),
                ("a workload entry", self.entry),
            )
            if on
        ]
        return " or ".join(words)


class RequestEngine(Protocol):
    """What a fault may do to the request-level engine while one of its windows is open.

    ``open`` methods run once when a window opens and return a handle for the matching
    ``close``; ``compose`` methods run every time the fault state is recomputed (a window
    opened or closed), after the engine reset every service, host and edge to fault-free.
    """

    def stream(self, name: str) -> np.random.Generator:
        """The engine's named random stream (same seed and name, same draws)."""
        ...

    def slow(self, target: str, factor: float) -> None:
        """Processing at a service, ``host:NAME`` or ``zone:NAME`` takes ``factor`` times
        longer; factors of overlapping faults multiply."""
        ...

    def delay(self, target: str, draw: Callable[[], float]) -> None:
        """Add a delay drawn per request at a service (holding the worker, not a core) or per
        call on an edge ``a->b`` (network time); overlapping delays add."""
        ...

    def add_errors(self, service: str, probability: float) -> None:
        """The service fails requests after processing them; overlapping probabilities
        combine as independent events."""
        ...

    def lose(self, target: str, probability: float) -> None:
        """Calls on an edge, or on every edge into a service, are lost; independent events."""
        ...

    def cap_bandwidth(self, edge: str, bytes_per_second: float) -> None:
        """Responses on the edge queue for a link of this rate; the tightest cap wins."""
        ...

    def hold_workers(self, service: str, fraction: float) -> None:
        """This share of each replica's workers is unavailable; the largest share wins."""
        ...

    def corrupt(self, service: str, probability: float, detection: float) -> None:
        """Responses come back corrupt (independent events); each consumer detects one with
        ``detection`` (the mean over overlapping faults)."""
        ...

    def take_down(self, target: str, replicas: int | None) -> Any:
        """Take up to ``replicas`` (None: all) running replicas of a service, or of every
        service on ``host:NAME`` / ``zone:NAME``, down; returns what :meth:`bring_up` needs.
        Each cause of a replica being down is counted; it returns when the last one ends."""
        ...

    def bring_up(self, handle: Any) -> None: ...

    def start_leak(
        self,
        service: str,
        growth_mb_per_s: float,
        limit_mb: float,
        baseline_mb: float,
        restart_time: float,
        gc_slowdown: float,
    ) -> Any:
        """Every replica's memory grows from ``baseline_mb``; near the limit the GC slows
        processing by ``1 + gc_slowdown * (used / limit)^2``; at the limit the replica is
        OOM-killed, down ``restart_time`` seconds, and comes back at the baseline."""
        ...

    def stop_leak(self, handle: Any) -> None: ...

    def start_traffic(
        self, entry: str, rate: float, cost: float, attack: bool, rng: np.random.Generator
    ) -> Any:
        """A Poisson source of ``rate`` extra requests/s at the entry, each costing ``cost``
        times the normal processing; attack requests are reported apart from users'."""
        ...

    def stop_traffic(self, handle: Any) -> None: ...

    def steal_quota(self, service: str, share: float) -> None:
        """A hog in each of the service's pods takes ``share`` of every CFS period's quota
        (from the next period on); the shares of overlapping hogs combine as independent
        events (the service keeps the product of what each leaves)."""
        ...

    def steal_cores(self, target: str, cores: int) -> None:
        """Contention takes ``cores`` of the host of a service, or of ``host:NAME``, from the
        services placed there; overlapping takes add (at most every core)."""
        ...

    def slow_disk(self, target: str, factor: float) -> None:
        """The disk I/O of a service (its replicas' disks, or its host's disk) or of every
        service on ``host:NAME`` / ``zone:NAME`` takes ``factor`` times longer (the disk's
        bandwidth divided by it); factors of overlapping faults multiply."""
        ...


class FluidEngine(Protocol):
    """What a fault may do to the fluid engine during one step (called for every fault window
    active at the step's start, in window order, after the engine reset its per-step state).

    A target the engine does not model as a service (an edge, ``host:``/``zone:``) is
    ignored: the fluid engine is coarse and the request-level engine is the reference.
    """

    def slow(self, service: str, factor: float) -> None:
        """Multiply the service's processing time by ``factor`` this step."""
        ...

    def add_delay(self, service: str, seconds: float) -> None:
        """Add a mean delay (seconds) to each request at the service this step."""
        ...

    def add_errors(self, service: str, probability: float) -> None:
        """Fail requests after processing; independent events."""
        ...

    def take_down(self, service: str, replicas: int | None) -> None:
        """Remove ``replicas`` (None: all) of the service's replicas from service this step."""
        ...

    def leak_clock(self, service: str, window_start: float) -> float | None:
        """Seconds since which the service has been leaking (from ``window_start``, or its
        last restart); None when the service is not modelled."""
        ...

    def restart(self, service: str, until: float) -> None:
        """The service is down until ``until`` (an OOM kill) and its leak starts afresh."""
        ...

    def extra_traffic(self, entry: str, rate: float, cost: float, attack: bool) -> None:
        """Extra requests/s at the entry, each costing ``cost`` times normal processing."""
        ...

    def slow_disk(self, service: str, factor: float) -> None:
        """Divide the service's disk bandwidth by ``factor`` this step (factors multiply)."""
        ...

    def steal_quota(self, service: str, share: float) -> None:
        """A hog takes ``share`` of the service's CPU quota this step (leaves multiply)."""
        ...

    def steal_cores(self, target: str, cores: int) -> None:
        """Contention takes host cores this step (hosts are not modelled: ignored)."""
        ...


class FaultBase(_Doc):
    """Fields every fault has; subclasses are the fault kinds."""

    target: str = Field(
        description='a service, "a->b" (an edge), "host:NAME" / "zone:NAME", or a workload '
        'entry "service" / "service:operation", as the kind accepts'
    )
    start: Seconds = Field(default=0.0, description="seconds; before the scenario's duration")
    duration: PositiveSeconds | None = Field(
        default=None, description="seconds; default: to the end"
    )
    sample: Sampling | None = None

    @field_validator("target")
    @classmethod
    def _target_form(cls, value: str) -> str:
        """Every part of a target is a valid name; which form a kind accepts, and whether
        what it names exists, is checked against the topology."""
        caller, arrow, callee = value.partition("->")
        if arrow:
            check_name(caller)
            check_name(callee)
        else:
            check_reference(value)
        return value

    if TYPE_CHECKING:
        kind: str  # each kind's class declares it as the Literal of its tag

    name: ClassVar[str] = ""
    """The ``kind:`` tag, read from the class's ``kind`` Literal."""
    label: ClassVar[str] = ""
    """A few words for people (pickers, reports)."""
    listing: ClassVar[int] = 1000
    """Position in every listing of kinds (the reference, pickers, grids): ascending."""
    targets: ClassVar[Targets] = Targets()
    intensity: ClassVar[Intensity]
    symptoms: ClassVar[tuple[str, ...]] = ()
    """Words that name the kind in an incident's symptom or cause (matched at word starts)."""
    symptom_rank: ClassVar[int] = 100
    incident_example: ClassVar[str] = ""
    """A symptom as an incident log words it (synthetic logs write it; :attr:`symptoms` read
    it back)."""
    """Incident text is matched against kinds in ascending rank: specific kinds first."""
    chaos_words: ClassVar[tuple[str, ...]] = ()
    """Substrings that name the kind in a chaos tool's fault or action name."""
    chaos_rank: ClassVar[int] = 100
    fmea_detection: ClassVar[int] = 5
    """FMEA detection score (1: alarms at once, 10: goes unseen)."""
    agent_levels: ClassVar[tuple[float, ...]] = ()
    """Intensities the agents' fault catalogue draws; empty: not in the catalogue."""
    agent_rank: ClassVar[int] = 0
    """Position in the agents' catalogue (its draws depend on the order)."""
    in_default_sample: ClassVar[bool] = False
    """A seeded random campaign draws the kind when it names no kinds."""
    needs_disk: ClassVar[bool] = False
    """Only topologies with a disk bandwidth somewhere can host the kind."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("kind")
        tags = get_args(field.annotation) if field is not None else ()
        if len(tags) == 1:
            cls.name = str(tags[0])

    # -- intensity ----------------------------------------------------------------------------

    def intensity_field(self) -> str | None:
        """Name of the field that ``sample.intensity`` scales (None: no intensity)."""
        return self.intensity.field

    def scaled(self, k: float) -> FaultBase:
        """This fault with its intensity multiplied by ``k`` (a sampled occurrence)."""
        name = self.intensity.field
        if name is None or k == 1.0:
            return self
        value = self._scale_value(getattr(self, name), k)
        if isinstance(value, float):
            value = _within_field(type(self).model_fields[name], value)
        return self.model_copy(update={name: value})

    def _scale_value(self, value: Any, k: float) -> Any:
        return value * k

    @classmethod
    def document(
        cls,
        target: str,
        intensity: float,
        topology: Topology | None = None,
        *,
        entry_rate: float | None = None,
    ) -> dict[str, Any]:
        """A fault document (``kind``, ``target`` and the intensity's field) whose intensity
        is ``intensity`` in :attr:`intensity`'s unit; timing and further fields are the
        caller's. ``topology`` sizes shares of replicas (none: all replicas); ``entry_rate``
        is the requests/s a traffic intensity multiplies (default: the topology's workload at
        ``target``)."""
        doc: dict[str, Any] = {"kind": cls.name, "target": target}
        doc.update(cls._fields_for(target, intensity, topology, entry_rate))
        return doc

    @classmethod
    def _fields_for(
        cls, target: str, x: float, topology: Topology | None, entry_rate: float | None
    ) -> dict[str, Any]:
        assert cls.intensity.field is not None
        return {cls.intensity.field: x}

    def intensity_of(self, topology: Topology) -> float:
        """The inverse of :meth:`document`: this fault's intensity in :attr:`intensity`'s
        unit."""
        assert self.intensity.field is not None
        return float(getattr(self, self.intensity.field))

    @classmethod
    def to_display(cls, x: float) -> float:
        """An intensity in the picker's display unit."""
        return x / cls.intensity.display_scale

    @classmethod
    def from_display(cls, v: float) -> float:
        """A picker value back in the intensity's unit."""
        return v * cls.intensity.display_scale

    def problem_in(self, topology: Topology) -> tuple[str, str] | None:
        """What is wrong with this fault in ``topology``, once its target is known to exist
        there: (the field, why), or None. A kind with fields that depend on the system
        overrides it."""
        return None

    # -- effects ------------------------------------------------------------------------------

    def open(self, engine: RequestEngine, window: int, n: int) -> Any:
        """A window of this fault opens (``window``: the fault's index in the scenario, ``n``:
        the window's position in the run); returns the handle :meth:`close` and
        :meth:`compose` get."""
        return None

    def close(self, engine: RequestEngine, handle: Any) -> None:
        """The window closes."""

    def compose(self, engine: RequestEngine, handle: Any) -> None:
        """Add this fault's share to the engine's recomputed fault state."""

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        """This fault's effect on one step of the fluid engine (default: none)."""


class ProbabilityFault(FaultBase):
    """A kind whose intensity is a probability, capped at 1 when scaled."""

    def _scale_value(self, value: Any, k: float) -> Any:
        return min(1.0, value * k)

    @classmethod
    def _fields_for(
        cls, target: str, x: float, topology: Topology | None, entry_rate: float | None
    ) -> dict[str, Any]:
        assert cls.intensity.field is not None
        return {cls.intensity.field: min(1.0, x)}


class SlowdownFault(FaultBase):
    """A kind whose intensity is a slow-down factor, never below 1 when scaled."""

    def _scale_value(self, value: Any, k: float) -> Any:
        return max(1.0, value * k)

    @classmethod
    def _fields_for(
        cls, target: str, x: float, topology: Topology | None, entry_rate: float | None
    ) -> dict[str, Any]:
        assert cls.intensity.field is not None
        return {cls.intensity.field: max(1.0, x)}


class TrafficFault(FaultBase):
    """An extra request class at an entry: a surge of users, or an attack.

    Surge requests are user requests and count in every figure; attack requests load the
    system (each costs ``cost`` times the normal processing) but are reported apart.
    """

    rate: Rate = Field(description="extra requests per second")
    cost: Finite = Field(
        default=1.0, gt=0.0, le=MAX_FACTOR, description="processing-time multiplier"
    )

    targets: ClassVar[Targets] = Targets(service=False, entry=True)
    attack: ClassVar[bool] = False

    @classmethod
    def _fields_for(
        cls, target: str, x: float, topology: Topology | None, entry_rate: float | None
    ) -> dict[str, Any]:
        if entry_rate is not None:
            rate = entry_rate
        else:
            rate = (_entry_rate(topology, target) if topology is not None else 0.0) or 1.0
        return {"rate": x * rate}

    def intensity_of(self, topology: Topology) -> float:
        rate = _entry_rate(topology, self.target)
        return float(self.rate / rate) if rate else float(self.rate)

    def open(self, engine: RequestEngine, window: int, n: int) -> Any:
        rng = engine.stream(f"traffic:{window}:{n}")
        return engine.start_traffic(self.target, self.rate, self.cost, self.attack, rng)

    def close(self, engine: RequestEngine, handle: Any) -> None:
        engine.stop_traffic(handle)

    def fluid(self, engine: FluidEngine, window_start: float, now: float) -> None:
        engine.extra_traffic(self.target, self.rate, self.cost, self.attack)


def _within_field(info: FieldInfo, value: float) -> float:
    """``value`` brought into the range a field declares (a scaled intensity stays one the
    documents accept: a sampled draw of 0 or of 1,000 must not make a rate of 0 or 1e12)."""
    low, high = -math.inf, math.inf
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            low = max(low, float(m.ge))
        if getattr(m, "gt", None) is not None:
            low = max(low, math.nextafter(float(m.gt), math.inf))
        if getattr(m, "le", None) is not None:
            high = min(high, float(m.le))
    return min(high, max(low, value))


def _entry_rate(topology: Topology, entry: str) -> float:
    return float(sum(w.rate for w in topology.workload if w.entry == entry))


def replicas_share(topology: Topology, service: str, replicas: int | None) -> float:
    """``replicas`` of a service as a share of its replicas (None, or unknown: 1)."""
    svc = topology.services.get(service)
    if replicas is None or svc is None:
        return 1.0
    return min(1.0, float(replicas) / svc.replicas)


def share_to_replicas(topology: Topology | None, service: str, share: float) -> int | None:
    """The replicas a share of a service's stands for (None: all)."""
    svc = None if topology is None else topology.services.get(service)
    if svc is None or share >= 1.0:
        return None
    return max(1, min(svc.replicas, math.ceil(share * svc.replicas)))
