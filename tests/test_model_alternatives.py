"""The abstract's rejected designs as parts (docs/design.md §2.8): the fusions ``fully_connected`` and
``branch_selection`` and the spatial pooling ``attention``, each against a plain-PyTorch reference written here
(shapes, T = 1, one-position maps, fp64 gradients, bf16 autocast), the branch selection's hard choice at evaluation,
the network's new outputs, checkpoints that round-trip and the evaluation's figures of them."""

import pytest
import torch
import torch.nn.functional as F

from jna_fast.builders import build_model as build_from_config, data_settings
from jna_fast.checkpoint import save_checkpoint
from jna_fast.config import parse_args
from jna_fast.data.batch import ClipBatch
from jna_fast.data.synthetic import SalientWindows
from jna_fast.evaluation import collect, summarize, write_outputs
from jna_fast.inference import Predictor
from jna_fast.models import ModelConfig, PartContext, build_model, part, registry
from jna_fast.ops import availability

CHANNELS, CLASSES = 6, 4
BACKENDS = [name for name in ("reference", "cpp") if availability(torch.device("cpu"))[name] is None]


def context(branches=("rgb", "flow"), channels=CHANNELS, classes=CLASSES, backend=None):
    backbone = registry.lookup("backbone", "resnet18")(registry.options("backbone", "resnet18")(), 3)
    return PartContext(branches, backbone, channels, classes, backend)


def make_part(kind, name, branches=("rgb", "flow"), backend=None, **options):
    return registry.lookup(kind, name)(part(kind, name, **options).options, context(branches, backend=backend))


def randomise(module, seed=0):
    """Every parameter of ``module`` drawn afresh (the gate and the scoring vectors start at zero)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen, dtype=parameter.dtype) * 0.7)
    return module


def branch_inputs(batch=3, segments=2, dtype=torch.float32, seed=1):
    gen = torch.Generator().manual_seed(seed)
    draw = lambda *shape: torch.randn(*shape, generator=gen, dtype=dtype)  # noqa: E731
    return (draw(batch, CHANNELS), draw(batch, CHANNELS)), (draw(batch, segments, CHANNELS),
                                                            draw(batch, segments, CHANNELS))


# --- fully_connected ---------------------------------------------------------------------------------------------
def fully_connected_reference(fusion, pooled, features):
    """The perceptron written out: Linear(2C, hidden), ReLU, Linear(hidden, K), without dropout."""
    def mlp(joined):
        hidden = F.relu(joined @ fusion.hidden.weight.T + fusion.hidden.bias)
        return hidden @ fusion.out.weight.T + fusion.out.bias

    branch = (pooled[0] @ fusion.fc_rgb.weight.T + fusion.fc_rgb.bias,
              pooled[1] @ fusion.fc_flow.weight.T + fusion.fc_flow.bias)
    return mlp(torch.cat(pooled, -1)), branch, mlp(torch.cat(features, -1))


@pytest.mark.parametrize("segments", [1, 3])
def test_fully_connected_is_the_perceptron_on_the_joined_features(segments):
    fusion = make_part("fusion", "fully_connected", hidden=5, dropout=0.5).eval()
    pooled, features = branch_inputs(segments=segments)
    logits, branch_logits, snippet_logits = fusion(pooled, features)
    expected, expected_branch, expected_snippets = fully_connected_reference(fusion, pooled, features)
    assert logits.shape == (3, CLASSES) and snippet_logits.shape == (3, segments, CLASSES)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(snippet_logits, expected_snippets)
    for got, want in zip(branch_logits, expected_branch):
        torch.testing.assert_close(got, want)
    # Training: dropout on the clip's hidden layer only; the snippets' logits stay the perceptron's without it.
    fusion.train()
    logits, _, snippet_logits = fusion(pooled, features)
    torch.testing.assert_close(snippet_logits, expected_snippets)
    assert not torch.allclose(logits, expected)
    assert fusion.outputs() == () and fusion.NEEDS_BOTH_STREAMS
    assert fusion.describe()["fusion"].startswith("Linear(5, K)")


def test_fully_connected_loss_keeps_the_branch_terms():
    model = build_model(model_config(fusion=part("fusion", "fully_connected", hidden=8, aux_loss_weight=0.25)),
                        CLASSES)
    out = model(*clips())
    target = torch.tensor([1, 3])
    ce = lambda logits: F.cross_entropy(logits.float(), target)  # noqa: E731
    torch.testing.assert_close(model.loss(out, target),
                               ce(out.logits) + 0.25 * (ce(out.logits_rgb) + ce(out.logits_flow)))


# --- branch_selection --------------------------------------------------------------------------------------------
def gate_reference(fusion, pooled):
    joined = torch.cat(pooled, -1)
    return (joined @ fusion.gate.weight.T + fusion.gate.bias).float().softmax(-1)


@pytest.mark.parametrize("segments", [1, 4])
def test_branch_selection_weighs_softly_in_training_and_selects_at_evaluation(segments):
    fusion = randomise(make_part("fusion", "branch_selection"))
    pooled, features = branch_inputs(batch=16, segments=segments)
    logits, (rgb, flow), snippet_logits, more = fusion(pooled, features)
    gate = gate_reference(fusion, pooled)
    torch.testing.assert_close(more["branch_gate"], gate)
    torch.testing.assert_close(logits, gate[:, :1] * rgb + gate[:, 1:] * flow)
    torch.testing.assert_close(rgb, pooled[0] @ fusion.fc_rgb.weight.T + fusion.fc_rgb.bias)
    snippet_gate = gate_reference(fusion, features)
    torch.testing.assert_close(snippet_logits, snippet_gate[..., :1] * fusion.fc_rgb(features[0])
                               + snippet_gate[..., 1:] * fusion.fc_flow(features[1]))
    fusion.eval()
    logits, (rgb, flow), snippet_logits, more = fusion(pooled, features)
    torch.testing.assert_close(more["branch_gate"], gate)  # the weights, whatever the mode
    chose_rgb = gate[:, 0] >= gate[:, 1]
    assert 0 < int(chose_rgb.sum()) < 16  # the test sees both choices
    assert torch.equal(logits, torch.where(chose_rgb.unsqueeze(1), rgb, flow))
    assert snippet_logits.shape == (16, segments, CLASSES)


def test_the_gate_starts_even_and_a_tie_selects_rgb():
    fusion = make_part("fusion", "branch_selection").eval()
    pooled, features = branch_inputs()
    logits, (rgb, _), _, more = fusion(pooled, features)
    assert torch.equal(more["branch_gate"], torch.full((3, 2), 0.5)) and torch.equal(logits, rgb)
    assert fusion.outputs() == ("branch_gate",) and fusion.NEEDS_BOTH_STREAMS


def test_branch_selection_loss_and_evaluation_of_the_network():
    model = build_model(model_config(fusion=part("fusion", "branch_selection", aux_loss_weight=0.1)), CLASSES)
    randomise(model.fusion.gate, seed=3)
    assert model.outputs() == ("logits", "logits_rgb", "logits_flow", "attention", "branch_gate")
    out = model(*clips())
    target = torch.tensor([0, 2])
    ce = lambda logits: F.cross_entropy(logits.float(), target)  # noqa: E731
    torch.testing.assert_close(model.loss(out, target), ce(out.logits) + 0.1 * (ce(out.logits_rgb)
                                                                                + ce(out.logits_flow)))
    model.eval()
    with torch.no_grad():
        out = model(*clips())
    assert out.branch_gate.shape == (2, 2) and out.branch_gate.dtype == torch.float32
    for row in range(2):
        chosen = out.logits_rgb if out.branch_gate[row, 0] >= out.branch_gate[row, 1] else out.logits_flow
        assert torch.equal(out.logits[row], chosen[row])


# --- spatial attention -------------------------------------------------------------------------------------------
def spatial_reference(xs, vectors):
    """Scores summed over the branches per position, softmax over H*W, each branch pooled with the same weights."""
    scores = sum(torch.einsum("nchw,c->nhw", x.double(), w.double()) for x, w in zip(xs, vectors))
    maps = scores.flatten(1).softmax(-1).view_as(scores)
    return tuple(torch.einsum("nchw,nhw->nc", x.double(), maps).to(x.dtype) for x in xs), maps


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("branches", [("rgb", "flow"), ("rgb",), ("flow",)])
@pytest.mark.parametrize("size", [(1, 1), (3, 4)])
def test_spatial_attention_is_the_joint_softmax_over_positions(backend, branches, size):
    pooling = randomise(make_part("spatial_pooling", "attention", branches, backend=backend))
    gen = torch.Generator().manual_seed(2)
    xs = tuple(torch.randn(5, CHANNELS, *size, generator=gen) for _ in branches)
    pooled, maps = pooling(xs)
    expected, expected_maps = spatial_reference(xs, [getattr(pooling, f"w_{b}") for b in branches])
    assert maps.shape == (5, *size) and maps.dtype == torch.float32
    torch.testing.assert_close(maps.double(), expected_maps, rtol=1e-5, atol=1e-6)
    for got, want in zip(pooled, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    if size == (1, 1):  # one position takes all the weight: the feature vector itself
        assert torch.equal(maps, torch.ones(5, 1, 1))
    # channels_last maps (the backbone's layout when run.channels_last is on) give the same
    last = tuple(x.contiguous(memory_format=torch.channels_last) for x in xs)
    torch.testing.assert_close(pooling(last)[1], maps)
    assert pooling.outputs() == ("spatial_attention",) and pooling.out_channels(CHANNELS) == CHANNELS


def test_spatial_attention_starts_as_the_average():
    pooling = make_part("spatial_pooling", "attention")
    average = make_part("spatial_pooling", "average")
    xs = (torch.randn(4, CHANNELS, 2, 3), torch.randn(4, CHANNELS, 2, 3))
    pooled, maps = pooling(xs)
    torch.testing.assert_close(maps, torch.full((4, 2, 3), 1 / 6))
    for got, want in zip(pooled, average(xs)[0]):
        torch.testing.assert_close(got, want)
    assert sorted(name for name, _ in pooling.named_parameters()) == ["w_flow", "w_rgb"]
    assert [name for name, _ in make_part("spatial_pooling", "attention", ("flow",)).named_parameters()] == ["w_flow"]
    assert "zeros" not in make_part("spatial_pooling", "attention", ("rgb",)).state_dict()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("branches", [("rgb", "flow"), ("rgb",)])
def test_spatial_attention_gradients(backend, branches):
    pooling = randomise(make_part("spatial_pooling", "attention", branches, backend=backend)).double()
    gen = torch.Generator().manual_seed(4)
    xs = tuple(torch.randn(2, CHANNELS, 2, 2, generator=gen, dtype=torch.float64, requires_grad=True)
               for _ in branches)
    ws = tuple(getattr(pooling, f"w_{b}").detach().clone().requires_grad_(True) for b in branches)

    def run(*tensors):  # the inputs and the scoring vectors (the part's parameters, given by name)
        vectors = {f"w_{b}": w for b, w in zip(branches, tensors[len(branches):])}
        pooled, maps = torch.func.functional_call(pooling, vectors, (tensors[:len(branches)],))
        return (*pooled, maps)

    assert torch.autograd.gradcheck(run, (*xs, *ws))


@pytest.mark.parametrize("name", ["fully_connected", "branch_selection"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fusion_gradients(name, mode):
    fusion = randomise(make_part("fusion", name, **({"dropout": 0.0} if name == "fully_connected" else {})))
    fusion = fusion.double().train(mode == "train")
    pooled, features = branch_inputs(batch=2, segments=2, dtype=torch.float64)
    inputs = tuple(t.requires_grad_(True) for t in (*pooled, *features))

    def run(p_rgb, p_flow, f_rgb, f_flow):
        logits, branch_logits, snippet_logits, *more = fusion((p_rgb, p_flow), (f_rgb, f_flow))
        return (logits, *branch_logits, snippet_logits, *(more[0].values() if more else ()))

    assert torch.autograd.gradcheck(run, inputs)


# --- the network -------------------------------------------------------------------------------------------------
def model_config(spatial="average", fusion=None, streams="both", temporal="average", dropout=0.0):
    return ModelConfig(backbone=part("backbone", "resnet18"), sharing=part("sharing", "none"),
                       spatial_pooling=part("spatial_pooling", spatial), temporal_pooling=part("temporal_pooling",
                                                                                               temporal),
                       fusion=fusion or part("fusion", "late_scores"), streams=streams, flow_length=1,
                       dropout=dropout)


def clips(batch=2, segments=3, size=64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, segments, 3, size, size, generator=gen),
            torch.randn(batch, segments, 2, size, size, generator=gen))


@pytest.mark.parametrize("streams", ["both", "rgb", "flow"])
@pytest.mark.parametrize("segments", [1, 3])
def test_the_network_returns_the_spatial_maps(streams, segments):
    model = build_model(model_config("attention", streams=streams), CLASSES).eval()
    randomise(model.spatial_pooling, seed=5)
    rgb, flow = clips(segments=segments, size=96)
    mask = torch.ones(2, segments, dtype=torch.bool)
    mask[1, 1:] = False
    with torch.no_grad():
        out = model(rgb if streams != "flow" else None, flow if streams != "rgb" else None, mask)
    assert out.spatial_attention.shape == (2, segments, 3, 3) and out.spatial_attention.dtype == torch.float32
    torch.testing.assert_close(out.spatial_attention.sum((2, 3)), torch.ones(2, segments))
    assert model.outputs()[-1] == "spatial_attention" and out.branch_gate is None
    assert "spatial_attention" in model.describe()


def test_parts_of_two_branches_refuse_one_stream_naming_the_part():
    for name in ("fully_connected", "branch_selection"):
        with pytest.raises(ValueError, match=rf"streams='rgb': .*fusion '{name}' need both streams"):
            build_model(model_config(fusion=part("fusion", name), streams="rgb"), CLASSES)


def test_bad_options_name_the_option(capsys):
    for argv, message in ((["--model.fusion.name", "fully_connected", "--model.fusion.hidden", "0"],
                           "option model.fusion.hidden must be an integer >= 1, got 0"),
                          (["--model.fusion.name", "fully_connected", "--model.fusion.dropout", "1"],
                           "option model.fusion.dropout"),
                          (["--model.fusion.hidden", "8"],
                           "option model.fusion.hidden applies to --model.fusion.name fully_connected, not "
                           "late_scores"),
                          (["--model.fusion.name", "branch_selection", "--model.fusion.weights", "1,2"],
                           "option model.fusion.weights applies to --model.fusion.name late_scores, not "
                           "branch_selection")):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert message in capsys.readouterr().err
    cfg = parse_args(["--model.fusion.name", "fully_connected", "--model.fusion.hidden", "64",
                      "--model.fusion.dropout", "0.2", "--model.spatial_pooling.name", "attention"])
    assert (cfg.model.fusion.hidden, cfg.model.fusion.dropout, cfg.model.spatial_pooling.name) == (64, 0.2,
                                                                                                    "attention")


@pytest.mark.parametrize("spatial,fusion", [("attention", "late_scores"), ("average", "fully_connected"),
                                            ("attention", "branch_selection")])
def test_bf16_autocast(spatial, fusion):
    model = build_model(model_config(spatial, part("fusion", fusion), temporal="joint_attention"), CLASSES)
    randomise(model.spatial_pooling, seed=6)
    rgb, flow = clips(size=64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(rgb, flow)
        loss = model.loss(out, torch.tensor([0, 1]))
    loss.backward()
    assert bool(loss.isfinite()) and out.logits.shape == (2, CLASSES) and out.attention.dtype == torch.float32
    if spatial == "attention":
        assert out.spatial_attention.dtype == torch.float32 and model.spatial_pooling.w_rgb.grad is not None
    if fusion == "branch_selection":
        assert out.branch_gate.dtype == torch.float32 and model.fusion.gate.weight.grad is not None


# --- checkpoints and evaluation -----------------------------------------------------------------------------------
PART_OPTIONS = {
    "fully_connected": ["--model.fusion.name", "fully_connected", "--model.fusion.hidden", "16"],
    "branch_selection": ["--model.fusion.name", "branch_selection"],
    "spatial_attention": ["--model.spatial_pooling.name", "attention"],
}


def trained_checkpoint(folder, kind):
    """A checkpoint of a two-stream model with the part of ``kind``, its new weights drawn at random."""
    cfg = parse_args(["--root", str(folder / "no-data"), "--size", "64", "--num-segments", "2", "--flow-length", "1",
                      "--share-after", "", "--consensus", "average", *PART_OPTIONS[kind], "--out", str(folder)])
    model = build_from_config(cfg, CLASSES)
    randomise(model.fusion if kind != "spatial_attention" else model.spatial_pooling, seed=7)
    path = folder / f"{kind}.pt"
    save_checkpoint(path, {"model": model.state_dict(), "config": cfg.to_dict(),
                           "class_names": [f"c{i}" for i in range(CLASSES)], "data": data_settings(cfg)})
    return model.eval(), path


@pytest.mark.parametrize("kind", list(PART_OPTIONS))
def test_checkpoints_round_trip(kind, tmp_path):
    model, path = trained_checkpoint(tmp_path, kind)
    loaded = Predictor.from_checkpoint(path).model
    assert loaded.describe() == model.describe()
    rgb, flow = clips(size=64)
    with torch.no_grad():
        expected, got = model(rgb, flow), loaded(rgb, flow)
    for name in model.outputs():
        assert torch.equal(getattr(got, name), getattr(expected, name)), name


def test_the_evaluation_reports_selection_rates_and_spatial_peaks(tmp_path):
    """collect and write_outputs on batches made here: the share of clips whose gate selected each branch, overall
    and per family, the spatial maps' peak, and the strips drawn with the maps over the frames."""
    pytest.importorskip("matplotlib")
    cfg = parse_args(["--root", str(tmp_path / "no-data"), "--size", "64", "--flow-length", "1",
                      "--share-after", "", "--consensus", "average", *PART_OPTIONS["branch_selection"],
                      "--model.spatial_pooling.name", "attention", "--out", str(tmp_path)])
    model = build_from_config(cfg, CLASSES)
    randomise(model.fusion.gate, seed=8)
    randomise(model.spatial_pooling, seed=9)
    rgb, flow = clips(batch=6, segments=2, size=64, seed=3)
    videos = [f"v{i}" for i in range(6)]
    mask = torch.ones(6, 2, dtype=torch.bool)
    batch = ClipBatch(rgb, flow, mask, torch.arange(6) % CLASSES, torch.tensor([[0, 8]] * 6), videos,
                      torch.zeros(6, dtype=torch.bool))
    predictions = collect(model, [batch], torch.device("cpu"), keep_snippets=2)
    with torch.no_grad():
        gate = model.eval()(rgb, flow, mask).branch_gate
    chose_rgb = (gate[:, 0] >= gate[:, 1]).float()
    assert torch.equal(predictions.branch_selection, torch.stack([chose_rgb, 1 - chose_rgb], 1))
    families = {video: ("motion" if i < 3 else "binding") for i, video in enumerate(videos)}
    windows = SalientWindows({video: (0, 4) for video in videos}, families)
    report = summarize(predictions, [f"c{i}" for i in range(CLASSES)], windows)
    assert report["selected_rgb"] == pytest.approx(float(chose_rgb.mean()))
    assert report["selected_rgb"] + report["selected_flow"] == pytest.approx(1)
    assert report["families"]["motion"]["selected_rgb"] == pytest.approx(float(chose_rgb[:3].mean()))
    assert report["families"]["binding"]["selected_flow"] == pytest.approx(float(1 - chose_rgb[3:].mean()))
    assert report["spatial_peak_uniform"] == pytest.approx(1 / 4)  # 64 px: 2 x 2 positions
    assert 1 / 4 < report["spatial_peak"] <= 1
    assert report["families"]["binding"]["spatial_peak"] <= 1
    pictures = next(iter(predictions.snippets.values()))
    assert pictures["spatial_attention"].shape == (2, 2, 2)
    written = write_outputs(predictions, [f"c{i}" for i in range(CLASSES)], windows, tmp_path / "eval")
    assert written["selected_rgb"] == report["selected_rgb"]
    assert len(list((tmp_path / "eval" / "attention").glob("*.png"))) == 2


def test_a_model_without_these_parts_reports_as_before():
    model = build_model(model_config(), CLASSES)
    rgb, flow = clips(batch=2, segments=2, size=32)
    batch = ClipBatch(rgb, flow, torch.ones(2, 2, dtype=torch.bool), torch.tensor([0, 1]),
                      torch.tensor([[0, 4], [0, 4]]), ["a", "b"], torch.zeros(2, dtype=torch.bool))
    predictions = collect(model, [batch], torch.device("cpu"))
    assert predictions.branch_selection is None and predictions.spatial_peak is None
    report = summarize(predictions, [f"c{i}" for i in range(CLASSES)], None)
    assert not {"selected_rgb", "selected_flow", "spatial_peak", "spatial_peak_uniform"} & set(report)
