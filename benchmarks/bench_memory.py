"""Server memory under huge uploads: N sessions (Streamlit AppTest, the app's own script runtime,
each in this process) upload a different 7000 × 7000 PNG on Model & layers; RSS of the process
when idle, at the peak and afterwards, for memory budgets and with/without heap trimming.

    python benchmarks/bench_memory.py [--sessions 20]

Each row runs in a fresh process (tests/probes/upload_memory.py), so rows do not share memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).resolve().parents[1] / "tests" / "probes" / "upload_memory.py"


def run(sessions: int, budget_mb: int, trim: bool) -> dict:
    env = {**os.environ, "FEATURELENS_MEMORY_MB": str(budget_mb)}
    args = [sys.executable, str(PROBE), str(sessions), "7000"] + ([] if trim else ["--no-trim"])
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    sessions = parser.parse_args().sessions
    print(f"{sessions} sessions, one different 7000×7000 PNG upload each\n")
    print(f"{'budget MB':>9} {'trim':>5} {'idle MB':>8} {'peak MB':>8} {'after MB':>9} {'kept MB':>8} {'kept/budget':>12}")
    for budget_mb, trim in ((192, True), (192, False), (1024, True)):
        r = run(sessions, budget_mb, trim)
        kept = r["after_mb"] - r["idle_mb"]
        print(f"{budget_mb:>9} {str(trim):>5} {r['idle_mb']:>8.0f} {r['peak_mb']:>8.0f} {r['after_mb']:>9.0f} "
              f"{kept:>8.0f} {kept / budget_mb:>12.2f}")


if __name__ == "__main__":
    main()
