"""%eliza bench from a cell."""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output


@pytest.fixture(autouse=True)
def use_local_runtime(local_runtime):
    import eliza_nb

    old = eliza_nb.set_runtime(local_runtime)
    yield
    eliza_nb.set_runtime(old)


def test_bench_magic_shows_summary_and_chart_and_stores_results(ip):
    ip.user_ns["cases"] = [{"input": "What is the capital of France?", "expected": "Paris"},
                           {"input": "Say hello.", "expected": "hello"}]
    fmt = ip.display_formatter
    saved = list(fmt.active_types)
    fmt.active_types = [*saved, "text/html", "image/svg+xml"]  # the test shell is a terminal: ask for rich types
    try:
        with capture_output() as cap:
            r = ip.run_cell("%eliza bench --cases cases --presets precise balanced --repeats 1 --concurrency 2 --max-tokens 12 -t 0 -o res")
    finally:
        fmt.active_types = saved
    assert r.success, r.error_in_exec
    frame = ip.user_ns["res"]
    assert len(frame) == 4 and set(frame.preset) == {"precise", "balanced"}
    kinds = [set(o.data) for o in cap.outputs]
    assert any("text/html" in k for k in kinds), "the summary table"
    assert any("image/svg+xml" in k for k in kinds), "the latency-vs-score chart"
    assert any("p50 latency" in o.data.get("text/plain", "") for o in cap.outputs), "the chart degrades to text"
    assert "res: 4 rows" in cap.stdout
    # 4 calls, 2 at a time, on the one local model: some waited, and the line says that wait is apart
    assert (frame.queue_s > 0.05).any() and "latency and TTFT are service time" in cap.stdout and "queue_s" in cap.stdout


@pytest.mark.parametrize("line, message", [
    ("%eliza bench", "the following arguments are required: --cases"),
    ("%eliza bench --cases missing_var", "no such variable"),
    ("%eliza bench --cases cases --repeats 0", "expected a number above 0"),
])
def test_bench_magic_bad_input(ip, line, message):
    from IPython.core.error import UsageError

    ip.user_ns["cases"] = [{"input": "x"}]
    with capture_output():
        r = ip.run_cell(line)
    assert isinstance(r.error_in_exec, UsageError) and message in str(r.error_in_exec)
