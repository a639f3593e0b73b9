"""Provider adapters, one per wire protocol: ``openai_compat`` (OpenAI and every
OpenAI-compatible server), ``anthropic`` (Anthropic and Claude on Vertex), ``google``
(Gemini) and ``llama_local`` (llama.cpp in process). ``http`` is the one transport seam the
remote adapters share; ``mapping`` holds the settings-mapping helpers.

The runtime finds an adapter through :mod:`eliza_nb.core.registry` by protocol name; this
package is never imported by ``eliza_nb.core``.
"""
