"""Export a learned policy for production: the ONNX network, ``policy.json``, the runtime
files (Istio, Envoy, Resilience4j, HPA) validated against their schemas, and the
re-simulation in the twin of what each file enforces (``build.py`` runs the steps)."""
