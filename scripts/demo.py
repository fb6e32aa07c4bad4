"""`make demo`: run the whole workflow locally on the synthetic demo dataset, then summarise.

Thin on purpose: Snakemake does the work (the same rules run on SLURM with `--profile slurm`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Demo-only settings over the config (see the file for why).
DEMO_OVERLAY = ROOT / "config" / "demo.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=2, help="local cores for Snakemake")
    parser.add_argument("--configfile", default=str(ROOT / "config" / "config.yaml"))
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    configfiles = [args.configfile]
    if is_demo_config(args.configfile):
        configfiles.append(str(DEMO_OVERLAY))
    cmd = [
        str(bin_dir / "snakemake"),
        "--cores",
        str(args.cores),
        "--configfile",
        *configfiles,
        "--printshellcmds",
        "--show-failed-logs",
    ]
    print("+", " ".join(cmd), flush=True)
    # Rules call `genreflow` and `mpiexec`: the venv's, even when it is not activated.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    if rc != 0:
        print(f"demo: the workflow failed (exit {rc}); see the log paths above", file=sys.stderr)
        return rc
    print_summary(args.configfile)
    return 0


def is_demo_config(configfile: str) -> bool:
    """True when the config names no dataset, so the workflow makes and uses the demo data."""
    from genreflow.core.config import load_config

    data = load_config(configfile)["data"]
    return not data["root"] and not data["csv"]


def print_summary(configfile: str) -> None:
    """Print the newest report's summary (accuracy, speed-ups) and where the report is."""
    from genreflow.core.config import load_config
    from genreflow.report import summary_lines

    results = ROOT / load_config(configfile)["results"]
    summaries = sorted(results.glob("**/summary.json"), key=lambda p: p.stat().st_mtime)
    if not summaries:
        print(f"demo: done; outputs are under {results}")
        return
    for line in summary_lines(json.loads(summaries[-1].read_text())):
        print(line)
    print(f"report: {summaries[-1].parent / 'report.html'}")
    models = sorted(
        results.glob("*/models/*/model/genreflow.json"), key=lambda p: p.stat().st_mtime
    )
    if models:
        model = models[-1].parent
        print(f"model: {model}  (next: genreflow predict {model} YOUR_AUDIO_FILE)")


if __name__ == "__main__":
    sys.exit(main())
