"""How `smsgw group set --from-file` reads an export of SIMs, and how it reports the bad rows."""

import json

import requests

from smsgw_cli.groups import explain_invalid, read_members
from smsgw_client import ApiError


def test_a_csv_export_gives_its_first_column_without_the_header_blank_lines_or_comments(tmp_path):
    # Given a spreadsheet export: a byte-order mark, a header, a second column, a comment, a blank line, quotes
    export = tmp_path / "sims.csv"
    export.write_text('\ufeffMSISDN,site\n447700900001,depot 1\n# retired below\n\n"+447700900002","depot, 2"\n 447700900003 \n', encoding="utf-8")
    # When it is read
    members, lines = read_members(str(export))
    # Then the MSISDNs come out as written, with the line each came from
    assert members == ["447700900001", "+447700900002", "447700900003"]
    assert lines == [2, 5, 6]


def test_a_plain_list_keeps_its_first_line_and_passes_bad_rows_on_for_the_api_to_name(tmp_path):
    export = tmp_path / "sims.txt"
    export.write_text("447700900001\nnot-a-number-1\n447700900002\n")
    members, lines = read_members(str(export))
    assert (members, lines) == (["447700900001", "not-a-number-1", "447700900002"], [1, 2, 3])


def test_a_422_about_members_is_told_by_the_files_line_numbers():
    # Given the API's answer naming positions 1 and 3 of 4, of 7 bad rows in all
    response = requests.Response()
    response.status_code = 422
    details = {"fields": {"members[1]": "'x' must be an MSISDN", "members[3]": "'y' must be an MSISDN"}, "invalid_count": 7}
    response._content = json.dumps({"error": {"code": "validation_error", "message": "...", "details": details}}).encode()
    # When the CLI explains it for a file whose members came from lines 2, 3, 5 and 9
    text = explain_invalid(ApiError.from_response(response), [2, 3, 5, 9], "sims.csv")
    # Then each is named by its line, and the rest counted
    assert text.splitlines() == ["  sims.csv:3: 'x' must be an MSISDN", "  sims.csv:9: 'y' must be an MSISDN", "  ... and 5 more"]
