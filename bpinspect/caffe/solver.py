"""pycaffe's solvers: ``caffe.SGDSolver(file)`` ... and ``caffe.get_solver(file)``.

Each is bpinspect's engine solver (``bpinspect.engine.solver``) seen
through pycaffe's names: ``net`` and ``test_nets`` are :class:`caffe.Net`
views of the solver's own nets (the same blobs), ``step``, ``solve``,
``restore``, ``snapshot``, ``iter``, ``lr``, ``param`` and the rest are the
engine solver's. The nets run on the device ``caffe.set_mode_gpu`` /
``set_device`` chose, seeded by ``caffe.set_random_seed`` when it was called.

``add_callback(on_start, on_gradients)`` is pycaffe's: in every iteration of
``step`` (and so of ``solve``) ``on_start()`` runs after the tests due and
before the first forward, ``on_gradients()`` after the last backward and before
the update, where Caffe's ``Solver::Step`` calls its callbacks; a change to the
params' diffs there is what the update applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bpinspect.caffe import _mode
from bpinspect.caffe.net import Net
from bpinspect.engine import solver as engine_solver
from bpinspect.errors import BpinspectError

__all__ = [
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "NesterovSolver",
    "RMSPropSolver",
    "SGDSolver",
    "Solver",
    "get_solver",
]


class Solver:
    """A pycaffe solver over an engine solver (``engine``)."""

    engine_class: type[engine_solver.Solver] | None = None

    def __init__(self, filename: Any, **kwargs: Any) -> None:
        if self.engine_class is None:
            raise TypeError("Solver is the base class: use caffe.get_solver(file) or SGDSolver")
        self._attach(self.engine_class(filename, **_engine_kwargs(kwargs)))

    @classmethod
    def wrap(cls, engine: engine_solver.Solver) -> Solver:
        made = cls.__new__(cls)
        made._attach(engine)
        return made

    def _attach(self, engine: engine_solver.Solver) -> None:
        self.engine = engine
        self._net = Net.wrap(engine.net)
        self._test_nets = [Net.wrap(n) for n in engine.test_nets]
        self._callbacks: list[tuple[Callable[[], Any], Callable[[], Any]]] = []

    @property
    def net(self) -> Net:
        return self._net

    @property
    def test_nets(self) -> list[Net]:
        return list(self._test_nets)

    def _flush(self) -> None:
        for net in (self._net, *self._test_nets):
            net._staging.flush()

    def add_callback(self, on_start: Callable[[], Any],
                     on_gradients: Callable[[], Any]) -> None:
        """Call ``on_start()`` before each iteration's forward and ``on_gradients()``
        after its backward, before the update (in the order they were added)."""
        for name, fn in (("on_start", on_start), ("on_gradients", on_gradients)):
            if not callable(fn):
                raise BpinspectError(f"add_callback: {name} is a {type(fn).__name__}, "
                                     "not a function")
        self._callbacks.append((on_start, on_gradients))

    def step(self, iters: int) -> None:
        self._flush()
        if not self._callbacks:
            self.engine.step(iters)
            return
        # Solver::Step from the engine's parts, the callbacks where Caffe calls them.
        # The nets' host copies (on a GPU) are written back before each part runs, so
        # that a callback's changes reach it, and it sees each part's results.
        engine = self.engine
        stop = engine.iter + int(iters)
        engine._reset_smoothed_loss()
        while engine.iter < stop:
            engine.begin_iteration()
            if engine.test_due():
                engine.test_all()
            for on_start, _ in self._callbacks:
                on_start()
            self._flush()
            loss = sum(engine.forward_backward() for _ in range(engine.param.iter_size))
            loss /= engine.param.iter_size
            for _, on_gradients in self._callbacks:
                on_gradients()
            self._flush()
            engine.apply_update()
            engine.finish_iteration(loss)

    def solve(self, resume_file: Any = None) -> None:
        self._flush()
        if not self._callbacks:
            self.engine.solve(resume_file)
            return
        # Solver::Solve runs Step: the engine's solve, running this step (callbacks).
        self.engine.step = self.step  # type: ignore[method-assign]
        try:
            self.engine.solve(resume_file)
        finally:
            del self.engine.step

    def restore(self, path: Any) -> None:
        self._flush()
        self.engine.restore(path)

    def snapshot(self, *args: Any) -> Any:
        self._flush()
        return self.engine.snapshot(*args)

    def apply_update(self) -> Any:
        self._flush()
        return self.engine.apply_update()

    def share_weights(self, net: Net) -> None:
        """Make ``net`` use this solver's train-net params (data only), by layer name."""
        net.share_with(self._net)

    def __getattr__(self, name: str) -> Any:  # iter, lr, param, notes, ...
        if name.startswith("__") or name == "engine":
            raise AttributeError(name)
        return getattr(self.engine, name)

    def __repr__(self) -> str:
        return f"<caffe {type(self).__name__} over {self.engine!r}>"


def _engine_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {"device": _mode.current_device()}
    if _mode.seed_was_set():
        out["seed"] = _mode.current_seed()
    out.update(kwargs)
    return out


def _solver_class(name: str, engine_class: type[engine_solver.Solver]) -> type[Solver]:
    doc = f"pycaffe's ``caffe.{name}(filename)``: {engine_class.__doc__}"
    return type(name, (Solver,), {"engine_class": engine_class, "__doc__": doc,
                                  "__module__": __name__})


SGDSolver = _solver_class("SGDSolver", engine_solver.SGDSolver)
NesterovSolver = _solver_class("NesterovSolver", engine_solver.NesterovSolver)
AdaGradSolver = _solver_class("AdaGradSolver", engine_solver.AdaGradSolver)
RMSPropSolver = _solver_class("RMSPropSolver", engine_solver.RMSPropSolver)
AdaDeltaSolver = _solver_class("AdaDeltaSolver", engine_solver.AdaDeltaSolver)
AdamSolver = _solver_class("AdamSolver", engine_solver.AdamSolver)

_BY_ENGINE = {cls.engine_class: cls for cls in (SGDSolver, NesterovSolver, AdaGradSolver,
                                                 RMSPropSolver, AdaDeltaSolver, AdamSolver)}


def get_solver(filename: Any, **kwargs: Any) -> Solver:
    """The solver of the type the file names (``type: "Adam"`` ...)."""
    engine = engine_solver.get_solver(filename, **_engine_kwargs(kwargs))
    return _BY_ENGINE.get(type(engine), Solver).wrap(engine)
