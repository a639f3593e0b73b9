"""Provider adapters, one per wire protocol (openai_compat, anthropic, google, llama_local).

This subpackage shares its name with the public function ``eliza_nb.providers()``. Python
sets the package attribute ``eliza_nb.providers`` to this module as soon as any adapter is
imported, which would hide the function after the first call; so this module is callable
too, and calling it does what the function does.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self) -> Any:
        """Every provider as a DataFrame: endpoint, model per class, key variable, key present (never the key)."""
        import eliza_nb

        return eliza_nb.runtime().providers_table()


sys.modules[__name__].__class__ = _CallableModule
