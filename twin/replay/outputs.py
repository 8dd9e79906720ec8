"""What a replay writes: ``accuracy.json`` (every figure), ``accuracy.md`` (tables for
people) and ``accuracy.png`` (the twin against the data, fault by fault and block by block).
Everything is rendered in memory first and each file moved into place whole, so a failed
replay leaves no half-written file."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from twin.io import output_dir


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.1%}"


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v * 1e3:.0f}"


def _pp(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def workload_line(wl: dict[str, Any]) -> str:
    """The workload model the replay ran and why."""
    fit, n = wl["fit"], wl["windows"]
    source = {
        "topology": "the topology's own closed loop",
        "fit": "fitted",
        "option": "as --workload asks",
    }[wl["source"]]
    users = "; ".join(
        f"{e}: {v['users']} users, think time {v['think_time']:.2f} s"
        for e, v in wl["entries"].items()
        if "users" in v
    )
    p = "-" if fit["p_value"] is None else f"{fit['p_value']:.2g}"
    return (
        f"Workload: {wl['model']} ({source}{': ' + users if users else ''}). Fit on "
        f"{n['n']} windows ({n['fault_free']} fault-free, {n['fitted_faults']} of fitted "
        f"faults; none of a held-out fault): {fit['model']}, N = "
        f"{'-' if fit['users'] is None else format(fit['users'], '.1f')}, Z = "
        f"{'-' if fit['think_time'] is None else format(fit['think_time'], '.2f')} s, "
        f"p = {p}. {fit['reason']}."
    )


def _skill(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def yardstick_line(held_out: dict[str, Any]) -> str:
    """The held-out medians of the two data-only yardsticks and of the twin's skill between
    them (0 at persistence, 1 at the ceiling)."""
    p, c = held_out["references"]["persistence"], held_out["references"]["ceiling"]
    sk = held_out["skill"]

    return (
        f"Yardsticks over the same faults: nothing changes (the lookback's figures) P50 "
        f"median {_pct(p['p50']['median'])}, P99 {_pct(p['p99']['median'])}; the best "
        f"constant per fault (knowing its windows) P50 {_pct(c['p50']['median'])}, P99 "
        f"{_pct(c['p99']['median'])}; the twin's skill between them (0 persistence, 1 the "
        f"best constant) P50 median {_skill(sk['p50']['median'])}, P99 "
        f"{_skill(sk['p99']['median'])}."
    )


def fault_free_yardstick_line(ff: dict[str, Any]) -> str:
    """The fault-free means of the two quiet-stretch yardsticks and the twin's skill between
    them (0 at the block before, 1 at the capture's best constant)."""
    p, c, sk = ff["references"]["persistence"], ff["references"]["constant"], ff["skill"]

    return (
        f"Yardsticks over the same blocks: the block before P50 mean {_pct(p['p50']['mean'])}, "
        f"P99 {_pct(p['p99']['mean'])}; the best constant for the capture's blocks (knowing "
        f"them) P50 {_pct(c['p50']['mean'])}, P99 {_pct(c['p99']['mean'])}; the twin's skill "
        f"between them (0 the block before, 1 the best constant; - where the two are within a "
        f"point) P50 {_skill(sk['p50'])}, P99 {_skill(sk['p99'])}."
    )


def markdown(res: dict[str, Any]) -> str:
    """The fault table, the fault-free summary and the headline figures."""
    h, ff = res["held_out"], res["fault_free"]
    lines = [
        f"# Replay ({res['format']}, at {res['observed']})",
        "",
        f"Held out: {res['n_held_out']} faults ({h['windows']['n']} windows). "
        f"P50 accuracy median {_pct(h['p50']['median'])}, mean {_pct(h['p50']['mean'])}; "
        f"P99 median {_pct(h['p99']['median'])}, mean {_pct(h['p99']['mean'])}; "
        f"lowest P50 {_pct(h['p50']['min'])}, P99 {_pct(h['p99']['min'])}; "
        f"success within {_pp(h['success_pp']['mean'])} pp on average. "
        f"Misses (no successful request in the twin): {res['misses']}.",
        "",
        yardstick_line(h),
        "",
        f"Fault-free: {ff['n_blocks']} blocks. P50 accuracy mean {_pct(ff['p50']['mean'])} "
        f"(median {_pct(ff['p50']['median'])}); P99 mean {_pct(ff['p99']['mean'])} "
        f"(median {_pct(ff['p99']['median'])}); success within "
        f"{_pp(ff['success_pp']['mean'])} pp on average.",
        "",
        fault_free_yardstick_line(ff),
        "",
    ]
    lines += [workload_line(res["workload"]), ""]
    if res["fitted"]:
        lines += [
            "Fitted: "
            + "; ".join(f"{k} {v['magnitude']:g} (on {v['on']})" for k, v in res["fitted"].items()),
            "",
        ]
    lines += [
        "| fault | role | twin fault | magnitude | P50 ms real / twin | P50 acc "
        "| P99 ms real / twin | P99 acc | success % real / twin |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["faults"]:
        if "twin" not in r:
            lines.append(
                f"| {r['fault']} | {r['role']} | {r.get('twin_fault', '-')} | - | - | - | - | - "
                f"| {r.get('reason', '')} |"
            )
            continue
        m, t, a = r["measured"], r["twin"], r["accuracy"]
        succ = ", ".join("-" if w["success"] is None else f"{100 * w['success']:.1f}" for w in m)
        tsucc = "-" if t["success"] is None else f"{100 * t['success']:.1f}"
        lines.append(
            f"| {r['fault']} | {r['role']}{' (miss)' if r['miss'] else ''} | {r['twin_fault']} "
            f"| {r['magnitude']:g} | {', '.join(_ms(w['p50']) for w in m)} / {_ms(t['p50'])} "
            f"| {_pct(a['p50'])} | {', '.join(_ms(w['p99']) for w in m)} / {_ms(t['p99'])} "
            f"| {_pct(a['p99'])} | {succ} / {tsucc} |"
        )
    if res["unmapped"]:
        lines += [
            "",
            "Unmapped: " + "; ".join(f"{u['fault']} ({u['reason']})" for u in res["unmapped"]),
        ]
    for seg, s in ff["segments"].items():
        sv = {k: s["services"].get(k, {}) for k in ("mean", "p50", "p99", "success_pp")}
        lines += [
            "",
            f"Fault-free capture {seg or '(one)'}, per service ({sv['mean'].get('n', 0)}): "
            f"mean-latency accuracy average {_pct(sv['mean'].get('mean'))} (median "
            f"{_pct(sv['mean'].get('median'))}); p50 {_pct(sv['p50'].get('mean'))} (median "
            f"{_pct(sv['p50'].get('median'))}); p99 {_pct(sv['p99'].get('mean'))} (median "
            f"{_pct(sv['p99'].get('median'))}); success within "
            f"{_pp(sv['success_pp'].get('mean'))} pp on average.",
        ]
    return "\n".join(lines) + "\n"


def plot(res: dict[str, Any]) -> bytes:
    """Twin against data (log-log), P50 and P99, for held-out faults and fault-free blocks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, k in zip(axes, ("p50", "p99"), strict=True):
        pts = []
        for r in res["faults"]:
            if r["role"] in ("held out", "fit") and r["twin"][k] is not None:
                for w in r["measured"]:
                    if w[k]:
                        pts.append((w[k], r["twin"][k], r["role"]))
        for b in res["blocks"]:
            if b["measured"][k] and b["twin"][k] is not None:
                pts.append((b["measured"][k], b["twin"][k], "fault-free"))
        for role, mark in (("held out", "o"), ("fit", "x"), ("fault-free", ".")):
            xs = [p[0] for p in pts if p[2] == role]
            ys = [p[1] for p in pts if p[2] == role]
            if xs:
                ax.scatter(xs, ys, marker=mark, label=role, alpha=0.7)
        if pts:
            lo = min(min(p[0], p[1]) for p in pts) * 0.8
            hi = max(max(p[0], p[1]) for p in pts) * 1.25
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        ax.set_xlabel(f"observed {k.upper()} (s)")
        ax.set_ylabel(f"twin {k.upper()} (s)")
        ax.set_title(f"{k.upper()}: twin against data")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def write_outputs(res: dict[str, Any], out: Path) -> list[Path]:
    """``accuracy.json``, ``accuracy.md``, ``accuracy.png`` in ``out``; each whole or not at
    all."""
    folder = output_dir(out)
    payloads = {
        "accuracy.json": json.dumps(res, indent=2, allow_nan=False).encode(),
        "accuracy.md": markdown(res).encode(),
        "accuracy.png": plot(res),
    }
    written = []
    for name, data in payloads.items():
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)
        written.append(folder / name)
    return written
