"""The model from parts (docs/design.md §2.7): the registry, each kind's contract, a new part in one file, the
migration of the state dicts written before parts, and the same numbers as the model before parts."""

import importlib.util
import uuid
from types import SimpleNamespace

import pytest
import torch

from jna_fast import JNA
from jna_fast.checkpoint import load_model_state
from jna_fast.models import ModelConfig, PartContext, build_model, migrate_state_dict, part, registry
from jna_fast.models.migrate import RENAMED
from jna_fast.models.parts.temporal_joint_attention import attention_evidence_loss

EXPECTED_PARTS = {
    "backbone": {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"},
    "sharing": {"none", "cross_stitch"},
    "spatial_pooling": {"average", "attention"},
    "temporal_pooling": {"average", "joint_attention"},
    "fusion": {"late_scores", "fully_connected", "branch_selection"},
}


def config(streams="both", sharing=None, temporal=None, fusion=None, **model):
    both = streams == "both"
    return ModelConfig(
        backbone=part("backbone", "resnet18"),
        sharing=sharing or (part("sharing", "cross_stitch", after=(2, 4)) if both else part("sharing", "none")),
        spatial_pooling=part("spatial_pooling", "average"),
        temporal_pooling=temporal or part("temporal_pooling", "joint_attention" if both else "average"),
        fusion=fusion or part("fusion", "late_scores"), streams=streams, flow_length=model.get("flow_length", 1),
        dropout=model.get("dropout", 0.0))


def clips(batch=2, segments=3, flow_length=1, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, segments, 3, 32, 32, generator=gen),
            torch.randn(batch, segments, 2 * flow_length, 32, 32, generator=gen))


def context(branches=("rgb", "flow"), channels=8, classes=4):
    backbone = registry.lookup("backbone", "resnet18")(registry.options("backbone", "resnet18")(), 3)
    return PartContext(branches, backbone, channels, classes)


def test_every_kind_has_its_parts_and_lookups_list_the_known_names():
    for kind, names in EXPECTED_PARTS.items():
        assert set(registry.names(kind)) == names
    with pytest.raises(ValueError, match=r"model.fusion: unknown name 'mlp'; known: late_scores, branch_selection, "
                                         r"fully_connected"):
        registry.lookup("fusion", "mlp")
    with pytest.raises(ValueError, match=r"known: backbone, sharing, spatial_pooling, temporal_pooling, fusion"):
        registry.lookup("neck", "x")
    with pytest.raises(ValueError, match=r"model.sharing: unknown name 'stitch'; known: cross_stitch, none"):
        part("sharing", "stitch")
    # the options are each part's own dataclass, frozen
    options = part("sharing", "cross_stitch").options
    assert (options.after, options.self_weight, options.lr_scale, options.warmup) == ((3, 4), 0.9, 1.0, 0.0)
    with pytest.raises(TypeError, match="CrossStitchOptions"):
        build_model(SimpleNamespace(**{**vars(config()), "sharing": SimpleNamespace(name="cross_stitch",
                                                                                    options=object())}), 3)


def test_backbone_contract():
    backbone = registry.lookup("backbone", "resnet18")(registry.options("backbone", "resnet18")(), 4)
    assert backbone.first_conv.in_channels == 4 and backbone.STAGES == (1, 2, 3, 4)
    x = backbone.stem(torch.randn(2, 4, 64, 64))
    for stage, layer in backbone.stages():
        x = layer(x)
        assert x.shape[1] == backbone.stage_channels(stage)
    assert x.shape[1] == backbone.feature_dim == 512
    assert backbone.features(torch.zeros(2, 4, 32, 32)).shape == (2, 512, 1, 1)


@pytest.mark.parametrize("name,options", [("none", {}), ("cross_stitch", {"after": (2,)})])
def test_sharing_contract(name, options):
    sharing = registry.lookup("sharing", name)(part("sharing", name, **options).options, context())
    xs = (torch.randn(2, 128, 4, 4), torch.randn(2, 128, 4, 4))
    ys = sharing(2, xs)
    assert [y.shape for y in ys] == [x.shape for x in xs]
    assert sharing(3, xs) is xs  # a stage without a unit passes through
    assert (len(list(sharing.parameters())) == 1) == (name == "cross_stitch")


@pytest.mark.parametrize("branches", [("rgb",), ("rgb", "flow")])
def test_spatial_pooling_contract(branches):
    pooling = registry.lookup("spatial_pooling", "average")(part("spatial_pooling", "average").options,
                                                            context(branches))
    xs = tuple(torch.randn(6, 8, 3, 5) for _ in branches)
    pooled, maps = pooling(xs)
    assert maps is None and len(pooled) == len(branches) and pooling.outputs() == ()
    for x, p in zip(xs, pooled):
        torch.testing.assert_close(p, x.mean((2, 3)))
    assert pooling.out_channels(8) == 8


@pytest.mark.parametrize("name,branches", [("average", ("rgb",)), ("average", ("rgb", "flow")),
                                           ("joint_attention", ("rgb", "flow"))])
@pytest.mark.parametrize("segments", [1, 4])
def test_temporal_pooling_contract(name, branches, segments):
    pooling = registry.lookup("temporal_pooling", name)(part("temporal_pooling", name).options, context(branches))
    if name == "joint_attention":
        with torch.no_grad():
            pooling.w_rgb.normal_()
    features = tuple(torch.randn(3, segments, 8) for _ in branches)
    mask = torch.ones(3, segments, dtype=torch.bool)
    mask[1, 1:] = False
    for given in (None, mask):
        pooled, attention = pooling(features, given)
        assert [p.shape for p in pooled] == [(3, 8)] * len(branches)
        assert attention.shape == (3, segments) and attention.dtype == torch.float32
        torch.testing.assert_close(attention.sum(1), torch.ones(3))
        if given is not None:
            assert (attention[~given] == 0).all()
        for f, p in zip(features, pooled):  # the pooled features are the attention's average of the snippets'
            torch.testing.assert_close(p, torch.einsum("bt,btc->bc", attention, f), rtol=1e-5, atol=1e-5)
    if name == "average":
        torch.testing.assert_close(attention[0], torch.full((segments,), 1 / segments))


@pytest.mark.parametrize("branches", [("rgb",), ("flow",), ("rgb", "flow")])
def test_fusion_contract(branches):
    options = part("fusion", "late_scores", weights=(2.0, 0.5)).options
    fusion = registry.lookup("fusion", "late_scores")(options, context(branches, channels=8, classes=4))
    pooled = tuple(torch.randn(2, 8) for _ in branches)
    features = tuple(torch.randn(2, 3, 8) for _ in branches)
    logits, branch_logits, snippet_logits = fusion(pooled, features)
    assert logits.shape == (2, 4) and [b.shape for b in branch_logits] == [(2, 4)] * len(branches)
    assert snippet_logits.shape == (2, 3, 4)
    if len(branches) == 2:
        torch.testing.assert_close(logits, 2.0 * branch_logits[0] + 0.5 * branch_logits[1])
        assert fusion.formula() == "2 * logits_rgb + 0.5 * logits_flow"
    else:
        assert torch.equal(logits, branch_logits[0]) and fusion.formula() == f"logits_{branches[0]}"


def test_parts_that_combine_the_branches_refuse_one_stream():
    with pytest.raises(ValueError, match=r"streams='rgb': .*temporal_pooling 'joint_attention' need both streams"):
        build_model(config("rgb", temporal=part("temporal_pooling", "joint_attention")), 3)
    with pytest.raises(ValueError, match=r"streams='flow': .*sharing 'cross_stitch' need both streams"):
        build_model(config("flow", sharing=part("sharing", "cross_stitch")), 3)
    with pytest.raises(ValueError, match=r"sharing.after: stages must be in 1..4, got \[5\]"):
        build_model(config(sharing=part("sharing", "cross_stitch", after=(5,))), 3)


@pytest.mark.parametrize("streams", ["both", "rgb", "flow"])
def test_the_model_reports_its_inputs_outputs_and_parts(streams):
    model = build_model(config(streams, flow_length=2), 3)
    branches = ("rgb", "flow") if streams == "both" else (streams,)
    assert model.inputs() == {**{b: {"rgb": 3, "flow": 4}[b] for b in branches}, "mask": None}
    assert list(model.inputs()) == [*branches, "mask"]
    assert model.outputs() == ("logits", *(f"logits_{b}" for b in branches), "attention")
    described = model.describe()
    assert described["parts"]["fusion"] == {"name": "late_scores",
                                            "options": {"weights": (1.0, 1.5), "aux_loss_weight": 0.5}}
    assert described["consensus"] == ("attention" if streams == "both" else "average")
    rgb, flow = clips(flow_length=2)
    out = model(rgb if "rgb" in branches else None, flow if "flow" in branches else None, None)
    assert out.logits.shape == (2, 3) and out.attention.shape == (2, 3) and out.snippet_logits.shape == (2, 3, 3)
    assert (out.logits_rgb is None) == ("rgb" not in branches) and (out.logits_flow is None) == ("flow" not in branches)


def test_scheduled_parameters_come_in_the_order_of_old_optimiser_states():
    model = build_model(config(sharing=part("sharing", "cross_stitch", after=(3, 4), lr_scale=5.0, warmup=0.5),
                               temporal=part("temporal_pooling", "joint_attention", lr_scale=0.1)), 3)
    groups = model.scheduled_parameters()
    assert [(g.name, len(g.params), g.lr_scale, g.warmup) for g in groups] == [
        ("attention", 2, 0.1, 0.3), ("stitches", 2, 5.0, 0.5)]
    assert groups[0].params == (model.temporal_pooling.w_rgb, model.temporal_pooling.w_flow)
    assert build_model(config("rgb"), 3).scheduled_parameters() == []


NEW_FUSION = '''
from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

from jna_fast.models.part import Part
from jna_fast.models.registry import register
from jna_fast.options import option


@register("fusion", "{name}")
class SharedHead(Part):
    """One classifier on the sum of the branches' pooled features."""

    @dataclass(frozen=True)
    class Options:
        scale: float = option(1.0, "factor of the scores", minimum=0)

    def __init__(self, options, context):
        super().__init__()
        self.scale = options.scale
        self.fc = nn.Linear(context.channels, context.num_classes)

    def forward(self, pooled, features):
        logits = self.scale * self.fc(sum(pooled))
        return logits, tuple(self.fc(p) for p in pooled), self.scale * self.fc(sum(features))

    def loss(self, output, target):
        return F.cross_entropy(output.logits.float(), target)

    def describe(self):
        return {{"fusion": "scale * fc(p_rgb + p_flow)"}}
'''


def test_a_new_fusion_is_one_file_and_its_registration(tmp_path):
    name = f"shared_head_{uuid.uuid4().hex[:8]}"
    path = tmp_path / f"{name}.py"
    path.write_text(NEW_FUSION.format(name=name))
    spec = importlib.util.spec_from_file_location(name, path)
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert name in registry.names("fusion")
    model = build_model(config(fusion=part("fusion", name, scale=2.0)), 3)
    rgb, flow = clips()
    out = model(rgb, flow)
    assert out.logits.shape == (2, 3) and out.logits_rgb.shape == (2, 3)
    loss = model.loss(out, torch.tensor([0, 2]))  # the fusion's loss plus the attention's evidence term
    loss.backward()
    assert model.fusion.fc.weight.grad is not None and model.describe()["fusion"] == "scale * fc(p_rgb + p_flow)"


def old_format(state_dict: dict) -> dict:
    """The keys a model before parts would have written (prefixed as a DDP-wrapped model saves them)."""
    back = {new: old for old, new in RENAMED.items()}
    renamed = {}
    for key, value in state_dict.items():
        for new, old in back.items():
            if key.startswith(new):
                key = old + key[len(new):]
                break
        renamed["module." + key] = value
    return renamed


def test_migrate_state_dict_round_trip():
    model = JNA(3, backbone="resnet18", flow_length=1, share_after=(2, 4), stitch_normalise=True)
    new = model.state_dict()
    old = old_format(new)
    assert "module.stitches.2.alpha" in old and "module.attention.w_rgb" in old and "module.fc_flow.bias" in old
    assert "module.stitches.2.running_rms" in old
    migrated = migrate_state_dict(old)
    assert list(migrated) == list(new) and all(torch.equal(migrated[k], new[k]) for k in new)
    assert migrate_state_dict(migrated) == migrated  # idempotent on new keys
    # an old model pooled by average held zero attention vectors, which the average part does not hold
    average = JNA(3, backbone="resnet18", flow_length=1, share_after=(), consensus="average")
    zeros = {"module.attention.w_rgb": torch.zeros(512), "module.attention.w_flow": torch.zeros(512)}
    old_average = {**old_format(average.state_dict()), **zeros}
    assert set(migrate_state_dict(old_average, average.state_dict())) == set(average.state_dict())
    nonzero = {**old_average, "module.attention.w_rgb": torch.ones(512)}
    assert "temporal_pooling.w_rgb" in migrate_state_dict(nonzero, average.state_dict())


# Outputs of the model before parts (commit 3daf0e8's models/jna.py) for torch.manual_seed(0), the inputs of
# clips() and, for the attention, w_rgb = linspace(-1, 1), w_flow = linspace(1, -1): logits, attention, sum of the
# first classifier's initial weights.
BEFORE_PARTS = {
    ("both", "attention", (2, 4)): ([0.12594, 0.21783, 0.52669, -0.16866, 0.39875, 0.23797],
                                    [0.14656, 0.85344, 0.0, 0.14218, 0.81785, 0.03997], 0.60904),
    ("both", "average", ()): ([0.01573, 0.15829, 0.57941, -0.18845, 0.34086, 0.41597],
                              [0.5, 0.5, 0.0, 0.33333, 0.33333, 0.33333], 0.60904),
    ("rgb", "average", ()): ([0.01218, 0.16553, 0.70717, 0.02893, 0.21478, 0.73858],
                             [0.5, 0.5, 0.0, 0.33333, 0.33333, 0.33333], -0.34429),
    ("flow", "average", ()): ([0.01456, -0.12369, 0.11756, 0.00448, -0.14862, 0.17441],
                              [0.5, 0.5, 0.0, 0.33333, 0.33333, 0.33333], -0.58748),
}


@pytest.mark.parametrize("variant", list(BEFORE_PARTS))
def test_same_numbers_as_the_model_before_parts_through_an_old_state_dict(variant):
    streams, consensus, share_after = variant
    torch.manual_seed(0)
    model = JNA(3, backbone="resnet18", flow_length=1, streams=streams, consensus=consensus,
                share_after=share_after, stitch_normalise=True).eval()
    head = model.fusion.fc_rgb if streams != "flow" else model.fusion.fc_flow
    logits, attention, head_sum = BEFORE_PARTS[variant]
    assert head.weight.sum().item() == pytest.approx(head_sum, abs=1e-4)  # the same draws, in the same order
    if consensus == "attention":
        with torch.no_grad():
            model.temporal_pooling.w_rgb.copy_(torch.linspace(-1, 1, 512))
            model.temporal_pooling.w_flow.copy_(torch.linspace(1, -1, 512))
    state = old_format(model.state_dict())
    if consensus == "average":
        state.update({"attention.w_rgb": torch.zeros(512), "attention.w_flow": torch.zeros(512)})
    torch.manual_seed(1)
    fresh = JNA(3, backbone="resnet18", flow_length=1, streams=streams, consensus=consensus,
                share_after=share_after, stitch_normalise=True).eval()
    load_model_state(fresh, state, "old.pt")
    rgb, flow = clips()
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        out = fresh(rgb if streams != "flow" else None, flow if streams != "rgb" else None, mask)
    torch.testing.assert_close(out.logits.flatten(), torch.tensor(logits), atol=2e-4, rtol=0)
    torch.testing.assert_close(out.attention.flatten(), torch.tensor(attention), atol=2e-5, rtol=0)


def test_parameter_order_is_the_order_before_parts():
    """The optimiser's decay / no-decay groups list the parameters in module order: the same as before parts."""
    names = [name for name, _ in JNA(3, backbone="resnet18", flow_length=1).named_parameters()
             if not name.startswith(("rgb.", "flow."))]
    assert names == ["sharing.3.alpha", "sharing.4.alpha", "temporal_pooling.w_rgb", "temporal_pooling.w_flow",
                     "fusion.fc_rgb.weight", "fusion.fc_rgb.bias", "fusion.fc_flow.weight", "fusion.fc_flow.bias"]
    modules = [name for name, _ in JNA(3, backbone="resnet18", flow_length=1).named_children()]
    assert modules == ["rgb", "flow", "sharing", "spatial_pooling", "temporal_pooling", "dropout", "fusion"]


def test_attention_evidence_term_is_in_the_loss():
    model = build_model(config(temporal=part("temporal_pooling", "joint_attention", supervision=0.5)), 3)
    out = model(*clips())
    target = torch.tensor([1, 2])
    torch.testing.assert_close(model.loss(out, target),
                               model.fusion.loss(out, target) + 0.5 * attention_evidence_loss(out, target))


def test_the_description_leaves_out_the_weight_file_of_the_training_machine():
    from jna_fast.config import parse_args
    from jna_fast.models import build_model

    cfg = parse_args(["--weights", "/home/me/resnet18.pth", "--streams", "rgb", "--share-after", "",
                      "--consensus", "average"])
    described = build_model(cfg.model, 3).describe()
    assert described["parts"]["backbone"] == {"name": "resnet18", "options": {}}
    assert "/home/me" not in repr(described)
