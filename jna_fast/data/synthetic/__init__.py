"""A small synthetic action dataset in the official UCF101 layout, built so that both streams and temporal attention
matter.

Each video shows a static textured background, a small grey distractor square drifting slowly in a random direction
for the whole video, and, only inside a window of frames ``[start, end)``, the class's object doing the class's
motion. Classes come in three families (``FAMILIES``; ``families=`` selects some):

- motion classes share one object (a yellow disc) and differ only in motion: direction (SlideRight / SlideLeft /
  SlideUp), speed (SlideRightFast) or periodicity (SwingHorizontal / SwingVertical);
- appearance classes share one motion (sliding down at the base speed) and differ only in shape (disc / square /
  triangle, all of equal area) and colour (red / green / blue);
- binding classes show two discs, a red and a blue one of the same grey level, one sliding right and the other
  left through the frame's edges; the class says which colour goes which way (RedRightBlueLeft /
  BlueRightRedLeft). Colours, positions and motions have the same distribution in both classes (see
  ``_binding_tracks``), so neither the RGB frames alone nor the flow alone, nor any sum of what each tells, can
  separate them: a network must combine what both streams see at the same place.

So a single RGB frame can't tell the motion classes apart, the flow can't tell the colours apart, neither can tell
the binding classes apart, and outside the window neither stream sees anything of the class. Every object carries
a texture so that flow is measurable inside it. The catalogue interleaves the families: the first 10 classes of all
three are 4 motion, 4 appearance and the 2 binding classes, and they are the default set.

No shortcut: the scene (background texture, tint, grain and the grey distractor's path) is drawn from
``(seed, group, clip)`` alone, so the clip ``g<GG>_c<CC>`` of every class has the same scene, pixel for pixel outside
the window and its decoys; nothing outside them, and nothing in the background, tells the classes apart (not even
by memorising training clips). The window's place and length come from the same distribution for every class.

Difficulty options:

- ``window_fraction=(low, high)``: the window covers between ``low`` and ``high`` of the video's frames (default
  (0.3, 0.5); shortened where a class's path would leave the frame). Shorter windows leave fewer snippets that
  carry the class, so averaging over time dilutes it more.
- ``decoys=n``: up to ``n`` bursts outside the window, each showing the object and motion of another class of the
  dataset for at most half as many frames as the window (so the label is always the class that fills the longest
  span). They make the snippets outside the window misleading instead of empty: a model must weigh snippets to
  tell the action from the decoy. Recorded per video in the metadata.

Horizontal flips change the label (SlideRight vs SlideLeft): the metadata declares
``"horizontal_flip_preserves_label": false`` and training on this dataset never flips.

Files written under ``root``::

    UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi     MPEG-4 part 2 in AVI (as UCF101; DALI's GPU decoder reads it),
                                                  or MJPEG in AVI (codec="mjpeg"; DALI's CPU decoder reads it)
    ucfTrainTestlist/classInd.txt                 "<label> <Class>", labels 1-based
    ucfTrainTestlist/trainlist0{1,2,3}.txt        "<Class>/v_....avi <label>"
    ucfTrainTestlist/testlist0{1,2,3}.txt         "<Class>/v_....avi"
    synthetic_meta.json                           per video: class, family, generating parameters, the window
                                                  ``discriminative_frames`` = [start, end) (0-based decoded frame
                                                  indices; rawframes ``img_%05d`` numbers are these + 1) and the
                                                  object's centre in each window frame.

Splits follow UCF101's rule of keeping a group's clips together: split s (1..3) tests the groups g with
``(g - 1) % min(groups, 4) == s - 1`` and trains on the others (25% test when there are 4+ groups).

Deterministic: every random draw comes from ``numpy.random.default_rng([seed, ...])``, keyed by group and clip for
the scene and by class, group and clip for the window and decoys, and the encoder runs single-threaded, so the same
seed gives the same files byte for byte.

The modules, one job each: ``classes`` (the catalogue: families, objects, motions, colours), ``plan`` (every random
draw of a video), ``render`` (rasterising a plan; OpenCV), ``encode`` (AVI files; PyAV), ``layout`` (the split rule,
the names of the videos and of the cache folder, the metadata and what is read from it), ``write``
(:func:`make_synthetic`), ``examples`` (the demo's clips) and ``cli`` (``python -m jna_fast.data.synthetic``).
Importing the package loads the light ones (standard library and NumPy); the others load on first use of their names,
so the dataset spec (jna_fast/data/datasets/synthetic.py) and the configuration read the catalogue and the layout
without PyAV or OpenCV.
"""

from ..._optional import lazy_exports
from .classes import (APPEARANCE_MOTION, BASE_SPEED, BINDING_BLUE, BINDING_RED, BINDING_TEXTURE, BLUE, CLASS_CATALOGUE,
                      DECOY_LENGTH_FRACTION, DEFAULT_FAMILIES, DEFAULT_FRAME_SIZE, DEFAULT_NUM_CLASSES,
                      DEFAULT_VIDEOS_PER_CLASS, DISTRACTOR_COLOUR, DISTRACTOR_HALF_SIZE, DISTRACTOR_SPEED, EDGE_MARGIN,
                      FAMILIES, FAST_SPEED, GREEN, MIN_FRAMES, MOTION_OBJECT, OBJECT_RADIUS, OBJECT_TEXTURE, RED,
                      SWING_AMPLITUDE, SWING_PERIOD, WINDOW_FRACTION, ClassSpec, catalogue)
from .layout import (GENERATOR_VERSION, INCOMPLETE_MARKER, META_NAME, SPLIT_DIR, SPLITS, VIDEO_DIR, SalientWindows,
                     cache_folder_name, complete_dataset_parameters, flips_preserve_labels, read_metadata,
                     split_test_groups, video_name)
from .plan import SCENE_STREAM, ObjectTrack, VideoPlan, plan_video, window_length_range

# Rendering needs OpenCV, encoding PyAV: imported on first use.
_EXPORTS = {
    "distractor_centre": ".render",
    "render_video": ".render",
    "CODECS": ".encode",
    "FPS": ".encode",
    "encode_video": ".encode",
    "make_synthetic": ".write",
    "EXAMPLE_CLIP": ".examples",
    "EXAMPLE_GROUP": ".examples",
    "example_clips": ".examples",
    "main": ".cli",
}
__getattr__ = lazy_exports(__name__, _EXPORTS, "the synthetic dataset's generator", "av", "cv2")
__all__ = ["APPEARANCE_MOTION", "BASE_SPEED", "BINDING_BLUE", "BINDING_RED", "BINDING_TEXTURE", "BLUE",
           "CLASS_CATALOGUE", "DECOY_LENGTH_FRACTION", "DEFAULT_FAMILIES", "DEFAULT_FRAME_SIZE", "DEFAULT_NUM_CLASSES",
           "DEFAULT_VIDEOS_PER_CLASS", "DISTRACTOR_COLOUR", "DISTRACTOR_HALF_SIZE", "DISTRACTOR_SPEED", "EDGE_MARGIN",
           "FAMILIES", "FAST_SPEED", "GREEN", "MIN_FRAMES", "MOTION_OBJECT", "OBJECT_RADIUS", "OBJECT_TEXTURE", "RED",
           "SWING_AMPLITUDE", "SWING_PERIOD", "WINDOW_FRACTION", "ClassSpec", "catalogue", "GENERATOR_VERSION",
           "INCOMPLETE_MARKER", "META_NAME", "SPLIT_DIR", "SPLITS", "VIDEO_DIR", "SalientWindows", "cache_folder_name",
           "complete_dataset_parameters", "flips_preserve_labels", "read_metadata", "split_test_groups", "video_name",
           "SCENE_STREAM", "ObjectTrack", "VideoPlan", "plan_video", "window_length_range", *_EXPORTS]
