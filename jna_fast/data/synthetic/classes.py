"""The synthetic set's class catalogue (jna_fast/data/synthetic/__init__.py describes the set): the families, the
geometry and colours of the objects and motions, one :class:`ClassSpec` per class. Standard library only: the
dataset spec (jna_fast/data/datasets/synthetic.py) and the configuration read it."""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("motion", "appearance", "binding")
DEFAULT_FAMILIES = FAMILIES
DEFAULT_NUM_CLASSES = 10
WINDOW_FRACTION = (0.3, 0.5)  # of the video's frames
MIN_FRAMES = 8
DEFAULT_FRAME_SIZE = 96       # pixels, square frames
DEFAULT_VIDEOS_PER_CLASS = 8

# Geometry as fractions of the frame's short side, so every size gives the same dataset up to scale.
OBJECT_RADIUS = 0.12          # equal-area radius of every object
BASE_SPEED = 0.018            # per frame
FAST_SPEED = 2.5 * BASE_SPEED
SWING_AMPLITUDE = 0.12
SWING_PERIOD = 10             # frames
DISTRACTOR_HALF_SIZE = 0.05
DISTRACTOR_SPEED = (0.006, 0.012)
EDGE_MARGIN = 0.03
DECOY_LENGTH_FRACTION = 0.5   # a decoy lasts at most this fraction of the shortest window
# Binding: two discs whose colours have the same grey level (0.299 R + 0.587 G + 0.114 B = 188.4), because flow is
# computed on grey frames: colours of different grey would give the flow branch the colour through the flow inside
# each disc. The binding discs carry a stronger texture than the other objects so that DIS measures their motion as
# well as it measures the single objects' (tests/test_synthetic.py).
BINDING_RED, BINDING_BLUE = (255, 160, 160), (130, 205.1, 255)
BINDING_TEXTURE = 0.3
OBJECT_TEXTURE = 0.15
MOTION_OBJECT = ("disc", (235, 215, 50))
APPEARANCE_MOTION = {"kind": "slide", "direction": (0.0, 1.0), "speed": BASE_SPEED}
RED, GREEN, BLUE = (220, 45, 45), (45, 190, 70), (55, 90, 235)
DISTRACTOR_COLOUR = (150, 150, 150)


@dataclass(frozen=True)
class ClassSpec:
    """One class: its object (shape, colour) doing its motion; a binding class has a second object.

    ``motion`` is ``{"kind": "slide", direction, speed}``, ``{"kind": "swing", axis, amplitude, period}`` or, for the
    binding family, ``{"kind": "wrap", speed}``: the object slides horizontally through the frame's edges (it leaves
    on one side and comes back on the other), with ``colour`` going right and ``partner_colour`` going left.
    """

    name: str
    family: str              # one of FAMILIES
    shape: str               # "disc", "square" or "triangle"
    colour: tuple[float, float, float]
    motion: dict
    partner_colour: tuple[float, float, float] | None = None


def _motion_class(name: str, motion: dict) -> ClassSpec:
    return ClassSpec(name, "motion", MOTION_OBJECT[0], MOTION_OBJECT[1], motion)


def _appearance_class(name: str, shape: str, colour: tuple[int, int, int]) -> ClassSpec:
    return ClassSpec(name, "appearance", shape, colour, APPEARANCE_MOTION)


def _binding_class(name: str, goes_right: tuple, goes_left: tuple) -> ClassSpec:
    return ClassSpec(name, "binding", "disc", goes_right, {"kind": "wrap", "speed": BASE_SPEED}, goes_left)


def _slide(direction: tuple[float, float], speed: float = BASE_SPEED) -> dict:
    return {"kind": "slide", "direction": direction, "speed": speed}


def _swing(axis: tuple[float, float]) -> dict:
    return {"kind": "swing", "axis": axis, "amplitude": SWING_AMPLITUDE, "period": SWING_PERIOD}


# Interleaved so that the first n classes mix the families: any n >= 2 has motion and appearance classes, n >= 3 a
# binding class too, and the default 10 are 4 motion, 4 appearance and both binding classes.
CLASS_CATALOGUE: tuple[ClassSpec, ...] = (
    _motion_class("SlideRight", _slide((1.0, 0.0))),
    _appearance_class("RedSquare", "square", RED),
    _binding_class("RedRightBlueLeft", BINDING_RED, BINDING_BLUE),
    _motion_class("SlideLeft", _slide((-1.0, 0.0))),
    _appearance_class("GreenSquare", "square", GREEN),
    _binding_class("BlueRightRedLeft", BINDING_BLUE, BINDING_RED),
    _motion_class("SwingHorizontal", _swing((1.0, 0.0))),
    _appearance_class("RedTriangle", "triangle", RED),
    _motion_class("SlideRightFast", _slide((1.0, 0.0), FAST_SPEED)),
    _appearance_class("BlueDisc", "disc", BLUE),
    _motion_class("SlideUp", _slide((0.0, -1.0))),
    _appearance_class("GreenTriangle", "triangle", GREEN),
    _motion_class("SwingVertical", _swing((0.0, 1.0))),
    _appearance_class("BlueSquare", "square", BLUE),
)



def catalogue(families=FAMILIES) -> tuple[ClassSpec, ...]:
    """The classes of the chosen families, in the catalogue's interleaved order."""
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise ValueError(f"families must be some of {', '.join(FAMILIES)}, got {list(families)!r}")
    return tuple(spec for spec in CLASS_CATALOGUE if spec.family in families)
