"""Cost before you run: calls, tokens and dollars per provider, from the catalog's prices.

Prompt tokens are counted the way the runtime budgets them (tiktoken offline for OpenAI
models, else ~4 characters a token). Completion tokens are the ceiling each call may use
(its effective ``max_output_tokens``), so the cost is what the grid costs **at most**; a
lower ``max_tokens`` tightens it. A judge adds one call per graded answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..settings import pop_settings
from ..tokens import count_messages, counter_for
from ..types import as_messages
from .grid import Grid, render

#: what a judge's prompt adds to the answer it grades (instructions and rubric), in tokens
JUDGE_OVERHEAD_TOKENS = 200


def estimate(runtime: Any, plan: Grid, options: Mapping[str, Any], check: Any = None) -> pd.DataFrame:
    """One row per provider, model and purpose (call / judge): calls, estimated prompt
    tokens, the completion-token ceiling, prices and the cost ceiling in USD."""
    acc: dict[tuple[str, str, str], dict[str, float]] = {}

    def add(purpose: str, target: Any, prompt_tokens: float, completion_tokens: float) -> None:
        row = acc.setdefault((target.provider, target.model, purpose), {"calls": 0, "prompt": 0.0, "completion": 0.0})
        row["calls"] += 1
        row["prompt"] += prompt_tokens
        row["completion"] += completion_tokens

    fixed = pop_settings(dict(options))
    judge = getattr(check, "judge_target", None)
    judge_out = 0
    if judge is not None:
        judged = pop_settings(dict(getattr(check, "judge_settings", None) or {}))
        judge_out = int(runtime.effective_settings(judge, None, judged).max_output_tokens or 0)
    for job in plan.jobs:
        target = runtime.resolve(job["model"])
        count, _how = counter_for(target.provider, target.model)
        prompt = count_messages(as_messages(render(job["template"], job["case"]["input"]), options.get("system")), count)
        out = int(runtime.effective_settings(target, job["preset"], {**fixed, **job["grid"]}).max_output_tokens or 0)
        add("call", target, prompt, out)
        graded = int(getattr(check, "judge_calls", lambda case: 0)(job["case"])) if judge is not None else 0
        for _ in range(graded):
            add("judge", judge, prompt + out + JUDGE_OVERHEAD_TOKENS, judge_out)
    rows = []
    for (provider, model, purpose), n in acc.items():
        p_in, p_out = runtime.catalog.get(provider).price(model)
        cost = (n["prompt"] * p_in + n["completion"] * p_out) / 1e6
        rows.append({"provider": provider, "model": model, "purpose": purpose, "calls": int(n["calls"]),
                     "est_prompt_tokens": int(n["prompt"]), "max_completion_tokens": int(n["completion"]),
                     "price_in_per_1m": p_in, "price_out_per_1m": p_out,
                     "est_cost_usd": cost if not math.isnan(cost) else math.nan})
    frame = pd.DataFrame(rows, columns=["provider", "model", "purpose", "calls", "est_prompt_tokens", "max_completion_tokens",
                                        "price_in_per_1m", "price_out_per_1m", "est_cost_usd"])
    frame.attrs["calls"] = int(frame["calls"].sum()) if len(frame) else 0
    frame.attrs["note"] = ("cost at most: completions counted at their max_output_tokens ceiling; "
                           "NaN where the catalog has no price")
    return frame
