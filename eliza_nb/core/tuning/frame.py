"""The benchmark's tidy result: BenchmarkFrame (summary, chart) and its latency/score chart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd


class BenchmarkFrame(pd.DataFrame):
    """The tidy result: one row per model x preset x case x repeat, plus ``summary()`` and ``chart()``."""

    _metadata: ClassVar[list[str]] = ["scorer_name"]  # pandas carries these attributes to derived frames

    @property
    def _constructor(self) -> type[BenchmarkFrame]:
        return BenchmarkFrame

    def summary(self) -> pd.DataFrame:
        """Per model x preset: runs, p50/p95 latency and mean TTFT (service time), mean queue wait,
        tokens/s, mean score, total cost, error rate."""
        if self.empty:
            return pd.DataFrame()
        g = pd.DataFrame(self).groupby(["model", "preset"], sort=False)
        ok = pd.DataFrame(self)[self["error"].isna()].groupby(["model", "preset"], sort=False)
        out = pd.DataFrame({
            "runs": g.size(),
            "p50_latency_s": ok["latency_s"].median(),
            "p95_latency_s": ok["latency_s"].quantile(0.95),
            "mean_ttft_s": ok["ttft_s"].mean(),
            "mean_queue_s": ok["queue_s"].mean(),
            "tokens_per_s": ok["tokens_per_s"].mean(),
            "mean_score": g["score"].mean(),
            "total_cost_usd": g["cost_usd"].sum(min_count=1),
            "error_rate": g["error"].apply(lambda s: float(s.notna().mean())),
        })
        return out.reset_index()

    def chart(self) -> LatencyScoreChart:
        """Latency (p50) against mean score per model x preset, as inline SVG (no network)."""
        return LatencyScoreChart(self.summary())


#: a point label longer than this is cut (the full text is the point's tooltip); GLYPH_PX is the
#: rough advance of an 11 px sans-serif glyph, to tell whether a label fits right of its point
LABEL_CHARS, GLYPH_PX = 48, 6.2


@dataclass
class LatencyScoreChart:
    summary: pd.DataFrame
    width: int = 560
    height: int = 320

    def __repr__(self) -> str:
        # What a static export or a terminal shows instead of the SVG.
        if self.summary.empty:
            return "LatencyScoreChart (no results)"
        cols = ["model", "preset", "p50_latency_s", "mean_score"]
        return "p50 latency vs mean score\n" + str(self.summary[cols].to_string(index=False))

    def _repr_svg_(self) -> str:
        from html import escape

        s = self.summary.dropna(subset=["p50_latency_s"]) if not self.summary.empty else self.summary
        w, h, pad = self.width, self.height, 48
        parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
                 f'<rect width="{w}" height="{h}" fill="white"/>',
                 f'<line x1="{pad}" y1="{h - pad}" x2="{w - 10}" y2="{h - pad}" stroke="#444"/>',
                 f'<line x1="{pad}" y1="10" x2="{pad}" y2="{h - pad}" stroke="#444"/>',
                 f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">p50 latency (s)</text>',
                 f'<text x="14" y="{h / 2}" transform="rotate(-90 14 {h / 2})" text-anchor="middle">mean score</text>']
        if not s.empty:
            xmax = float(s["p50_latency_s"].max()) * 1.15 or 1.0
            palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
            for i, row in enumerate(s.itertuples(index=False)):
                score = 0.0 if row.mean_score != row.mean_score else float(row.mean_score)
                x = pad + (w - pad - 20) * float(row.p50_latency_s) / xmax
                y = (h - pad) - (h - pad - 20) * max(0.0, min(1.0, score))
                full = f"{row.model} · {row.preset}"
                shown = full if len(full) <= LABEL_CHARS else full[:LABEL_CHARS - 1] + "…"
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{palette[i % len(palette)]}"><title>'
                             f'{escape(full)}: {row.p50_latency_s:.3f} s, score {score:.2f}</title></circle>')
                if x + 9 + GLYPH_PX * len(shown) > w - 4:  # would run off the right edge: left of the point
                    parts.append(f'<text x="{x - 9:.1f}" y="{y + 4:.1f}" text-anchor="end">{escape(shown)}</text>')
                else:
                    parts.append(f'<text x="{x + 9:.1f}" y="{y + 4:.1f}">{escape(shown)}</text>')
            for frac in (0, 0.5, 1):
                y = (h - pad) - (h - pad - 20) * frac
                parts.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{frac:g}</text>')
            parts.append(f'<text x="{w - 10}" y="{h - pad + 14}" text-anchor="end">{xmax:.2f}</text>')
        parts.append("</svg>")
        return "".join(parts)


# -- the runner -------------------------------------------------------------------------
