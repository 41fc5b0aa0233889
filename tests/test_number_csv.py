"""`numbers import` reads CSV as spreadsheets write it, and says in one line what it cannot read.

Each class of file that used to print a traceback (or a misleading message):
too many fields, Latin-1/Windows-1252, UTF-16, UTF-8 with a byte-order mark,
';' as the separator. Nothing is imported unless every row is good.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctm_pbx.adapters.number_csv import CsvError, read_rows
from ctm_pbx.edges.cli import main
from tests.helpers import BASE

ROWS = (
    "number,source,route,label\n+1 312 555 0170,billboard,one,Café\n+13125550171,billboard,all,\n"
)


@pytest.fixture
def cli(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text("database: {path: ctm.db}\n" + BASE, encoding="utf-8")

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(main, ["--config", str(config), *args])
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code == 1, result.output
            assert isinstance(result.exception, SystemExit), repr(result.exception)
            assert result.output.startswith("Error: "), result.output
        return result

    invoke("db", "migrate")
    return invoke


def imported(cli) -> list[tuple[str, str]]:
    return [(n["number"], n["label"]) for n in json.loads(cli("numbers", "list", "--json").stdout)]


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("UTF-8 with a byte-order mark (Excel's CSV UTF-8)", b"\xef\xbb\xbf" + ROWS.encode()),
        ("UTF-16 with a byte-order mark", ROWS.encode("utf-16")),
        ("';' between fields", ROWS.replace(",", ";").encode("utf-8")),
        ("tabs, CRLF line ends", ROWS.replace(",", "\t").replace("\n", "\r\n").encode()),
    ],
)
def test_spreadsheet_csv_variants_are_imported(cli, tmp_path: Path, name: str, data: bytes):
    csv = tmp_path / "numbers.csv"
    csv.write_bytes(data)
    assert "imported 2 number(s)" in cli("numbers", "import", str(csv)).output
    assert imported(cli) == [("+13125550170", "Café"), ("+13125550171", "")]


def test_a_value_with_the_separator_inside_quotes_is_one_field(cli, tmp_path: Path) -> None:
    csv = tmp_path / "numbers.csv"
    csv.write_text(
        'number;route;source;label\n+13125550170;one;billboard;"Bar; Grill"\n', encoding="utf-8"
    )
    cli("numbers", "import", str(csv))
    assert imported(cli) == [("+13125550170", "Bar; Grill")]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        (
            "a row with too many fields",
            b"number,source,route\n+13125550170,billboard,one\n+13125550171,billboard,one,x,y\n",
            "nothing imported, 1 bad row(s):\n  line 3: 5 fields, but the header names 3",
        ),
        (
            "Windows-1252",
            ROWS.encode("cp1252"),
            "nothing imported: line 2 is not UTF-8 text (byte 0xe9; Latin-1 or Windows-1252?):"
            " save the file as 'CSV UTF-8' and import it again",
        ),
        (
            "UTF-16 without a byte-order mark",
            ROWS.encode("utf-16-le"),
            "nothing imported: the file holds NUL characters (UTF-16 without a byte-order mark?)",
        ),
        (
            "no header",
            b"+13125550170,billboard,one\n",
            "nothing imported: the header (first line) must name at least the 'number' and"
            " 'route' columns",
        ),
        (
            "a misspelt column",
            b"number,source,route,lable\n+13125550170,billboard,one,x\n",
            "nothing imported: unknown column 'lable' (the columns are: number, source, pool,"
            " route, label)",
        ),
    ],
)
def test_unreadable_csv_is_one_clear_error(cli, tmp_path: Path, name, data, message) -> None:
    csv = tmp_path / "numbers.csv"
    csv.write_bytes(data)
    result = cli("numbers", "import", str(csv), ok=False)
    assert f"Error: {csv}: {message}" in result.output
    assert imported(cli) == []


def test_row_problems_are_listed_in_line_order() -> None:
    rows, problems = read_rows(b"\nnumber,route\n\n+13125550170,one\n+1,one,x\n")
    assert [(r.line, r.fields) for r in rows] == [(4, {"number": "+13125550170", "route": "one"})]
    assert problems == [
        "  line 5: 3 fields, but the header names 2 (a ',' inside a value? quote the value)"
    ]


def test_a_column_named_twice_is_refused() -> None:
    with pytest.raises(CsvError, match="column 'number' named twice"):
        read_rows(b"number,route,number\n")
