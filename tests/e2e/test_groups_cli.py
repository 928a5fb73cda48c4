"""Groups of SIMs from the smsgw command-line client, against the running local stack (make run)."""

import json
import subprocess
import sys

from tests.e2e.conftest import ROOT, smsgw


def smsgw_slow(stack, *args: str):
    """The group commands carry files of thousands of SIMs: two minutes each."""
    return smsgw(stack, *args, timeout=120)


def test_a_group_is_set_from_a_csv_file_shown_changed_listed_and_deleted(local_stack, tmp_path):
    # Given a CSV export of 3,000 SIMs: a header, a second column, a blank line, one SIM twice (once with a '+')
    sims = [str(447_810_000_000 + n) for n in range(3000)]
    rows = ["msisdn,site", *(f"{m},depot-{n % 7}" for n, m in enumerate(sims)), "", f"+{sims[0]},depot-0"]
    export = tmp_path / "sims.csv"
    export.write_text("\n".join(rows) + "\n")
    # When the group is set from it
    result = smsgw_slow(local_stack, "group", "set", "e2e-depots", "--from-file", str(export))
    # Then it holds exactly those 3,000 SIMs
    assert (result.returncode, result.stdout.strip()) == (0, "group e2e-depots: 3000 members (created)"), result.stderr
    shown = smsgw_slow(local_stack, "--json", "group", "show", "e2e-depots", "--all")
    group = json.loads(shown.stdout)
    assert (group["size"], len(group["members"]), set(group["members"])) == (3000, 3000, set(sims))
    # When members are added and one removed
    added = smsgw_slow(local_stack, "group", "add", "e2e-depots", "447820000001", sims[5])
    removed = smsgw_slow(local_stack, "group", "remove", "e2e-depots", sims[9])
    assert added.stdout.strip() == "group e2e-depots: 1 added, 3001 members"
    assert removed.stdout.strip() == f"group e2e-depots: {sims[9]} removed, 3000 members"
    # Then the listing shows the group's size, and who changed it last
    listed = smsgw_slow(local_stack, "group", "list")
    line = next(row for row in listed.stdout.splitlines() if row.startswith("e2e-depots "))
    assert "3000 members" in line and " by " in line
    # When it is set again from a smaller file, read from stdin
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "smsgw_cli.main",
            "--outputs",
            str(local_stack.log_path.parent / "outputs.json"),
            "group",
            "set",
            "e2e-depots",
            "--from-file",
            "-",
        ],
        cwd=ROOT,
        input="\n".join(sims[:10]) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT / "cli"), "PATH": "/usr/bin:/bin"},
    )
    # Then it is replaced whole
    assert again.stdout.strip() == "group e2e-depots: 10 members (was 3000)", again.stderr
    shown = smsgw_slow(local_stack, "group", "show", "e2e-depots")
    assert shown.stdout.splitlines()[0] == "group e2e-depots: 10 members"
    assert sorted(line.strip() for line in shown.stdout.splitlines()[3:]) == sorted(sims[:10])
    # When it is deleted
    deleted = smsgw_slow(local_stack, "group", "delete", "e2e-depots")
    assert deleted.stdout.strip() == "group e2e-depots deleted (10 members)"
    # Then it is gone
    gone = smsgw_slow(local_stack, "group", "show", "e2e-depots")
    assert gone.returncode == 1 and "error 404" in gone.stderr


def test_a_file_with_bad_rows_changes_nothing_and_names_their_lines(local_stack, tmp_path):
    # Given a file with two rows that are not MSISDNs
    export = tmp_path / "sims.csv"
    export.write_text("msisdn\n447830000001\n4478300000x2\n447830000003\n12345\n")
    # When a group is set from it
    result = smsgw_slow(local_stack, "group", "set", "e2e-bad", "--from-file", str(export))
    # Then the CLI fails, naming each bad row by its line
    assert result.returncode == 1
    assert "error 422" in result.stderr
    assert f"{export}:3: '4478300000x2' must be an MSISDN" in result.stderr
    assert f"{export}:5: '12345' must be an MSISDN" in result.stderr
    # and no group was made
    assert smsgw_slow(local_stack, "group", "show", "e2e-bad").returncode == 1
