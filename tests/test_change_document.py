"""The change document: RFC 7386 merge patches, their inverses, the higher-level kinds, and
located errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.change.document import (
    ChangeFile,
    inverse_patch,
    merge_patch,
    reduce_changes,
)
from twin.errors import InputError
from twin.policy import Policy
from twin.topology import Topology

BOUTIQUE = ROOT / "topologies" / "online-boutique.yaml"
BOUTIQUE_POLICY = ROOT / "topologies" / "online-boutique.policy.yaml"

# RFC 7386, Appendix A: (original, patch, result), verbatim.
RFC7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC7386_EXAMPLES)
def test_merge_patch_gives_rfc7386_appendix_a_results(original: Any, patch: Any, result: Any):
    before = repr(original)
    assert merge_patch(original, patch) == result
    assert repr(original) == before  # the target is not modified


_scalars = st.one_of(st.integers(-5, 5), st.text("ab", max_size=2), st.booleans())
_keys = st.sampled_from(["a", "b", "c", "d"])
_leaf = _scalars | st.lists(_scalars, max_size=2)
# documents two mappings deep (no nulls: a merge patch cannot write one); patches may delete
_docs = _leaf | st.dictionaries(
    _keys, _leaf | st.dictionaries(_keys, _leaf, max_size=3), max_size=3
)
_patch_leaf = st.none() | _leaf
_patch_values = _patch_leaf | st.dictionaries(
    _keys, _patch_leaf | st.dictionaries(_keys, _patch_leaf, max_size=3), max_size=3
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(_keys, _docs, max_size=4), st.dictionaries(_keys, _patch_values, max_size=4))
def test_inverse_patch_takes_the_patched_document_back(before: dict, patch: dict):
    after = merge_patch(before, patch)
    assert merge_patch(after, inverse_patch(before, patch)) == before


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "change.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _load_and_reduce(path: Path) -> None:
    topo = Topology.load(BOUTIQUE)
    ChangeFile.load(path).reduce(topo, Policy.load_file(BOUTIQUE_POLICY))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\nchanges:\n  - {id: a, target: policy, patch: {}}\n"
            "  - {id: a, target: policy, patch: {}}\n",
            ":4: changes[1].id: duplicate change id 'a'",
        ),
        (
            "name: x\nchanges:\n  - id: a\n    target: policy\n    patch: {}\n"
            "    depends_on: [nope]\n",
            ":6: changes[0].depends_on[0]: no change 'nope' in the set",
        ),
        (
            "name: x\nchanges:\n  - {id: a, target: policy, patch: {}, depends_on: [b]}\n"
            "  - {id: b, target: policy, patch: {}, depends_on: [a]}\n",
            "changes: circular depends_on among a, b",
        ),
        (
            "name: x\nchanges:\n  - id: a\n    target: topology\n"
            "    patch: {services: {frontend: {replicas: 0}}}\n",
            ":5: changes[0].patch: change 'a' makes the topology invalid: "
            "services.frontend.replicas",
        ),
        (
            "name: x\nchanges:\n  - id: a\n    target: policy\n"
            "    patch: {clients: {'frontend->nowhere': {timeout: 1}}}\n",
            ":5: changes[0].patch: change 'a' makes the policy invalid: "
            "clients.frontend->nowhere: no call",
        ),
        (
            "name: x\nchanges:\n  - id: v\n    kind: version\n    service: nope\n",
            ":5: changes[0].service: unknown service 'nope'",
        ),
        (
            "name: x\nchanges:\n  - {id: v, kind: rollout, service: a}\n",
            "changes[0]: unknown change kind; expected patch, version or dependency",
        ),
    ],
)
def test_a_bad_change_document_is_one_located_line(tmp_path: Path, text: str, expected: str):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as exc:
        _load_and_reduce(path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert expected in message


def test_a_version_scales_service_times_and_reverts_exactly(tmp_path: Path):
    path = _write(
        tmp_path,
        "name: v\nchanges:\n  - {id: v, kind: version, service: frontend, latency_factor: 3,"
        " error_rate: 0.02}\n",
    )
    topo = Topology.load(BOUTIQUE)
    reduced = ChangeFile.load(path).reduce(topo)
    before = topo.services["frontend"].operations["default"].service_time.expected()
    after = reduced.topology.services["frontend"].operations["default"].service_time.expected()
    assert after == pytest.approx(3 * before)
    # the error part runs as a whole-run fault: the topology has no per-service error rate
    assert reduced.faults == [{"kind": "error_rate", "target": "frontend", "probability": 0.02}]
    ((target, inverse),) = reduced.steps[0].inverses
    assert target == "topology"
    data = reduced.topology.model_dump(mode="json", exclude_unset=True)
    assert Topology.model_validate(merge_patch(data, inverse)) == topo


def test_a_dependency_appends_one_call_and_its_inverse_removes_it(tmp_path: Path):
    path = _write(
        tmp_path,
        "name: d\nchanges:\n  - {id: d, kind: dependency, caller: emailservice, to: "
        "paymentservice, probability: 0.5}\n",
    )
    topo = Topology.load(BOUTIQUE)
    reduced = ChangeFile.load(path).reduce(topo)
    calls = reduced.topology.services["emailservice"].operations["default"].calls
    assert [(c.to, c.probability) for c in calls] == [("paymentservice", 0.5)]
    assert ("emailservice", "paymentservice") in reduced.topology.service_graph().edges


def test_changes_apply_in_dependency_order_and_revert_in_reverse(tmp_path: Path):
    path = _write(
        tmp_path,
        "name: o\nchanges:\n"
        "  - {id: late, target: topology, patch: {services: {frontend: {replicas: 3}}},"
        " depends_on: [early]}\n"
        "  - {id: early, target: topology, patch: {services: {frontend: {replicas: 2}}}}\n",
    )
    topo = Topology.load(BOUTIQUE)
    changes = ChangeFile.load(path).changes
    reduced = reduce_changes(changes, topo)
    assert [s.change.id for s in reduced.steps] == ["early", "late"]
    assert reduced.topology.services["frontend"].replicas == 3
    assert reduced.steps[1].topology_before.services["frontend"].replicas == 2
