"""What the pages share on screen: the system picker, cached loading, runs off the UI thread."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from explorer import catalog
from explorer.catalog import System
from explorer.whatif import RunOutput, WhatIfResult, compute_whatif, simulate
from twin.bundled import COMPANIONS
from twin.errors import InputError, TwinError
from twin.io import parse_model
from twin.policy import Policy
from twin.scenario import Scenario
from twin.topology import Topology

T = TypeVar("T")

SYSTEM_KEY = "system"
PENDING_KEY = "_system_pending"
UPLOADS_KEY = "_uploads"
PAGE_STATE_PREFIXES = ("wi_", "pb_")
"""Widget keys of the pages that depend on the system; dropped when the system changes."""


# -- systems --------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _load_bundled(path: str, stamp: tuple[int, ...]) -> System | str:
    """A bundled system, or the one-line reason it cannot be read (``stamp`` holds the files'
    modification times, so an edited file is read again)."""
    del stamp
    try:
        return catalog.load_bundled(Path(path))
    except TwinError as exc:
        return str(exc)


def _stamp(path: Path) -> tuple[int, ...]:
    out = []
    for p in (path, *(catalog.companion(path, s) for s in COMPANIONS)):
        try:
            out.append(p.stat().st_mtime_ns)
        except OSError:
            out.append(0)
    return tuple(out)


def systems() -> dict[str, System | str]:
    """Label -> system (or the reason it cannot be read): bundled first, then uploads."""
    out: dict[str, System | str] = {}
    for path in catalog.discover():
        out[path.name.removesuffix(".yaml")] = _load_bundled(str(path), _stamp(path))
    uploads: dict[str, System] = st.session_state.get(UPLOADS_KEY, {})
    out.update(uploads)
    return out


def add_upload(system: System) -> str:
    """Remember an uploaded system for this session and select it; returns its label."""
    uploads: dict[str, System] = dict(st.session_state.get(UPLOADS_KEY, {}))
    label = f"{system.name} (uploaded)"
    uploads[label] = system
    st.session_state[UPLOADS_KEY] = uploads
    st.session_state[PENDING_KEY] = label
    return label


def _forget_page_state() -> None:
    for key in list(st.session_state.keys()):
        if str(key).startswith(PAGE_STATE_PREFIXES):
            del st.session_state[key]


def sidebar() -> None:
    """The system picker, on every page."""
    options = list(systems())
    pending = st.session_state.pop(PENDING_KEY, None)
    if pending in options:
        st.session_state[SYSTEM_KEY] = pending
        _forget_page_state()
    if st.session_state.get(SYSTEM_KEY) not in options:
        st.session_state.pop(SYSTEM_KEY, None)
    preferred = "online-boutique"  # the smallest real system: a good first look
    index = options.index(preferred) if preferred in options else 0
    if SYSTEM_KEY in st.session_state:
        index = 0  # the remembered choice wins (and Streamlit wants no default beside it)
    with st.sidebar:
        if not options:
            st.warning(
                f"No topologies found in `{catalog.topology_dir()}`. "
                "Upload one on the Topology page."
            )
            return
        st.selectbox(
            "System",
            options,
            index=index,
            key=SYSTEM_KEY,
            help="Bundled topologies (topologies/*.yaml) and the ones you uploaded.",
            on_change=_forget_page_state,
        )
        st.caption(
            "Shadow Twin: a simulated shadow of your microservices. "
            "Same inputs and seed, same results."
        )


def current_system() -> System | None:
    """The picked system, or None (after showing why) when there is none or it is broken."""
    label = st.session_state.get(SYSTEM_KEY)
    found = systems().get(label) if label else None
    if found is None:
        st.info("No system selected: pick one in the sidebar, or upload a topology YAML.")
        return None
    if isinstance(found, str):
        st.error(found)
        st.caption("This bundled topology cannot be read right now; pick another in the sidebar.")
        return None
    for note in found.notes:
        st.warning(f"Companion file left out: {note}")
    return found


def system_label() -> str:
    return str(st.session_state.get(SYSTEM_KEY, ""))


# -- uploads --------------------------------------------------------------------------------


def uploaded_text(upload: Any) -> tuple[str, str]:
    """(file name, text) of a Streamlit upload; binary files are an InputError."""
    name = str(upload.name)
    try:
        return name, bytes(upload.getvalue()).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not a UTF-8 text file", source=name) from None


def content_hash(*parts: tuple[str, str] | None) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(b"\0" if p is None else (p[0] + "\0" + p[1]).encode())
    return h.hexdigest()


# -- running off the UI thread ---------------------------------------------------------------


@st.cache_resource
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="twin-sim")


@st.cache_data(show_spinner=False, max_entries=64)
def cached_whatif(
    topology_json: str,
    scenario_json: str,
    policy_json: str,
    _progress: Callable[[float, str], None] | None = None,
) -> WhatIfResult:
    """:func:`explorer.whatif.compute_whatif`, cached on the documents' JSON."""
    return compute_whatif(topology_json, scenario_json, policy_json, _progress)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_run(
    topology_json: str,
    scenario_json: str,
    policy_json: str | None,
    _progress: Callable[[float, str], None] | None = None,
) -> RunOutput:
    """One run of a scenario document (with a policy or none), cached on the JSON."""
    topology = Topology.from_dict(json.loads(topology_json))
    scenario = parse_model(Scenario, json.loads(scenario_json), source="scenario")
    policy = None if policy_json is None else Policy.from_dict(json.loads(policy_json))
    report = None if _progress is None else (lambda f: _progress(f, "simulating"))
    return simulate(topology, scenario, policy, report)


def in_background(
    fn: Callable[..., T], *args: Any, label: str = "Simulating", poll: float = 0.1
) -> T:
    """Run ``fn(*args, progress)`` on a worker thread; the page shows a progress bar until it
    is done, then the result (or the worker's exception) comes back here."""
    lock = threading.Lock()
    state: list[tuple[float, str]] = [(0.0, "starting")]

    def progress(fraction: float, what: str) -> None:
        with lock:
            state[0] = (float(fraction), what)

    future: Future[T] = _executor().submit(fn, *args, progress)
    bar = st.empty()
    started = time.perf_counter()
    try:
        while True:
            try:
                return future.result(timeout=poll)
            except TimeoutError:
                pass
            with lock:
                fraction, what = state[0]
            fraction = min(1.0, max(0.0, fraction))
            bar.progress(
                fraction,
                text=f"{label}: {what}, {fraction:.0%} ({time.perf_counter() - started:.1f} s)",
            )
    finally:
        bar.empty()


def attempt(fn: Callable[..., T], *args: Any, label: str = "Simulating") -> T | None:
    """:func:`in_background`, with failures shown on the page instead of raised: a
    :class:`TwinError` as its one line; anything else (a bug) as one line too, with the
    traceback folded away for a bug report."""
    try:
        return in_background(fn, *args, label=label)
    except TwinError as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:
        st.error(
            f"The twin failed unexpectedly ({type(exc).__name__}: {exc}). This is a bug: "
            "please report it with the documents you used.",
            icon=":material/bug_report:",
        )
        with st.expander("Details for the bug report"):
            st.exception(exc)
    return None


def report_download(folder: Path, label: str, file_name: str, key: str) -> None:
    """A download button for the ``report.html`` a command wrote into ``folder``, if any."""
    report = folder / "report.html"
    if report.is_file():
        st.download_button(
            label, report.read_bytes(), file_name=file_name, mime="text/html", key=key
        )
