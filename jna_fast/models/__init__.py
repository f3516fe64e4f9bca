"""The model: parts chosen by name from registries (:mod:`jna_fast.models.registry`, the parts in
:mod:`jna_fast.models.parts`) composed by :class:`Network`; :class:`JNA` builds it from keyword arguments
(docs/design.md §2)."""

from . import parts  # noqa: F401  (registers every part)
from .backbone import Backbone
from .jna import JNA, CrossStitch, JointTemporalAttention
from .migrate import migrate_state_dict
from .network import JNAOutput, ModelConfig, Network, PartChoice, build_model, part
from .part import Part, PartContext, ScheduledParameters, UsesOps
from .resnet import ResNet, cross_modality_conv1

__all__ = ["JNA", "JNAOutput", "CrossStitch", "JointTemporalAttention", "ResNet", "cross_modality_conv1", "Backbone",
           "Network", "ModelConfig", "PartChoice", "build_model", "part", "migrate_state_dict", "Part", "PartContext",
           "ScheduledParameters", "UsesOps"]
