"""The simulation engine: SimPy events, no generator per hop. See :class:`Simulation`."""

from twin.sim.engine import Simulation

__all__ = ["Simulation"]
