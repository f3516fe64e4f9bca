"""Example clips of a trained synthetic set's classes, for the demo: one fresh clip per class, drawn as the set's
clips are (same frames, size, seed, window and decoys) from a group that no dataset has, so that no model has seen
it; rendered and encoded on first use into a cache folder named after everything a clip depends on."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

from ...files import output_folder, write_atomically
from .classes import CLASS_CATALOGUE
from .encode import encode_video
from .layout import GENERATOR_VERSION, video_name
from .plan import plan_video
from .render import render_video
from .write import make_synthetic

# Groups count from 1 in every synthetic dataset, so group 0's clips were in no checkpoint's training or test set.
EXAMPLE_GROUP, EXAMPLE_CLIP = 0, 1


def example_clips(class_names: list[str], options, cache: str | os.PathLike, count: int) -> list[tuple[str, Path]]:
    """(class name, video file) of one clip for each of the first ``count`` of ``class_names`` (the classes of a
    model trained on the synthetic set made with ``options``, the kind's SyntheticOptions); [] when the names are
    not the catalogue's."""
    catalogue = {spec.name: spec for spec in CLASS_CATALOGUE}
    if not class_names or any(name not in catalogue for name in class_names):
        return []
    specs = [catalogue[name] for name in class_names]
    # The training set's frames and size are make_synthetic's defaults (the training command keeps them).
    defaults = {name: parameter.default for name, parameter in inspect.signature(make_synthetic).parameters.items()}
    frames, size = defaults["frames"], defaults["size"]
    drawn = {"seed": options.seed, "window_fraction": tuple(options.window_fraction), "decoys": options.decoys}
    # The folder is named after everything a clip depends on (decoys come from the other classes), so a cached
    # clip is never one drawn with other parameters or by another version of the generator.
    key = json.dumps({"generator_version": GENERATOR_VERSION, "frames": frames, "size": size,
                      "classes": list(class_names), **drawn}, sort_keys=True)
    folder = output_folder(cache, f"g{GENERATOR_VERSION}-{hashlib.sha1(key.encode()).hexdigest()[:12]}")
    examples = []
    for class_index, spec in enumerate(specs[:count]):
        path = folder / video_name(spec.name, EXAMPLE_GROUP, EXAMPLE_CLIP)
        if path.is_symlink() or not path.is_file():  # a link there is replaced, never shown nor written through
            plan = plan_video(spec, class_index, EXAMPLE_GROUP, EXAMPLE_CLIP, frames=frames, height=size,
                              width=size, decoy_classes=tuple(specs), **drawn)
            # Atomically: a demo stopped midway leaves no half-written example behind.
            write_atomically(path, lambda handle: encode_video(render_video(plan), handle))
        examples.append((spec.name, path))
    return examples
