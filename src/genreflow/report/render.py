"""Render a report, given as a list of blocks, to Markdown and to self-contained HTML.

The blocks hold plain text (no markup), so each renderer escapes it for its own format. In
HTML every image is embedded as a ``data:image/png;base64`` URI and the style sheet is inline:
the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #4c72b0; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f0f3f8; }
tr:nth-child(even) td { background: #fafafa; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .3em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4em 1em; }
.notes li { margin: .2em 0; }
"""


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

    Parameters
    ----------
    image_dir : path-like
        Folder holding the PNGs named by the :class:`Image` blocks.
    """
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{e(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            level = min(max(block.level, 2), 6)
            out.append(f"<h{level}>{e(block.text)}</h{level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, Notes):
            items = "".join(f"<li>{e(item)}</li>" for item in block.items)
            out.append(f'<div class="notes"><strong>Notes</strong><ul>{items}</ul></div>')
        elif isinstance(block, Table):
            out.append("<table>")
            if block.caption:
                out.append(f"<caption>{e(block.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in block.header) + "</tr>")
            for row in block.rows:
                out.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
            out.append("</table>")
        elif isinstance(block, Image):
            data = base64.b64encode((Path(image_dir) / block.filename).read_bytes()).decode()
            caption = f"<figcaption>{e(block.caption)}</figcaption>" if block.caption else ""
            out.append(
                f'<figure><img alt="{e(block.alt)}" src="data:image/png;base64,{data}">'
                f"{caption}</figure>"
            )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)
