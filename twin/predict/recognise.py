"""The correlation engine: name the failure mode and rank the root-cause services.

Two gradient-boosted models (scikit-learn ``HistGradientBoostingClassifier``, probabilities
calibrated by ``CalibratedClassifierCV``), trained on the twin's simulated failures only
(:mod:`twin.predict.fingerprints`) and applied to production's windows:

- the *root-cause* model scores each candidate service on its own: "is this the service the
  fault is in?". Its features are service-agnostic: the candidate's own standardised changes,
  those of the calls into it (caller's and callee's side), of its callers and callees, how it
  stands against the strongest change anywhere, and the entry's SLIs. A model trained on
  faults at some services therefore ranks any service, in any topology. Candidates are
  ranked by the calibrated score; the probabilities reported are the scores normalised over
  the candidates (the chance that it is this one, given that it is one of them);
- the *kind* model reads the whole picture (per feature, the largest value over the services,
  the entry's SLIs and the features of the baseline's first candidate) and names the kind,
  ``"none"`` included when fault-free runs were in the training set.

Standardised changes are compressed (sign(z) log(1 + |z|)) before features are formed:
production's changes are often far larger than the twin's (a CPU-throttled pod's latency
jumps a thousand spreads), and a difference of compressed values compares shapes, not sizes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from twin.errors import InputError
from twin.predict.fingerprints import Case, FingerprintSpec, cache_file, fingerprints, read_cases
from twin.predict.localise import Changes, rank_services, service_evidence
from twin.predict.windows import Telemetry, uninformative
from twin.safeload import loads_json, read_text
from twin.topology import Topology

OWN = (
    "cpu",
    "latency_p95",
    "latency_p99",
    "rate",
    "success",
    "in_client_p50",
    "in_server_p50",
)
CANDIDATE_FEATURES: tuple[str, ...] = (
    *OWN,
    "in_gap",
    "out_server_p50",
    "out_client_p50",
    "callers_latency_p95",
    "callers_cpu",
    "callees_latency_p95",
    "callees_cpu",
    "callees_in_server_p50",
    "own_vs_callees_latency",
    "in_vs_out_server",
    "strength",
    "share",
    "rank",
    "is_entry",
    "callers",
    "callees",
    "entry_success",
    "entry_latency_p50",
    "entry_latency_p99",
)


def squash(z: float) -> float:
    """sign(z) log(1 + |z|): sizes compressed, order kept, NaN kept."""
    return math.copysign(math.log1p(abs(z)), z) if math.isfinite(z) else math.nan


def _max(xs: Sequence[float]) -> float:
    f = [x for x in xs if math.isfinite(x)]
    return max(f) if f else math.nan


def _sub(a: float, b: float) -> float:
    return a - b if math.isfinite(a) and math.isfinite(b) else math.nan


def candidate_matrix(ch: Changes) -> tuple[list[str], np.ndarray]:
    """The candidates (every service the changes know, sorted) and their feature rows
    (:data:`CANDIDATE_FEATURES`)."""
    ev = service_evidence(ch)
    names = sorted(ev)
    sq = {s: {m: squash(z) for m, z in ev[s].items()} for s in names}
    callers: dict[str, list[str]] = {s: [] for s in names}
    callees: dict[str, list[str]] = {s: [] for s in names}
    for a, b in ch.calls:
        if a in callees and b in callers:
            callees[a].append(b)
            callers[b].append(a)
    gap: dict[str, float] = {}
    out_server: dict[str, float] = {}
    out_client: dict[str, float] = {}
    for key, m in ch.edges.items():
        a, b = key.split("->", 1)
        cz, sz = squash(m.get("client_p50", math.nan)), squash(m.get("server_p50", math.nan))
        if b in sq:
            gap[b] = _max([gap.get(b, math.nan), _sub(cz, sz)])
        if a in sq:
            out_server[a] = _max([out_server.get(a, math.nan), sz])
            out_client[a] = _max([out_client.get(a, math.nan), cz])
    strength = {s: _max([abs(v) for v in sq[s].values()]) for s in names}
    top = _max(list(strength.values()))
    order = sorted(names, key=lambda s: -strength[s] if math.isfinite(strength[s]) else 0.0)
    entry = {
        m: squash(ch.entry.get(m, math.nan)) for m in ("success", "latency_p50", "latency_p99")
    }
    rows = []
    for s in names:
        own = sq[s]
        g = own.get
        row = [g(m, math.nan) for m in OWN]
        row += [
            gap.get(s, math.nan),
            out_server.get(s, math.nan),
            out_client.get(s, math.nan),
            _max([sq[c].get("latency_p95", math.nan) for c in callers[s]]),
            _max([sq[c].get("cpu", math.nan) for c in callers[s]]),
            _max([sq[c].get("latency_p95", math.nan) for c in callees[s]]),
            _max([sq[c].get("cpu", math.nan) for c in callees[s]]),
            _max([sq[c].get("in_server_p50", math.nan) for c in callees[s]]),
            _sub(
                g("latency_p95", math.nan),
                _max([sq[c].get("latency_p95", math.nan) for c in callees[s]]),
            ),
            _sub(g("in_server_p50", math.nan), out_server.get(s, math.nan)),
            strength[s],
            strength[s] / top
            if math.isfinite(strength[s]) and top and math.isfinite(top)
            else math.nan,
            order.index(s) / max(len(names) - 1, 1),
            float(not callers[s]),
            float(len(callers[s])),
            float(len(callees[s])),
            entry["success"],
            entry["latency_p50"],
            entry["latency_p99"],
        ]
        rows.append(row)
    return names, np.array(rows, dtype=float).reshape(len(names), len(CANDIDATE_FEATURES))


def kind_vector(ch: Changes) -> np.ndarray:
    """The kind model's features: per candidate feature its largest value over services, then
    the baseline's first candidate's row."""
    names, x = candidate_matrix(ch)
    with np.errstate(all="ignore"):
        finite = np.isfinite(x)
        hi = np.where(finite.any(axis=0), np.nanmax(np.where(finite, x, -np.inf), axis=0), np.nan)
    first = rank_services(ch)[0].service if names else ""
    row = x[names.index(first)] if first in names else np.full(x.shape[1], np.nan)
    return np.concatenate([hi, row])


class Candidate(BaseModel):
    """A root-cause candidate: a service, as the telemetry names it, and its probability."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str
    probability: float = Field(ge=0.0, le=1.0, description="share of the candidates' scores")


class Recognition(BaseModel):
    """What the engine recognised in one suspected fault."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(description="the most likely fault kind (``none``: no fault)")
    kind_probability: float = Field(ge=0.0, le=1.0)
    kinds: dict[str, float] = Field(description="every kind's calibrated probability")
    root_cause: list[Candidate] = Field(description="candidates, most likely first")


@dataclass
class Recogniser:
    """The two fitted models, the feature columns each uses (a column no training case ever
    filled is left out: nothing can be learnt from it) and the kinds they know."""

    kind_model: CalibratedClassifierCV
    root_model: CalibratedClassifierCV
    kind_columns: np.ndarray
    root_columns: np.ndarray
    kinds: tuple[str, ...]

    def recognise(self, ch: Changes) -> Recognition:
        """Kind and ranked root-cause candidates of one suspected fault."""
        return self.recognise_many([ch])[0]

    def recognise_many(self, many: Sequence[Changes]) -> list[Recognition]:
        """:meth:`recognise` for many suspected faults at once (one model call per model).

        Prediction runs on one thread: a watch asks about one fault a window, a few dozen
        rows, and OpenMP's threads cost more to wake than the trees cost to walk (on a busy
        2-core machine 25 times the CPU)."""
        if not many:
            return []
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._recognise_many(many)

    def _recognise_many(self, many: Sequence[Changes]) -> list[Recognition]:
        kv = np.stack([kind_vector(ch) for ch in many])[:, self.kind_columns]
        pk = self.kind_model.predict_proba(_filled(kv))
        labels = [str(c) for c in self.kind_model.classes_]
        mats = [candidate_matrix(ch) for ch in many]
        sizes = [len(n) for n, _ in mats]
        p_all = np.zeros(0)
        if sum(sizes):
            x = np.vstack([m for _, m in mats])[:, self.root_columns]
            pos = list(self.root_model.classes_).index(1)
            p_all = self.root_model.predict_proba(_filled(x))[:, pos]
        out: list[Recognition] = []
        at = 0
        for i, (names, _) in enumerate(mats):
            p = p_all[at : at + sizes[i]]
            at += sizes[i]
            total = float(p.sum())
            share = p / total if total > 0 else np.full(len(p), 1.0 / max(len(p), 1))
            order = sorted(range(len(names)), key=lambda j: (-p[j], names[j]))
            best = int(np.argmax(pk[i]))
            out.append(
                Recognition(
                    kind=labels[best],
                    kind_probability=float(pk[i][best]),
                    kinds={k: float(v) for k, v in zip(labels, pk[i], strict=True)},
                    root_cause=[
                        Candidate(service=names[j], probability=float(share[j])) for j in order
                    ],
                )
            )
        return out


MISSING = -50.0
"""What a missing feature becomes before the models see it: below every squashed change
(|sign(z) log(1 + z)| <= 9.3 at the cap), so a tree can still split on "measured or not".
(``HistGradientBoostingClassifier`` takes NaN itself, but not a column that one
calibration fold happens to have empty.)"""


def _filled(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, MISSING)


def _model(seed: int, rows: int) -> HistGradientBoostingClassifier:
    """Boosted trees sized to the training set: a leaf needs about a twentieth of the rows
    (at least 3, at most scikit-learn's default 20), so a few dozen cases still split."""
    return HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.08,
        max_leaf_nodes=15,
        min_samples_leaf=max(3, min(20, rows // 20)),
        l2_regularization=1.0,
        random_state=seed,
    )


def fit(cases: Sequence[Case], seed: int = 0) -> Recogniser:
    """Both models from simulated cases (at least two kinds, and faults at two or more
    services). Probabilities are calibrated by Platt scaling over 3 folds (isotonic
    regression needs more cases than a training set made in minutes holds)."""
    if not cases:
        raise ValueError("no simulated cases to learn from")
    kx = np.stack([kind_vector(c.changes) for c in cases])
    ky = np.array([c.kind for c in cases])
    rows: list[np.ndarray] = []
    labels: list[int] = []
    for c in cases:
        if c.kind == "none":
            continue
        names, x = candidate_matrix(c.changes)
        rows.append(x)
        labels += [int(n == c.target) for n in names]
    if len(set(ky)) < 2 or not rows or len(set(labels)) < 2:
        raise ValueError("the cases need two or more kinds and faults at known services")
    cv = min(3, *np.unique(ky, return_counts=True)[1])
    kind_model = CalibratedClassifierCV(_model(seed, len(ky)), method="sigmoid", cv=max(2, int(cv)))
    kcols = np.isfinite(kx).any(axis=0)
    kind_model.fit(_filled(kx[:, kcols]), ky)
    rx = np.vstack(rows)
    ry = np.array(labels)
    rcols = np.isfinite(rx).any(axis=0)
    root_model = CalibratedClassifierCV(_model(seed, len(ry)), method="sigmoid", cv=3)
    root_model.fit(_filled(rx[:, rcols]), ry)
    return Recogniser(kind_model, root_model, kcols, rcols, tuple(sorted(set(ky.tolist()))))


# -- a fitted recogniser kept on disk ----------------------------------------------------------

MANIFEST = "recogniser.json"
"""The file in a recogniser's folder that names its training set and how it was made."""


@dataclass(frozen=True)
class Trained:
    """A fitted :class:`Recogniser` with what it needs to be applied as it was trained: the
    (scope, metric) pairs left out on both sides (:func:`twin.predict.windows.uninformative`)
    and the spec (window, baseline and fault lengths)."""

    model: Recogniser
    drop: frozenset[tuple[str, str]]
    spec: FingerprintSpec
    cases: int
    folder: Path


def _write_manifest(
    folder: Path, name: str, spec: FingerprintSpec, seed: int, drop: set[tuple[str, str]], n: int
) -> None:
    doc = {
        "version": 1,
        "fingerprints": name,
        "seed": seed,
        "spec": spec.model_dump(mode="json"),
        "drop": sorted([list(d) for d in drop]),
        "cases": n,
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(folder / MANIFEST)


def train(
    topology: Topology,
    live: Telemetry,
    quiet: np.ndarray,
    spec: FingerprintSpec,
    seed: int,
    folder: Path,
    progress: Callable[[int, int], None] | None = None,
) -> Trained:
    """Simulate the training set for ``topology`` read like ``live`` (cached in ``folder``
    under its content hash: the same inputs train once), fit both models and write the
    folder's :data:`MANIFEST`, so :func:`load` can rebuild the recogniser without data."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = fingerprints(topology, live, quiet, spec, seed, folder, progress)
    drop = uninformative(live)
    model = fit(cases, seed)
    _write_manifest(
        folder, cache_file(topology, live, quiet, spec, seed), spec, seed, drop, len(cases)
    )
    return Trained(model, frozenset(drop), spec, len(cases), folder)


def load(folder: Path) -> Trained | None:
    """The recogniser a :func:`train` left in ``folder`` (refitted from its cached training
    set, deterministic by its seed), or None when the folder holds none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = loads_json(read_text(path), str(path))
        spec = FingerprintSpec.model_validate(doc["spec"])
        seed = int(doc["seed"])
        drop = frozenset((str(a), str(b)) for a, b in doc["drop"])
        cases_path = folder / str(doc["fingerprints"])
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"not a recogniser manifest ({e})", source=str(path)) from e
    if cases_path.name != Path(str(doc["fingerprints"])).name or not cases_path.is_file():
        raise InputError("the training set it names is missing", source=str(path))
    cases = read_cases(cases_path)
    return Trained(fit(cases, seed), drop, spec, len(cases), folder)
