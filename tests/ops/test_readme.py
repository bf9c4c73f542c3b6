"""Every shell example in README runs as written, in the test named for its block."""

from tests.readme import NOT_RUN, QUICKSTART, RUN_BY, block_with, lines_to_run, run_line, sh_blocks


def test_every_readme_shell_line_is_run_by_a_test_or_says_why_not():
    run = {line for anchor in RUN_BY for line in block_with(anchor)}
    every = [line for block in sh_blocks() for line in block]
    assert [line for line in every if line not in run] == []  # a new example needs a test (RUN_BY) first
    for line in NOT_RUN:
        assert any(written.split("  #")[0].strip() == line for written in every), f"NOT_RUN names a line README no longer has: {line}"


def test_the_quickstart_classifies_the_bundled_examples_with_their_actions():
    (line,) = lines_to_run(QUICKSTART)
    said = run_line(line, timeout=1200).stdout.splitlines()
    table = said[[row.split()[:3] for row in said].index(["file", "verdict", "conf"]):]  # after setup's own lines
    assert len(table) == 11, said
    actions = {row.split()[0]: row.split()[4].rstrip(":") for row in table[1:]}
    assert actions["fax_cng.wav"] == "HANGUP" and actions["busy_na.wav"] == "HANGUP" and actions["live_answer.wav"] == "BRIDGE"
