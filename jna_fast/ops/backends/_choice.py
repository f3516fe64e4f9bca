"""The backend registry and the choice, after xformers: every backend says why it cannot serve an input, and an
error lists them all.

A backend is a :class:`Backend` registered with :func:`register_backend` by its own module of this package (see
``__init__``): its preference rank, why this machine cannot run it, why it cannot serve an input, and its two op
implementations. ``backend=None`` takes the first by rank that can serve; ``JNA_FAST_BACKEND`` or
``backend="name"`` forces one.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ...errors import JnaFastError
from ...registry import Registry


class BackendUnavailable(JnaFastError, RuntimeError):
    """No requested backend can serve these inputs; the message lists each backend's reason.

    A RuntimeError (and a ``jna_fast.errors.JnaFastError``).
    """


def _no_reason(*_args) -> str | None:
    return None


def _nothing_to_load() -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """One backend of the two ops.

    ``rank``: preference, lowest first (the automatic choice takes the first that can serve).
    ``machine_reason()``: why this machine cannot run it at all (None: it can); asked once, at registration.
    ``input_reason(device, forced)``: why it cannot serve inputs on ``device`` (None: it can); ``forced``: the
    user named it (a backend may serve some inputs only then, such as a debugging interpreter).
    ``cross_stitch``, ``joint_attention_pool``: the ops, same signatures as ``jna_fast.ops``'s, inputs checked.
    ``namespace``: the ``torch.ops`` namespace of its registered ops (None: plain PyTorch, none registered);
    ``load()`` registers them (imports its kernel package). ``devices``: the device types its kernels are built
    for (what the tests and benchmarks try it on). ``max_channels``: the widest C its pool serves (None: any).
    """

    name: str
    rank: int
    cross_stitch: Callable
    joint_attention_pool: Callable
    machine_reason: Callable[[], str | None] = _no_reason
    input_reason: Callable[[torch.device, bool], str | None] = _no_reason
    namespace: str | None = None
    load: Callable[[], None] = _nothing_to_load
    devices: tuple[str, ...] = ("cpu", "cuda")
    max_channels: int | None = None

    def registered_ops(self):
        """``torch.ops.<namespace>``, its ops registered (None for a plain-PyTorch backend)."""
        if self.namespace is None:
            return None
        self.load()
        return getattr(torch.ops, self.namespace)


class BackendRegistry(Registry):
    """The registered backends, in preference order. What this machine can run is fixed for the life of the
    process: each backend's machine reason is worked out once, when it registers, so that choosing a backend
    inside a torch.compile trace is plain lookups."""

    def __init__(self, kind: str = "ops.backend"):
        super().__init__(kind)
        self._machine_reasons: dict[str, str | None] = {}

    def add(self, backend: Backend) -> Backend:
        self.register(backend.name)(backend)
        self._machine_reasons[backend.name] = backend.machine_reason()
        return backend

    def remove(self, name: str) -> None:
        self.unregister(name)
        del self._machine_reasons[name]

    @contextmanager
    def registered(self, backend: Backend) -> Iterator[Backend]:
        """``backend`` registered for the duration of a ``with`` block (for tests)."""
        self.add(backend)
        try:
            yield backend
        finally:
            self.remove(backend.name)

    def names(self) -> tuple[str, ...]:
        """The backends' names in preference order."""
        return tuple(sorted(super().names(), key=lambda name: (self[name].rank, name)))

    def in_order(self) -> list[Backend]:
        return [self[name] for name in self.names()]

    def machine_reason(self, name: str) -> str | None:
        """Why this machine cannot run backend ``name`` at all (None: it can), as worked out at registration."""
        return self._machine_reasons[name]

    def why_not(self, name: str, device: torch.device, forced: bool) -> str | None:
        """Why backend ``name`` cannot serve inputs on ``device`` (None: it can)."""
        return self._machine_reasons[name] or self[name].input_reason(device, forced)


BACKENDS = BackendRegistry()


def register_backend(backend: Backend) -> Backend:
    """Registers ``backend`` (its module calls this at import); returns it."""
    return BACKENDS.add(backend)


def backend_names() -> tuple[str, ...]:
    """The registered backends' names, in preference order."""
    return BACKENDS.names()


def forced_backend_name(backend: str | None) -> str | None:
    name = backend if backend is not None else (os.environ.get("JNA_FAST_BACKEND") or None)
    if name is not None and name not in BACKENDS:
        source = "backend" if backend is not None else "JNA_FAST_BACKEND"
        raise ValueError(f"{source}={name!r}: unknown backend; choose one of {', '.join(BACKENDS.names())}")
    return name


def _auto_choice(device: torch.device) -> Backend:
    for backend in BACKENDS.in_order():
        if BACKENDS.why_not(backend.name, device, forced=False) is None:
            return backend
    raise BackendUnavailable(f"no backend can serve {device.type} inputs:\n{_listing(device)}")


def _listing(device: torch.device) -> str:
    return "\n".join(f"  {name}: {reason or 'can serve'}" for name, reason in availability(device).items())


def select_backend(device: torch.device, backend: str | None = None) -> Backend:
    """The backend for inputs on ``device``: the forced one, else the first in preference order that can serve.

    Args:
        device: the inputs' device.
        backend: a backend's name to force it; None: the environment variable ``JNA_FAST_BACKEND``, else the
            first that can serve.

    Returns:
        The backend, whose ``cross_stitch`` and ``joint_attention_pool`` take the ops' arguments.

    Raises:
        ValueError: an unknown backend name (argument or ``JNA_FAST_BACKEND``).
        BackendUnavailable: the forced backend cannot serve ``device`` (or none can); the message names every
            backend's reason.
    """
    name = forced_backend_name(backend)
    if name is None:
        return _auto_choice(device)
    reason = BACKENDS.why_not(name, device, forced=True)
    if reason is None:
        return BACKENDS[name]
    raise BackendUnavailable(
        f"backend {name!r} cannot serve {device.type} inputs: {reason}\nper backend:\n{_listing(device)}"
    )


def availability(device: torch.device) -> dict[str, str | None]:
    """For `python -m jna_fast.info`: why each backend cannot serve ``device``.

    Args:
        device: the inputs' device.

    Returns:
        Backend name -> its reason it cannot serve ``device`` (None: it can), in preference order.
    """
    return {name: BACKENDS.why_not(name, device, forced=True) for name in BACKENDS.names()}
