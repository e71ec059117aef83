"""CSV for spreadsheets: the one writer every CSV export uses (issue 13).

A cell whose text starts with ``=``, ``+``, ``-`` or ``@`` (or their full-width forms), a tab
or a carriage return is a formula to Excel, LibreOffice and Google Sheets — a survey text
``=HYPERLINK(...)`` written by a campaign's author would run in the partner's spreadsheet. Such
a cell is written with a leading apostrophe (OWASP, "CSV injection"), which the spreadsheet
shows as text and hides. Numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

#: First characters that make a spreadsheet read a cell as a formula.
FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell a spreadsheet shows as text: a string that could start a
    formula gets a leading apostrophe; other values (numbers, None) are returned as they are."""
    if isinstance(value, str) and value[:1] in FORMULA_START:
        return "'" + value
    return value


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """``rows`` as CSV text (CRLF line ends, RFC 4180), every cell through :func:`safe_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
