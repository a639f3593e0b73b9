"""%eliza cache stats|clear|prune and %eliza similar, in IPython's test shell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import eliza_nb


@pytest.fixture(autouse=True)
def fake_runtime(rt):
    old = eliza_nb.set_runtime(rt)
    yield rt
    eliza_nb.set_runtime(old)


def run(ip, cell):
    with capture_output() as cap:
        result = ip.run_cell(cell)
    return result, cap


def test_cache_stats_clear_prune(ip, fake_runtime):
    fake_runtime.embed(["a", "b", "c"])
    result, cap = run(ip, "%eliza cache stats")
    assert result.success and "disk:" in cap.stdout and "store" in cap.stdout
    df = result.result
    assert int(df.query("tier == 'disk'").entries.sum()) == 3
    result, cap = run(ip, "%eliza cache prune 7d")
    assert result.success and "removed 0 disk" in cap.stdout
    result, cap = run(ip, "%eliza cache clear --model fake-embed")
    assert result.success and "removed 3 disk and 3 memory entries for fake-embed" in cap.stdout
    result, cap = run(ip, "%eliza cache")
    assert result.success and int(result.result.entries.sum()) == 0


@pytest.mark.parametrize("line, message", [
    ("cache prune", "needs an age"),
    ("cache prune soon", "duration"),
    ("cache wipe", "invalid choice"),
    ("cache stats 7d", "takes no age"),
    ("cache prune 7d --model x", "go with %eliza cache clear"),
    ("similar a cat", "--in"),
    ("similar a cat --in nothing_here", "no variable named 'nothing_here'"),
    ("similar a cat --in texts -k 0", "above 0"),
])
def test_bad_lines_are_one_line_usage_errors(ip, line, message):
    ip.user_ns["texts"] = ["a cat", "a dog"]
    result, _ = run(ip, f"%eliza {line}")
    err = result.error_in_exec
    assert isinstance(err, UsageError) and message in str(err) and "\n" not in str(err)


def test_similar_magic(ip, fake_runtime):
    ip.user_ns["texts"] = ["a cat on a mat", "stocks fell", "a dog"]
    result, _ = run(ip, "%eliza similar stocks fell --in texts -k 2")
    assert result.success
    df = result.result
    assert df.text.iloc[0] == "stocks fell" and len(df) == 2
    result, cap = run(ip, "%eliza similar a dog --in texts -o best")
    assert result.success and ip.user_ns["best"].text.iloc[0] == "a dog" and "best: top 3" in cap.stdout
    ip.user_ns["vectors"] = fake_runtime.embed(ip.user_ns["texts"])
    result, _ = run(ip, "%eliza similar a dog --in vectors -k 1")
    assert result.success and list(result.result.index) == [2]
