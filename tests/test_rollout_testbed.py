"""Real rollouts on the testbed, guarded: a bad canary (its own work 50x slower) is rolled
back by the guard's own command and the rollback signature's checks confirm the recovery; a
harmless one is left alone. Real servers on free loopback ports; bounded (about 90 s); the
full five-and-five measurement is ``python -m testbed.canary --runs 5``."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.canary import Profile, one_run
from testbed.run import missing_tools

pytestmark = pytest.mark.skipif(
    bool(missing_tools()), reason=f"apt-get install -y {' '.join(missing_tools())}"
)


def test_a_bad_canary_is_rolled_back_and_verified_and_a_good_one_is_kept(tmp_path: Path) -> None:
    common = {"rate": 8.0, "warmup": 10.0, "weight": 0.2, "threshold": 0.5}
    bad = one_run(
        Profile("latency-50x", True, work_mean=0.5, extra={"work_cv": 0.8}),
        tmp_path / "bad",
        canary_seconds=35.0,
        tail=15.0,  # the load outlasts the verification (30 s after the rollback)
        act=True,
        seed=1,
        **common,
    )
    assert bad["rolled_back"], bad
    assert bad["seconds_to_rollback"] is not None and bad["seconds_to_rollback"] < 35
    assert bad["verified"], bad["checks"]
    good = one_run(
        Profile("same-version", False),
        tmp_path / "good",
        canary_seconds=12.0,
        tail=1.0,
        act=True,
        seed=2,
        **common,
    )
    assert not good["rolled_back"], good
    assert not good["slo"]["breached"]
