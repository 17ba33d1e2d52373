"""Layer family: recurrent layers RNN, LSTM and LSTMUnit, after
src/caffe/layers/{recurrent,rnn,lstm,lstm_unit}_layer.cpp (and lstm_unit_layer.cu).

Caffe builds RNN and LSTM as an unrolled internal net; here they are a loop over
the time steps with the same math. Bottoms: ``x`` (T, N, ...), ``cont`` (T, N)
(0 starts a new sequence at that step), optional ``x_static`` (N, ...), and with
``expose_hidden`` the start states (``h0`` [, ``c0``], each (1, N, H)); tops: the
output (T, N, H) and with ``expose_hidden`` the end states (1, N, H).

LSTM, params ``W_xc`` (4H, X), ``b_c`` (4H), [``W_xc_static`` (4H, S)], ``W_hc``
(4H, H); the gate rows are ordered i, f, o, g::

    a_t = W_xc x_t + b_c [+ W_xc_static x_static] + W_hc (cont_t h_{t-1})
    i, f, o = sigmoid(a_t[i, f, o]);  g = tanh(a_t[g])
    c_t = cont_t f c_{t-1} + i g      (f c_{t-1} is 0 where cont_t is 0)
    h_t = o tanh(c_t)

RNN, params ``W_xh`` (H, X), ``b_h`` (H), [``W_xh_static`` (H, S)], ``W_hh`` (H, H),
``W_ho`` (H, H), ``b_o`` (H)::

    h_t = tanh(W_xh x_t + b_h [+ W_xh_static x_static] + W_hh (cont_t h_{t-1}))
    o_t = tanh(W_ho h_t + b_o)

Backward is backprop through time within the batch, as Caffe's unrolled net
does it, and like Caffe's it stops at the batch's edges: the diffs of the end
state tops (hT, cT) are not read, and the start state bottoms (h0, c0) get a
zero diff (Caffe shares only their data with the unrolled net, so nothing is
ever written to their diff). ``cont`` gets no gradient (Caffe refuses). The
param diffs accumulate whatever ``param_propagate_down`` says, as Caffe's
unrolled net computes them unconditionally.

Without ``expose_hidden`` the state carries over between forwards, as in Caffe:
a forward starts from the end state of the previous forward (zeros at first,
and after ``reset()``, Caffe's Reset); ``cont[0] == 0`` makes that irrelevant.
``carry`` holds that state; ``undo_forward`` (a debugger stepping back over a
forward, newest first) puts back the state that forward started from, so running it
again gives the same output.

LSTMUnit (one step; bottoms c_prev (1, N, H), gate inputs (1, N, 4H), cont
(1, N); tops c (1, N, H), h (1, N, H)) is the cell of the formulas above. For
a ``cont`` other than 0 and 1 Caffe's CPU and GPU backwards differ on the forget
gate's diff; this is the GPU's (the exact derivative):
``d a_f = dc_term * cont * c_prev * f (1 - f)`` with ``dc_term = dc + dh o
(1 - tanh(c)^2)``.

``internals()``: LSTM ``i``, ``f``, ``o``, ``g`` (T, N, H; the activations,
``f`` before cont multiplies it), the cell states ``c`` and hidden states ``h``
(T, N, H), the start states ``h_0``, ``c_0`` (N, H); RNN ``h``, ``o``, ``h_0``;
LSTMUnit ``i``, ``f``, ``o``, ``g``. ``recurrent_param.debug_info`` is ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bpinspect.backend import Array, get_array_module
from bpinspect.engine.blob import Blob
from bpinspect.layers.base import Layer, Shape
from bpinspect.layers.registry import register
from bpinspect.layers.shape import count

UNDO_DEPTH = 64  # forwards whose start carry is kept (a training archive keeps 16 passes)


def _sigmoid(xp: Any, a: Array) -> Array:
    return 0.5 * xp.tanh(0.5 * a) + 0.5


class _Recurrent(Layer):
    """What RNN and LSTM share: bottoms, tops, the input transforms, the carry."""

    state_names: ClassVar[tuple[str, ...]] = ()
    gate_factor: ClassVar[int] = 1  # rows of the input transform per hidden unit

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        p = param.recurrent_param
        self.num_output = int(p.num_output)
        self.expose_hidden = bool(p.expose_hidden)
        self._weight_filler = p.weight_filler if p.HasField("weight_filler") else None
        self._bias_filler = p.bias_filler if p.HasField("bias_filler") else None
        self.static_input = False
        self.carry: list[Array] | None = None
        # The carry before each forward, newest last: a debugger that undoes forwards
        # (undo_forward, newest first) puts each back, so the replay starts alike.
        self._carries_before: list[list[Array] | None] = []
        self._t = self._n = self._x_dim = self._s_dim = 0
        self._start: list[Array] = []

    @property
    def _num_states(self) -> int:
        return len(self.state_names) if self.expose_hidden else 0

    def check_blob_counts(self, num_bottoms: int, num_tops: int) -> None:
        lo = 2 + self._num_states
        if not lo <= num_bottoms <= lo + 1:
            self.fail(f"takes {lo} or {lo + 1} bottom blobs, got {num_bottoms}")
        if num_tops != 1 + self._num_states:
            self.fail(f"takes {1 + self._num_states} top blob(s), got {num_tops}")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 1

    def reset(self) -> None:
        """Forget the carried state (Caffe's RecurrentLayer::Reset)."""
        self.carry = None
        self._carries_before.clear()

    def undo_forward(self) -> None:
        """The last forward was undone: carry the state it started from again."""
        if not self.expose_hidden and self._carries_before:
            self.carry = self._carries_before.pop()

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        self.check_blob_counts(len(bottom_shapes), 1 + self._num_states)
        if self.num_output <= 0:
            self.fail("recurrent_param.num_output must be given (> 0)")
        x = tuple(bottom_shapes[0])
        if len(x) < 3:
            self.fail(f"x must have at least 3 axes (T, N, features...), got {x}")
        t, n = x[0], x[1]
        if tuple(bottom_shapes[1]) != (t, n):
            self.fail(f"cont must have the shape (T, N) = {(t, n)}, got {bottom_shapes[1]}")
        self.static_input = len(bottom_shapes) > 2 + self._num_states
        h = self.num_output
        if self.static_input:
            s = tuple(bottom_shapes[2])
            if len(s) < 2 or s[0] != n:
                self.fail(f"x_static must have the shape (N, ...) with N = {n} and at least "
                          f"2 axes, got {s}")
            self._s_dim = count(s, 1)
        first = 2 + self.static_input
        for name, shape in zip(self.state_names, bottom_shapes[first:], strict=False):
            if tuple(shape) != (1, n, h):
                self.fail(f"{name}0 must have the shape {(1, n, h)}, got {tuple(shape)}")
        if n != self._n:
            self.carry = None
        self._t, self._n, self._x_dim = t, n, count(x, 2)
        g = self.gate_factor * h
        self.param_shapes = [(g, self._x_dim), (g,)]
        if self.static_input:
            self.param_shapes.append((g, self._s_dim))
        self.param_shapes += self.recurrent_param_shapes()
        return [(t, n, h)] + [(1, n, h)] * self._num_states

    # Each recurrent layer (RNN, LSTM) gives its own; _Recurrent is never registered.
    def recurrent_param_shapes(self) -> list[Shape]:
        """The shapes of the params after the input transform's (W_hc; W_hh, W_ho, b_o)."""
        raise NotImplementedError(f"{type(self).__name__} gives its recurrent params")

    def recurrent_fillers(self) -> list[Any]:
        """The fillers of those params, in their order."""
        raise NotImplementedError(f"{type(self).__name__} gives its recurrent fillers")

    def param_fillers(self) -> list[Any]:
        fillers = [self._weight_filler, self._bias_filler]
        if self.static_input:
            fillers.append(self._weight_filler)
        return fillers + self.recurrent_fillers()

    @property
    def _first_recurrent_param(self) -> int:
        return 3 if self.static_input else 2

    # -- the shared parts of forward and backward ---------------------------
    def _input_transform(self, bottom: list[Blob]) -> Array:
        """W x_t + b [+ W_static x_static] for every t: (T, N, gate_factor * H)."""
        t, n = self._t, self._n
        x = bottom[0].data.reshape(t * n, self._x_dim)
        a = x @ self.blobs[0].data.T + self.blobs[1].data
        a = a.reshape(t, n, -1)
        if self.static_input:
            s = bottom[2].data.reshape(n, self._s_dim)
            a += (s @ self.blobs[2].data.T)[None]
        return a

    def _start_states(self, bottom: list[Blob], xp: Any, dtype: Any) -> list[Array]:
        n, h = self._n, self.num_output
        if self.expose_hidden:
            first = 2 + self.static_input
            return [bottom[first + k].data.reshape(n, h).astype(dtype, copy=True)
                    for k in range(len(self.state_names))]
        if self.carry is None:
            return [xp.zeros((n, h), dtype=dtype) for _ in self.state_names]
        return [s.astype(dtype, copy=True) for s in self.carry]

    def _finish_forward(self, top: list[Blob], ends: list[Array]) -> None:
        if self.expose_hidden:
            for k, end in enumerate(ends):
                top[1 + k].data = end[None].copy()
        else:
            self._carries_before.append(self.carry)
            del self._carries_before[:-UNDO_DEPTH]
            self.carry = [end.copy() for end in ends]

    def _input_backward(self, da: Array, h_conted: Array, propagate_down: list[bool],
                        bottom: list[Blob]) -> None:
        """From the diffs of the pre-activations ``da`` (T, N, G): param diffs and
        the diffs of x, x_static and the start states."""
        xp = get_array_module(da)
        t, n = self._t, self._n
        flat = da.reshape(t * n, -1)
        x = bottom[0].data.reshape(t * n, self._x_dim)
        self.blobs[0].diff += flat.T @ x
        self.blobs[1].diff += flat.sum(axis=0)
        r = self._first_recurrent_param
        self.blobs[r].diff += flat.T @ h_conted.reshape(t * n, -1)
        if propagate_down[1]:
            self.fail("cannot backpropagate to the sequence continuation indicators (cont)")
        if propagate_down[0]:
            bottom[0].diff = (flat @ self.blobs[0].data).reshape(bottom[0].shape)
        if self.static_input:
            ds = da.sum(axis=0)
            s = bottom[2].data.reshape(n, self._s_dim)
            self.blobs[2].diff += ds.T @ s
            if propagate_down[2]:
                bottom[2].diff = (ds @ self.blobs[2].data).reshape(bottom[2].shape)
        first = 2 + self.static_input
        for k in range(first, len(bottom)):
            if propagate_down[k]:  # Caffe shares only their data: no gradient
                bottom[k].diff = xp.zeros(bottom[k].shape, dtype=bottom[k].dtype)

    def _cont(self, bottom: list[Blob], dtype: Any) -> Array:
        return bottom[1].data.astype(dtype, copy=False)[:, :, None]  # (T, N, 1)


@register("LSTM")
class LSTM(_Recurrent):
    state_names = ("h", "c")
    gate_factor = 4

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._gates: Array | None = None  # (T, N, 4H) activations i, f, o, g
        self._c: Array | None = None
        self._h: Array | None = None

    def recurrent_param_shapes(self) -> list[Shape]:
        return [(4 * self.num_output, self.num_output)]

    def recurrent_fillers(self) -> list[Any]:
        return [self._weight_filler]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        a_in = self._input_transform(bottom)
        dtype = a_in.dtype
        cont = self._cont(bottom, dtype)
        t_steps, n, h = self._t, self._n, self.num_output
        w_hc = self.blobs[self._first_recurrent_param].data
        h_prev, c_prev = self._start_states(bottom, xp, dtype)
        self._start = [h_prev, c_prev]
        gates = xp.empty((t_steps, n, 4 * h), dtype=dtype)
        cs = xp.empty((t_steps, n, h), dtype=dtype)
        hs = xp.empty((t_steps, n, h), dtype=dtype)
        for t in range(t_steps):  # time steps: each depends on the one before
            a = a_in[t] + (cont[t] * h_prev) @ w_hc.T
            gates[t, :, :3 * h] = _sigmoid(xp, a[:, :3 * h])
            gates[t, :, 3 * h:] = xp.tanh(a[:, 3 * h:])
            i, f, o, g = (gates[t, :, k * h:(k + 1) * h] for k in range(4))
            kept = xp.where(cont[t] == 0, 0, cont[t] * f * c_prev)
            cs[t] = kept + i * g
            hs[t] = o * xp.tanh(cs[t])
            h_prev, c_prev = hs[t], cs[t]
        self._gates, self._c, self._h = gates, cs, hs
        top[0].data = hs.copy()
        self._finish_forward(top, [hs[-1], cs[-1]])

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if self._gates is None or self._c is None or self._h is None:
            self.fail("backward before forward")
        xp = get_array_module(top[0].diff)
        gates, cs, hs = self._gates, self._c, self._h
        dtype = gates.dtype
        cont = self._cont(bottom, dtype)
        h = self.num_output
        w_hc = self.blobs[self._first_recurrent_param].data
        dh_top = top[0].diff
        da = xp.empty_like(gates)
        dh_next = xp.zeros((self._n, h), dtype=dtype)
        dc_next = xp.zeros((self._n, h), dtype=dtype)
        for t in reversed(range(self._t)):
            i, f, o, g = (gates[t, :, k * h:(k + 1) * h] for k in range(4))
            c_prev = cs[t - 1] if t > 0 else self._start[1]
            tanh_c = xp.tanh(cs[t])
            dh = dh_top[t] + dh_next
            dc_term = dc_next + dh * o * (1 - tanh_c * tanh_c)
            reset = cont[t] == 0
            dc_next = xp.where(reset, 0, cont[t] * f * dc_term)
            da[t, :, :h] = dc_term * g * i * (1 - i)
            da[t, :, h:2 * h] = xp.where(reset, 0, dc_term * cont[t] * c_prev) * f * (1 - f)
            da[t, :, 2 * h:3 * h] = dh * tanh_c * o * (1 - o)
            da[t, :, 3 * h:] = dc_term * i * (1 - g * g)
            dh_next = (da[t] @ w_hc) * cont[t]
        h_before = xp.concatenate([self._start[0][None], hs[:-1]], axis=0)
        self._input_backward(da, cont * h_before, propagate_down, bottom)

    def internals(self) -> dict[str, Array]:
        if self._gates is None or self._c is None or self._h is None:
            return {}
        h = self.num_output
        out = {name: self._gates[:, :, k * h:(k + 1) * h] for k, name in enumerate("ifog")}
        out.update(c=self._c, h=self._h, h_0=self._start[0], c_0=self._start[1])
        return out


@register("RNN")
class RNN(_Recurrent):
    state_names = ("h",)
    gate_factor = 1

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._h: Array | None = None
        self._o: Array | None = None

    def recurrent_param_shapes(self) -> list[Shape]:
        h = self.num_output
        return [(h, h), (h, h), (h,)]

    def recurrent_fillers(self) -> list[Any]:
        return [self._weight_filler, self._weight_filler, self._bias_filler]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        a_in = self._input_transform(bottom)
        dtype = a_in.dtype
        cont = self._cont(bottom, dtype)
        r = self._first_recurrent_param
        w_hh = self.blobs[r].data
        (h_prev,) = self._start_states(bottom, xp, dtype)
        self._start = [h_prev]
        hs = xp.empty_like(a_in)
        for t in range(self._t):  # time steps: each depends on the one before
            hs[t] = xp.tanh(a_in[t] + (cont[t] * h_prev) @ w_hh.T)
            h_prev = hs[t]
        n, h = self._n, self.num_output
        z = hs.reshape(self._t * n, h) @ self.blobs[r + 1].data.T + self.blobs[r + 2].data
        self._h, self._o = hs, xp.tanh(z).reshape(self._t, n, h)
        top[0].data = self._o.copy()
        self._finish_forward(top, [hs[-1]])

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if self._h is None or self._o is None:
            self.fail("backward before forward")
        xp = get_array_module(top[0].diff)
        hs, o = self._h, self._o
        t_steps, n, h = self._t, self._n, self.num_output
        cont = self._cont(bottom, hs.dtype)
        r = self._first_recurrent_param
        w_hh, w_ho = self.blobs[r].data, self.blobs[r + 1].data
        dz = (top[0].diff * (1 - o * o)).reshape(t_steps * n, h)
        self.blobs[r + 1].diff += dz.T @ hs.reshape(t_steps * n, h)
        self.blobs[r + 2].diff += dz.sum(axis=0)
        dh_out = (dz @ w_ho).reshape(t_steps, n, h)
        da = xp.empty_like(hs)
        dh_next = xp.zeros((n, h), dtype=hs.dtype)
        for t in reversed(range(t_steps)):
            da[t] = (dh_out[t] + dh_next) * (1 - hs[t] * hs[t])
            dh_next = (da[t] @ w_hh) * cont[t]
        h_before = xp.concatenate([self._start[0][None], hs[:-1]], axis=0)
        self._input_backward(da, cont * h_before, propagate_down, bottom)

    def internals(self) -> dict[str, Array]:
        if self._h is None or self._o is None:
            return {}
        return {"h": self._h, "o": self._o, "h_0": self._start[0]}


@register("LSTMUnit")
class LSTMUnit(Layer):
    exact_num_bottoms = 3
    exact_num_tops = 2

    def __init__(self, param: Any, phase: str = "test") -> None:
        super().__init__(param, phase)
        self._acts: Array | None = None  # Caffe's X_acts_: (N, 4H) i, f, o, g
        self._h = 0

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def setup(self, bottom_shapes: list[Shape]) -> list[Shape]:
        c_prev, x, cont = (tuple(s) for s in bottom_shapes)
        n = c_prev[1] if len(c_prev) > 1 else -1
        if len(c_prev) != 3 or len(x) != 3 or len(cont) != 2:
            self.fail(f"takes c_prev (1, N, H), gate inputs (1, N, 4H) and cont (1, N); got "
                      f"{c_prev}, {x}, {cont}")
        if any(s[0] != 1 or s[1] != n for s in (c_prev, x, cont)):
            self.fail(f"every bottom must be one time step of the same N: {c_prev}, {x}, {cont}")
        self._h = c_prev[2]
        if x[2] != 4 * self._h:
            self.fail(f"the gate inputs must have 4 * H = {4 * self._h} channels, got {x[2]}")
        return [c_prev, c_prev]

    def forward(self, bottom: list[Blob], top: list[Blob]) -> None:
        xp = get_array_module(bottom[0].data)
        h = self._h
        a = bottom[1].data[0]
        acts = xp.empty_like(a)
        acts[:, :3 * h] = _sigmoid(xp, a[:, :3 * h])
        acts[:, 3 * h:] = xp.tanh(a[:, 3 * h:])
        self._acts = acts
        i, f, o, g = (acts[:, k * h:(k + 1) * h] for k in range(4))
        cont = bottom[2].data[0][:, None].astype(a.dtype, copy=False)
        c_prev = bottom[0].data[0]
        c = xp.where(cont == 0, 0, cont * f * c_prev) + i * g
        top[0].data = c[None]
        top[1].data = (o * xp.tanh(c))[None]

    def backward(self, top: list[Blob], propagate_down: list[bool], bottom: list[Blob]) -> None:
        if propagate_down[2]:
            self.fail("cannot backpropagate to the sequence continuation indicators (cont)")
        if self._acts is None:
            self.fail("backward before forward")
        xp = get_array_module(top[0].diff)
        h = self._h
        i, f, o, g = (self._acts[:, k * h:(k + 1) * h] for k in range(4))
        cont = bottom[2].data[0][:, None].astype(self._acts.dtype, copy=False)
        reset = cont == 0
        c_prev = bottom[0].data[0]
        tanh_c = xp.tanh(top[0].data[0])
        dh = top[1].diff[0]
        dc_term = top[0].diff[0] + dh * o * (1 - tanh_c * tanh_c)
        if propagate_down[0]:
            bottom[0].diff = xp.where(reset, 0, cont * f * dc_term)[None]
        if propagate_down[1]:
            da = xp.empty_like(self._acts)
            da[:, :h] = dc_term * g * i * (1 - i)
            da[:, h:2 * h] = xp.where(reset, 0, dc_term * cont * c_prev) * f * (1 - f)
            da[:, 2 * h:3 * h] = dh * tanh_c * o * (1 - o)
            da[:, 3 * h:] = dc_term * i * (1 - g * g)
            bottom[1].diff = da[None]

    def internals(self) -> dict[str, Array]:
        if self._acts is None:
            return {}
        h = self._h
        return {name: self._acts[:, k * h:(k + 1) * h][None] for k, name in enumerate("ifog")}
