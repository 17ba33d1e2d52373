"""What Convolution and Deconvolution share in every dimension: the fields read before
any bottom is known, the one-top-per-bottom rule, and the checks of setup that do not
depend on the geometry. ``conv.py``'s 2-D path and ``conv_nd.py``'s N-D one both build
on it."""

from __future__ import annotations

from typing import Any, ClassVar

from bpinspect.layers.base import Layer, Shape


class ConvolutionCommon(Layer):
    """The parts of a convolution layer that are the same in 2-D and N-D."""

    min_num_bottoms = 1
    min_num_tops = 1
    transposed: ClassVar[bool] = False  # Deconvolution: the conv input is the top

    def _read_common(self) -> None:
        """``convolution_param``'s fields that need no bottom shape."""
        p = self.param.convolution_param
        self.num_output = int(p.num_output)
        self.bias_term = bool(p.bias_term)
        self.group = int(p.group)
        self.axis = int(p.axis)
        self._weight_filler = p.weight_filler if p.HasField("weight_filler") else None
        self._bias_filler = p.bias_filler if p.HasField("bias_filler") else None
        self.conv_in = self.conv_out = 0  # channels of the conv input / output (setup)

    def check_blob_counts(self, num_bottoms: int, num_tops: int) -> None:
        super().check_blob_counts(num_bottoms, num_tops)
        if num_bottoms != num_tops:
            self.fail(f"takes one top per bottom (shared weights), got {num_bottoms} "
                      f"bottom(s) and {num_tops} top(s)")

    def _check_bottoms(self, bottom_shapes: list[Shape]) -> tuple[int, ...]:
        """The one shape every bottom has (the weights are shared); not in place."""
        shape = tuple(int(d) for d in bottom_shapes[0])
        for other in bottom_shapes[1:]:
            if tuple(other) != shape:
                self.fail(f"all bottoms must have one shape: {shape} vs {tuple(other)}")
        if set(self.param.bottom) & set(self.param.top):
            self.fail("cannot run in place (bottom and top must differ)")
        return shape

    def _set_channels(self, channels: int) -> None:
        """``conv_in`` / ``conv_out`` for a bottom of ``channels``, once num_output and
        group are checked against it."""
        if self.num_output <= 0:
            self.fail("convolution_param.num_output must be given (> 0)")
        if self.group <= 0 or channels % self.group or self.num_output % self.group:
            self.fail(f"group {self.group} must divide both the input channels "
                      f"({channels}) and num_output ({self.num_output})")
        if self.transposed:
            self.conv_in, self.conv_out = self.num_output, channels
        else:
            self.conv_in, self.conv_out = channels, self.num_output

    def _set_param_shapes(self, kernel: tuple[int, ...]) -> None:
        """The weight (conv output, conv input / group, kernel...) and the bias."""
        self.param_shapes = [(self.conv_out, self.conv_in // self.group, *kernel)]
        if self.bias_term:
            self.param_shapes.append((self.num_output,))

    def param_fillers(self) -> list[Any]:
        return [self._weight_filler, self._bias_filler][: len(self.param_shapes)]

    def _wants_param_diff(self, i: int) -> bool:
        return self.param_propagate_down[i] if len(self.param_propagate_down) > i else True
