"""Run ``genreflow spectrograms`` from a source checkout (no install needed).

    mpiexec -n 4 python scripts/spectrograms.py --manifest work/manifest.csv --out work/features

Same arguments as ``genreflow spectrograms --help``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from genreflow.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["spectrograms", *sys.argv[1:]]))
