"""Checkpoints: written atomically and read with clear errors (jna_fast.inference.Predictor turns one back into a
model).

A checkpoint is a ``torch.save`` of a dict with ``format`` (:data:`FORMAT`), ``version``, ``model`` (the state
dict), ``config`` (the resolved Config as a dict), ``class_names``, ``data`` (what prediction needs to prepare
a video as the training data was: crop size, flip policy, flow algorithm and bound), and, in ``last.pt``, what
resuming needs
(``optimizer``, ``epoch``, ``batch``, ``step``, ``rng``, ``best_top1``). ``best.pt`` holds the model of the epoch
with the best validation top-1 and its ``metrics``. :data:`SCHEMA` declares each of them (its type, and the shape or
range of its values); :func:`load_checkpoint` checks a file against it, so that what a file from anyone holds is
what the code reading it expects, or a CheckpointError names the file and the field.

Safe to load from anyone: everything in a checkpoint is a tensor or a plain value (numbers, strings, lists,
tuples, dicts; the RNG states too, see jna_fast/runtime.py), so it is read with ``torch.load(weights_only=True)``,
whose unpickler builds only those and refuses any other object before calling anything. A pickle that would run
code (``os.system`` in a ``__reduce__``, say) is refused with CheckpointError and nothing of it runs. A model whose
weights are not finite is never written and never loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .cli import Range
from .config import config_from_dict, leaves
from .errors import JnaFastError
from .files import write_atomically
from .flow import ALGORITHMS as FLOW_ALGORITHMS
from .models import migrate_state_dict
from .runtime import PRECISIONS

FORMAT = "jna_fast/checkpoint"
# 2: the RNG states are tensors and plain values (version 1 held NumPy objects, which weights_only refuses).
VERSION = 2
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"


class CheckpointError(JnaFastError, ValueError):
    """A file that is not a usable jna_fast checkpoint (missing, truncated, foreign, unsafe, or made for another
    model), or a model that must not be written (weights that are not finite)."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write atomically (jna_fast/files.py: a crash never leaves a torn file). A ``model`` whose weights are not
    finite is refused with CheckpointError, so that a diverged run never replaces a good checkpoint."""
    broken = non_finite_weights(state["model"]) if "model" in state else None
    if broken:
        raise CheckpointError(f"{path}: not written: the model's weights are not finite ({broken}); the file "
                              f"already there is kept")
    write_atomically(path, lambda handle: torch.save({"format": FORMAT, "version": VERSION, **state}, handle))


def non_finite_weights(state_dict: dict) -> str | None:
    """The names of the floating-point tensors of ``state_dict`` that hold NaN or inf (the first three), or None
    when every one is finite."""
    floating = {name: tensor for name, tensor in state_dict.items() if tensor.is_floating_point()}
    if not floating:
        return None
    # A NaN or inf anywhere makes a tensor's sum NaN or inf; summed in float64 no finite weights overflow, and
    # one reduction per tensor with a single device sync is far cheaper than an elementwise isfinite.
    sums = torch.stack([tensor.detach().sum(dtype=torch.float64) for tensor in floating.values()])
    finite = torch.isfinite(sums)
    if bool(finite.all()):
        return None
    broken = [name for name, ok in zip(floating, finite.tolist()) if not ok]
    return ", ".join(broken[:3]) + (f" and {len(broken) - 3} more" if len(broken) > 3 else "")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """The checkpoint's dict; CheckpointError names the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        # weights_only=True: only tensors and plain values are built; anything else is refused before it runs.
        with warnings.catch_warnings():
            # torch warns about a foreign file's pickle protocol before refusing it; the refusal says enough.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler met an object it does not build (or an opcode it does not run).
        raise CheckpointError(f"{path}: refused: it holds something other than tensors and plain values, which "
                              f"could run code when loaded ({_unpickler_reason(error)}); nothing of it was run. "
                              f"jna_fast never writes such a file (a last.pt of jna_fast before checkpoint version 2 "
                              f"held NumPy RNG state: start afresh with --resume never)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not written by torch.save): "
                              f"{type(error).__name__}: {str(error)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        kind = type(state).__name__ if not isinstance(state, dict) else f"dict with keys {sorted(state)[:6]}"
        raise CheckpointError(f"{path}: not a jna_fast checkpoint ({kind}); for a torchvision ImageNet weight file "
                              f"use --weights / JNA.load_backbone_weights")
    _check(path, state.get("version"), VERSION_FIELD, "version")
    if state["version"] > VERSION:  # checked before the schema, which a newer version may have changed
        raise CheckpointError(f"{path}: checkpoint version {state['version']} is newer than this jna_fast "
                              f"understands ({VERSION}); upgrade jna_fast")
    _check(path, state, SCHEMA, "")
    return state


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of the weights-only unpickler's message that says what it refused (the rest is torch's advice to
    load with weights_only=False, which jna_fast never does)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if "GLOBAL" in line or line.startswith("Unsupported")]
    return (reasons or lines or [type(error).__name__])[0][:300]


def load_model_state(model, state_dict: dict, path) -> None:
    """Load every weight or none: a mismatch raises CheckpointError naming the keys, and the model is untouched
    (shapes are checked before anything is copied). The keys of models written before parts are renamed first
    (:func:`jna_fast.models.migrate_state_dict`, which also strips DDP's and torch.compile's prefixes)."""
    state_dict = migrate_state_dict(state_dict, model.state_dict())
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{key}: file {tuple(state_dict[key].shape)} {state_dict[key].dtype} vs model "
                  f"{tuple(value.shape)} {value.dtype}" for key, value in expected.items()
                  if key in state_dict and (state_dict[key].shape != value.shape or
                                            state_dict[key].dtype.is_floating_point != value.dtype.is_floating_point)]
    if missing or unexpected or mismatched:
        raise CheckpointError(f"{path}: its weights do not fit the model: missing {missing[:5]}, unexpected "
                              f"{unexpected[:5]}, shape or type mismatches {mismatched[:5]}")
    broken = non_finite_weights(state_dict)
    if broken:
        raise CheckpointError(f"{path}: its weights are not finite ({broken}): the run that wrote it diverged")
    model.load_state_dict(state_dict)


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict, path) -> None:
    """Load a checkpoint's optimiser state (checked by :data:`SCHEMA`) into ``optimizer``; one that does not fit its
    parameters (other groups, a moment of another shape) raises CheckpointError naming the file, before a step
    would fail on it."""
    with entry_in_use(path, "optimizer"):
        optimizer.load_state_dict(with_this_update(optimizer, state))
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            for key, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != parameter.shape:
                    raise CheckpointError(f"{path}: optimizer.state: {key} of shape {tuple(value.shape)} for a "
                                          f"parameter of shape {tuple(parameter.shape)}")


# How an optimiser computes its update (torch's fused kernel, per-tensor foreach loops), which torch keeps in each
# parameter group and a loaded state would otherwise replace: a property of the device that resumes, not of the
# run that saved (an older checkpoint's per-tensor update resumed on a device with a fused one).
UPDATE_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def with_this_update(optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """``state`` with each parameter group's :data:`UPDATE_IMPLEMENTATION` flags taken from ``optimizer`` (groups
    beyond the optimizer's are left as saved, for torch to refuse)."""
    flags = [{key: group[key] for key in UPDATE_IMPLEMENTATION if key in group} for group in optimizer.param_groups]
    groups = [{**saved, **(flags[index] if index < len(flags) else {})}
              for index, saved in enumerate(state["param_groups"])]
    return {**state, "param_groups": groups}


@contextlib.contextmanager
def entry_in_use(path, name: str):
    """Put a checkpoint's entry ``name`` to use (an optimiser's state loaded, random states restored): what the
    schema cannot see, the code using it refuses with one of these errors, which is raised as a CheckpointError
    naming the file and the entry."""
    try:
        yield
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RuntimeError) as error:
        raise CheckpointError(f"{path}: {name}: {type(error).__name__}: {error}") from None


# --- the schema ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """What one entry of a checkpoint must be. ``expected`` says it in words, for the error; ``accepts`` tests the
    value's type; then, where given: ``range`` bounds a number, ``choices`` lists the values allowed, ``fields``
    are the entries of a dict by name, ``keys`` and ``each`` what every key and every value of a dict (or item of
    a list) must be, and ``contents`` checks the whole value last (returning the problem, or None). ``optional``:
    the entry may be absent."""

    expected: str
    accepts: Callable[[object], bool]
    optional: bool = False
    range: Range | None = None
    choices: tuple | None = None
    fields: dict[str, "Field"] | None = None
    keys: "Field | None" = None
    each: "Field | None" = None
    contents: Callable[[object, str], str | None] | None = None


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _instance(*types: type) -> Callable[[object], bool]:
    return lambda value: isinstance(value, types)


def _tensor(dtype: torch.dtype) -> Callable[[object], bool]:
    return lambda value: isinstance(value, torch.Tensor) and value.dtype == dtype and value.dim() == 1


def _moment(value) -> bool:
    """A value of an optimiser's per-parameter state (SGD's momentum buffer is None without momentum)."""
    return value is None or isinstance(value, torch.Tensor) or _number(value)


def _non_empty_list(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0


def _python_random_state(value) -> bool:
    """``random.getstate()``: (version, the generator's words, the cached Gaussian or None)."""
    return (isinstance(value, (list, tuple)) and len(value) == 3 and _integer(value[0])
            and isinstance(value[1], (list, tuple)) and all(_integer(word) for word in value[1])
            and (value[2] is None or _number(value[2])))


def _configuration_problem(values: dict, name: str) -> str | None:
    """The saved configuration checked as Config checks any (jna_fast/config/ owns its options, and upgrades older versions)."""
    try:
        config_from_dict(values, name)
    except ValueError as error:
        message = str(error)
        return message if message.startswith(f"{name}: ") else f"{name}: {message}"
    return None


def _option_range(path: str) -> Range:
    return leaves()[path].range


_STRING = Field("a string", _instance(str))
_COUNT = Field("an integer", _integer, optional=True, range=Range(minimum=0))
_RANDOM_BYTES = Field("a 1-D uint8 tensor", _tensor(torch.uint8))
VERSION_FIELD = Field("an integer", _integer, range=Range(minimum=1))
SCHEMA = Field("a dict", _instance(dict), fields={
    "model": Field("a dict of weight names to tensors", _instance(dict), keys=_STRING,
                   each=Field("a tensor", _instance(torch.Tensor))),
    "config": Field("a dict of training options", _instance(dict), keys=_STRING, contents=_configuration_problem),
    "class_names": Field("a non-empty list of strings", _non_empty_list, each=_STRING),
    "data": Field("a dict of data settings", _instance(dict), optional=True, fields={
        "size": Field("an integer", _integer, range=_option_range("data.size")),
        "flip": Field("true or false", _instance(bool)),
        "flow_algorithm": Field("a string", _instance(str), choices=FLOW_ALGORITHMS),
        "flow_bound": Field("a number", _number, range=Range(above=0)),
        "precision": Field("a string", _instance(str), optional=True, choices=PRECISIONS),
        # The training frames' short side (pixels), which prediction decodes videos to.
        "short_side": Field("an integer", _integer, optional=True, range=Range(minimum=1))}),
    # What resuming needs (last.pt): the optimiser's state, where the run stood, the random generators' states.
    "optimizer": Field("an optimizer state dict", _instance(dict), optional=True, fields={
        "state": Field("a dict", _instance(dict), keys=Field("an integer", _integer), each=Field(
            "a dict", _instance(dict), keys=_STRING, each=Field("a tensor, a number or None", _moment))),
        "param_groups": Field("a list of dicts", _instance(list), each=Field("a dict", _instance(dict), fields={
            "params": Field("a list of integers", _instance(list), each=Field("an integer", _integer))}))}),
    "epoch": _COUNT, "batch": _COUNT, "step": _COUNT,
    "best_top1": Field("a number", _number, optional=True, range=Range(minimum=-1, maximum=1)),
    "rng": Field("a dict of random generator states", _instance(dict), optional=True, fields={
        "python": Field("a list of (version, state words, gauss)", _python_random_state),
        "numpy": Field("a dict", _instance(dict), fields={
            "bit_generator": _STRING, "key": Field("a 1-D int64 tensor", _tensor(torch.int64)),
            "pos": Field("an integer", _integer), "has_gauss": Field("an integer", _integer),
            "gauss": Field("a number", _number)}),
        "torch": _RANDOM_BYTES,
        "cuda": Field("a list of tensors", _instance(list, tuple), optional=True, each=_RANDOM_BYTES)}),
    # best.pt: the validation metrics of its epoch.
    "metrics": Field("a dict", _instance(dict), optional=True, keys=_STRING),
})


def _check(path, value, field: Field, name: str) -> None:
    """Raise CheckpointError naming ``path`` and the entry when ``value`` does not fit ``field``."""
    problem = _problem(value, field, name)
    if problem:
        raise CheckpointError(f"{path}: {problem}")


def _kind(value) -> str:
    """The type of ``value`` in an error ("int", "None", "an empty list")."""
    if value is None:
        return "None"
    if isinstance(value, (list, tuple, dict, str)) and not value:
        return f"an empty {type(value).__name__}"
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _problem(value, field: Field, name: str) -> str | None:
    """Why ``value`` (the entry ``name``: "data.size", "model['fc.bias']") does not fit ``field``, or None."""
    if not field.accepts(value):
        return f"{name}: expected {field.expected}, got {_kind(value)}"
    problem = field.range.violation(value) if field.range is not None else None
    if problem:
        return f"{name}: {problem}"
    if field.choices is not None and value not in field.choices:
        return f"{name}: expected one of {', '.join(field.choices)}, got {value!r}"
    for key, inner in (field.fields or {}).items():
        where = f"{name}.{key}" if name else key
        if key not in value:
            problem = None if inner.optional else f"{where}: missing"
        else:
            problem = _problem(value[key], inner, where)
        if problem:
            return problem
    if field.keys is not None or field.each is not None:
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            problem = ((field.keys is not None and _problem(key, field.keys, f"{name}: key {key!r}"))
                       or (field.each is not None and _problem(item, field.each, f"{name}[{key!r}]")))
            if problem:
                return problem
    return field.contents(value, name) if field.contents is not None else None
