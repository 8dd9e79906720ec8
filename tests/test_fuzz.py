"""Property-based fuzzing of every document model, loader and parser (hypothesis).

For each surface of ``hostile_corpus.SURFACES`` (topology, scenario and policy through the
cross-checks ``twin check`` makes; campaign specs; the enforcer's override, metrics snapshot,
queries and policy file; chaos results and journals; OTLP, Zipkin and Jaeger traces;
Prometheus dumps; the risk history; the masking and metric-name mappings; the safe YAML and
JSON readers), hypothesis builds inputs three ways: structure-aware mutations of a valid
document (a value replaced by a hostile number, a wrong type or a name that collides with the
policy's syntax; a key dropped, duplicated or renamed; a value nested past the limit), text
mutations of its YAML/JSON (a line written twice, so a key is duplicated; the text cut; an
alias bomb or deep nesting put in front) and random bytes.

The property, for every input: the call returns, or raises :class:`twin.errors.TwinError`
whose message is one line (the enforcer's metrics reader may also say the reading is
unavailable, which makes the enforcer hold). Any other exception is a failure.

The budget is small (``FUZZ_EXAMPLES`` per surface, a deadline per example) so the suite
stays fast; ``python -m benchmarks.fuzz`` runs the same mutations for much longer.
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hostile_corpus import (
    HOSTILE_VALUES,
    OPS,
    SURFACES,
    TEXT_OPS,
    Mutation,
    Surface,
    TextMutation,
    Trial,
    apply,
    paths,
    render,
    run_trial,
    topology,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = int(os.environ.get("TWIN_FUZZ_EXAMPLES", "25"))
"""Examples per surface and strategy in the suite (raise it locally to fuzz longer)."""

values = st.one_of(
    st.sampled_from(HOSTILE_VALUES),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=12),
    st.booleans(),
)
mutations = st.builds(Mutation, op=st.sampled_from(OPS), at=st.integers(0, 100_000), value=values)
text_mutations = st.builds(TextMutation, op=st.sampled_from(TEXT_OPS), at=st.integers(0, 1_000_000))
structured = st.builds(
    Trial,
    mutations=st.lists(mutations, min_size=1, max_size=3).map(tuple),
    text_mutations=st.lists(text_mutations, max_size=1).map(tuple),
)
raw = st.builds(Trial, raw=st.binary(max_size=2048))

FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=timedelta(seconds=10),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Call every surface once on its base document, so the libraries a surface imports on
    first use are loaded before any example is timed against the deadline."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, surface in SURFACES.items():
            folder = Path(tmp) / name
            folder.mkdir()
            run_trial(surface, render(surface, Trial()), folder)


def _holds(surface: Surface, trial: Trial) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_trial(surface, render(surface, trial), Path(tmp))
    assert outcome.status != "failure", f"{surface.name}: {outcome.detail}; trial {trial!r}"[:2000]


@pytest.mark.parametrize("name", sorted(SURFACES))
def test_the_unmutated_base_document_is_accepted(name: str, tmp_path: Path) -> None:
    """The mutations start from a valid document, so a refusal is the mutation's doing."""
    surface = SURFACES[name]
    outcome = run_trial(surface, render(surface, Trial()), tmp_path)
    assert outcome.status == "ok", f"{name}: {outcome.detail}"


@pytest.mark.parametrize("name", sorted(SURFACES))
@FUZZ
@given(trial=structured)
def test_mutated_documents_are_read_or_refused_in_one_line(name: str, trial: Trial) -> None:
    _holds(SURFACES[name], trial)


@pytest.mark.parametrize("name", sorted(SURFACES))
@FUZZ
@given(trial=raw)
def test_random_bytes_are_read_or_refused_in_one_line(name: str, trial: Trial) -> None:
    _holds(SURFACES[name], trial)


# -- the mutations themselves -------------------------------------------------------------------


def test_every_path_of_a_document_can_be_reached_by_a_mutation() -> None:
    doc = topology()
    found = paths(doc)
    assert found[0] == () and ("workload", 0, "rate") in found
    assert len(found) == len(set(found))
    i = found.index(("workload", 0, "rate"))
    mutated: Any = apply(doc, Mutation("replace", i, math.inf))
    assert mutated["workload"][0]["rate"] == math.inf and doc["workload"][0]["rate"] == 5.0


def test_rename_and_duplicate_make_the_hostile_key_and_keep_the_value() -> None:
    doc = topology()
    i = paths(doc).index(("services", "b"))
    renamed: Any = apply(doc, Mutation("rename", i, "a->b"))
    assert "b" not in renamed["services"] and renamed["services"]["a->b"] == doc["services"]["b"]
    dup: Any = apply(doc, Mutation("duplicate", i, "*"))
    assert dup["services"]["*"] == dup["services"]["b"] == doc["services"]["b"]


def test_a_duplicated_line_is_a_duplicate_key_the_safe_loader_refuses(tmp_path: Path) -> None:
    surface = SURFACES["safe-yaml"]
    text = render(surface, Trial()).decode()
    line = text.splitlines().index("name: shop")
    data = render(surface, Trial(text_mutations=(TextMutation("dup-line", line),)))
    assert data.decode().count("name: shop") == 2
    outcome = run_trial(surface, data, tmp_path)
    assert outcome.status == "refused" and "duplicate key" in outcome.detail
