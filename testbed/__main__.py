"""``python -m testbed start|stop|status --dir DIR [--base-port N]``."""

from __future__ import annotations

import argparse
import json
import sys

from testbed.config import TestbedConfig
from testbed.run import Testbed


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--dir", default="testbed-run")
    ap.add_argument("--base-port", type=int, default=TestbedConfig().base_port)
    ap.add_argument("--no-prometheus", action="store_true")
    a = ap.parse_args()
    tb = Testbed(a.dir, TestbedConfig(base_port=a.base_port), prometheus=not a.no_prometheus)
    if a.action == "start":
        try:
            tb.start()
        except RuntimeError as exc:
            print(f"testbed: {exc}", file=sys.stderr)
            return 2
        print(
            f"testbed up: gateway {tb.url()}, Prometheus {tb.prometheus_url}; "
            f"stop with: python -m testbed stop --dir {a.dir}"
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
