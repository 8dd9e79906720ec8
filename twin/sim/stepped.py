"""``SteppedTwin``: what a controller needs from an engine it steps.

The agent's environment, its policy validation and live what-if drive the twin in stretches:
put a policy in force, advance, read what the stretch saw. Both engines (the request-level
:class:`~twin.sim.Simulation` and the aggregated :class:`~twin.sim.fluid.FluidSimulation`)
offer exactly this, so a consumer typed against the protocol works with either.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from twin.policy import Policy
from twin.results import Stretch
from twin.scenario import Scenario
from twin.topology import Topology


@runtime_checkable
class SteppedTwin(Protocol):
    """An engine that can be stepped: ``apply`` a policy, ``step`` ahead, read the stretch."""

    @property
    def topology(self) -> Topology:
        """The system being simulated."""
        ...

    @property
    def scenario(self) -> Scenario:
        """What happens to it: load, faults, duration (the stretch never runs past it)."""
        ...

    @property
    def now(self) -> float:
        """Simulated time (seconds)."""
        ...

    def apply(self, policy: Policy) -> None:
        """Put ``policy`` in force from now on."""
        ...

    def step(self, seconds: float) -> Stretch:
        """Advance ``seconds`` (not past the scenario's end) and report that stretch."""
        ...
