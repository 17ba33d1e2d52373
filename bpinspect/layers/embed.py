"""Layer family: Embed, a lookup table, after src/caffe/layers/embed_layer.cpp.

The bottom holds integer indices in ``[0, input_dim)`` (stored as floats); the
weight W is (input_dim, num_output) and the optional bias b (num_output,)::

    top[..., :] = W[index] + b                  (top shape: bottom shape + (num_output,))
    W_diff[index] += top_diff[...]              (summed over repeated indices)
    b_diff += sum of top_diff over every position

It is InnerProduct with one-hot inputs. No gradient reaches the indices:
``allow_force_backward`` is False and a backward asked to reach the bottom is
an error, as in Caffe. An index that is not an integer in range is an error
naming the layer (Caffe checks this only in debug builds).
``internals()["indices"]`` is the integer index array the lookup used.
"""

from __future__ import annotations

from typing import Any

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register

ONEHOT_BUDGET = 1 << 22  # values per one-hot block in the weight gradient


@register("Embed")
class Embed(Layer):
    exact_num_bottoms = 1
    exact_num_tops = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.embed_param
        self.num_output = int(p.num_output)
        self.input_dim = int(p.input_dim)
        self.bias_term = bool(p.bias_term)
        self._weight_filler = p.weight_filler if p.HasField("weight_filler") else None
        self._bias_filler = p.bias_filler if p.HasField("bias_filler") else None
        self._indices: Array | None = None

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        if self.num_output <= 0:
            self.fail(f"num_output must be positive, got {self.num_output}")
        if self.input_dim <= 0:
            self.fail(f"input_dim must be positive, got {self.input_dim}")
        self.param_shapes = [(self.input_dim, self.num_output)]
        if self.bias_term:
            self.param_shapes.append((self.num_output,))
        self._indices = None
        return [tuple(bottom_shapes[0]) + (self.num_output,)]

    def param_fillers(self) -> list[Any]:
        return [self._weight_filler, self._bias_filler][: len(self.param_shapes)]

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def _lookup(self, values: Array) -> Array:
        xp = get_array_module(values)
        index = values.astype(xp.int64)  # static_cast<int>: toward zero
        bad = (index < 0) | (index >= self.input_dim) | (index != values)
        if bool(bad.any()):
            first = float(values[bad].ravel()[0])
            self.fail(f"index {first:g} is not an integer in 0..{self.input_dim - 1}")
        return index

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        index = self._lookup(bottom[0].data)
        self._indices = index
        y = self.blobs[0].data[index]
        if self.bias_term:
            y = y + self.blobs[1].data
        top[0].data = y

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[0]:
            self.fail("cannot backpropagate to its input (the indices)")
        xp = get_array_module(top[0].diff)
        dy = top[0].diff.reshape(-1, self.num_output)
        if self.param_propagate_down[0]:
            index = self._indices if self._indices is not None else self._lookup(bottom[0].data)
            # Rows summed per index: one-hot (rows, input_dim) blocks, transposed, times dy.
            flat = index.reshape(-1)
            classes = xp.arange(self.input_dim)[None, :]
            block = max(1, ONEHOT_BUDGET // self.input_dim)
            for r0 in range(0, flat.shape[0], block):
                onehot = (flat[r0 : r0 + block, None] == classes).astype(dy.dtype)
                self.blobs[0].diff += onehot.T @ dy[r0 : r0 + block]
        if self.bias_term and self.param_propagate_down[1]:
            self.blobs[1].diff += xp.sum(dy, axis=0)

    def internals(self) -> dict[str, Array]:
        return {} if self._indices is None else {"indices": self._indices}
