"""A class of 30 on one server: every session presses Start together, keeps looking at the pages, presses again.

    python benchmarks/classroom_load.py [--sessions 30] [--preset best]

Each session is a Streamlit AppTest of the real app (own session state, one shared job manager and registry, as
browser tabs on one server). Quick mode (5,000 training images, 1 epoch), the page's default network unless
--preset. Prints one JSON line: runs accepted and refused (with the messages), final statuses, registry rows against
accepted runs, PRAGMA integrity_check, and the server-side render time of Home/Train/Runs while the queue drains
(median, p95; target p95 < 0.5 s).
"""

import argparse
import collections
import os
import tempfile

from _common import emit, machine

import streamlit as st

from tests.classroom import simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--preset", default="best")
    args = ap.parse_args()
    os.environ["MNISTLAB_RUNS"] = tempfile.mkdtemp(prefix="mnistlab-class-")
    st.cache_resource.clear()
    from mnistlab.ui import resources

    emit({"machine": machine()})
    r = simulate(args.sessions, preset=args.preset, epochs=1)
    accepted = [i for ids in r.accepted.values() for i in ids]
    emit({"measure": "classroom load", "sessions": args.sessions, "preset": args.preset,
          "runs_accepted": len(accepted), "presses_refused": sum(len(m) for m in r.refused.values()),
          "refusal_messages": sorted(set(m for ms in r.refused.values() for m in ms)),
          "final_statuses": dict(collections.Counter(r.statuses.values())),
          "registry_rows": r.registry_rows, "registry_matches_accepted": r.registry_ids == set(accepted),
          "integrity_check": r.integrity, "exceptions": r.exceptions,
          "renders": len(r.render_seconds), "render_median_s": round(r.render_median, 3),
          "render_p95_s": round(r.render_p95, 3), "wall_s": round(r.wall_seconds, 1)})
    resources.job_manager().close()


if __name__ == "__main__":
    main()
