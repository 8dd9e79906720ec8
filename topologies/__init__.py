"""The bundled topologies, shipped as package data: ``NAME.yaml`` with its companion
``NAME.scenario.yaml`` and ``NAME.policy.yaml``. Read them through :mod:`twin.bundled`."""
