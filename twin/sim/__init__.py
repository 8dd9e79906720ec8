"""The simulation engine: SimPy events, no generator per hop. See :class:`Simulation`.

Both engines, :class:`Simulation` and the aggregated ``twin.sim.fluid.FluidSimulation``, are
:class:`SteppedTwin`.
"""

from twin.sim.engine import Simulation
from twin.sim.stepped import SteppedTwin

__all__ = ["Simulation", "SteppedTwin"]
