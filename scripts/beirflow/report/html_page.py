"""The one HTML renderer of the leaderboard's page and the report's: a self-contained page (no script, no
link: it opens from a file, offline), its style, and its tables."""

from __future__ import annotations

import html
from collections.abc import Sequence

STYLE = """\
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 0.9em; }
div.scroll { overflow-x: auto; max-width: 100%; margin-bottom: 1.5em; }
#leaderboard th[scope="row"] { position: sticky; left: 0; background: #fff; white-space: nowrap; }
#leaderboard thead th { min-width: 5.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; }
td { text-align: right; font-variant-numeric: tabular-nums; }
tfoot th, tfoot td { border-top: 2px solid #444; }
#published td:nth-child(8), #published td:nth-child(9), #published td:nth-child(10) { text-align: left; font-size: 0.85em; }
figure { margin: 1em 0; } img.plot { max-width: 100%; border: 1px solid #eee; }
.legend .key { margin-right: 1.2em; font-size: 0.9em; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
"""


def page(title: str, body: str) -> str:
    """A whole page: ``body`` is HTML, the title is escaped here."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def table(table_id: str, header: Sequence[str], rows: Sequence[Sequence[str]], footer_rows: Sequence[bool] | None = None) -> str:
    """A table of text cells (escaped here; ``**text**`` is shown bold), the first cell of a row its heading;
    rows flagged in ``footer_rows`` go to its foot. Wide tables (the paper's grid has 23 systems) scroll
    inside their box; the page itself never does."""

    def cell(text: str, tag: str) -> str:
        if text.startswith("**") and text.endswith("**"):
            return f"<{tag}><b>{html.escape(text[2:-2])}</b></{tag}>"
        return f"<{tag}>{html.escape(text)}</{tag}>"

    head = "".join(f"<th>{html.escape(column)}</th>" for column in header)
    body: list[str] = []
    foot: list[str] = []
    for index, row in enumerate(rows):
        line = f'<tr><th scope="row">{html.escape(row[0])}</th>' + "".join(cell(text, "td") for text in row[1:]) + "</tr>"
        (foot if footer_rows and footer_rows[index] else body).append(line)
    tfoot = f"<tfoot>{''.join(foot)}</tfoot>" if foot else ""
    element = f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>{tfoot}</table>'
    return f'<div class="scroll" id="{table_id}-box">{element}</div>'
