"""Layer family: normalization. BatchNorm, and the Scale and Bias that follow it.

BatchNorm (src/caffe/layers/batch_norm_layer.cpp). Statistics are per
channel (axis 1), over the batch and all positions. Its three blobs are not
learned: the running sum of means, of variances, and the moving-average
factor ``s``. Caffe masks them from the solver (lr_mult 0), and its backward
writes no diff into them; neither does this one.

- TRAIN (``use_global_stats`` false, the default in TRAIN)::

      mu = mean(x), var = mean((x - mu)^2)            (the batch's, biased)
      s <- maf * s + 1;  mean_blob <- mu + maf * mean_blob
      var_blob <- m/(m-1) * var + maf * var_blob      (m = count / channels)
      y = (x - mu) / sqrt(var + eps)
      dx = (dy - mean(dy) - mean(dy * y) * y) / sqrt(var + eps)

- global stats (the default in TEST): ``mu = mean_blob / s``,
  ``var = var_blob / s`` (both 0 when ``s`` is 0), ``y = (x - mu) /
  sqrt(var + eps)``, a fixed affine map: ``dx = dy / sqrt(var + eps)``.

``internals()``: ``x_norm`` (y, which backward reads), ``std``
(sqrt(var + eps) per channel), ``mean`` and ``variance`` (the mu and var used).

Untrained: Caffe fills the three blobs with 0, and with global stats ``s = 0``
gives mu = var = 0, so ``y = x / sqrt(eps)`` (about 316 x), which a deep deploy
net without weights multiplies into overflow and NaN. A layer that uses global
stats therefore asks for identity statistics instead (mean 0, variance 1,
factor 1: ``y = x / sqrt(1 + eps)``), and says so through ``untrained_fill``,
which the Net turns into a note when no weights cover the layer. A layer that
computes batch statistics keeps Caffe's zeros: its running sums start there.

Scale (scale_layer.cpp): ``y = x * s (+ b)`` with ``s`` broadcast along the
axes ``axis .. axis + s.ndim`` of x. ``s`` is a param of shape
``x.shape[axis : axis + num_axes]`` (filler default constant 1), or bottom[1]
itself; with ``bias_term`` a bias param of the same shape follows (filler
``bias_filler``, default constant 0). ``dx = dy * s``, ``ds = sum(dy * x)``,
``db = sum(dy)`` over the broadcast axes.

Bias (bias_layer.cpp): ``y = x + b``, the same geometry; ``dx = dy``,
``db = sum(dy)``.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import canonical_axis, count
from bpinspect.proto import caffe_pb2


@register("BatchNorm")
class BatchNorm(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.batch_norm_param
        self.moving_average_fraction = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        self.use_global_stats = (
            bool(p.use_global_stats) if p.HasField("use_global_stats") else phase != "train"
        )
        self._channels = 1
        self._x_norm: Array = None  # until forward
        self._std: Array = None  # until forward
        self._mean: Array = None  # until forward
        self._variance: Array = None  # until forward

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if not shape:
            self.fail("needs a bottom with at least one axis")
        for i, spec in enumerate(self.param.param):
            if spec.lr_mult != 0:
                self.fail(f"param {i} has lr_mult {spec.lr_mult:g}: batch normalization "
                          "statistics cannot be learned (give lr_mult: 0 or no param)")
        self._channels = 1 if len(shape) == 1 else shape[1]
        c = self._channels
        self.param_shapes = [(c,), (c,), (1,)]
        self._x_norm = self._std = self._mean = self._variance = None
        return [shape]

    @property
    def untrained_fill(self) -> str:
        """What ``param_fillers`` gives in place of Caffe's zeros ('' for Caffe's own)."""
        if not self.use_global_stats:
            return ""
        return "identity statistics (mean 0, variance 1, moving-average factor 1)"

    def param_fillers(self) -> list[Any]:
        if not self.use_global_stats:
            return [None, None, None]
        return [_constant(0.0), _constant(1.0), _constant(1.0)]

    @property
    def forward_writes_params(self) -> bool:
        """Forward updates the running statistics in ``blobs`` (no global stats):
        the session records and restores them like any other value a step writes."""
        return not self.use_global_stats

    def _split(self, a: Array) -> Array:
        """(N, C, spatial) view of a bottom-shaped array."""
        return a.reshape(a.shape[0], self._channels, -1)

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        x = bottom[0].data
        xp = get_array_module(x)
        t = x.dtype.type
        x3 = self._split(x)
        mean_blob, var_blob, factor = (b.data for b in self.blobs[:3])
        if self.use_global_stats:
            s = factor.reshape(())
            scale = xp.where(s == 0, t(0), 1 / xp.where(s == 0, t(1), s))
            mean, variance = mean_blob * scale, var_blob * scale
            xc = x3 - mean[None, :, None]
        else:
            mean = xp.mean(x3, axis=(0, 2))
            xc = x3 - mean[None, :, None]
            variance = xp.mean(xc * xc, axis=(0, 2))
            maf = t(self.moving_average_fraction)
            factor[...] = factor * maf + 1
            mean_blob[...] = mean + maf * mean_blob
            m = x.size // self._channels
            correction = t(m / (m - 1) if m > 1 else 1)
            var_blob[...] = correction * variance + maf * var_blob
        std = xp.sqrt(variance + t(self.eps))
        x_norm = xc / std[None, :, None]
        self._mean, self._variance, self._std = mean, variance, std
        self._x_norm = x_norm.reshape(x.shape)
        # A copy, as Caffe's x_norm_: a later in-place layer may overwrite the top.
        top[0].data = self._x_norm.copy()

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if not propagate_down[0]:
            return
        if self._std is None or self._x_norm is None:
            self.fail("backward before forward: no statistics yet")
        xp = get_array_module(top[0].diff)
        dy = self._split(top[0].diff)
        std = self._std[None, :, None]
        if self.use_global_stats:
            dx = dy / std
        else:
            y = self._split(self._x_norm)
            mean_dy = xp.mean(dy, axis=(0, 2), keepdims=True)
            mean_dyy = xp.mean(dy * y, axis=(0, 2), keepdims=True)
            dx = (dy - mean_dy - mean_dyy * y) / std
        bottom[0].diff = dx.reshape(bottom[0].shape)

    def internals(self) -> dict[str, Array]:
        if self._x_norm is None:
            return {}
        return {"mean": self._mean, "variance": self._variance, "std": self._std,
                "x_norm": self._x_norm}


def _operand_shape(layer: Layer, shape: Shape, axis: int, num_axes: int) -> Shape:
    """``shape[axis : axis + num_axes]`` (to the end for -1), Caffe's param shape."""
    a = canonical_axis(layer, axis, len(shape))
    if num_axes < -1:
        layer.fail(f"num_axes must be non-negative, or -1 to extend to the end; got {num_axes}")
    if num_axes >= 0 and a + num_axes > len(shape):
        layer.fail(f"axis {a} + num_axes {num_axes} extends past the bottom's {len(shape)} axes")
    return tuple(shape[a:] if num_axes == -1 else shape[a : a + num_axes])


def _geometry(layer: Layer, shape: Shape, axis: int, operand: Shape, what: str) -> tuple[int, int,
                                                                                         int]:
    """(outer, dim, inner) for broadcasting ``operand`` along ``shape`` from ``axis``."""
    a = 0 if len(operand) == 0 else canonical_axis(layer, axis, len(shape))
    if a + len(operand) > len(shape):
        layer.fail(f"the {what} shape {operand} extends past bottom[0] {shape} from axis {a}")
    if tuple(shape[a : a + len(operand)]) != tuple(operand):
        layer.fail(f"the {what} shape {operand} does not match bottom[0] {shape} at axes "
                   f"{a}..{a + len(operand) - 1}")
    return count(shape, 0, a), count(operand), count(shape, a + len(operand))


def _constant(value: float) -> Any:
    return caffe_pb2.FillerParameter(type="constant", value=value)


@register("Scale")
class Scale(Layer):
    min_num_bottoms = 1
    max_num_bottoms = 2
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.scale_param
        self.axis = int(p.axis)
        self.num_axes = int(p.num_axes)
        self.bias_term = bool(p.bias_term)
        self._filler = p.filler if p.HasField("filler") else _constant(1.0)
        self._bias_filler = p.bias_filler if p.HasField("bias_filler") else _constant(0.0)
        self._scale_param = True
        self._dims = (1, 1, 1)
        self._scale_shape: Shape = ()
        self._x: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        self._scale_param = len(bottom_shapes) == 1
        if self._scale_param:
            self._scale_shape = _operand_shape(self, shape, self.axis, self.num_axes)
        else:
            self._scale_shape = tuple(bottom_shapes[1])
        self._dims = _geometry(self, shape, self.axis, self._scale_shape, "scale")
        self.param_shapes = [self._scale_shape] if self._scale_param else []
        if self.bias_term:
            self.param_shapes.append(self._scale_shape)
        return [shape]

    @property
    def untrained_fill(self) -> str:
        """Said in the Net's notes when no weights cover the layer: the values it starts
        from without a filler in the prototxt (Caffe's defaults)."""
        p = self.param.scale_param
        parts = []
        if self._scale_param and not p.HasField("filler"):
            parts.append("scale 1")
        if self.bias_term and not p.HasField("bias_filler"):
            parts.append("bias 0")
        return " and ".join(parts) + " (Caffe's defaults for Scale)" if parts else ""

    def param_fillers(self) -> list[Any]:
        fillers = [self._filler] if self._scale_param else []
        if self.bias_term:
            fillers.append(self._bias_filler)
        return fillers

    def _scale(self, bottom: list[Blob]) -> Blob:
        return self.blobs[0] if self._scale_param else bottom[1]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        outer, dim, inner = self._dims
        x = bottom[0].data
        self._x = x  # the top gets a new array, so in place this is still the input
        y = x.reshape(outer, dim, inner) * self._scale(bottom).data.reshape(1, dim, 1)
        if self.bias_term:
            y += self.blobs[-1].data.reshape(1, dim, 1)
        top[0].data = y.reshape(x.shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        xp = get_array_module(top[0].diff)
        outer, dim, inner = self._dims
        dy = top[0].diff.reshape(outer, dim, inner)
        if self.bias_term and self.param_propagate_down[-1]:
            self.blobs[-1].diff += xp.sum(dy, axis=(0, 2)).reshape(self._scale_shape)
        scale_grad = None
        wants_scale = (
            self.param_propagate_down[0] if self._scale_param
            else len(propagate_down) > 1 and propagate_down[1]
        )
        if wants_scale:
            x = self._x if self._x is not None else bottom[0].data
            scale_grad = xp.sum(dy * x.reshape(outer, dim, inner), axis=(0, 2)).reshape(
                self._scale_shape)
        dx = None
        if propagate_down[0]:
            dx = (dy * self._scale(bottom).data.reshape(1, dim, 1)).reshape(bottom[0].shape)
        if scale_grad is not None:
            if self._scale_param:
                self.blobs[0].diff += scale_grad
            else:
                bottom[1].diff = scale_grad
        if dx is not None:
            bottom[0].diff = dx


@register("Bias")
class Bias(Layer):
    min_num_bottoms = 1
    max_num_bottoms = 2
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.bias_param
        self.axis = int(p.axis)
        self.num_axes = int(p.num_axes)
        self._filler = p.filler if p.HasField("filler") else _constant(0.0)
        self._bias_param = True
        self._dims = (1, 1, 1)
        self._bias_shape: Shape = ()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        self._bias_param = len(bottom_shapes) == 1
        if self._bias_param:
            self._bias_shape = _operand_shape(self, shape, self.axis, self.num_axes)
        else:
            self._bias_shape = tuple(bottom_shapes[1])
        self._dims = _geometry(self, shape, self.axis, self._bias_shape, "bias")
        self.param_shapes = [self._bias_shape] if self._bias_param else []
        return [shape]

    @property
    def untrained_fill(self) -> str:
        """As Scale's: the starting value without a filler, for the Net's notes."""
        if self._bias_param and not self.param.bias_param.HasField("filler"):
            return "bias 0 (Caffe's default for Bias)"
        return ""

    def param_fillers(self) -> list[Any]:
        return [self._filler] if self._bias_param else []

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        outer, dim, inner = self._dims
        x = bottom[0].data
        b = (self.blobs[0] if self._bias_param else bottom[1]).data
        top[0].data = (x.reshape(outer, dim, inner) + b.reshape(1, dim, 1)).reshape(x.shape)

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        xp = get_array_module(top[0].diff)
        outer, dim, inner = self._dims
        dy = top[0].diff
        wants_bias = (
            self.param_propagate_down[0] if self._bias_param
            else len(propagate_down) > 1 and propagate_down[1]
        )
        bias_grad = None
        if wants_bias:
            bias_grad = xp.sum(dy.reshape(outer, dim, inner), axis=(0, 2)).reshape(
                self._bias_shape)
        if propagate_down[0] and bottom[0] is not top[0]:
            bottom[0].diff = dy.copy()
        if bias_grad is not None:
            if self._bias_param:
                self.blobs[0].diff += bias_grad
            else:
                bottom[1].diff = bias_grad
