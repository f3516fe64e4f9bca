"""Export a trained checkpoint for deployment: ``python -m jna_fast.export CHECKPOINT --format {pt2,onnx} --out FILE``.

- ``pt2``: a ``torch.export`` program of the inference model, saved with ``torch.export.save``. The two fused ops stay
  the registered ``jna_fast`` ops (their fake kernels let torch.export trace them), so running it needs jna_fast's
  compiled extension: ``import jna_fast.ops`` before ``torch.export.load`` (or use :func:`load_pt2`). The data
  settings and class names are in the archive's extra file ``jna_fast.json``.
- ``onnx``: standard ONNX ops only (opset :data:`ONNX_OPSET`): the two ops are lowered to their pure-PyTorch
  reference (jna_fast/ops/reference.py) before translation, so no custom domain remains and any ONNX runtime
  runs it. The same settings are in the model's ``metadata_props``, one key per entry, each value JSON.

Inputs, all float32 except the mask, with a dynamic batch and number of snippets (``batch``, ``segments``) and the
training crop size: ``rgb [batch, segments, 3, size, size]``, ``flow [batch, segments, 2L, size, size]`` and
``mask [batch, segments]`` bool (False: a padding snippet; every clip needs one True). A one-stream checkpoint
(``--streams rgb`` or ``flow``) takes only its stream and the mask. Outputs: ``logits`` (fused), the logits of each
branch the model has (``logits_rgb``, ``logits_flow``) and ``attention`` (``[batch, segments]``, 0 at padding; the
uniform average over the real snippets for average consensus and one-stream models), then, where the model's parts
give them, ``spatial_attention`` (``[batch, segments, height, width]``: the spatial pooling ``attention``'s maps)
and ``branch_gate`` (``[batch, 2]``: the fusion ``branch_selection``'s weights). The inputs and outputs are
the model's own (``model.inputs()``, ``model.outputs()``), and what its parts say of themselves (``model.describe()``:
the fusion's formula, the consensus, the parts and their options) goes into the metadata.

Input checks: the pt2 program's module checks every input's shape (torch.export's guards: channels, crop size,
one batch and one number of snippets), and the fused op rejects an all-False mask row. The ONNX graph can check
nothing: ONNX Runtime checks the declared channel and crop sizes, not that rgb, flow and mask agree on batch and
segments, and an all-False mask row gives zeros. :func:`check_inputs` checks a feed against the metadata and names
the input that is wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import json
import logging
import re
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from . import __version__
from ._ext import extension_status
from ._optional import require
from .cli import add_debug_option, check_output_file, run_command
from .data.transforms import DEFAULT_TEST_CROP_SCALE, FLOW_CENTRE, IMAGENET_MEAN, IMAGENET_STD
from .errors import JnaFastError
from .files import write_atomically
from .inference import Predictor
from .models import UsesOps
from .ops import cross_stitch_ref, joint_attention_pool_ref

__all__ = ["ExportError", "check_inputs", "deployment_metadata", "export_model", "export_onnx",
           "export_program", "load_pt2", "onnx_metadata"]
FORMATS, SUFFIXES = ("pt2", "onnx"), {".pt2": "pt2", ".onnx": "onnx"}
# The ONNX opset the graph is written in: 18 is served by ONNX Runtime since 1.14 and by most other runtimes.
ONNX_OPSET = 18
METADATA_FORMAT, METADATA_VERSION = "jna_fast/export", 1
PT2_METADATA_FILE = "jna_fast.json"
DYNAMIC_DIMS = ("batch", "segments")
# The example shapes the graph is traced with. Neither is 0 or 1 (torch.export would specialise the graph to such
# a size) and they differ, so that torch.export does not take batch and segments for one dimension.
EXAMPLE_BATCH, EXAMPLE_SEGMENTS = 2, 3


class ExportError(JnaFastError, ValueError):
    """A model that cannot be exported as asked, or a feed that does not fit an exported model."""


def input_names(model) -> tuple[str, ...]:
    """The exported inputs, in order: the model's own (``model.inputs()``)."""
    return tuple(model.inputs())


def output_names(model) -> tuple[str, ...]:
    """The exported outputs, in order: the model's own (``model.outputs()``)."""
    return tuple(model.outputs())


def _graph_module(model):
    """The model as a module of tensors in, a tuple of tensors out, its ``forward`` taking the inputs by the names
    the model gives them (torch.export names the program's inputs after them)."""
    names, outputs = input_names(model), output_names(model)

    class Graph(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            given = dict(zip(names, tensors))
            out = self.model(given.get("rgb"), given.get("flow"), given["mask"])
            return tuple(getattr(out, name) for name in outputs)

    parameters = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("self", *names)]
    Graph.forward.__signature__ = inspect.Signature(parameters)
    return Graph().eval()


def _input_shapes(model, size: int) -> dict[str, list]:
    """Each input's shape, the dynamic dimensions by name."""
    return {name: [*DYNAMIC_DIMS] if channels is None else [*DYNAMIC_DIMS, channels, size, size]
            for name, channels in model.inputs().items()}


def _crop_size(size: int | None) -> int:
    if size is None:
        raise ExportError("size: give the crop size the model was trained at (a Predictor's "
                          "data_settings['size'])")
    if int(size) < 32:
        raise ExportError(f"size: must be an integer >= 32 (the backbones reduce their input 32 times), got {size}")
    return int(size)


def _require_extension(what: str) -> None:
    status = extension_status()
    if not status.loaded or "cpu" not in status.compiled_backends:
        reason = status.error or "built without them"
        raise ExportError(f"{what} traces the fused jna_fast ops through their registered schemas, which needs "
                          f"jna_fast's compiled extension with its CPU kernels ({reason}); build it against the "
                          f"installed torch with pip install --no-build-isolation -e .")


def export_program(model, size: int):
    """``torch.export`` of ``model`` (a :class:`jna_fast.models.Network`) for inference: a
    ``torch.export.ExportedProgram`` whose inputs are named as :func:`input_names` says, with dynamic ``batch`` and ``segments``, returning the
    tuple :func:`output_names` names. The fused ops are kept as ``torch.ops.jna_fast.*`` nodes. ``size``: the crop
    size it was trained at. ``model`` itself is not changed."""
    _require_extension("export")
    size = _crop_size(size)
    model = copy.deepcopy(model).float().cpu().eval()
    for module in model.modules():
        # Trace the registered ops whatever backend the model was trained with: the cpp backend calls exactly the
        # torch.ops.jna_fast schemas, which dispatch by device when the program runs (CPU or CUDA kernels).
        if isinstance(module, UsesOps):
            module.backend = "cpp"
    graph = _graph_module(model)
    generator = torch.Generator().manual_seed(0)
    shapes = {name: [EXAMPLE_BATCH, EXAMPLE_SEGMENTS, *shape[2:]] for name, shape in _input_shapes(model, size).items()}
    example = tuple(torch.ones(shape, dtype=torch.bool) if name == "mask" else torch.randn(shape, generator=generator)
                    for name, shape in shapes.items())
    dims = {dim: torch.export.Dim(dim, min=1) for dim in DYNAMIC_DIMS}
    dynamic = {name: {0: dims["batch"], 1: dims["segments"]} for name in shapes}
    with _quiet_torch_internals():
        return torch.export.export(graph, example, dynamic_shapes=dynamic)


@contextlib.contextmanager
def _quiet_torch_internals():
    """Hides torch's own deprecation notice about its pytree internals, raised inside torch.export's copies and
    saves: nothing a user of jna_fast can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                category=FutureWarning)
        yield


def reference_decompositions() -> dict:
    """The decomposition table that lowers the two fused ops to their pure-PyTorch reference. The reference's
    all-False-mask check is left out: it depends on the data, and a graph cannot raise (:func:`check_inputs` does)."""
    return {torch.ops.jna_fast.cross_stitch.default: cross_stitch_ref,
            torch.ops.jna_fast.joint_attention_pool.default: joint_attention_pool_ref}


def export_onnx(model, size: int, metadata: dict | None = None):
    """An ``onnx.ModelProto`` of ``model`` in standard ONNX ops (opset :data:`ONNX_OPSET`), inputs and outputs as
    :func:`export_program`, the dynamic dimensions named ``batch`` and ``segments``; ``metadata`` (of a trained
    model: :func:`deployment_metadata`) goes into ``metadata_props``, each value JSON-encoded. Checked with
    ``onnx.checker.check_model``."""
    require("ONNX export", "onnx", "onnxscript")
    import onnx

    with _quiet_torch_internals():
        program = export_program(model, size).run_decompositions(reference_decompositions())
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # its warnings are about torchvision ops this model does not use
    try:
        with _quiet_torch_internals():
            onnx_program = torch.onnx.export(program, dynamo=True, opset_version=ONNX_OPSET, verbose=False,
                                             input_names=list(input_names(model)),
                                             output_names=list(output_names(model)))
    finally:
        registration.setLevel(level)
    proto = onnx_program.model_proto
    nodes = [*proto.graph.node, *(node for function in proto.functions for node in function.node)]
    domains = {node.domain for node in nodes} | {entry.domain for entry in proto.opset_import}
    foreign = sorted(domains - {"", "ai.onnx"})
    if foreign:
        raise ExportError(f"the ONNX graph uses the non-standard domains {foreign}; jna_fast exports only "
                          f"standard ops")
    _name_dynamic_dims(proto, program)
    proto.producer_name, proto.producer_version = "jna_fast", __version__
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    onnx.checker.check_model(proto)
    return proto


def _name_dynamic_dims(proto, program) -> None:
    """torch.export calls the dynamic dimensions s0, s1, ...; give them their names in every declared shape."""
    placeholders = [node for node in program.graph.nodes if node.op == "placeholder"]
    user_inputs = [node for node in placeholders if node.name in program.graph_signature.user_inputs]
    names = {}
    for node in user_inputs[:1]:
        shape = node.meta["val"].shape
        for axis, dim in enumerate(DYNAMIC_DIMS):
            names[str(shape[axis])] = dim
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b") if names else None
    for value in (*proto.graph.input, *proto.graph.output, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param and pattern is not None:
                dim.dim_param = pattern.sub(lambda match: names[match[1]], dim.dim_param)


def deployment_metadata(predictor: Predictor, exported_as: str) -> dict:
    """What a user needs to feed an exported model and read its outputs, from a trained model (its class names,
    configuration and data settings)."""
    model, settings, class_names = predictor.model, predictor.data_settings, predictor.class_names
    if settings is None:
        raise ExportError("the checkpoint carries no data settings (crop size, flow algorithm and bound, flips): "
                          "export a checkpoint written by python -m jna_fast.train")
    size = _crop_size(settings["size"])
    described = model.describe()
    inputs = {
        "rgb": {"shape": None, "dtype": "float32",
                "values": "RGB frame of the snippet, channels R, G, B: (x / 255 - rgb_mean) / rgb_std"},
        "flow": {"shape": None, "dtype": "float32",
                 "values": f"flow_length = {model.flow_length} flow fields from the snippet's frame on, channels "
                           f"x0, y0, x1, y1, ...: each 8-bit flow value v (the flow in pixels, clipped to "
                           f"+-flow_bound, mapped to 0..255) as (v - {FLOW_CENTRE}) / {FLOW_CENTRE}, in [-1, 1]"},
        "mask": {"shape": None, "dtype": "bool",
                 "values": "True for a real snippet, False for padding; every clip needs at least one True"},
    }
    for name, shape in _input_shapes(model, size).items():
        inputs[name]["shape"] = shape
    outputs = {"logits": f"[batch, {model.num_classes}] fused class scores: "
                         f"{described.pop('fusion', described['parts']['fusion']['name'])}",
               "logits_rgb": f"[batch, {model.num_classes}] the RGB branch's class scores",
               "logits_flow": f"[batch, {model.num_classes}] the flow branch's class scores",
               "attention": f"[batch, segments] float32 weight of each snippet, rows sum to 1, 0 at padding: "
                            f"{described.pop('attention', described['parts']['temporal_pooling']['name'])}",
               "spatial_attention": "[batch, segments, height, width] float32 weight of each position of each "
                                    "snippet's last feature map, each map sums to 1: "
                                    f"{described.pop('spatial_attention', '')}",
               "branch_gate": "[batch, 2] float32 weights of the RGB and flow branches, rows sum to 1; the fused "
                              "scores are those of the branch of the higher weight (RGB on a tie)"}
    return {
        "format": METADATA_FORMAT, "version": METADATA_VERSION, "jna_fast_version": __version__,
        "exported_as": exported_as, **({"onnx_opset": ONNX_OPSET} if exported_as == "onnx" else {}),
        "class_names": list(class_names), "num_classes": model.num_classes, **described,
        "inputs": {name: inputs[name] for name in input_names(model)},
        "outputs": {name: outputs[name] for name in output_names(model)},
        "data": {"size": size, "flow_length": model.flow_length, "rgb_mean": list(IMAGENET_MEAN),
                 "rgb_std": list(IMAGENET_STD), "flow_centre": FLOW_CENTRE, "flow_bound": settings["flow_bound"],
                 "flow_algorithm": settings["flow_algorithm"], "flip": settings["flip"],
                 "test_segments": predictor.config.eval.segments, "test_crop_scale": DEFAULT_TEST_CROP_SCALE,
                 "short_side": predictor.short_side,
                 "snippet": "frames decoded with their short side resized to short_side (the flow computed on "
                            "them); T evenly spaced snippets; snippet t is RGB frame i with flow fields i .. i+L-1; "
                            "each view a square of test_crop_scale times the short side, resized to size x size"},
    }


def export_model(checkpoint: str | Path, format: str, out: str | Path) -> dict:
    """Export the model of a checkpoint for serving, written atomically.

    Args:
        checkpoint: a file of ``python -m jna_fast.train``, read with ``torch.load(weights_only=True)``.
        format: ``"pt2"`` (``torch.export``, the fused ops kept) or ``"onnx"`` (standard ONNX ops, opset 18).
        out: the file to write.

    Returns:
        The metadata stored with the model (class names, inputs, outputs, what feeding needs).

    Raises:
        ExportError: an unknown format (a checkpoint that cannot be loaded: ``CheckpointError``).
    """
    if format not in FORMATS:
        raise ExportError(f"format: expected one of {', '.join(FORMATS)}, got {format!r}")
    check_output_file(out, "--out")  # before the export's minutes, not after them
    predictor = Predictor.from_checkpoint(checkpoint)
    metadata = deployment_metadata(predictor, format)
    size = metadata["data"]["size"]
    if format == "pt2":
        program = export_program(predictor.model, size)
        extra = {PT2_METADATA_FILE: json.dumps(metadata, indent=1)}
        with _quiet_torch_internals():
            write_atomically(out, lambda handle: torch.export.save(program, handle, extra_files=extra))
    else:
        proto = export_onnx(predictor.model, size, metadata=metadata)
        write_atomically(out, lambda handle: handle.write(proto.SerializeToString()))
    return metadata


def load_pt2(path: str | Path) -> tuple[torch.export.ExportedProgram, dict]:
    """Load a ``.pt2`` written by [export_model][jna_fast.export.export_model] (traced and tested on CPU tensors).

    Args:
        path: the ``.pt2`` file.

    Returns:
        ``(program, metadata)``: ``program.module()(rgb, flow, mask)`` runs the ``ExportedProgram``.

    Raises:
        ExportError: an archive without jna_fast's metadata (not exported by jna_fast).
    """
    extra = {PT2_METADATA_FILE: ""}
    with _quiet_torch_internals():
        program = torch.export.load(path, extra_files=extra)
    if not extra[PT2_METADATA_FILE]:
        raise ExportError(f"{path}: no {PT2_METADATA_FILE} in the archive: not exported by jna_fast.export")
    return program, json.loads(extra[PT2_METADATA_FILE])


def onnx_metadata(model) -> dict:
    """The metadata of an exported ONNX model (a path, an ``onnx.ModelProto`` or an
    ``onnxruntime.InferenceSession``), JSON values decoded."""
    if hasattr(model, "get_modelmeta"):
        props = model.get_modelmeta().custom_metadata_map
    else:
        import onnx

        proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        props = {entry.key: entry.value for entry in proto.metadata_props}
    if props.get("format") != json.dumps(METADATA_FORMAT):
        raise ExportError(f"{model}: no jna_fast metadata: not exported by jna_fast.export")
    return {key: json.loads(value) for key, value in props.items()}


def check_inputs(metadata: dict, inputs: dict) -> None:
    """Check a feed (name -> numpy array or tensor) against an exported model's metadata: every input present and
    no other, the dtype, the declared channel and crop sizes, one batch and one number of snippets for all of
    them, and a real snippet in every clip. Raises :class:`ExportError` naming the input."""
    expected = metadata["inputs"]
    missing = [name for name in expected if name not in inputs]
    unknown = [name for name in inputs if name not in expected]
    if missing or unknown:
        raise ExportError(f"inputs: this {metadata['streams']} model takes {', '.join(expected)}; missing "
                          f"{missing}, not inputs of it {unknown}")
    dims: dict[str, tuple[int, str]] = {}
    for name, spec in expected.items():
        value = inputs[name]
        shape = tuple(int(size) for size in value.shape)
        dtype = str(value.dtype).removeprefix("torch.")
        wanted = "[" + ", ".join(map(str, spec["shape"])) + "]"
        if dtype != spec["dtype"]:
            raise ExportError(f"{name}: expected {spec['dtype']}, got {dtype}")
        if len(shape) != len(spec["shape"]):
            raise ExportError(f"{name}: expected shape {wanted}, got {list(shape)}")
        for axis, (size, want) in enumerate(zip(shape, spec["shape"])):
            if isinstance(want, str):
                first = dims.setdefault(want, (size, name))
                if size != first[0] or size < 1:
                    raise ExportError(f"{name}: expected shape {wanted} with {want} = {first[0]} as in "
                                      f"{first[1]}, got {list(shape)}")
            elif size != want:
                raise ExportError(f"{name}: expected shape {wanted}, got {list(shape)} (axis {axis})")
    mask = inputs["mask"]
    empty = [row for row in range(mask.shape[0]) if not bool(mask[row].any())]
    if empty:
        raise ExportError(f"mask: rows {empty[:8]} are all False; every clip needs at least one real snippet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jna_fast.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="best.pt or last.pt written by python -m jna_fast.train")
    parser.add_argument("--format", choices=FORMATS,
                        help="pt2 (torch.export, keeps the fused ops) or onnx (standard ops); default: from the "
                             "suffix of --out (.pt2, .onnx)")
    parser.add_argument("--out", required=True, help="the file to write (replaced atomically)")
    add_debug_option(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: _export_command(args), args.debug)


def _export_command(args: argparse.Namespace) -> None:
    format = args.format or SUFFIXES.get(Path(args.out).suffix.lower())
    if format is None:
        raise ExportError(f"--format: not given, and the suffix of --out {args.out!r} names no format "
                          f"(.pt2 or .onnx); give --format {' or '.join(FORMATS)}")
    metadata = export_model(args.checkpoint, format, args.out)
    opset = f", ONNX opset {metadata['onnx_opset']}" if format == "onnx" else ""
    print(f"wrote {args.out} ({format}{opset}): {metadata['backbone']}, streams {metadata['streams']}, "
          f"{metadata['consensus']} consensus, {metadata['num_classes']} classes", flush=True)
    for name, spec in metadata["inputs"].items():
        print(f"  input  {name:<12} {spec['dtype']:<8} [{', '.join(map(str, spec['shape']))}]", flush=True)
    for name, description in metadata["outputs"].items():
        print(f"  output {name:<12} {description}", flush=True)
    where = f"the archive's extra file {PT2_METADATA_FILE}" if format == "pt2" else "its metadata_props (JSON values)"
    print(f"  class names and data settings: in {where}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
