"""In-process notebook-surface tests: IPython's test shell + the shared local runtime."""

from __future__ import annotations

import pytest
from IPython.utils.capture import capture_output


@pytest.fixture
def rt(local_runtime, ip):
    """eliza_nb.runtime() is the session-wide local runtime, its session reset for each test."""
    import eliza_nb
    from eliza_nb.notebook.config import eliza_config

    conf = eliza_config()
    saved = {name: getattr(conf, name) for name in conf.trait_names() if name.startswith(("default_", "show_", "stream_"))}
    old = eliza_nb.set_runtime(local_runtime)
    local_runtime.session.reset()
    yield local_runtime
    with conf.hold_trait_notifications():
        for name, value in saved.items():
            setattr(conf, name, value)
    local_runtime.session.reset()
    eliza_nb.set_runtime(old)


class Cell:
    """What one cell did: IPython's ExecutionResult plus the captured outputs."""

    def __init__(self, result, cap):
        self.result, self.cap = result, cap

    @property
    def ok(self) -> bool:
        return self.result.success

    @property
    def error(self):
        return self.result.error_in_exec or self.result.error_before_exec

    @property
    def outputs(self):
        return self.cap.outputs

    @property
    def stdout(self) -> str:
        return self.cap.stdout

    def text(self) -> str:
        """Everything printed or displayed as text/plain."""
        return self.cap.stdout + "".join(o.data.get("text/plain", "") for o in self.cap.outputs)


def execute(ip, source: str, store_history: bool = False) -> Cell:
    with capture_output() as cap:
        result = ip.run_cell(source, store_history=store_history)
    return Cell(result, cap)


@pytest.fixture
def run(ip, rt):
    """run(source) -> Cell: execute a cell in the test shell, capturing display updates too."""
    return lambda source: execute(ip, source)


@pytest.fixture
def cell(ip, rt):
    """cell(source) -> (ExecutionResult, captured): run a cell storing its history (In/Out/_,
    the execution count), the way ipykernel runs a notebook's cells."""

    def _cell(source: str):
        done = execute(ip, source, store_history=True)
        return done.result, done.cap

    return _cell


@pytest.fixture
def fx(rt, frt):
    """eliza_nb's runtime for the test is ``frt``: its default provider ``fx`` is the loopback
    ``server``. Depends on ``rt``, so the settings and the shared runtime are restored after."""
    import eliza_nb

    old = eliza_nb.set_runtime(frt)
    yield frt
    eliza_nb.set_runtime(old)


@pytest.fixture
def prompts(rt, monkeypatch):
    """The prompts the magics hand the local runtime (calls go through to the local model)."""
    seen: list[str] = []
    real_generate, real_stream = rt.generate, rt.stream

    def generate(prompt, **options):
        seen.append(prompt)
        return real_generate(prompt, **options)

    def stream(prompt, **options):
        seen.append(prompt)
        return real_stream(prompt, **options)

    monkeypatch.setattr(rt, "generate", generate)
    monkeypatch.setattr(rt, "stream", stream)
    return seen


class StopButton:
    """A runtime's stream that raises KeyboardInterrupt (the stop button) after ``after`` chunks."""

    def __init__(self, inner, after: int):
        self.inner, self.target, self.result, self.after, self.n = inner, inner.target, None, after, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.n == self.after:
            raise KeyboardInterrupt
        self.n += 1
        return next(self.inner)

    def close(self):
        self.inner.close()


@pytest.fixture
def stop_button(monkeypatch):
    """stop_button(runtime, after=3): the runtime's streams are stopped as by the stop button."""

    def press(runtime, after: int = 3) -> None:
        real_stream = runtime.stream
        monkeypatch.setattr(runtime, "stream", lambda prompt, **o: StopButton(real_stream(prompt, **o), after))

    return press
