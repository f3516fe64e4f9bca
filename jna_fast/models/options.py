"""The model section's own options (those of no single part) and the parts chosen by default
(docs/design.md §2.6). Standard library only: the configuration reads it at import."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import option

STREAMS = ("both", "rgb", "flow")
# The part of each kind a configuration gets unless it names another: today's JNA.
DEFAULT_PARTS = {"backbone": "resnet50", "sharing": "cross_stitch", "spatial_pooling": "average",
                 "temporal_pooling": "joint_attention", "fusion": "late_scores"}


@dataclass(frozen=True)
class ModelOptions:
    streams: str = option("both", "which branches: both (two-stream), or one alone", choices=STREAMS)
    flow_length: int = option(5, "L flow fields per stack", minimum=1)
    dropout: float = option(0.5, "dropout before the classifiers", minimum=0, below=1)
    # The ops' registry fills the choices (jna_fast/ops/backends.py).
    op_backend: str | None = option(None, "force the fused ops' backend (default: the best available)",
                                    resumable=True)
