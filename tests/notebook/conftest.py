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


@pytest.fixture
def run(ip, rt):
    """run(source) -> Cell: execute a cell in the test shell, capturing display updates too."""

    def _run(source: str) -> Cell:
        with capture_output() as cap:
            result = ip.run_cell(source)
        return Cell(result, cap)

    return _run
