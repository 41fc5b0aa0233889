"""Reading a CSV of tracking numbers as spreadsheets write it.

Excel and LibreOffice write UTF-8 with a byte-order mark ("CSV UTF-8"), UTF-16
("Unicode text"), and ``;`` instead of ``,`` where the comma is the decimal
mark; all are read. Text that is not UTF-8 (Latin-1, Windows-1252) is refused
with the line it is on rather than guessed, so that no label is imported garbled.
What a row means is checked by the caller (``core.inventory``), not here.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass

COLUMNS = ("number", "source", "pool", "route", "label")
REQUIRED = ("number", "route")
DELIMITERS = (",", ";", "\t")


class CsvError(ValueError):
    """The file as a whole cannot be read as our CSV; the message says why."""


@dataclass(frozen=True)
class CsvRow:
    line: int  # where the row ends in the file, as an editor numbers lines
    fields: dict[str, str]  # column -> value, stripped; absent columns are ""


def read_rows(data: bytes) -> tuple[list[CsvRow], list[str]]:
    """The rows of ``data`` and the problems of single rows (``line N: …``).

    Raises ``CsvError`` when the file cannot be read at all (encoding, header).
    """
    text = _decode(data)
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), "")
    delimiter, header = _header(header_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, problems, in_body = [], [], False
    try:
        for record in reader:
            if not any(field.strip() for field in record):
                continue  # blank lines, before or after the header
            if not in_body:
                in_body = True  # this record is the header
                continue
            line = reader.line_num
            extra = [f for f in record[len(header) :] if f.strip()]
            if extra:
                problems.append(
                    f"  line {line}: {len(record)} fields, but the header names {len(header)}"
                    f" (a '{delimiter}' inside a value? quote the value)"
                )
                continue
            values = [f.strip() for f in record] + [""] * (len(header) - len(record))
            rows.append(CsvRow(line, dict(zip(header, values, strict=False))))
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num}: not readable as CSV ({exc})") from None
    return rows, problems


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        encoding, body = "utf-8", data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data
    else:
        encoding, body = "utf-8", data
        if b"\x00" in body:
            raise CsvError(
                "the file holds NUL characters (UTF-16 without a byte-order mark?):"
                " save it as 'CSV UTF-8' and import it again"
            )
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        if encoding == "utf-16":
            raise CsvError(f"line {line}: broken UTF-16 text") from None
        raise CsvError(
            f"line {line} is not UTF-8 text (byte 0x{body[exc.start]:02x}; Latin-1 or"
            " Windows-1252?): save the file as 'CSV UTF-8' and import it again"
        ) from None
    if "\x00" in text:
        raise CsvError("the file holds NUL characters: save it as 'CSV UTF-8' and import it again")
    return text


def _header(line: str) -> tuple[str, list[str]]:
    """The delimiter that splits the header into our columns, and the column names."""
    for delimiter in DELIMITERS:
        fields = next(csv.reader([line], delimiter=delimiter), [])
        names = [f.strip().lower() for f in fields]
        if all(col in names for col in REQUIRED):
            unknown = [n for n in names if n not in COLUMNS]
            if unknown:
                raise CsvError(
                    f"unknown column{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}"
                    f" (the columns are: {', '.join(COLUMNS)})"
                )
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise CsvError(f"column {', '.join(map(repr, twice))} named twice in the header")
            return delimiter, names
    raise CsvError(
        "the header (first line) must name at least the 'number' and 'route' columns"
        f" (columns: {', '.join(COLUMNS)}; separated by ',' or ';')"
    )
