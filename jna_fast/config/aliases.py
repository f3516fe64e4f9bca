"""The flat option names of schema version 1 (``--lr``, ``--backbone``, ``--share-after``, ...): short aliases of
the sectioned paths on the command line, and the keys that the migration of version-1 files maps."""

from __future__ import annotations

_SECTION_NAMES = {
    "data": ("dataset", "root", "frames_root", "split", "train_list", "val_list", "num_classes", "size", "flip",
             "flow", "flow_algorithm", "rgb_template", "flow_template", "start_index", "on_error", "num_segments"),
    "model": ("streams", "flow_length", "dropout", "op_backend"),
    "optim": ("epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "warmup_epochs", "clip_grad",
              "max_steps", "on_nan"),
    "run": ("out", "resume", "checkpoint_every", "log_every", "seed", "progress", "final_eval", "tensorboard",
            "precision", "channels_last", "compile"),
}
# Flat name -> the path it names, where it is a plain rename.
RENAMED = {
    **{name: f"{section}.{name}" for section, names in _SECTION_NAMES.items() for name in names},
    "data_backend": "data.backend",
    **{f"synthetic_{name}": f"data.synthetic.{name}"
       for name in ("classes", "families", "videos_per_class", "window_fraction", "decoys", "seed")},
    "backbone": "model.backbone.name", "weights": "model.backbone.weights",
    "stitch_self_weight": "model.sharing.self_weight", "stitch_normalise": "model.sharing.normalise",
    "stitch_shared_fraction": "model.sharing.shared_fraction", "stitch_lr_scale": "model.sharing.lr_scale",
    "stitch_warmup": "model.sharing.warmup",
    "attention_lr_scale": "model.temporal_pooling.lr_scale", "attention_warmup": "model.temporal_pooling.warmup",
    "attention_supervision": "model.temporal_pooling.supervision",
    "test_segments": "eval.val_segments", "eval_segments": "eval.segments", "eval_crops": "eval.crops",
}
# Version 1 named the temporal pooling by its consensus, and chose no sharing by an empty stage list.
CONSENSUS_PARTS = {"attention": "joint_attention", "average": "average"}
RESHAPED = ("share_after", "consensus")
FLAT_NAMES = (*RENAMED, *RESHAPED)


def expand(name: str, value) -> dict[str, object]:
    """The sectioned paths and values that flat option ``name`` with ``value`` stands for (``value`` already of
    its version-1 type: a tuple of stages for share_after)."""
    if name == "share_after":
        if not value:
            return {"model.sharing.name": "none"}
        return {"model.sharing.name": "cross_stitch", "model.sharing.after": value}
    if name == "consensus":
        return {"model.temporal_pooling.name": CONSENSUS_PARTS.get(value, value)}
    return {RENAMED[name]: value}
