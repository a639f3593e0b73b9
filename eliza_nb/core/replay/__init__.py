"""Record and replay: a session's model calls written to an archive beside the notebook
and answered from it later with no key.

- ``archive``: the on-disk format (JSON lines + raw float32), load and save;
- ``match``: one-line explanations of why a request is not in an archive;
- ``tape``: the :class:`Recorder` and :class:`Replayer` the runtime's ladder consults.
"""
