"""The two-tier cache: a memory tier over a disk store, shared by embeddings and generations.

- ``tiers``: :class:`Cache`, the two tiers behind one interface, and the record format;
- ``memory``: the LRU/TTL memory tier;
- ``disk``: the SQLite store on disk (raw bytes only, never pickles);
- ``generations``: the opt-in generation cache keyed by the whole request, and single-flight.
"""
