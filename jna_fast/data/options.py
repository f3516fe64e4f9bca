"""The data section of the configuration (docs/design.md §9): where the videos and the flow come from, how clips
are cut and decoded. Standard library only (no PyAV, no OpenCV): the configuration reads it at import."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.errors import ON_ERROR_CHOICES
from ..options import option

BACKENDS = ("auto", "dali", "pyav")
"""The loader's decoding backends (``Decoding.backend``)."""
FLOW_SOURCES = ("rawframes", "online")
"""Where the flow comes from (``FlowSource.source``)."""
MEMORY_CACHE_MODES = ("auto", "on", "off")
# --data.memory_cache auto caches a split when its decoded size fits under this share of the memory available at the
# start of the run, divided among the node's processes: 6 GiB at most on a 24 GiB machine with one process.
MEMORY_CACHE_SHARE = 0.25
# TSN's test protocol: 25 evenly spaced snippets per video.
DEFAULT_TEST_SEGMENTS = 25
# The test views per video TSN reports: the centre; 3 along the long side; 4 corners, centre and mirrors.
TEST_CROP_COUNTS = (1, 3, 10)


@dataclass(frozen=True)
class DataOptions:
    # The dataset kinds' registry fills the choices (jna_fast/data/datasets/).
    dataset: str = option("synthetic", "dataset kind")
    root: str | None = option(None, "dataset root (synthetic: where to generate it; default: a cache folder named "
                              "after its parameters)")
    frames_root: str | None = option(None, "rawframes folder with the extracted flow (python -m jna_fast.flow)")
    split: int = option(1, "official split number", minimum=1)
    train_list: str | None = option(None, "list file for --dataset videos/rawframes (training)")
    val_list: str | None = option(None, "list file for --dataset videos/rawframes (validation)")
    num_classes: int | None = option(None, "classes of --dataset videos/rawframes (default: the largest training "
                                     "label + 1, every class then needing a training line)", minimum=1)
    # The backbones reduce their input 32 times: a smaller crop leaves their last stages a single pixel.
    size: int = option(224, "crop size fed to the network", minimum=32)
    flip: bool | None = option(None, "horizontal flips in training and test views (default: the dataset's policy: "
                               "on for UCF101/HMDB51 and lists, off for the synthetic set, whose SlideLeft/SlideRight "
                               "labels a flip would swap)")
    num_segments: int = option(3, "T snippets per training clip", minimum=1)
    flow: str = option("rawframes", "where flow comes from: the rawframes under --frames-root, or computed on the fly "
                       "from the decoded videos (no rawframes needed)", choices=FLOW_SOURCES)
    flow_algorithm: str | None = option(None, "online: the algorithm to compute flow with (default dis); rawframes: "
                                        "the one they were extracted with (default tvl1, the extractor's); "
                                        "prediction computes a video's flow with it")
    rgb_template: str = option("img_{:05d}.jpg", "RGB file names in a rawframes folder (mmaction2's filename_tmpl)")
    flow_template: str = option("flow_{}_{:05d}.jpg", "flow file names: {} takes x or y, then the number")
    start_index: int = option(1, "number of the first file in a rawframes folder", minimum=0)
    backend: str = option("auto", "clip decoding backend", choices=BACKENDS, resumable=True)
    on_error: str = option("skip", "a corrupt video: stop, or warn, skip and count it", choices=ON_ERROR_CHOICES,
                           resumable=True)
    memory_cache: str = option("auto", "keep each video's decoded frames and flow in memory after its first "
                               "read, so later epochs only cut crops (PyAV backend): auto when a split's decoded "
                               "size fits under --data.memory_cache_mib, on, or off; changes speed, not the batches",
                               choices=MEMORY_CACHE_MODES, resumable=True)
    memory_cache_mib: int | None = option(None, "the memory cache's limit in MiB, for the training and validation "
                                          "splits together (default: a quarter of the memory available at the "
                                          "start, divided among the node's processes)", minimum=1, resumable=True)
