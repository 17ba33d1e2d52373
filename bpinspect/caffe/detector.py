"""pycaffe's ``caffe.Detector`` (``python/caffe/detector.py``): R-CNN-style windowed
detection, a Net that cuts windows out of images, warps each to the input's size
(with ``context_pad`` pixels of surrounding context, padded with the mean where
the context leaves the image), preprocesses them with a Transformer and returns
one prediction per window.

Windows are ``(ymin, xmin, ymax, xmax)`` in image pixels, as pycaffe reads them.
``detect_selective_search`` needs the ``selective_search_ijcv_with_python``
package (and the MATLAB it drives), as in pycaffe; without it, one clear error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from bpinspect.caffe import io
from bpinspect.caffe.classifier import input_transformer
from bpinspect.caffe.net import Net
from bpinspect.errors import BpinspectError
from bpinspect.layers.python_layer import TEST

__all__ = ["Detector"]

SELECTIVE_SEARCH = "selective_search_ijcv_with_python"


class Detector(Net):
    """A Net for windowed detection: ``mean``, ``input_scale``, ``raw_scale`` and
    ``channel_swap`` set up its Transformer as for ``Classifier``; ``context_pad``
    is the border of the net's input, in pixels, that shows context around the
    window (R-CNN's feature extraction)."""

    def __init__(self, model_file: Any, pretrained_file: Any, mean: Any = None,
                 input_scale: float | None = None, raw_scale: float | None = None,
                 channel_swap: Sequence[int] | None = None, context_pad: int | None = None
                 ) -> None:
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows: Iterable[tuple[Any, Any]]) -> list[dict]:
        """``[{"window", "prediction", "filename"}]`` for each window of each
        ``(image filename, windows)``, in order: the windows cut (with context),
        warped to the input and run through the net in batches."""
        images_windows = [(name, [np.asarray(w) for w in windows])
                          for name, windows in images_windows]
        crops = []
        for filename, windows in images_windows:
            image = io.load_image(filename).astype(np.float32)
            for window in windows:
                crops.append(self._checked_crop(image, window, filename))
        if not crops:
            raise BpinspectError("detect_windows: no windows to detect in")
        in_ = self.inputs[0]
        caffe_in = np.zeros((len(crops), crops[0].shape[2], *self.blobs[in_].data.shape[2:]),
                            dtype=np.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        detections = []
        for filename, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[len(detections)],
                                   "filename": filename})
        return detections

    def detect_selective_search(self, image_fnames: Sequence[Any]) -> list[dict]:
        """``detect_windows`` over the Selective Search proposals of each image."""
        try:
            import selective_search_ijcv_with_python as selective_search  # type: ignore
        except ImportError:
            raise BpinspectError(
                f"detect_selective_search needs the {SELECTIVE_SEARCH} package (and MATLAB, "
                "which it runs) on the Python path; or give the windows to "
                "detect_windows") from None
        image_fnames = [os.path.abspath(f) for f in image_fnames]  # MATLAB's working dir
        windows = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(list(zip(image_fnames, windows, strict=True)))

    def _checked_crop(self, image: np.ndarray, window: np.ndarray, filename: Any) -> np.ndarray:
        if window.shape != (4,):
            raise BpinspectError(f"{filename}: window {window.tolist()}: expected "
                                 "(ymin, xmin, ymax, xmax)")
        crop = self.crop(image, window)
        if crop.size == 0:
            raise BpinspectError(f"{filename}: window {window.tolist()} holds no pixel of "
                                 f"the {image.shape[0]}x{image.shape[1]} image")
        return crop

    def crop(self, im: np.ndarray, window: Any) -> np.ndarray:
        """The window of ``im`` (H x W x K), or with ``context_pad`` the window grown
        so that the context fills that border of the input once warped: the part
        inside the image resized into place, the rest the mean."""
        window = np.asarray(window)
        y0, x0, y1, x1 = (int(v) for v in window)
        crop = im[y0:y1, x0:x1]
        if not self.context_pad:
            return crop
        crop_size = self.blobs[self.inputs[0]].width  # square inputs, as pycaffe assumes
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (y1 - y0 + 1) / 2.0
        half_w = (x1 - x0 + 1) / 2.0
        centre = np.array((y0 + half_h, x0 + half_w))
        box = np.round(np.tile(centre, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = round(max(0.0, -box[0]) * scale_h)  # how far the box leaves the image
        pad_x = round(max(0.0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if not (clip_h > 0 and clip_w > 0):
            raise BpinspectError(f"window {window.tolist()} lies outside the "
                                 f"{im_h}x{im_w} image")
        crop_h = min(round(clip_h * scale_h), crop_size - pad_y)
        crop_w = min(round(clip_w * scale_w), crop_size - pad_x)
        b = box.astype(int)
        context = io.resize_image(im[b[0]:b[2], b[1]:b[3]], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return crop

    def configure_crop(self, context_pad: int | None) -> None:
        """The crop's dimensions (the input's, as H x W x K) and ``context_pad``;
        with context, the mean in the raw image's space to pad with."""
        in_ = self.inputs[0]
        to_raw = np.argsort(self.transformer.transpose[in_])  # K x H x W -> H x W x K
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[to_raw]
        self.context_pad = context_pad
        if not self.context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float32).transpose(to_raw)
        order = self.transformer.channel_swap.get(in_)
        if order is not None:  # back to the image's channel order
            crop_mean = crop_mean[:, :, np.argsort(order)]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean
