"""Traffic mirroring through a real Envoy: production answers every request, a share is
copied to a shadow (optionally transformed on the way), and a chaos budget keeps the
transformations within what production's SLO can afford.

- :mod:`.document`: the transformation set and the budget documents.
- :mod:`.envoy`: the Envoy binary, ``--mode validate``, and the bootstrap.
- :mod:`.payload`: payload transformations as Envoy Lua.
- :mod:`.istio`: the Istio equivalent (a VirtualService with ``mirror``).
- :mod:`.budget`: the controller that follows production's burn rate.
- :mod:`.run`: running it all in the foreground until SIGTERM.
"""
