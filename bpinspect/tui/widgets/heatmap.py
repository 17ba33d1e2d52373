"""A 2-D plane drawn with half-block cells: two pixels per cell, ``▀`` over a background.

The session hands over small host planes (an LRN scale channel, pooling win
counts, a saliency map); this widget fits them to its cells, enlarging a small
plane by an integer zoom or shrinking a large one by block maxima (a lone
bright pixel, such as a pooling winner, must not vanish), and colours them
along a ramp of theme colours. A highlighted rectangle and a marker pixel
(the pooling window and its winner) are drawn over the ramp. Lines are
rendered on demand and kept in an LRU strip cache (as DataTable does).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.cache import LRUCache
from textual.color import Color
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from bpinspect.tui.formatting import fmt_num

LEVELS = 24
HALF_BLOCK = "▀"
NAN_LEVEL = -1
NO_PIXEL = -2

Rect = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open, in plane coordinates


class PlaneLayout:
    """Where a (H, W) plane's pixels land on a grid of ``cols`` x ``2*rows`` pixels.

    ``zoom`` > 1 draws each plane pixel as zoom x zoom display pixels; ``block``
    > 1 draws each block x block group of plane pixels as one display pixel.
    """

    def __init__(self, shape: tuple[int, int], cols: int, rows: int) -> None:
        h, w = shape
        self.shape = (h, w)
        pixel_rows = max(2 * rows, 1)
        cols = max(cols, 1)
        if h <= pixel_rows and w <= cols:
            self.zoom = max(1, min(cols // w, pixel_rows // h))
            self.block = 1
            self.height, self.width = h * self.zoom, w * self.zoom
        else:
            self.zoom = 1
            self.block = max(math.ceil(h / pixel_rows), math.ceil(w / cols))
            self.height = math.ceil(h / self.block)
            self.width = math.ceil(w / self.block)

    @property
    def cell_rows(self) -> int:
        return (self.height + 1) // 2

    def source(self, py: int, px: int) -> Rect:
        """The plane pixels that display pixel (py, px) shows."""
        if self.zoom > 1:
            y, x = py // self.zoom, px // self.zoom
            return y, y + 1, x, x + 1
        b = self.block
        return py * b, min(py * b + b, self.shape[0]), px * b, min(px * b + b, self.shape[1])

    def display(self, y: int, x: int) -> tuple[int, int]:
        """The display pixel that shows plane pixel (y, x) (its top-left one, zoomed)."""
        if self.zoom > 1:
            return y * self.zoom, x * self.zoom
        return y // self.block, x // self.block

    def levels(self, plane: np.ndarray, lo: float, hi: float) -> np.ndarray:
        """The ramp level (0..LEVELS-1, NAN_LEVEL) of every display pixel."""
        p = np.asarray(plane, dtype=np.float64)
        if self.block > 1:
            b, (h, w) = self.block, self.shape
            values = np.full((self.height * b, self.width * b), -np.inf)
            nans = np.zeros(values.shape, dtype=bool)
            values[:h, :w] = np.where(np.isnan(p), -np.inf, p)
            nans[:h, :w] = np.isnan(p)
            p = values.reshape(self.height, b, self.width, b).max(axis=(1, 3))
            p[nans.reshape(self.height, b, self.width, b).any(axis=(1, 3))] = np.nan
        elif self.zoom > 1:
            p = np.repeat(np.repeat(p, self.zoom, axis=0), self.zoom, axis=1)
        span = hi - lo
        with np.errstate(invalid="ignore"):
            scaled = (p - lo) / span if span > 0 else np.full(p.shape, 0.5)
        out = np.rint(np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1) * (LEVELS - 1))
        out = out.astype(np.int64)
        out[~np.isfinite(p)] = NAN_LEVEL
        return out


def finite_range(plane: np.ndarray) -> tuple[float, float]:
    """min and max of the finite pixels ((0, 0) when there are none)."""
    finite = plane[np.isfinite(plane)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


class Heatmap(Widget):
    """A plane of values as half-block cells, with an optional window and marker."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "heatmap--low",
        "heatmap--mid",
        "heatmap--high",
        "heatmap--nonfinite",
        "heatmap--window",
        "heatmap--marker",
    }
    """
    Only the `color` of each class is used.

    | Class | Description |
    | :- | :- |
    | `heatmap--low` | The colour of the smallest value. |
    | `heatmap--mid` | The colour half-way up the ramp. |
    | `heatmap--high` | The colour of the largest value. |
    | `heatmap--nonfinite` | NaN and Inf pixels. |
    | `heatmap--window` | Tint of the highlighted rectangle. |
    | `heatmap--marker` | The marker pixel. |
    """

    DEFAULT_CSS = """
    Heatmap {
        width: 1fr;
        height: 1fr;
    }
    Heatmap > .heatmap--low { color: $panel; }
    Heatmap > .heatmap--mid { color: $primary; }
    Heatmap > .heatmap--high { color: $warning; }
    Heatmap > .heatmap--nonfinite { color: $error; }
    Heatmap > .heatmap--window { color: $success; }
    Heatmap > .heatmap--marker { color: $error; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None,  # noqa: A002
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.plane: np.ndarray | None = None
        """The values drawn, (H, W)."""
        self.value_range: tuple[float, float] = (0.0, 0.0)
        """The values at the two ends of the ramp."""
        self.window: Rect | None = None
        """A highlighted rectangle of plane pixels (the pooling window)."""
        self.marker: tuple[int, int] | None = None
        """One plane pixel drawn in the marker colour (the pooling winner)."""
        self._layout: PlaneLayout | None = None
        self._levels: np.ndarray | None = None
        self._strips: LRUCache[tuple[int, int], Strip] = LRUCache(256)
        self._palette: list[Color] | None = None

    # ---------------------------------------------------------------- public
    def set_plane(self, plane: np.ndarray | None,
                  value_range: tuple[float, float] | None = None) -> None:
        """Show ``plane`` (None: nothing); the ramp spans ``value_range`` or its finite range."""
        if plane is not None and plane.ndim != 2:
            raise ValueError(f"a heatmap plane must be 2-D, got shape {plane.shape}")
        self.plane = plane
        if plane is not None:
            self.value_range = value_range if value_range is not None else finite_range(plane)
        self._clear_caches()

    def set_marks(self, window: Rect | None = None, marker: tuple[int, int] | None = None) -> None:
        self.window = window
        self.marker = marker
        self._strips.clear()
        self.refresh()

    @property
    def plane_layout(self) -> PlaneLayout | None:
        """How the plane maps onto the cells now (None before a plane and a size)."""
        if self._layout is None and self.plane is not None and self.size.area:
            self._layout = PlaneLayout(self.plane.shape, self.size.width, self.size.height)
            lo, hi = self.value_range
            self._levels = self._layout.levels(self.plane, lo, hi)
        return self._layout

    def legend(self, width: int = 16) -> Text:
        """``lo ▀▀▀▀ hi``: the ramp with its end values."""
        palette = self._ramp()
        lo, hi = self.value_range
        text = Text(fmt_num(lo) + " ")
        for i in range(width):
            colour = palette[round(i * (LEVELS - 1) / max(width - 1, 1))]
            text.append("█", style=Style(color=colour.rich_color))
        text.append(" " + fmt_num(hi))
        return text

    # ---------------------------------------------------------------- caches
    def _clear_caches(self) -> None:
        self._layout = None
        self._levels = None
        self._strips.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._palette = None
        self._strips.clear()

    def on_resize(self) -> None:
        self._clear_caches()

    def _ramp(self) -> list[Color]:
        if self._palette is None:
            low = self.get_component_styles("heatmap--low").color
            mid = self.get_component_styles("heatmap--mid").color
            high = self.get_component_styles("heatmap--high").color
            half = (LEVELS - 1) / 2
            self._palette = [
                low.blend(mid, i / half) if i <= half else mid.blend(high, (i - half) / half)
                for i in range(LEVELS)
            ]
        return self._palette

    # ---------------------------------------------------------------- drawing
    def _pixel_colour(self, py: int, px: int, background: Color) -> Color:
        layout, levels = self._layout, self._levels
        assert layout is not None and levels is not None
        if py >= layout.height or px >= layout.width:
            return background
        level = int(levels[py, px])
        if level == NAN_LEVEL:
            colour = self.get_component_styles("heatmap--nonfinite").color
        else:
            colour = self._ramp()[level]
        if self.window is not None or self.marker is not None:
            y0, y1, x0, x1 = layout.source(py, px)
            if self.marker is not None and y0 <= self.marker[0] < y1 and \
                    x0 <= self.marker[1] < x1:
                return self.get_component_styles("heatmap--marker").color
            if self.window is not None:
                wy0, wy1, wx0, wx1 = self.window
                if y0 < wy1 and wy0 < y1 and x0 < wx1 and wx0 < x1:
                    return colour.blend(self.get_component_styles("heatmap--window").color, 0.55)
        return colour

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        layout = self.plane_layout
        key = (y, width)
        cached = self._strips.get(key)
        if cached is not None:
            return cached
        _, background = self.background_colors
        blank = Style(bgcolor=background.rich_color)
        if layout is None or y >= layout.cell_rows:
            strip = Strip([Segment(" " * width, blank)], width)
        else:
            segments = []
            for px in range(min(layout.width, width)):
                top = self._pixel_colour(2 * y, px, background)
                bottom = self._pixel_colour(2 * y + 1, px, background)
                segments.append(Segment(HALF_BLOCK, Style(color=top.rich_color,
                                                          bgcolor=bottom.rich_color)))
            if layout.width < width:
                segments.append(Segment(" " * (width - layout.width), blank))
            strip = Strip(Segment.simplify(segments), width)
        self._strips[key] = strip
        return strip

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if self.plane is None:
            return 1
        return PlaneLayout(self.plane.shape, width, max(container.height, 1)).cell_rows
