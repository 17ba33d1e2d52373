"""What each layer costs: its forward and backward time, and the memory of its
tops and params, as ``caffe time`` reports them.

- :class:`CostMeter` keeps, per layer, the last (and the mean) forward and backward
  time. It times the layer calls it makes itself (:meth:`CostMeter.forward`,
  :meth:`CostMeter.backward`), or, once attached to a net (:meth:`CostMeter.attach`), every
  ``forward_layer`` / ``backward_layer`` call a session makes, so a debugger's
  schedule can show each layer's last time as steps run.
- :func:`time_net` is ``caffe time`` (tools/caffe.cpp ``time()``): one forward and
  backward to warm up, then ``iterations`` passes, each layer timed on its own;
  per layer the mean forward and backward time, and the means of the passes.

On the GPU the device is synchronized before a timer starts and before it is read
(``backend.synchronize``), so a layer's time is its kernels', not their queueing.
Unlike ``caffe time``, which calls every layer's Backward, a layer that needs no
backward (the net says why) runs none here, as in a bpinspect pass.

Memory per layer (``top_bytes``, ``param_bytes``) counts data and diff: the tops
the layer writes, less those it computes in place (they are its bottom's blob,
counted where that blob is made), and its params (a param shared with an earlier
layer is counted there).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bpinspect.backend import synchronize

__all__ = ["CostMeter", "LayerCost", "TimeReport", "layer_costs", "time_net", "wrap_net_call"]

Progress = Callable[[int, int], None]  # (iterations done, iterations in all)
Cancel = Callable[[], bool]


@dataclass
class LayerCost:
    """One layer's memory and timings (milliseconds)."""

    index: int
    name: str
    type: str
    need_backward: bool
    top_bytes: int  # data + diff of the tops it writes (in-place tops not counted)
    param_bytes: int  # data + diff of its params (a shared param: at its first owner)
    in_place: tuple[str, ...] = ()  # tops that are also bottoms
    forward_ms: float | None = None  # the last forward's time
    backward_ms: float | None = None  # the last backward's time
    forward_total_ms: float = 0.0
    backward_total_ms: float = 0.0
    forward_runs: int = 0
    backward_runs: int = 0

    @property
    def memory_bytes(self) -> int:
        return self.top_bytes + self.param_bytes

    @property
    def forward_mean_ms(self) -> float | None:
        return self.forward_total_ms / self.forward_runs if self.forward_runs else None

    @property
    def backward_mean_ms(self) -> float | None:
        return self.backward_total_ms / self.backward_runs if self.backward_runs else None


def _nbytes(a: Any) -> int:
    return int(a.size) * int(a.dtype.itemsize)


def layer_costs(net: Any) -> list[LayerCost]:
    """A :class:`LayerCost` per layer of ``net`` with its memory, and no timings yet."""
    out = []
    seen_params: set[int] = set()
    for i, (name, layer) in enumerate(zip(net.layer_names, net.layers, strict=True)):
        bottoms = set(net.bottom_names[name])
        in_place = tuple(t for t in net.top_names[name] if t in bottoms)
        top_bytes = 0
        for t in net.top_names[name]:
            if t not in bottoms:
                blob = net.blobs[t]
                top_bytes += _nbytes(blob.data) + _nbytes(blob.diff)
        param_bytes = 0
        for p in net.params.get(name, []):
            if id(p) not in seen_params:
                seen_params.add(id(p))
                param_bytes += _nbytes(p.data) + _nbytes(p.diff)
        out.append(LayerCost(i, name, layer.type, bool(net.layer_need_backward[i]), top_bytes,
                             param_bytes, in_place))
    return out


LayerCall = Callable[[int], Any]


def wrap_net_call(net: Any, method: str,
                  make: Callable[[LayerCall], LayerCall]) -> Callable[[], None]:
    """Replace ``net.<method>`` (``forward_layer`` / ``backward_layer``) on this instance
    by ``make(current)``, and return the function that puts ``current`` back. Wrappers
    stack (a CostMeter and a UnitTracker on one net); undo them in reverse order."""
    had_own = method in vars(net)
    current = getattr(net, method)
    wrapper = make(current)
    setattr(net, method, wrapper)

    def restore() -> None:
        if vars(net).get(method) is not wrapper:
            return  # another wrapper went on top of this one: leave the stack alone
        if had_own:
            setattr(net, method, current)
        else:
            delattr(net, method)  # the class's method again

    return restore


class CostMeter:
    """Per-layer timings of a net's layer calls, and each layer's memory.

    ``meter.costs[i]`` is layer ``i``'s :class:`LayerCost`; ``meter.cost(name)`` looks
    one up by layer name. Use :meth:`forward` / :meth:`backward` to run and time one
    layer, or :meth:`attach` so that every ``net.forward_layer`` / ``net.backward_layer``
    call (a session's steps) is timed, until :meth:`detach`.
    """

    def __init__(self, net: Any) -> None:
        self.net = net
        self.costs: list[LayerCost] = layer_costs(net)
        self._by_name = {c.name: c for c in self.costs}
        self._xp = net.device.xp
        self._originals: tuple[Any, Any] | None = None
        self._restore: list[Callable[[], None]] = []

    def cost(self, layer: str) -> LayerCost:
        return self._by_name[layer]

    def reset(self) -> None:
        """Forget every timing (the memory stays)."""
        for c in self.costs:
            c.forward_ms = c.backward_ms = None
            c.forward_total_ms = c.backward_total_ms = 0.0
            c.forward_runs = c.backward_runs = 0

    def _timed(self, run: Callable[[int], Any], i: int, direction: str) -> tuple[Any, float]:
        synchronize(self._xp)
        t0 = time.perf_counter()
        result = run(i)
        synchronize(self._xp)
        ms = (time.perf_counter() - t0) * 1e3
        c = self.costs[i]
        if direction == "forward":
            c.forward_ms = ms
            c.forward_total_ms += ms
            c.forward_runs += 1
        else:
            c.backward_ms = ms
            c.backward_total_ms += ms
            c.backward_runs += 1
        return result, ms

    def forward(self, i: int) -> float:
        """Run layer ``i`` forward and time it; its time in milliseconds."""
        run = self._originals[0] if self._originals else self.net.forward_layer
        return self._timed(run, i, "forward")[1]

    def backward(self, i: int) -> float:
        """Run layer ``i`` backward (nothing if it needs none) and time it."""
        run = self._originals[1] if self._originals else self.net.backward_layer
        return self._timed(run, i, "backward")[1]

    def attach(self) -> None:
        """Time every later ``net.forward_layer`` / ``net.backward_layer`` call."""
        if self._originals is not None:
            return
        net = self.net
        self._originals = (net.forward_layer, net.backward_layer)
        self._restore = [
            wrap_net_call(net, "forward_layer",
                          lambda run: lambda i: self._timed(run, i, "forward")[0]),
            wrap_net_call(net, "backward_layer",
                          lambda run: lambda i: self._timed(run, i, "backward")[0]),
        ]

    def detach(self) -> None:
        """Stop timing the net's calls (the timings so far stay)."""
        if self._originals is None:
            return
        for restore in reversed(self._restore):
            restore()
        self._restore = []
        self._originals = None


@dataclass
class TimeReport:
    """``caffe time``'s numbers: per layer the means over ``iterations``, and the totals."""

    iterations: int
    warmup: int
    device: str
    layers: list[LayerCost]
    initial_loss: float
    forward_ms: float  # Average Forward pass
    backward_ms: float  # Average Backward pass
    forward_backward_ms: float  # Average Forward-Backward
    total_ms: float  # Total Time
    iteration_ms: list[float] = field(default_factory=list)  # each forward-backward

    @property
    def top_bytes(self) -> int:
        return sum(c.top_bytes for c in self.layers)

    @property
    def param_bytes(self) -> int:
        return sum(c.param_bytes for c in self.layers)


def time_net(net: Any, iterations: int = 50, warmup: int = 1,
             progress: Progress | None = None, cancel: Cancel | None = None) -> TimeReport:
    """Time ``net`` as ``caffe time`` does, with the values its blobs hold now (set the
    inputs first, e.g. through a Session): ``warmup`` untimed forward-backward passes,
    then ``iterations`` timed ones, every layer forward in order, then backward in
    reverse order, each timed on its own. A cancelled run reports the iterations done."""
    from bpinspect.errors import BpinspectError

    if iterations < 1:
        raise BpinspectError(f"--iterations {iterations}: expected at least 1")
    if warmup < 0:
        raise BpinspectError(f"--warmup {warmup}: expected 0 or more")
    n = len(net.layers)
    meter = CostMeter(net)
    xp = net.device.xp
    initial_loss = 0.0
    with net.device.use(), np.errstate(all="ignore"):
        for k in range(warmup):
            loss = sum(float(net.forward_layer(i)) for i in range(n))
            if k == 0:
                initial_loss = loss
            net.seed_loss_diffs()
            for i in reversed(range(n)):
                net.backward_layer(i)
        net.seed_loss_diffs()
        forward_ms = backward_ms = 0.0
        per_iteration: list[float] = []
        synchronize(xp)
        t_total = time.perf_counter()
        done = 0
        for _ in range(iterations):
            if cancel is not None and cancel():
                break
            t_iter = time.perf_counter()
            forward_ms += sum(meter.forward(i) for i in range(n))
            backward_ms += sum(meter.backward(i) for i in reversed(range(n)))
            per_iteration.append((time.perf_counter() - t_iter) * 1e3)
            done += 1
            if progress is not None:
                progress(done, iterations)
        synchronize(xp)
        total_ms = (time.perf_counter() - t_total) * 1e3
    runs = max(done, 1)
    return TimeReport(done, warmup, net.device.name, meter.costs, initial_loss,
                      forward_ms / runs, backward_ms / runs, total_ms / runs, total_ms,
                      per_iteration)
