"""Regenerates torchvision_resnet_keys.json: state-dict keys and shapes of torchvision's ResNets.

Run with a Python that has torchvision (no weights are downloaded; the architectures are built randomly):
    python tests/data/make_torchvision_keys.py
"""

import json
from pathlib import Path

import torchvision

keys = {
    name: {k: list(v.shape) for k, v in getattr(torchvision.models, name)(weights=None).state_dict().items()}
    for name in ("resnet18", "resnet34", "resnet50")
}
out = Path(__file__).with_name("torchvision_resnet_keys.json")
out.write_text(json.dumps(keys, indent=0) + "\n")
print(f"wrote {out} (torchvision {torchvision.__version__})")
