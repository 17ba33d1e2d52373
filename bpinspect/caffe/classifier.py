"""pycaffe's ``caffe.Classifier`` (``python/caffe/classifier.py``): a Net that
resizes images, takes the centre crop or the ten oversampled crops, preprocesses
them with a Transformer and returns the class probabilities (averaged over the
crops when oversampling)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from bpinspect.caffe import io
from bpinspect.caffe.net import Net
from bpinspect.layers.python_layer import TEST

__all__ = ["Classifier"]


def input_transformer(net: Net, mean: Any, input_scale: float | None,
                      raw_scale: float | None,
                      channel_swap: Sequence[int] | None) -> io.Transformer:
    """The Transformer pycaffe's Classifier and Detector make for the net's first input:
    HWC to CHW, then the options that were given."""
    in_ = net.inputs[0]
    transformer = io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    def __init__(self, model_file: Any, pretrained_file: Any, image_dims: Any = None,
                 mean: Any = None, input_scale: float | None = None,
                 raw_scale: float | None = None, channel_swap: Sequence[int] | None = None
                 ) -> None:
        super().__init__(model_file, TEST, weights=pretrained_file)
        in_ = self.inputs[0]
        self.transformer = input_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = image_dims if image_dims is not None and len(image_dims) else \
            self.crop_dims

    def predict(self, inputs: Sequence[Any], oversample: bool = True) -> np.ndarray:
        """(N, classes) probabilities for N H x W x K images."""
        h, w = (int(d) for d in self.image_dims)
        images = np.zeros((len(inputs), h, w, np.asarray(inputs[0]).shape[2]), dtype=np.float32)
        for i, image in enumerate(inputs):
            images[i] = io.resize_image(image, (h, w))
        if oversample:
            crops = io.oversample(images, self.crop_dims)
        else:
            centre = np.array([h, w]) / 2.0
            box = np.concatenate([centre - self.crop_dims / 2.0,
                                  centre + self.crop_dims / 2.0]).astype(int)
            crops = images[:, box[0]:box[2], box[1]:box[3], :]
        in_ = self.inputs[0]
        caffe_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
