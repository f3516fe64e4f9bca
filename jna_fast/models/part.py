"""What every model part shares (docs/design.md §2.7): the base class, the context a part is built in, and the
parameters a part asks the trainer to schedule on their own.

A part is an ``nn.Module`` registered under a kind and a name (:mod:`jna_fast.models.registry`), built as
``cls(options, context)`` (a backbone: ``cls(options, in_channels)``), with its options in its ``Options``
dataclass. Its kind fixes what its ``forward`` takes and returns; each part's docstring states it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .backbone import Backbone


@dataclass(frozen=True)
class PartContext:
    """What a part is built for: the branches it serves (``("rgb", "flow")``, ``("rgb",)`` or ``("flow",)``), one
    branch's backbone (its stages and their channels), the channels of a snippet's features after the spatial
    pooling, the number of classes and the fused ops' backend (None: the best available)."""

    branches: tuple[str, ...]
    backbone: Backbone
    channels: int
    num_classes: int
    backend: str | None = None


@dataclass(frozen=True)
class ScheduledParameters:
    """Parameters with a learning-rate schedule of their own: an optimiser group ``name`` (also the name of the
    group in optimiser states), learning at ``lr_scale`` times the rate after staying at their initial values for
    the ``warmup`` share of all training steps; never weight-decayed."""

    name: str
    params: tuple[nn.Parameter, ...]
    lr_scale: float
    warmup: float


class Part(nn.Module):
    """Base of the model parts. ``NEEDS_BOTH_STREAMS``: the part combines the two branches and cannot serve one
    alone."""

    NEEDS_BOTH_STREAMS = False

    def scheduled_parameters(self) -> list[ScheduledParameters]:
        """The part's parameters that the trainer schedules on their own (none by default)."""
        return []

    def describe(self) -> dict:
        """What the part adds to a model's description (export metadata): JSON values by key."""
        return {}

    def outputs(self) -> tuple[str, ...]:
        """The fields of :class:`jna_fast.models.JNAOutput` beyond its kind's contract that the part fills (the
        spatial attention's maps, the branch selection's gate), in the order the network lists them (none by
        default)."""
        return ()

    def auxiliary_loss(self, output, target: torch.Tensor) -> torch.Tensor | None:
        """A term the part adds to the training loss (None: none)."""
        return None


class UsesOps:
    """Mixin of a part that calls the fused ops (jna_fast.ops): its ``backend`` attribute chooses theirs, and
    export sets it to the one that traces the registered op schemas."""

    backend: str | None = None


def schedule(name: str, parameters, lr_scale: float, warmup: float) -> list[ScheduledParameters]:
    """One scheduled group of the parameters that learn, or none when none does."""
    learning = tuple(p for p in parameters if p.requires_grad)
    return [ScheduledParameters(name, learning, float(lr_scale), float(warmup))] if learning else []
