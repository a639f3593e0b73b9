"""Embeddings: the batching, de-duplicating, single-flight service over the cache
(``service``), vector validation and normalization (``vectors``) and cosine search
(``similarity``)."""
