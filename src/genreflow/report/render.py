"""Render a report, given as a list of blocks, to Markdown and to self-contained HTML.

The blocks hold plain text (no markup), so each renderer escapes it for its own format: the
HTML comes from the Jinja2 template ``templates/report.html.j2`` (autoescaped); Markdown needs
only table cells escaped, so it is written here line by line. In HTML every image is embedded
as a ``data:image/png;base64`` URI and the style sheet is inline: the file can be mailed or
archived on its own.
"""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Notes:
    """Caveats shown as a highlighted list (missing inputs, skipped files, fit limits)."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    """A PNG in the report folder, referenced by file name."""

    filename: str
    alt: str
    caption: str = ""


Block = Heading | Paragraph | Notes | Table | Image


def to_markdown(blocks: Sequence[Block], *, title: str) -> str:
    """GitHub-flavoured Markdown; images are links to the PNGs beside the file."""
    out = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += [f"{'#' * block.level} {block.text}", ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Notes):
            out += [f"> **Note:** {_md_cell(item)}  " for item in block.items]
            out.append("")
        elif isinstance(block, Table):
            if block.caption:
                out += [f"**{block.caption}**", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            out.append("|" + "|".join("---" for _ in block.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Image):
            out += [f"![{_md_cell(block.alt)}]({block.filename})", ""]
            if block.caption:
                out += [f"*{block.caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_html(blocks: Sequence[Block], *, title: str, image_dir: str | os.PathLike) -> str:
    """A single HTML file: inline CSS, every image embedded as a base64 data URI.

    Rendered from ``templates/report.html.j2`` with autoescaping on.

    Parameters
    ----------
    blocks : sequence of Block
        The report, from :func:`~genreflow.report.document.report_blocks`.
    title : str
        Page title and top heading.
    image_dir : path-like
        Folder holding the PNGs named by the :class:`Image` blocks.
    """
    images = {
        block.filename: base64.b64encode((Path(image_dir) / block.filename).read_bytes()).decode()
        for block in blocks
        if isinstance(block, Image)
    }
    return _html_template().render(title=title, blocks=blocks, images=images)


@functools.cache
def _html_template() -> jinja2.Template:
    # Imported here: `genreflow choose` and `train --threads-from` load this package for
    # production.py alone and need no template engine.
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("genreflow.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        # Block tags sit on lines of their own; they leave no blank lines or indents behind.
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.tests.update(
        heading=lambda b: isinstance(b, Heading),
        paragraph=lambda b: isinstance(b, Paragraph),
        notes=lambda b: isinstance(b, Notes),
        table=lambda b: isinstance(b, Table),
        image=lambda b: isinstance(b, Image),
    )
    return env.get_template("report.html.j2")
