"""``python -m testbed start|stop|status --dir DIR [--base-port N] [--shadow]``.

``--shadow`` runs a second, independent copy next to production: its own folder
(``testbed-shadow``), ports (base port + 100: services, Redis and Prometheus), Redis, spans,
access logs and Prometheus jobs (``shadow-<service>``, label ``role=shadow``).
"""

from __future__ import annotations

import argparse
import json
import sys

from testbed.config import SHADOW_PORT_OFFSET, TestbedConfig
from testbed.run import Testbed


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--dir", default=None, help="testbed-run (testbed-shadow with --shadow)")
    ap.add_argument("--base-port", type=int, default=None)
    ap.add_argument("--no-prometheus", action="store_true")
    ap.add_argument("--shadow", action="store_true", help="the independent shadow copy")
    a = ap.parse_args()
    role = "shadow" if a.shadow else "production"
    base = TestbedConfig().base_port + (SHADOW_PORT_OFFSET if a.shadow else 0)
    run_dir = a.dir or ("testbed-shadow" if a.shadow else "testbed-run")
    config = TestbedConfig(base_port=a.base_port or base, role=role)
    tb = Testbed(run_dir, config, prometheus=not a.no_prometheus)
    if a.action == "start":
        try:
            tb.start()
        except RuntimeError as exc:
            print(f"testbed: {exc}", file=sys.stderr)
            return 2
        print(
            f"testbed ({role}) up: gateway {tb.url()}, Prometheus {tb.prometheus_url}; "
            f"stop with: python -m testbed stop --dir {run_dir}"
        )
        return 0
    if a.action == "stop":
        tb.stop()
        print("testbed stopped")
        return 0
    state = tb.state_file.read_text() if tb.state_file.exists() else "{}"
    print(json.dumps(json.loads(state), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
