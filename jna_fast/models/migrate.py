"""State dicts of the models written before parts (docs/design.md §2.7), renamed to the parts that now hold the
weights: ``stitches.S.*`` -> ``sharing.S.*``, ``attention.*`` -> ``temporal_pooling.*``, ``fc_rgb.*`` /
``fc_flow.*`` -> ``fusion.fc_rgb.*`` / ``fusion.fc_flow.*``; the backbones' ``rgb.*`` and ``flow.*`` keep theirs.
"""

from __future__ import annotations

from collections.abc import Iterable

# old key prefix -> new key prefix
RENAMED = {"stitches.": "sharing.", "attention.": "temporal_pooling.", "fc_rgb.": "fusion.fc_rgb.",
           "fc_flow.": "fusion.fc_flow."}
# what a DDP- or torch.compile-wrapped model prefixes its keys with
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# The scoring vectors the models before parts held whatever their consensus (frozen at zero for the average one,
# which is exactly the average): the average temporal pooling holds none.
ZERO_WHEN_UNUSED = ("temporal_pooling.w_rgb", "temporal_pooling.w_flow")


def migrate_state_dict(state_dict: dict, expected: Iterable[str] | None = None) -> dict:
    """``state_dict`` with wrapper prefixes stripped and the keys of the models before parts renamed; keys already
    new are kept, so that it is idempotent. ``expected``: the keys of the model it is for (``model.state_dict()``);
    with it, the zero scoring vectors of an old model pooled by average, which the model does not hold, are dropped
    (nonzero ones are kept, for the loader to report as unexpected)."""
    migrated = {}
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        for old, new in RENAMED.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        migrated[key] = value
    if expected is not None:
        expected = set(expected)
        for key in ZERO_WHEN_UNUSED:
            if key in migrated and key not in expected and not bool(migrated[key].count_nonzero()):
                del migrated[key]
    return migrated
