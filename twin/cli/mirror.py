"""``twin mirror``: a real Envoy as production's ingress that mirrors a share of the traffic
to a shadow, optionally transformed on the way, within a chaos budget.

The work is :mod:`twin.mirror.run`; this module reads the flags, checks the Istio
equivalent against the vendored CRD schema (the schemas live with the exporters, in
``agents.export``), and runs the mirror in the foreground until SIGTERM or SIGINT.

Exit codes: 0 stopped by a signal (or ``--check`` passed); 2 bad input, or a config Envoy
or the Istio schema refuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twin.cli.errors import handles_errors
from twin.errors import InputError


def _endpoint(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"expected HOST:PORT, got {text!r}", source=option)
    return host.strip("[]"), int(port)


@handles_errors
def mirror(
    production: Annotated[str, typer.Option(help="Production upstream, HOST:PORT.")],
    shadow: Annotated[str, typer.Option(help="Shadow upstream, HOST:PORT.")],
    share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests mirrored (0..1).")
    ],
    listen: Annotated[int, typer.Option(min=1, max=65535, help="Port clients connect to.")],
    transform: Annotated[
        Path | None, typer.Option(help="Transformations of the mirrored requests (YAML).")
    ] = None,
    budget: Annotated[
        Path | None, typer.Option(help="Chaos budget (YAML): levels follow production's burn.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("mirror-out"),
    admin_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Envoy admin port (loopback); 0: any free.")
    ] = 0,
    metrics_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Budget /metrics port (loopback); 0: any free.")
    ] = 0,
    listen_address: Annotated[str, typer.Option(help="Address clients connect to.")] = (
        "127.0.0.1"
    ),
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=256, help="Envoy worker threads (default: cores).")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Namespace of the Istio resource.")] = "default",
    check: Annotated[
        bool, typer.Option(help="Write and validate the configs, then exit without running.")
    ] = False,
) -> None:
    """Mirror a share of production's traffic to a shadow through a real Envoy."""
    from twin.io import dump_yaml, output_dir
    from twin.mirror.document import Budget, TransformSet
    from twin.mirror.envoy import Endpoint, MirrorPlan
    from twin.mirror.istio import virtual_service
    from twin.mirror.run import Mirror, free_port, write_config

    prod = Endpoint(*_endpoint(production, "--production"))
    shad = Endpoint(*_endpoint(shadow, "--shadow"))
    ts = TransformSet.load_file(transform) if transform is not None else None
    bud = Budget.load_file(budget) if budget is not None else None
    folder = output_dir(out)
    plan = MirrorPlan(
        production=prod,
        shadow=shad,
        share=share,
        listen=listen,
        admin_port=admin_port or free_port(),
        internal_port=free_port(),
        listen_address=listen_address,
        transforms=ts,
    )
    from twin.crd import validate_resource  # after the cheap checks: it is slow

    vs = virtual_service(plan, namespace=namespace)
    problems = validate_resource(vs)
    if problems:
        raise InputError(f"the Istio VirtualService does not validate: {problems[0]}")
    (folder / "istio-virtualservice.yaml").write_text(dump_yaml(vs), encoding="utf-8")
    if check:
        write_config(plan, folder, bud.start_level if bud is not None else 1.0)
        typer.echo(
            f"configs valid: {folder / 'envoy.yaml'}, {folder / 'istio-virtualservice.yaml'}"
        )
        return
    m = Mirror(plan, folder, budget=bud, metrics_port=metrics_port, concurrency=concurrency)
    typer.echo(
        f"mirroring {share:g} of {listen_address}:{listen} -> {prod} to {shad}; "
        f"admin 127.0.0.1:{plan.admin_port}; stop with SIGTERM or Ctrl-C",
        err=True,
    )
    code = m.run_foreground()
    if code:
        raise typer.Exit(code)
