"""python -m jna_fast.export: the pt2 program and the ONNX graph against the eager model, their metadata, their
inputs and the command's errors.

Accuracy rule (after flash-attention, as tests/op_testing.py): an exported output's max error against the eager
model run in float64 must be at most twice the error of the plain-PyTorch eager model (reference ops) run in float32,
plus a floor of float32 rounding noise relative to the output's size, which only matters where both errors are
exactly 0 (masked attention, one-snippet clips). Fresh random inputs every run; the seed is in the message.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from op_testing import fresh_seed

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from jna_fast.checkpoint import save_checkpoint  # noqa: E402
from jna_fast.config import parse_args  # noqa: E402
from jna_fast.builders import build_model, data_settings  # noqa: E402
from jna_fast.inference import Predictor  # noqa: E402
from jna_fast.export import (ONNX_OPSET, PT2_METADATA_FILE, ExportError, check_inputs, export_model,  # noqa: E402
                             load_pt2, main, onnx_metadata)

# The floor of the accuracy rule, relative to the output's magnitude: ONNX Runtime sums the backbone's convolutions
# in another order than eager PyTorch, and where plain float32's own error is near zero (a softmax of two close
# scores, as the branch gate's) that reordering alone is a few float32 ulps.
RELATIVE_FLOOR = 4e-6
# (B, T): B = 1, T = 1, and T above and below the T the graph is traced with (3).
SHAPES = [(1, 1), (1, 5), (3, 2), (2, 7)]
SIZE, FLOW_LENGTH, CLASSES = 32, 2, 4
KINDS = {
    # JNA: both streams, cross-stitch after stages 3 and 4 (normalised), joint attention
    "jna": ["--streams", "both", "--share-after", "3,4", "--stitch-normalise", "--consensus", "attention"],
    # TSN: both streams apart, average consensus
    "tsn": ["--streams", "both", "--share-after", "", "--consensus", "average"],
    "rgb": ["--streams", "rgb", "--share-after", "", "--consensus", "average"],
    "flow": ["--streams", "flow", "--share-after", "", "--consensus", "average"],
    # The abstract's rejected designs (docs/design.md §2.8), each in TSN's place
    "fc_fusion": ["--streams", "both", "--share-after", "", "--consensus", "average", "--model.fusion.name",
                  "fully_connected", "--model.fusion.hidden", "16"],
    "branch_selection": ["--streams", "both", "--share-after", "", "--consensus", "average", "--model.fusion.name",
                         "branch_selection"],
    "spatial_attention": ["--streams", "both", "--share-after", "", "--consensus", "attention",
                          "--model.spatial_pooling.name", "attention"],
}
ALTERNATIVES = ("fc_fusion", "branch_selection", "spatial_attention")
# The crop size of each kind: SIZE (a one-position last feature map) but where the positions matter.
SIZES = {"spatial_attention": 96}
# The parameters that start at zero, drawn at random so that the export could get them wrong: the
# joint attention's vectors, the spatial attention's, the gate.
RANDOMISED = ("temporal_pooling.w_", "spatial_pooling.w_", "fusion.gate.")


def make_checkpoint(path, kind: str):
    """A checkpoint of an untrained ResNet-18 model whose every weight the export could get wrong is random: the
    temporal and spatial attention vectors (so the attention is far from uniform), the branch selection's gate
    (balanced to select either branch), the cross-stitch weights and statistics, BatchNorm's running statistics and
    affine weights, the classifiers' biases."""
    cfg = parse_args(["--root", str(path.parent / "no-data"), "--size", str(SIZES.get(kind, SIZE)),
                      "--num-segments", "3", "--flow-length", str(FLOW_LENGTH), "--out", str(path.parent / "run"),
                      *KINDS[kind]])
    model = build_model(cfg, CLASSES)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var") or name.endswith("running_rms"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 1.5 + 0.5)
            elif name.endswith(("running_mean", "bn1.bias", "bn2.bias", "bn3.bias", "fc_rgb.bias", "fc_flow.bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.1)
            elif name.endswith(("bn1.weight", "bn2.weight", "bn3.weight")):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("alpha"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen))
            elif name.startswith(RANDOMISED):
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 3 / tensor.shape[-1] ** 0.5)
        if kind == "branch_selection":
            balance_gate(model, kind, gen)
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(),
                           "class_names": [f"class{i}" for i in range(CLASSES)], "data": data_settings(cfg)})
    return path


def balance_gate(model, kind, gen):
    """Scale and shift the gate so that, on random inputs, its two scores differ by about 1 either way: an untrained
    network pools nearly the same features from any input, and a random gate would select one branch for all."""
    model.eval()
    inputs = random_inputs(kind, 8, 3, gen)
    gate = model(inputs["rgb"], inputs["flow"], inputs["mask"]).branch_gate
    difference = (gate[:, 0] / gate[:, 1]).log()  # the gate's score of RGB minus that of flow
    model.fusion.gate.weight.div_(difference.std())
    model.fusion.gate.bias.div_(difference.std())
    shift = difference.median() / difference.std() / 2
    model.fusion.gate.bias.add_(torch.stack([-shift, shift]))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def checkpoints(folder):
    return {kind: make_checkpoint(folder / f"{kind}.pt", kind) for kind in KINDS}


@pytest.fixture(scope="module")
def exported(folder, checkpoints):
    """(kind, format) -> path of the exported file, made on first use."""
    made = {}

    def get(kind, format):
        if (kind, format) not in made:
            path = folder / f"{kind}.{format}"
            export_model(checkpoints[kind], format, path)
            made[kind, format] = path
        return made[kind, format]

    return get


def random_inputs(kind, batch, segments, gen):
    """Inputs as the data gives them (normalised RGB, flow in [-1, 1]) and a mask whose rows have a random number
    of real snippets, the last row padded whenever it can be."""
    size = SIZES.get(kind, SIZE)
    rgb = torch.randn(batch, segments, 3, size, size, generator=gen)
    flow = torch.rand(batch, segments, 2 * FLOW_LENGTH, size, size, generator=gen) * 2 - 1
    lengths = torch.randint(1, segments + 1, (batch, 1), generator=gen)
    lengths[-1] = max(1, segments - 1)
    mask = torch.arange(segments).unsqueeze(0) < lengths
    inputs = {"rgb": rgb, "flow": flow, "mask": mask}
    names = {"rgb": ("rgb",), "flow": ("flow",)}.get(kind, ("rgb", "flow"))
    return {name: inputs[name] for name in (*names, "mask")}


def eager_outputs(model, inputs, dtype):
    """The eager model's outputs, in the exported order (``model.outputs()``), computed in ``dtype`` (float64: the
    truth)."""
    model = model.to(dtype)
    cast = {name: value.to(dtype) if value.is_floating_point() else value for name, value in inputs.items()}
    with torch.no_grad():
        out = model(cast.get("rgb"), cast.get("flow"), cast["mask"])
    return [getattr(out, name).double() for name in model.outputs()]


def runner(format, path):
    """A function from the inputs to the exported model's outputs (float64 tensors)."""
    if format == "pt2":
        module = load_pt2(path)[0].module()

        def run(inputs):
            with torch.no_grad():
                return [t.double() for t in module(*inputs.values())]

        return run
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda inputs: [torch.from_numpy(o).double()
                           for o in session.run(None, {name: value.numpy() for name, value in inputs.items()})]


@pytest.mark.slow
@pytest.mark.parametrize("kind,format", [("jna", "pt2"), ("jna", "onnx"), ("tsn", "pt2"), ("rgb", "onnx"),
                                         ("flow", "pt2"), *((kind, format) for kind in ALTERNATIVES
                                                            for format in ("pt2", "onnx"))])
def test_parity_with_eager(kind, format, checkpoints, exported, monkeypatch):
    run = runner(format, exported(kind, format))
    model = Predictor.from_checkpoint(checkpoints[kind]).model
    names = list(model.outputs())
    assert names[:2] == ["logits", {"rgb": "logits_rgb", "flow": "logits_flow"}.get(kind, "logits_rgb")]
    assert names[-1] == {"branch_selection": "branch_gate", "spatial_attention": "spatial_attention"}.get(
        kind, "attention")
    seed = fresh_seed()
    gen = torch.Generator().manual_seed(seed)
    spreads, spatial_spreads, selections = [], [], []
    for batch, segments in SHAPES:
        inputs = random_inputs(kind, batch, segments, gen)
        got = run(inputs)
        # Plain PyTorch: the eager model on the reference ops, in float32 and in float64.
        monkeypatch.setenv("JNA_FAST_BACKEND", "reference")
        truth = eager_outputs(model, inputs, torch.float64)
        plain = eager_outputs(model, inputs, torch.float32)
        monkeypatch.delenv("JNA_FAST_BACKEND")
        assert len(got) == len(names)
        for name, g, t, p in zip(names, got, truth, plain):
            assert g.shape == t.shape, (name, g.shape, t.shape)
            error = (g - t).abs().max().item()
            allowed = 2 * (p - t).abs().max().item() + RELATIVE_FLOOR * max(1.0, t.abs().max().item())
            assert error <= allowed, (f"{kind} {format} B={batch} T={segments} {name}: error {error:.3g} against "
                                      f"float64, allowed {allowed:.3g} (seed {seed})")
        outputs = dict(zip(names, got))
        assert torch.all(outputs["attention"][~inputs["mask"]] == 0)
        spreads += [(row[real].max() - row[real].min()).item()
                    for row, real in zip(outputs["attention"], inputs["mask"])]
        if kind == "spatial_attention":
            maps = outputs["spatial_attention"]
            assert maps.shape == (batch, segments, 3, 3)
            spatial_spreads.append((maps.flatten(2).amax(-1) - maps.flatten(2).amin(-1)).max().item())
        if kind == "branch_selection":  # the logits are the selected branch's, clip by clip
            rgb = outputs["branch_gate"][:, 0] >= outputs["branch_gate"][:, 1]
            selections += rgb.tolist()
            selected = torch.where(rgb.unsqueeze(1), outputs["logits_rgb"], outputs["logits_flow"])
            assert torch.equal(outputs["logits"], selected)
    if kind in ("jna", "spatial_attention"):  # the test's attention vectors make the attention far from uniform
        assert max(spreads) > 0.05, spreads
    if kind == "spatial_attention":
        assert max(spatial_spreads) > 0.05, spatial_spreads
    if kind == "branch_selection":  # the test's gate selects each branch for some clips
        assert 0 < sum(selections) < len(selections), selections


def test_onnx_standard_ops_and_metadata(exported):
    proto = onnx.load(str(exported("jna", "onnx")))
    onnx.checker.check_model(proto, full_check=True)
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}
    assert {(entry.domain, entry.version) for entry in proto.opset_import} == {("", ONNX_OPSET)}
    shapes = {value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
              for value in (*proto.graph.input, *proto.graph.output)}
    assert shapes == {"rgb": ["batch", "segments", 3, SIZE, SIZE],
                      "flow": ["batch", "segments", 2 * FLOW_LENGTH, SIZE, SIZE], "mask": ["batch", "segments"],
                      "logits": ["batch", CLASSES], "logits_rgb": ["batch", CLASSES],
                      "logits_flow": ["batch", CLASSES], "attention": ["batch", "segments"]}
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    metadata = onnx_metadata(session)
    assert metadata == onnx_metadata(proto)
    assert metadata["class_names"] == [f"class{i}" for i in range(CLASSES)]
    assert metadata["onnx_opset"] == ONNX_OPSET and metadata["exported_as"] == "onnx"
    data = metadata["data"]
    assert (data["size"], data["flow_length"]) == (SIZE, FLOW_LENGTH)
    assert data["rgb_mean"] == [0.485, 0.456, 0.406] and data["rgb_std"] == [0.229, 0.224, 0.225]
    assert data["flow_centre"] == 127.5 and data["flow_bound"] == 20.0
    assert type(data["short_side"]) is int and data["short_side"] >= SIZE  # the frames' scale before the crops
    assert list(metadata["inputs"]) == ["rgb", "flow", "mask"]
    assert list(metadata["outputs"]) == ["logits", "logits_rgb", "logits_flow", "attention"]


def test_pt2_keeps_fused_ops_and_metadata(exported):
    program, metadata = load_pt2(exported("jna", "pt2"))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert {"jna_fast.cross_stitch.default", "jna_fast.joint_attention_pool.default"} <= targets
    assert metadata["exported_as"] == "pt2" and "onnx_opset" not in metadata
    assert metadata["class_names"] == [f"class{i}" for i in range(CLASSES)]
    assert metadata["data"]["size"] == SIZE and metadata["inputs"]["flow"]["shape"][2] == 2 * FLOW_LENGTH
    # and the same file read with torch alone, the extension imported
    extra = {PT2_METADATA_FILE: ""}
    torch.export.load(exported("jna", "pt2"), extra_files=extra)
    assert json.loads(extra[PT2_METADATA_FILE]) == metadata


@pytest.mark.parametrize("first", ["jna_fast", "torch"])
def test_pt2_loads_after_import_jna_fast(exported, first):
    """``import jna_fast`` alone registers the fused ops, before or after torch is imported, without importing
    Triton, OpenCV or PyAV: a fresh process loads and runs the exported program."""
    second = "torch" if first == "jna_fast" else "jna_fast"
    code = (f"import sys, {first}, {second}\n"
            f"imported = sorted({{'triton', 'cv2', 'av'}} & set(sys.modules))\n"
            f"program = torch.export.load(sys.argv[1])\n"
            f"rgb, flow = torch.zeros(1, 2, 3, {SIZE}, {SIZE}), torch.zeros(1, 2, {2 * FLOW_LENGTH}, {SIZE}, {SIZE})\n"
            f"logits = program.module()(rgb, flow, torch.ones(1, 2, dtype=torch.bool))[0]\n"
            f"print(tuple(logits.shape), imported)")
    result = subprocess.run([sys.executable, "-c", code, str(exported("jna", "pt2"))], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"(1, {CLASSES}) []"


def test_the_outputs_of_the_alternatives(exported):
    """The spatial maps and the gate are outputs of their models, named and described in the metadata."""
    session = ort.InferenceSession(str(exported("spatial_attention", "onnx")), providers=["CPUExecutionProvider"])
    assert [(o.name, o.shape) for o in session.get_outputs()][-1] == ("spatial_attention",
                                                                      ["batch", "segments", 3, 3])
    metadata = onnx_metadata(exported("spatial_attention", "onnx"))
    assert list(metadata["outputs"]) == ["logits", "logits_rgb", "logits_flow", "attention", "spatial_attention"]
    assert "scored by both branches" in metadata["outputs"]["spatial_attention"]
    assert metadata["parts"]["spatial_pooling"] == {"name": "attention", "options": {}}
    program, metadata = load_pt2(exported("branch_selection", "pt2"))
    assert list(metadata["outputs"]) == ["logits", "logits_rgb", "logits_flow", "attention", "branch_gate"]
    assert "g = softmax(Linear(2C, 2)" in metadata["outputs"]["logits"]
    assert len(program.graph_signature.user_outputs) == 5
    metadata = onnx_metadata(exported("fc_fusion", "onnx"))
    assert metadata["parts"]["fusion"]["options"] == {"hidden": 16, "dropout": 0.5, "aux_loss_weight": 0.5}


def test_one_stream_inputs(exported):
    session = ort.InferenceSession(str(exported("rgb", "onnx")), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["rgb", "mask"]
    assert [o.name for o in session.get_outputs()] == ["logits", "logits_rgb", "attention"]
    program, metadata = load_pt2(exported("flow", "pt2"))
    assert list(program.graph_signature.user_inputs) == ["flow", "mask"]
    assert list(metadata["inputs"]) == ["flow", "mask"] and metadata["streams"] == "flow"
    assert list(metadata["outputs"]) == ["logits", "logits_flow", "attention"]


def test_wrong_inputs_are_refused(exported):
    gen = torch.Generator().manual_seed(0)
    good = random_inputs("jna", 2, 4, gen)
    wrong_channels = {**good, "rgb": torch.randn(2, 4, 4, SIZE, SIZE)}
    wrong_mask_t = {**good, "mask": torch.ones(2, 3, dtype=torch.bool)}
    wrong_flow_t = {**good, "flow": torch.zeros(2, 5, 2 * FLOW_LENGTH, SIZE, SIZE)}
    empty_row = {**good, "mask": torch.tensor([[True] * 4, [False] * 4])}

    program, metadata = load_pt2(exported("jna", "pt2"))
    module = program.module()
    check_inputs(metadata, good)
    module(*good.values())
    with pytest.raises(AssertionError, match=r"rgb.size\(\)\[2\] == 3"):
        module(*wrong_channels.values())
    with pytest.raises(AssertionError, match=r"mask.size\(\)\[1\] == rgb.size\(\)\[1\]"):
        module(*wrong_mask_t.values())
    with pytest.raises(ValueError, match="mask: rows \\[1\\] are all False"):  # the fused op's own check
        module(*empty_row.values())

    path = exported("jna", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = onnx_metadata(path)
    feed = lambda inputs: {name: value.numpy() for name, value in inputs.items()}  # noqa: E731
    check_inputs(metadata, feed(good))
    session.run(None, feed(good))
    with pytest.raises(Exception, match="invalid dimensions for input: rgb"):
        session.run(None, feed(wrong_channels))
    # ONNX Runtime does not check that inputs agree on a named dimension: it fails inside the graph, or
    # check_inputs says what is wrong first
    for wrong in (wrong_mask_t, wrong_flow_t):
        with pytest.raises(Exception, match="ONNXRuntimeError"):
            session.run(None, feed(wrong))
    with pytest.raises(ExportError, match=r"rgb: expected shape \[batch, segments, 3, 32, 32\], got \[2, 4, 4, 32"):
        check_inputs(metadata, feed(wrong_channels))
    with pytest.raises(ExportError, match="mask: expected shape \\[batch, segments\\] with segments = 4 as in rgb"):
        check_inputs(metadata, feed(wrong_mask_t))
    with pytest.raises(ExportError, match="flow: expected .* segments = 4 as in rgb, got \\[2, 5"):
        check_inputs(metadata, wrong_flow_t)
    with pytest.raises(ExportError, match="mask: rows \\[1\\] are all False"):
        check_inputs(metadata, feed(empty_row))
    with pytest.raises(ExportError, match="mask: expected bool, got float32"):
        check_inputs(metadata, {**feed(good), "mask": np.ones((2, 4), np.float32)})
    with pytest.raises(ExportError, match=r"missing \['flow'\]"):
        check_inputs(metadata, {"rgb": good["rgb"], "mask": good["mask"]})


def one_error_line(capsys, *expected):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(text in lines[0] for text in expected), lines[0]


def test_command(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main([str(tiny_checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"ONNX opset {ONNX_OPSET}" in printed
    assert "input  rgb" in printed and "input  mask" in printed and "input  flow" not in printed  # an RGB model
    assert onnx_metadata(out)["class_names"] == ["a", "b", "c"]
    assert [name for name in os.listdir(tmp_path)] == ["model.onnx"]  # no temporary left


def test_command_errors(tiny_checkpoint, tmp_path, capsys):
    assert main([str(tiny_checkpoint), "--out", str(tmp_path / "model.bin")]) == 2
    one_error_line(capsys, "--format", "model.bin")
    missing = tmp_path / "missing.pt"
    assert main([str(missing), "--out", str(tmp_path / "model.onnx")]) == 2
    one_error_line(capsys, str(missing), "no such checkpoint file")
    assert main([str(tiny_checkpoint), "--format", "pt2", "--out", str(tmp_path)]) == 2
    one_error_line(capsys, str(tmp_path), "folder")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main([str(tiny_checkpoint), "--format", "pt2", "--out", str(blocker / "model.pt2")]) == 2
    one_error_line(capsys, str(blocker / "model.pt2"))  # the folder cannot be made: named, not a traceback


class RunsCode:
    """A pickle payload: unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_command_never_unpickles(tiny_checkpoint, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["class_names"] = RunsCode(marker)
    crafted = tmp_path / "crafted.pt"
    torch.save(state, crafted)
    assert main([str(crafted), "--out", str(tmp_path / "model.onnx")]) == 2
    one_error_line(capsys, str(crafted), "refused")
    assert not marker.exists()
    assert not (tmp_path / "model.onnx").exists()


def test_model_does_not_import_export():
    """The export sits above the model: importing the model (and training) never loads it."""
    code = "import sys, jna_fast.models, jna_fast.train; print('jna_fast.export' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.stdout.strip() == "False"
