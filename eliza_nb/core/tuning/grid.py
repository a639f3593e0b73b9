"""What a benchmark runs: the cases, and the grid of calls they expand to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..errors import ConfigError


def parse_cases(cases: Any) -> list[dict[str, Any]]:
    """A list of dicts or a DataFrame with ``input`` (and ``expected``, optional ``id``)."""
    if isinstance(cases, pd.DataFrame):
        records = cases.to_dict("records")
    elif isinstance(cases, (Mapping, str)):
        raise ConfigError("cases must be a list of dicts or a DataFrame with an 'input' column")
    else:
        records = list(cases)
    out = []
    for i, case in enumerate(records):
        if isinstance(case, str):
            case = {"input": case}
        if not isinstance(case, Mapping) or "input" not in case:
            raise ConfigError(f"case {i} has no 'input' (got {type(case).__name__}); each case needs input, and expected for scoring")
        cid = case.get("id")
        out.append({"id": str(cid) if cid is not None and cid == cid else str(i), "input": str(case["input"]),
                    "expected": case.get("expected")})
    if not out:
        raise ConfigError("no cases to run")
    return out


