"""{In[n]}, {Out[n]}, {_} and {In[-2]} (the previous cell) in prompts, through a real IPython
shell that stores its history, as a notebook kernel does: what reaches the runtime, the one-line
errors, no evaluation, one pass."""

from __future__ import annotations

import pytest

from eliza_nb.notebook.interpolate import InterpolationError, interpolate

# ``cell`` (a cell run storing its history, as ipykernel does) and ``prompts`` (what reaches
# the local runtime) are fixtures of tests/notebook/conftest.py.


def error_of(result) -> str:
    err = result.error_in_exec or result.error_before_exec
    assert err is not None, "the cell should have failed"
    return str(err)


def test_in_out_last_output_and_previous_cell(cell, ip, prompts):
    first = ip.execution_count
    assert cell("hist_a = 6 * 7")[0].success
    shown = ip.execution_count
    assert cell("hist_a")[0].success  # an output: Out[shown] == 42, _ == 42
    assert cell("hist_b = 'prev cell'")[0].success
    result, cap = cell(f"%%eliza generate -t 0 --max-tokens 4\nA={{In[{first}]}} B={{Out[{shown}]}} C={{_}} D={{In[-2]}}")
    assert result.success, result.error_in_exec
    assert prompts == ["A=hist_a = 6 * 7 B=42 C=42 D=hist_b = 'prev cell'"]
    assert cap.outputs[-1].metadata["eliza_nb"]["provider"] == "llama_local"  # the local model answered
    # -2 is the previous cell (the generate cell above, as typed), -3 the one before it;
    # conversions and format specs apply to history values as to any value
    assert cell(f"%%eliza generate --no-stream -t 0 --max-tokens 2\n{{In[-2]}}|{{In[-3]}}|{{Out[{shown}]!r:>4}}")[0].success
    assert prompts[-1] == (f"%%eliza generate -t 0 --max-tokens 4\nA={{In[{first}]}} B={{Out[{shown}]}} C={{_}} D={{In[-2]}}"
                           "|hist_b = 'prev cell'|  42")


def test_in_is_the_source_as_typed_not_ipythons_rewrite(cell, prompts):
    assert cell("%config Eliza.show_footer = True")[0].success
    assert cell("%%eliza generate --no-stream -t 0 --max-tokens 2\n{In[-2]}")[0].success
    assert prompts == ["%config Eliza.show_footer = True"]  # not get_ipython().run_line_magic('config', ...)


def test_in_minus_one_is_this_cell_and_says_so(cell, prompts):
    result, _ = cell("%%eliza generate -t 0\nexplain {In[-1]}")
    msg = error_of(result)
    assert msg == "{In[-1]} is this cell itself; the previous cell is {In[-2]}"
    result, _ = cell("%%eliza generate -t 0\n{In[" + str(result.execution_count + 1) + "]}")
    assert error_of(result).endswith("is this cell itself")
    assert prompts == []


def test_bad_index_is_one_line_naming_the_reference_and_range(cell, ip, prompts):
    assert cell("hist_c = 1")[0].success
    running = ip.execution_count
    result, _ = cell("%%eliza generate -t 0\n{In[99999]}")
    msg = error_of(result)
    assert "\n" not in msg
    assert msg == (f"{{In[99999]}}: no input 99999; valid: In[1] … In[{running - 1}], "
                   f"or In[-2] … In[-{running}]")
    result, _ = cell("%%eliza generate -t 0\n{In[-99999]}")
    assert error_of(result).startswith("{In[-99999]}: no input -99999; valid: In[1] …")
    result, _ = cell(f"%%eliza generate -t 0\n{{Out[{running - 1}]}}")  # hist_c = 1 has no output
    msg = error_of(result)
    assert msg.startswith(f"{{Out[{running - 1}]}}: cell {running - 1} has no output; outputs exist for")
    assert "\n" not in msg and prompts == []


@pytest.mark.parametrize("field", [
    "{In[__import__('os').system('touch pwned')]}",
    "{In[globals().update(pwned=1)]}",
    "{In[1+1]}",
    "{Out[len(In)]}",
    "{In[ 1]}",
])
def test_the_index_is_never_evaluated(cell, ip, prompts, tmp_path, monkeypatch, field):
    monkeypatch.chdir(tmp_path)
    result, _ = cell(f"%%eliza generate -t 0\n{field}")
    msg = error_of(result)
    assert "takes a cell number" in msg and "nothing inside [...] is evaluated" in msg and "\n" not in msg
    assert "pwned" not in ip.user_ns and not (tmp_path / "pwned").exists()
    assert prompts == []


def test_one_pass_pulled_in_source_stays_literal(cell, ip, prompts):
    ip.user_ns["hist_secret_word"] = "EXPANDED"
    assert cell("hist_t = 'use {hist_secret_word} and {Out[1]} here'")[0].success
    assert cell("hist_t")[0].success
    assert cell("%%eliza generate --no-stream -t 0 --max-tokens 2\n{In[-3]} / {_}")[0].success
    assert prompts == ["hist_t = 'use {hist_secret_word} and {Out[1]} here' / use {hist_secret_word} and {Out[1]} here"]
    assert "EXPANDED" not in prompts[0]


def test_history_values_count_against_the_cap(cell, ip):
    assert cell("'y' * 5000")[0].success
    n = ip.execution_count - 1
    assert interpolate(f"{{Out[{n}]}}", ip.user_ns, max_chars=0) == "y" * 5000
    with pytest.raises(InterpolationError, match="passes 1,000 characters"):
        interpolate(f"{{Out[{n}]}}", ip.user_ns, max_chars=1000)


def test_a_variable_named_in_is_an_ordinary_variable():
    assert interpolate("{In[0]} {Out[x]}", {"In": ["mine"], "Out": {"x": "yours"}}) == "mine yours"


def test_chat_reads_history_too(cell, rt):
    assert cell("hist_chat = 'the previous cell'")[0].success
    result, _ = cell("%%eliza chat --new --name h3_history --no-stream -t 0 --max-tokens 4\nWhat does this do? {In[-2]}")
    assert result.success, result.error_in_exec
    turns = rt.conversation("h3_history").messages
    users = [m for m in turns if (m["role"] if isinstance(m, dict) else m.role) == "user"]
    content = users[-1]["content"] if isinstance(users[-1], dict) else users[-1].content
    assert content == "What does this do? hist_chat = 'the previous cell'"
