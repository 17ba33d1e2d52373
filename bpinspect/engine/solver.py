"""Caffe's solvers: a train net, its test nets, and one iteration at a time.

Follows ``src/caffe/solver.cpp`` (``Solver::Init``, ``InitTrainNet``,
``InitTestNets``, ``Step``, ``Solve``, ``TestAll``/``Test``,
``UpdateSmoothedLoss``, ``Snapshot``, ``CheckSnapshotWritePermissions``,
``Restore``) and ``src/caffe/solvers/sgd_solver.cpp`` (``ApplyUpdate``,
``ClipGradients``, ``Normalize``, ``Regularize``, the solver state), with
``ComputeUpdateValue`` per type in :mod:`bpinspect.engine.update_rules` and
``GetLearningRate`` in :mod:`bpinspect.engine.lr_policy`. The Python API is
pycaffe's (``python/caffe/_caffe.cpp``): ``net``, ``test_nets``, ``iter``,
``param``, ``type``, ``step``, ``solve``, ``apply_update``, ``snapshot``,
``restore``, ``lr``.

One iteration of ``Step`` is, in parts a debugger can drive itself::

    solver.begin_iteration()            # net.clear_param_diffs()
    if solver.test_due():
        solver.test_all()
    loss = sum(solver.forward_backward() for _ in range(iter_size)) / iter_size
    report = solver.apply_update()      # the update; iter += 1 (as Caffe's ApplyUpdate)
    solver.finish_iteration(loss)       # smoothed loss; snapshot when due

``apply_update`` increments ``iter`` because Caffe's ``SGDSolver::ApplyUpdate``
does (since BVLC/caffe c74913d, 2017: "increment iteration during update, not
step"), so pycaffe's ``solver.apply_update()`` advances ``solver.iter``.

Learnable params are Caffe's ``learnable_params_``: one per param Blob, the
first layer that has it owning it (params shared by ``ParamSpec`` name are one
Blob in :class:`~bpinspect.engine.net.Net`), frozen ones (``lr_mult: 0``)
included: they are regularized and go through the update rule with a local
rate of 0 (their histories move, e.g. AdaGrad's), exactly as in Caffe. A
shared param's ``lr_mult``/``decay_mult`` come from the first layer that
sets them, and must agree (``Net::AppendParam``).

Test nets share the train net's params (``Net::ShareTrainedLayersWith``): the
test net's param Blob for a layer of the same name *is* the train net's Blob
object (data and diff alike; the test nets only run forward), so a debugger
looking at a test net sees the weights of this very iteration.

Paths in a solver file (``net``, ``train_net``, ``test_net``, ``weights``,
``snapshot_prefix``) are Caffe's, relative to the working directory; failing
that, relative to the solver file's directory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bpinspect.backend import Array, Device, to_host
from bpinspect.engine.blob import Blob
from bpinspect.engine.lr_policy import check_policy, learning_rate
from bpinspect.engine.net import Net
from bpinspect.engine.update_rules import (
    SGD,
    AdaDelta,
    AdaGrad,
    Adam,
    Nesterov,
    RMSProp,
    UpdateRule,
)
from bpinspect.errors import BpinspectError
from bpinspect.io.caffemodel import blob_shape, format_shape, shape_equals
from bpinspect.io.net_hdf5 import read_solverstate_hdf5, write_solverstate_hdf5
from bpinspect.io.solver_prototxt import load_solver, upgrade_solver_type
from bpinspect.io.solverstate import history_to_array, read_solverstate, write_solverstate
from bpinspect.layers._parallel import parallel_parts
from bpinspect.proto import caffe_pb2

__all__ = [
    "AdaDeltaSolver",
    "AdaGradSolver",
    "AdamSolver",
    "Learnable",
    "NesterovSolver",
    "ParamUpdate",
    "RMSPropSolver",
    "SGDSolver",
    "SOLVERS",
    "Solver",
    "SolverCheckpoint",
    "TestOutput",
    "TestResult",
    "UpdateReport",
    "get_solver",
]

Key = tuple[str, int]  # (layer name, param index) of a learnable param's owner
_P = caffe_pb2.SolverParameter


# ---- what the solver reports ---------------------------------------------------


@dataclass
class Learnable:
    """One of Caffe's ``learnable_params_``: the Blob, its owner and multipliers."""

    key: Key
    blob: Blob
    lr_mult: float
    decay_mult: float
    shared_by: list[Key] = field(default_factory=list)
    """The other (layer, index) places that share this Blob by ParamSpec name."""
    _has_lr: bool = False
    _has_decay: bool = False

    @property
    def name(self) -> str:
        return f"{self.key[0]}[{self.key[1]}]"


@dataclass
class ParamUpdate:
    """What one ``apply_update`` did to one learnable param.

    Norms are L2 norms. ``diff_norm`` is of the gradient as accumulated by the
    backward passes (before clipping, normalization and regularization);
    ``update_norm`` of the update value (the diff after ComputeUpdateValue,
    which ``data -= diff`` subtracted); ``ratio = update_norm / data_norm_before``
    (None when the data was all zeros). ``diff_in`` and ``data_before`` are
    device copies of those arrays, kept only with ``record=True``.
    """

    key: Key
    lr_mult: float
    decay_mult: float
    local_rate: float
    local_decay: float
    diff_norm: float
    update_norm: float
    data_norm_before: float
    data_norm_after: float
    ratio: float | None
    diff_in: Array | None = None
    data_before: Array | None = None


@dataclass
class UpdateReport:
    """What one ``apply_update`` did: the rate, the clipping, each param's numbers."""

    iter: int
    """The iteration the update belongs to (``solver.iter`` before it)."""
    rate: float
    """GetLearningRate() at ``iter``, before ``lr_mult``."""
    grad_norm: float
    """The L2 norm over all learnable diffs, as accumulated (what clipping compares)."""
    clip_scale: float | None
    """The factor the diffs were scaled by, or None when clipping did not act."""
    params: dict[Key, ParamUpdate]


@dataclass(frozen=True)
class TestOutput:
    """One line of Caffe's test log: ``Test net output #index: blob = value``."""

    index: int
    blob: str
    value: float
    loss_weight: float


@dataclass(frozen=True)
class TestResult:
    """One test net's ``Test``: each output element averaged over ``test_iter`` forwards."""

    net_id: int
    iter: int
    outputs: tuple[TestOutput, ...]
    scores: dict[str, np.ndarray]
    """Each output blob's element-wise mean, shaped as the blob."""
    loss: float | None
    """The mean forward loss, with ``test_compute_loss: true`` (else None)."""

    def lines(self) -> list[str]:
        """The lines Caffe logs for this test."""
        out = [f"Iteration {self.iter}, Testing net (#{self.net_id})"]
        if self.loss is not None:
            out.append(f"Test loss: {self.loss:g}")
        for o in self.outputs:
            line = f"    Test net output #{o.index}: {o.blob} = {o.value:g}"
            if o.loss_weight:
                line += f" (* {o.loss_weight:g} = {o.loss_weight * o.value:g} loss)"
            out.append(line)
        return out


@dataclass
class SolverCheckpoint:
    """Everything an update changes besides the params' data (``save_state``)."""

    iter: int
    current_step: int
    history: list[Array]
    losses: list[float]
    smoothed_loss: float


# ---- the solver ----------------------------------------------------------------


@dataclass
class _Loaded:
    param: caffe_pb2.SolverParameter
    source: str
    directory: str | None  # the solver file's directory, for relative paths


def _load(solver: Any, notes: list[str]) -> _Loaded:
    if isinstance(solver, _Loaded):
        return solver
    if isinstance(solver, caffe_pb2.SolverParameter):
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(solver)
        source = "<SolverParameter>"
        upgrade_solver_type(param, source, notes)
        return _Loaded(param, source, None)
    if isinstance(solver, (str, os.PathLike)):
        path = os.fspath(solver)
        param = load_solver(path, notes)
        return _Loaded(param, path, os.path.dirname(os.path.abspath(path)))
    raise BpinspectError(
        f"solver: expected a solver .prototxt path or a SolverParameter, got "
        f"{type(solver).__name__}"
    )


class Solver:
    """A Caffe solver (use :func:`get_solver` or a subclass); see the module docstring."""

    type: ClassVar[str] = ""
    rule_class: ClassVar[type[UpdateRule] | None] = None

    def __init__(
        self,
        solver: Any,
        *,
        device: Device | None = None,
        seed: int | None = None,
        weights: str | Sequence[str] | None = None,
        dtype: Any = np.float32,
        feeds: dict[str, tuple[int, ...]] | None = None,
    ) -> None:
        if self.rule_class is None:
            raise BpinspectError(
                "Solver is the base class: use get_solver(path) or a subclass such as SGDSolver"
            )
        self.notes: list[str] = []
        loaded = _load(solver, self.notes)
        self.param: caffe_pb2.SolverParameter = loaded.param
        self.source = loaded.source
        self._dir = loaded.directory
        param = self.param
        if param.type != self.type:
            # pycaffe's caffe.SGDSolver(file) is an SGD solver whatever the file says.
            self.notes.append(
                f"{self.source}: type is {param.type!r}, running it as a {self.type} solver"
            )
        if param.average_loss < 1:
            raise BpinspectError(
                f"{self.source}: average_loss should be at least 1, got {param.average_loss}"
            )
        if param.iter_size < 1:  # Caffe divides the loss by it and goes on
            raise BpinspectError(
                f"{self.source}: iter_size should be at least 1, got {param.iter_size}"
            )
        check_policy(param, self.source)
        self.rule: UpdateRule = self.rule_class(param, self.source)
        self._prefix: str | None = None
        if param.snapshot > 0:  # CheckSnapshotWritePermissions, at start as Caffe
            self._prefix = self._snapshot_prefix()

        if seed is None:
            seed = int(param.random_seed) if param.random_seed >= 0 else 0
        # feeds: data-layer tops the caller fills (--input), in the train and test nets
        self._net_kwargs: dict[str, Any] = {"device": device, "seed": int(seed), "dtype": dtype,
                                            "feeds": feeds}
        if weights is not None:  # caffe train --weights replaces the solver's weights
            self._weights = [weights] if isinstance(weights, str) else list(weights)
        else:
            self._weights = list(param.weights)

        self.net: Net = self._init_train_net()
        self.test_nets: list[Net] = self._init_test_nets()
        for test_net in self.test_nets:
            self._share_trained_layers(test_net)

        self.iter = 0
        self.current_step = 0
        self.learnable: list[Learnable] = _learnable_params(self.net)
        xp = self.net.device.xp
        self.history: list[Array] = [
            xp.zeros(p.blob.shape, dtype=self.net.dtype)
            for _ in range(self.rule.history_sets)
            for p in self.learnable
        ]
        """Caffe's ``history_``: one array per learnable param, and for AdaDelta and
        Adam a second set after the first, in the order the .solverstate stores them."""
        self._reset_smoothed_loss()
        self.test_results: list[TestResult] = []
        """The results of the latest ``test_all``."""

    # ---- construction (InitTrainNet, InitTestNets) ---------------------------

    def _find(self, path: str, what: str) -> str:
        """``path`` from the working directory, else from the solver file's directory."""
        if os.path.isabs(path) or os.path.exists(path) or self._dir is None:
            return path
        beside = os.path.join(self._dir, path)
        if os.path.exists(beside):
            return beside
        raise BpinspectError(
            f"{self.source}: {what} {path!r}: no such file (looked in the working directory "
            f"and in {self._dir})"
        )

    def _read_net(self, path: str, what: str) -> tuple[caffe_pb2.NetParameter, str]:
        from bpinspect.io.prototxt import load_net

        found = self._find(path, what)
        return load_net(found, self.notes), os.path.dirname(os.path.abspath(found))

    def _make_net(
        self, net_param: caffe_pb2.NetParameter, phase: int, state: caffe_pb2.NetState | None,
        base_dir: str | None,
    ) -> Net:
        """The net with Caffe's NetState precedence: the solver's default phase,
        then the net's own state, then train_state/test_state."""
        merged = caffe_pb2.NetState(phase=phase)
        merged.MergeFrom(net_param.state)
        if state is not None:
            merged.MergeFrom(state)
        net_param.state.CopyFrom(merged)
        net = Net(net_param, phase=merged.phase, base_dir=base_dir, **self._net_kwargs)
        for entry in self._weights:  # LoadNetWeights: a comma-separated list
            for path in entry.split(","):
                if path.strip():
                    net.copy_from(self._find(path.strip(), "weights"))
        return net

    def _init_train_net(self) -> Net:
        p = self.param
        fields = ("net", "net_param", "train_net", "train_net_param")
        given = [f for f in fields if p.HasField(f)]
        if len(given) != 1:
            how = "must specify a train net using one" if not given else (
                f"must not contain more than one ({', '.join(given)})")
            raise BpinspectError(
                f"{self.source}: the solver {how} of the fields {', '.join(fields)}"
            )
        name = given[0]
        if name.endswith("_param"):
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(getattr(p, name))
            base_dir = self._dir
        else:
            net_param, base_dir = self._read_net(getattr(p, name), name)
        state = p.train_state if p.HasField("train_state") else None
        return self._make_net(net_param, caffe_pb2.TRAIN, state, base_dir)

    def _init_test_nets(self) -> list[Net]:
        p = self.param
        generic = p.HasField("net") or p.HasField("net_param")
        specific = len(p.test_net_param) + len(p.test_net)
        test_iters = len(p.test_iter)
        if (generic and test_iters < specific) or (not generic and test_iters != specific):
            raise BpinspectError(
                f"{self.source}: test_iter must be specified for each test network "
                f"({specific} test_net/test_net_param, {len(p.test_iter)} test_iter)"
            )
        instances = len(p.test_iter) if generic else specific
        if len(p.test_state) and len(p.test_state) != instances:
            raise BpinspectError(
                f"{self.source}: test_state must be unspecified or specified once per test net "
                f"({instances} test nets, {len(p.test_state)} test_state)"
            )
        if instances and p.test_interval <= 0:
            raise BpinspectError(
                f"{self.source}: {instances} test net(s) need test_interval > 0, "
                f"got {p.test_interval}"
            )
        params: list[tuple[caffe_pb2.NetParameter, str | None]] = []
        for inline in p.test_net_param:
            copy = caffe_pb2.NetParameter()
            copy.CopyFrom(inline)
            params.append((copy, self._dir))
        for path in p.test_net:
            params.append(self._read_net(path, "test_net"))
        remaining = instances - len(params)
        if remaining:
            if p.HasField("net_param"):
                general, base_dir = p.net_param, self._dir
            else:
                general, base_dir = self._read_net(p.net, "net")
            for _ in range(remaining):
                copy = caffe_pb2.NetParameter()
                copy.CopyFrom(general)
                params.append((copy, base_dir))
        return [
            self._make_net(net_param, caffe_pb2.TEST,
                           p.test_state[i] if len(p.test_state) else None, base_dir)
            for i, (net_param, base_dir) in enumerate(params)
        ]

    def _share_trained_layers(self, test_net: Net) -> None:
        """ShareTrainedLayersWith: each layer of the train net that the test net has
        lends it its param Blobs (same count and shapes, else an error)."""
        for name in self.net.layer_names:
            if name not in test_net.layer_names:
                continue
            source = self.net.params.get(name, [])
            target = test_net.params.get(name, [])
            if len(source) != len(target):
                raise BpinspectError(
                    f"layer {name!r}: the train net has {len(source)} param blob(s), the test "
                    f"net {len(target)}; cannot share them"
                )
            layer = test_net.layers[test_net.layer_index(name)]
            for j, blob in enumerate(source):
                if target[j].shape != blob.shape:
                    raise BpinspectError(
                        f"layer {name!r}: cannot share param {j} with the test net: shape "
                        f"mismatch, train {format_shape(blob.shape)}, "
                        f"test {format_shape(target[j].shape)}"
                    )
                target[j] = blob
                layer.blobs[j] = blob

    # ---- the learning rate ---------------------------------------------------

    def learning_rate(self) -> float:
        """The rate the next ``apply_update`` uses (GetLearningRate at ``iter``, in the
        net's dtype), without moving ``current_step``."""
        rate, _ = learning_rate(self.param, self.iter, self.current_step, self.source)
        return float(self.net.dtype.type(rate))

    @property
    def lr(self) -> float:
        """pycaffe's ``SGDSolver.lr``."""
        return self.learning_rate()

    # ---- one iteration, in parts ---------------------------------------------

    def test_due(self) -> bool:
        """Step tests before the iteration when ``iter % test_interval == 0``
        (at iteration 0 only with ``test_initialization``)."""
        p = self.param
        return bool(
            p.test_interval and self.iter % p.test_interval == 0
            and (self.iter > 0 or p.test_initialization)
        )

    def begin_iteration(self) -> None:
        """``net.ClearParamDiffs()``: the backward passes accumulate into zeroed diffs."""
        self.net.clear_param_diffs()

    def forward_backward(self) -> float:
        """``Net::ForwardBackward``: every layer forward, then every layer backward."""
        loss = 0.0
        for i in range(len(self.net.layers)):
            loss += self.net.forward_layer(i)
        self.net.backward()
        return loss

    def apply_update(self, record: bool = False) -> UpdateReport:
        """``SGDSolver::ApplyUpdate``: rate, ClipGradients, then per learnable param
        Normalize, Regularize and ComputeUpdateValue, then ``Net::Update``; ``iter += 1``."""
        p = self.param
        dtype = self.net.dtype.type
        regularization = p.regularization_type
        decays = [float(dtype(p.weight_decay * lp.decay_mult)) for lp in self.learnable]
        if any(decays) and regularization not in ("L1", "L2"):
            raise BpinspectError(
                f"{self.source}: unknown regularization_type {regularization!r} (L1 or L2)"
            )
        rate, current_step = learning_rate(p, self.iter, self.current_step, self.source)
        rate = float(dtype(rate))
        self.current_step = current_step

        sumsq = [_sumsq(lp.blob.diff) for lp in self.learnable]
        diffs_in = [lp.blob.diff.copy() if record else None for lp in self.learnable]
        grad_norm = math.sqrt(sum(sumsq))
        clip_scale = None
        if p.clip_gradients >= 0 and grad_norm > p.clip_gradients:  # ClipGradients
            clip_scale = float(dtype(p.clip_gradients / grad_norm))
        normalize = float(dtype(1.0 / p.iter_size)) if p.iter_size != 1 else None

        n = len(self.learnable)
        reports: dict[Key, ParamUpdate] = {}
        for i, lp in enumerate(self.learnable):
            local_rate = float(dtype(rate * lp.lr_mult))
            history = [self.history[k * n + i] for k in range(self.rule.history_sets)]
            data_before = lp.blob.data.copy() if record else None
            data_sq, update_sq, after_sq = self._update_param(
                lp.blob, history, clip_scale, normalize, decays[i], regularization, local_rate)
            reports[lp.key] = ParamUpdate(
                key=lp.key, lr_mult=lp.lr_mult, decay_mult=lp.decay_mult,
                local_rate=local_rate, local_decay=decays[i],
                diff_norm=math.sqrt(sumsq[i]), update_norm=math.sqrt(update_sq),
                data_norm_before=math.sqrt(data_sq), data_norm_after=math.sqrt(after_sq),
                ratio=math.sqrt(update_sq) / math.sqrt(data_sq) if data_sq else None,
                diff_in=diffs_in[i], data_before=data_before,
            )
        report = UpdateReport(self.iter, rate, grad_norm, clip_scale, reports)
        self.iter += 1
        return report

    def _update_param(self, blob: Blob, history: list[Array], clip_scale: float | None,
                      normalize: float | None, local_decay: float, regularization: str,
                      local_rate: float) -> tuple[float, float, float]:
        """One param's ClipGradients scale, Normalize, Regularize, ComputeUpdateValue
        and ``data -= diff``, in Caffe's order for every element. Returns the sums
        of squares of the data before, of the update, and of the data after.

        On the CPU the arrays are walked in chunks small enough to stay in the
        cache, so each element is read and written about once rather than once
        per operation (a whole-array pass per operation made the update a sixth
        of a CaffeNet iteration), and the chunks are split over the cores
        (``_parallel``). Each element's arithmetic is the same either way, and the
        sums of squares are added in chunk order whatever the threads.
        """
        xp = blob.xp
        diff_all, data_all = blob.diff.reshape(-1), blob.data.reshape(-1)
        history_all = [h.reshape(-1) for h in history]
        parts = _chunks(diff_all.size, xp)
        sums = np.zeros((len(parts), 3))  # per chunk: data before, update, data after

        def update(c0: int, c1: int) -> None:
            for c in range(c0, c1):
                part = parts[c]
                diff, data = diff_all[part], data_all[part]
                if clip_scale is not None:
                    diff *= clip_scale
                if normalize is not None:  # Caffe scales by the reciprocal of iter_size
                    diff *= normalize
                if local_decay:
                    diff += local_decay * (data if regularization == "L2" else xp.sign(data))
                self.rule.compute_update_value(diff, [h[part] for h in history_all],
                                               local_rate, self.iter)
                sums[c, 0] = _sumsq(data)
                sums[c, 1] = _sumsq(diff)
                data -= diff  # Net::Update
                sums[c, 2] = _sumsq(data)

        if xp is np:
            parallel_parts(update, len(parts), diff_all.size)
        else:
            update(0, len(parts))
        data_sq, update_sq, after_sq = (sum(sums[:, k].tolist()) for k in range(3))
        return data_sq, update_sq, after_sq

    def finish_iteration(self, loss: float) -> tuple[str, str] | None:
        """The end of Step's loop body: the smoothed loss takes ``loss`` (the
        iteration's, already divided by iter_size); a snapshot when due. Returns
        the snapshot's paths, if one was written."""
        self._update_smoothed_loss(loss)
        if self.param.snapshot and self.iter % self.param.snapshot == 0:
            return self.snapshot()
        return None

    def _update_smoothed_loss(self, loss: float) -> None:
        """UpdateSmoothedLoss: the mean of the last ``average_loss`` losses. Caffe's
        slot index ``(iter - start_iter) % average_loss`` is the count of losses
        taken since Step began, which is what is used here."""
        average = self.param.average_loss
        if len(self._losses) < average:
            self._losses.append(loss)
            size = len(self._losses)
            self._smoothed_loss = (self._smoothed_loss * (size - 1) + loss) / size
        else:
            idx = self._taken % average
            self._smoothed_loss += (loss - self._losses[idx]) / average
            self._losses[idx] = loss
        self._taken += 1

    def _reset_smoothed_loss(self) -> None:
        self._losses: list[float] = []
        self._smoothed_loss = 0.0
        self._taken = 0  # losses taken since Step began (Caffe's iter_ - start_iter)

    @property
    def smoothed_loss(self) -> float:
        """Caffe's ``smoothed_loss_`` (what it logs as ``loss =``)."""
        return self._smoothed_loss

    # ---- whole iterations (Step, Solve) ---------------------------------------

    def step(self, iters: int) -> None:
        """``Solver::Step``: ``iters`` iterations (tests and snapshots when due)."""
        stop = self.iter + int(iters)
        self._reset_smoothed_loss()
        while self.iter < stop:
            self.begin_iteration()
            if self.test_due():
                self.test_all()
            loss = 0.0
            for _ in range(self.param.iter_size):
                loss += self.forward_backward()
            loss /= self.param.iter_size
            self.apply_update()
            self.finish_iteration(loss)

    def solve(self, resume_file: str | os.PathLike | None = None) -> None:
        """``Solver::Solve``: restore if asked, step to ``max_iter``, snapshot after
        training (``snapshot_after_train``), then the final display forward and test."""
        p = self.param
        if resume_file is not None:
            self.restore(resume_file)
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0:
            loss = 0.0
            for i in range(len(self.net.layers)):
                loss += self.net.forward_layer(i)
            self._update_smoothed_loss(loss)
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()

    # ---- testing (TestAll, Test) ----------------------------------------------

    def test_all(self) -> list[TestResult]:
        """``TestAll``: each test net in turn; the results are also kept in ``test_results``."""
        self.test_results = [self.test(i) for i in range(len(self.test_nets))]
        return self.test_results

    def test(self, net_id: int = 0) -> TestResult:
        """``Test``: ``test_iter`` forwards of test net ``net_id``, outputs summed element
        by element (in the net's dtype) and divided by ``test_iter``."""
        net = self.test_nets[net_id]
        self._share_trained_layers(net)
        n = self.param.test_iter[net_id]
        sums: list[Array] = []
        loss = 0.0
        for k in range(n):
            iter_loss = 0.0
            for i in range(len(net.layers)):
                iter_loss += net.forward_layer(i)
            loss += iter_loss
            for j, name in enumerate(net.outputs):
                data = net.blobs[name].data
                if k == 0:
                    sums.append(data.copy())
                else:
                    sums[j] += data
        scores: dict[str, np.ndarray] = {}
        outputs: list[TestOutput] = []
        for name, total in zip(net.outputs, sums, strict=True):
            mean = to_host(total / n)
            scores[name] = mean
            weight = float(net.loss_weights.get(name, 0.0))
            for value in mean.reshape(-1):
                outputs.append(TestOutput(len(outputs), name, float(value), weight))
        mean_loss = None
        if self.param.test_compute_loss:
            mean_loss = loss / n if n else math.nan
        return TestResult(net_id, self.iter, tuple(outputs), scores, mean_loss)

    # ---- saving and restoring ---------------------------------------------------

    def save_state(self) -> SolverCheckpoint:
        """An in-memory copy of what an update changes besides the params' data."""
        return SolverCheckpoint(
            iter=self.iter, current_step=self.current_step,
            history=[h.copy() for h in self.history],
            losses=list(self._losses), smoothed_loss=self._smoothed_loss,
        )

    def load_state(self, state: SolverCheckpoint) -> None:
        """Put back what ``save_state`` copied (the history arrays keep their identity)."""
        shapes = [tuple(h.shape) for h in self.history]
        if [tuple(a.shape) for a in state.history] != shapes:
            raise BpinspectError("load_state: the saved state is of another solver or net")
        for h, saved in zip(self.history, state.history, strict=True):
            h[...] = saved
        self.iter = state.iter
        self.current_step = state.current_step
        self._losses = list(state.losses)
        self._smoothed_loss = state.smoothed_loss
        self._taken = len(self._losses)


    def _snapshot_prefix(self) -> str:
        """CheckSnapshotWritePermissions: the prefix's directory must exist and be writable."""
        p = self.param
        if not p.HasField("snapshot_prefix"):
            if p.snapshot > 0:
                raise BpinspectError(
                    f"{self.source}: snapshot is specified but snapshot_prefix is not"
                )
            return ""  # Caffe then writes _iter_N.caffemodel in the working directory
        prefix = p.snapshot_prefix
        directory = os.path.dirname(prefix) or "."
        if not os.path.isdir(directory) and self._dir is not None and not os.path.isabs(prefix):
            if os.path.isdir(os.path.join(self._dir, directory)):
                prefix = os.path.join(self._dir, prefix)
                directory = os.path.dirname(prefix)
        if not os.path.isdir(directory):
            raise BpinspectError(
                f"{self.source}: cannot write to snapshot_prefix {p.snapshot_prefix!r}: "
                f"directory {os.path.dirname(p.snapshot_prefix) or '.'!r} does not exist"
            )
        if not os.access(directory, os.W_OK):
            raise BpinspectError(
                f"{self.source}: cannot write to snapshot_prefix {p.snapshot_prefix!r}: "
                f"directory {directory!r} is not writable"
            )
        return prefix

    def snapshot(self, prefix: str | None = None) -> tuple[str, str]:
        """``Snapshot``: ``<prefix>_iter_N.caffemodel`` and ``<prefix>_iter_N.solverstate``
        (whose ``learned_net`` is the first, named as written); returns both paths.
        ``prefix`` overrides the solver's ``snapshot_prefix`` (``bpinspect train --out``)."""
        if prefix is None:
            if self._prefix is None:
                self._prefix = self._snapshot_prefix()
            prefix = self._prefix
        model = f"{prefix}_iter_{self.iter}.caffemodel"
        state = f"{prefix}_iter_{self.iter}.solverstate"
        if self.param.snapshot_format == _P.HDF5:  # SnapshotToHDF5, SnapshotSolverStateToHDF5
            model, state = model + ".h5", state + ".h5"
            self.net.save_hdf5(model, write_diff=self.param.snapshot_diff)
            write_solverstate_hdf5(state, self.iter, model, self.history, self.current_step)
            return model, state
        self.net.save(model, write_diff=self.param.snapshot_diff)
        write_solverstate(state, self.iter, model, self.history, self.current_step)
        return model, state

    def restore(self, path: str | os.PathLike) -> None:
        """``Restore``: iter, current_step, the history blobs, and the params from
        ``learned_net`` (relative: to the working directory, else to the state's
        directory). Checked before anything changes: history count and shapes."""
        path = os.fspath(path)
        # Solver::Restore picks the reader by the suffix
        saved = read_solverstate_hdf5(path) if path.endswith(".h5") else read_solverstate(path)
        if len(saved.history) != len(self.history):
            raise BpinspectError(
                f"{path}: incorrect number of history blobs: {len(saved.history)} in the file, "
                f"this {self.type} solver has {len(self.history)} "
                f"({self.rule.history_sets} per learnable param, {len(self.learnable)} params)"
            )
        n = len(self.learnable)
        arrays = []
        for i, (proto, target) in enumerate(zip(saved.history, self.history, strict=True)):
            lp = self.learnable[i % n]
            which = f"history blob {i} (param {lp.name}" + (", second set)" if i >= n else ")")
            if isinstance(proto, np.ndarray):  # from HDF5: an array already
                given, values = tuple(proto.shape), proto
            else:
                given, values = blob_shape(proto), None
            if tuple(given) != tuple(target.shape) and not (
                    values is None and shape_equals(target.shape, proto)):
                raise BpinspectError(
                    f"{path}: {which}: shape mismatch: the file has "
                    f"{format_shape(given)}, the net has {format_shape(target.shape)}"
                )
            arrays.append(history_to_array(proto, f"{path}: {which}") if values is None
                          else values)
        if saved.learned_net is not None:
            self.net.copy_from(self._learned_net(saved.learned_net, path))
        xp = self.net.device.xp
        for target, values in zip(self.history, arrays, strict=True):
            target[...] = xp.asarray(values.reshape(target.shape), dtype=self.net.dtype)
        self.iter = saved.iter
        self.current_step = saved.current_step

    @staticmethod
    def _learned_net(name: str, state_path: str) -> str:
        if os.path.isabs(name) or os.path.exists(name):
            return name
        directory = os.path.dirname(os.path.abspath(state_path))
        for candidate in (os.path.join(directory, name),
                          os.path.join(directory, os.path.basename(name))):
            if os.path.exists(candidate):
                return candidate
        raise BpinspectError(
            f"{state_path}: its learned_net {name!r} was not found (looked in the working "
            f"directory and in {directory})"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, iter={self.iter}, "
            f"{len(self.learnable)} learnable params, {len(self.test_nets)} test net(s))"
        )


_CHUNK = 1 << 17
"""Elements per chunk of the CPU update: its arrays stay in L2/L3, and the dozen
NumPy calls per chunk cost little beside its work (CaffeNet's update, 61 M
params on 2 threads: 64 K 93 ms, 128 K 82, 256 K 84, 1 M 119)."""


def _chunks(size: int, xp: Any) -> list[slice]:
    """Slices that cover ``size`` elements: cache-sized on the CPU, one on the GPU
    (where a kernel per chunk would cost more than the memory traffic it saves)."""
    if xp is not np:
        return [slice(None)]
    return [slice(start, start + _CHUNK) for start in range(0, size, _CHUNK)]


def _sumsq(a: Array) -> float:
    flat = a.reshape(-1)
    return float(flat @ flat)


def _learnable_params(net: Net) -> list[Learnable]:
    """Net::AppendParam's learnable_params_, params_lr_ and params_weight_decay_."""
    learnable: list[Learnable] = []
    owners: dict[int, Learnable] = {}
    default = caffe_pb2.ParamSpec()
    for name, blobs in net.params.items():  # in layer order
        lp = net.param.layer[net.layer_index(name)]
        for j, blob in enumerate(blobs):
            spec = lp.param[j] if j < len(lp.param) else default
            owner = owners.get(id(blob))
            if owner is None:
                owner = Learnable((name, j), blob, float(spec.lr_mult), float(spec.decay_mult),
                                  _has_lr=spec.HasField("lr_mult"),
                                  _has_decay=spec.HasField("decay_mult"))
                owners[id(blob)] = owner
                learnable.append(owner)
                continue
            owner.shared_by.append((name, j))
            for mult, has in (("lr_mult", "_has_lr"), ("decay_mult", "_has_decay")):
                if not spec.HasField(mult):
                    continue
                value = float(getattr(spec, mult))
                if getattr(owner, has) and value != getattr(owner, mult):
                    raise BpinspectError(
                        f"layer {name!r}: shared param {spec.name!r} has mismatched {mult} "
                        f"({value:g} here, {getattr(owner, mult):g} for {owner.name})"
                    )
                setattr(owner, mult, value)
                setattr(owner, has, True)
    return learnable


# ---- the types -------------------------------------------------------------------


class SGDSolver(Solver):
    """Stochastic gradient descent with momentum (``sgd_solver.cpp``)."""

    type = "SGD"
    rule_class = SGD


class NesterovSolver(SGDSolver):
    """Nesterov's accelerated gradient (``nesterov_solver.cpp``)."""

    type = "Nesterov"
    rule_class = Nesterov


class AdaGradSolver(SGDSolver):
    """AdaGrad (``adagrad_solver.cpp``); no momentum."""

    type = "AdaGrad"
    rule_class = AdaGrad


class RMSPropSolver(SGDSolver):
    """RMSProp (``rmsprop_solver.cpp``); no momentum, ``0 <= rms_decay < 1``."""

    type = "RMSProp"
    rule_class = RMSProp


class AdaDeltaSolver(SGDSolver):
    """AdaDelta (``adadelta_solver.cpp``): gradient and update histories."""

    type = "AdaDelta"
    rule_class = AdaDelta


class AdamSolver(SGDSolver):
    """Adam (``adam_solver.cpp``): first and second moment histories."""

    type = "Adam"
    rule_class = Adam


SOLVERS: dict[str, type[Solver]] = {
    cls.type: cls
    for cls in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                AdamSolver)
}


def get_solver(solver: Any, **kwargs: Any) -> Solver:
    """pycaffe's ``caffe.get_solver``: the solver class the file's ``type`` names
    (``SolverRegistry::CreateSolver``). ``kwargs`` go to the constructor."""
    notes: list[str] = []
    loaded = _load(solver, notes)
    cls = SOLVERS.get(loaded.param.type)
    if cls is None:
        raise BpinspectError(
            f"{loaded.source}: unknown solver type {loaded.param.type!r} "
            f"(known types: {', '.join(sorted(SOLVERS))})"
        )
    made = cls(loaded, **kwargs)
    made.notes[:0] = notes
    return made
