"""Reading the input files, below both the data pipeline and the flow extraction: video probing and decoding with
PyAV (``jna_fast.io.video``, the colour conversion both share) and the errors about bad input with the
on_error="raise"|"skip" policy (``jna_fast.io.errors``). Nothing here imports torch, ``jna_fast.data`` or
``jna_fast.flow``, so that ``python -m jna_fast.flow`` and its worker processes stay light.
"""
