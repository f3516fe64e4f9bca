"""The optical-flow algorithms by name, and the defaults of extraction and of flow computed on the fly
(docs/design.md §6.2); standard library only, so that the configuration lists them without loading OpenCV."""

ALGORITHMS = ("tvl1", "dis", "farneback", "nvof")
"""The flow algorithms by name: TV-L1 and DIS and Farneback (OpenCV), NVIDIA optical flow (DALI, on a GPU)."""
DEFAULT_EXTRACTION_ALGORITHM = "tvl1"
"""Flow extracted once to disk (python -m jna_fast.flow extract) can afford the slow, reference algorithm."""
DEFAULT_ONLINE_ALGORITHM = "dis"
"""Flow computed per clip while training or predicting must keep up with the model (jna_fast/flow/algorithms.py)."""
