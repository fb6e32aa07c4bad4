"""The speed-up report: timings, benchmarks and metrics of a results tree -> md/html/png/json.

``build_report(results=..., out=...)`` does everything; ``summary_lines(summary)`` turns the
written ``summary.json`` into a few lines for a terminal.
"""

from genreflow.report.build import build_report
from genreflow.report.scaling import fit_amdahl, scaling
from genreflow.report.text import summary_lines

__all__ = ["build_report", "fit_amdahl", "scaling", "summary_lines"]
