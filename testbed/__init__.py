"""A real multi-service system on loopback, to measure the twin against.

Five single-threaded asyncio HTTP services (gateway, catalog, pricing, cart, recommend) and
a real Redis, each service exporting Prometheus metrics (OpenTelemetry semantic-convention
names) and OTLP/JSON spans to files; a real Prometheus scraping them; an open-loop Poisson
load generator; and real faults (stress-ng CPU hog, SIGSTOP/SIGCONT, kill and restart,
latency and errors injected through each service's admin endpoint).

``python -m testbed start --dir DIR`` starts it, ``python -m testbed stop --dir DIR`` stops
everything it started. Only 127.0.0.1 is used.
"""
