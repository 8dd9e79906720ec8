"""Validate a Kubernetes custom resource offline against its published CRD schema.

The CRD's ``openAPIV3Schema`` is checked with jsonschema after making it strict (every
object that lists its properties rejects unknown ones, as the API server's pruning would
drop them silently), and each ``x-kubernetes-validations`` rule is evaluated with a CEL
interpreter (cel-python) on the value it is attached to, as the API server does.

Used by ``twin export`` (the learned policy's Istio resources), ``twin mirror`` (the mirroring
VirtualService) and the rollout examples (Argo Rollouts, Flagger); the published CRDs are
vendored in ``schemas/`` with their sources in its README.
"""

from __future__ import annotations

import copy
import os
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from twin.errors import InputError
from twin.safeload import load_yaml_all, read_text

SCHEMAS_ENV = "TWIN_CRD_SCHEMAS"
"""Environment variable naming another folder of CRD schemas (``twin export --schemas``
wins over it)."""

ISTIO_FILE = "istio-crds.gen.yaml"
"""Istio's published CRDs (istio/api kubernetes/customresourcedefinitions.gen.yaml)."""


def schemas_dir(override: Path | None = None) -> Path:
    """The folder of CRD schemas: ``override``, else ``$TWIN_CRD_SCHEMAS``, else the copy
    vendored as package data (``twin/crd/schemas``), so validation works offline anywhere."""
    if override is not None:
        return override
    env = os.environ.get(SCHEMAS_ENV)
    if env:
        return Path(env)
    return Path(str(files("twin.crd") / "schemas"))


def crd_path(schemas: Path | None = None) -> Path:
    """Istio's CRD file in :func:`schemas_dir`."""
    return schemas_dir(schemas) / ISTIO_FILE


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        if out.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def _schemas(path: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema, for every version of every CRD."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: the published CRD schemas are not there (see docs/export.md)")
    out = {}
    for doc in load_yaml_all(read_text(p, "telemetry"), str(p)):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for v in doc["spec"]["versions"]:
            schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props.setdefault("metadata", {"type": "object"})
            out[(f"{group}/{v['name']}", kind)] = _strict(schema)
    return out


def _cel_errors(schema: Any, value: Any, where: str) -> list[str]:
    import celpy
    from celpy.adapter import json_to_cel

    errors: list[str] = []
    if not isinstance(schema, dict):
        return errors
    for rule in schema.get("x-kubernetes-validations", []) or []:
        if "oldSelf" in rule["rule"]:
            continue  # a transition rule: the API server evaluates it on update only
        env = celpy.Environment()
        detail = ""
        try:
            program = env.program(env.compile(rule["rule"]))
            ok = bool(program.evaluate({"self": json_to_cel(value)}))
        except Exception as exc:  # cel-python raises its own error types for bad values
            ok = False
            detail = f" ({exc.__class__.__name__})"
        if not ok:
            errors.append(f"{where}: {rule.get('message', rule['rule'])}{detail}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                errors += _cel_errors(props[k], v, f"{where}.{k}")
    elif isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += _cel_errors(schema["items"], v, f"{where}[{i}]")
    return errors


def validate_resource(doc: dict[str, Any], path: Path | None = None) -> list[str]:
    """Problems of one Istio resource against its published CRD ([] when valid)."""
    import jsonschema

    key = (str(doc.get("apiVersion")), str(doc.get("kind")))
    schemas = _schemas(str(path or crd_path()))
    if key not in schemas:
        return [f"no published CRD for apiVersion {key[0]!r} kind {key[1]!r}"]
    schema = schemas[key]
    v = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]
    return errors + _cel_errors(schema, doc, "<root>")
