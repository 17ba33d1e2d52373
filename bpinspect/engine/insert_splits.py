"""Caffe's automatic Split layers: where one top feeds several bottoms.

Follows ``src/caffe/util/insert_splits.cpp`` (``InsertSplits``) line for
line. Every top that is read by more than one bottom (counting a non-zero
``loss_weight`` on that top as one more reader) gets a ``Split`` layer right
after the layer that produces it; each reader then reads its own copy, so in
backward each reader writes its own diff and the Split layer sums them into
the original blob's diff: the gradient of a blob used twice is the sum of
both gradients. A blob concatenated with itself (``bottom: A bottom: A``)
counts as two readers and gets a Split too.

Names, as Caffe's (so that they match Caffe's logs and pycaffe's
``net.blobs``): the layer ``{blob}_{layer}_{idx}_split`` and its tops
``{blob}_{layer}_{idx}_split_{k}``, where ``layer`` is the producer and
``idx`` the top's index in it. When the top carries a loss weight, the Split
carries it on its top 0 (and 0 on the others), and the producer's own
``loss_weight`` is cleared; top 0 then goes to no reader: it is the loss.
"""

from __future__ import annotations

from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

__all__ = ["configure_split_layer", "insert_splits", "split_blob_name", "split_layer_name"]

TopIndex = tuple[int, int]  # (layer index, top index)


def split_layer_name(layer_name: str, blob_name: str, blob_idx: int) -> str:
    """SplitLayerName: ``{blob}_{layer}_{idx}_split``."""
    return f"{blob_name}_{layer_name}_{blob_idx}_split"


def split_blob_name(layer_name: str, blob_name: str, blob_idx: int, split_idx: int) -> str:
    """SplitBlobName: ``{blob}_{layer}_{idx}_split_{k}``."""
    return f"{blob_name}_{layer_name}_{blob_idx}_split_{split_idx}"


def configure_split_layer(
    layer_name: str,
    blob_name: str,
    blob_idx: int,
    split_count: int,
    loss_weight: float,
    split_layer: caffe_pb2.LayerParameter,
) -> None:
    """ConfigureSplitLayer: fill ``split_layer`` in place."""
    split_layer.Clear()
    split_layer.bottom.append(blob_name)
    split_layer.name = split_layer_name(layer_name, blob_name, blob_idx)
    split_layer.type = "Split"
    for k in range(split_count):
        split_layer.top.append(split_blob_name(layer_name, blob_name, blob_idx, k))
        if loss_weight:
            split_layer.loss_weight.append(loss_weight if k == 0 else 0.0)


def insert_splits(param: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """InsertSplits: a copy of ``param`` with Split layers added where needed.

    A bottom that no earlier layer produces raises a one-line
    ``BpinspectError`` naming the layer and the blob.
    """
    blob_name_to_last_top_idx: dict[str, TopIndex] = {}
    bottom_idx_to_source_top_idx: dict[TopIndex, TopIndex] = {}
    top_idx_to_bottom_count: dict[TopIndex, int] = {}
    top_idx_to_loss_weight: dict[TopIndex, float] = {}
    top_idx_to_bottom_split_idx: dict[TopIndex, int] = {}
    layer_idx_to_layer_name: dict[int, str] = {}

    for i, layer in enumerate(param.layer):
        layer_idx_to_layer_name[i] = layer.name
        for j, blob_name in enumerate(layer.bottom):
            if blob_name not in blob_name_to_last_top_idx:
                raise BpinspectError(
                    f"layer {layer.name!r}: unknown bottom blob {blob_name!r} "
                    f"(bottom {j}; no earlier layer produces it)"
                )
            top_idx = blob_name_to_last_top_idx[blob_name]
            bottom_idx_to_source_top_idx[(i, j)] = top_idx
            top_idx_to_bottom_count[top_idx] = top_idx_to_bottom_count.get(top_idx, 0) + 1
        for j, blob_name in enumerate(layer.top):
            blob_name_to_last_top_idx[blob_name] = (i, j)
        # A use of a top blob as a loss is counted like a use as a bottom.
        last_loss = min(len(layer.loss_weight), len(layer.top))
        for j in range(last_loss):
            top_idx = blob_name_to_last_top_idx[layer.top[j]]
            top_idx_to_loss_weight[top_idx] = layer.loss_weight[j]
            if top_idx_to_loss_weight[top_idx]:
                top_idx_to_bottom_count[top_idx] = top_idx_to_bottom_count.get(top_idx, 0) + 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    for i, source_layer in enumerate(param.layer):
        layer = out.layer.add()
        layer.CopyFrom(source_layer)
        # Replace shared bottom blobs with the split layer's outputs.
        for j in range(len(layer.bottom)):
            top_idx = bottom_idx_to_source_top_idx[(i, j)]
            if top_idx_to_bottom_count.get(top_idx, 0) > 1:
                producer = layer_idx_to_layer_name[top_idx[0]]
                k = top_idx_to_bottom_split_idx.get(top_idx, 0)
                top_idx_to_bottom_split_idx[top_idx] = k + 1
                layer.bottom[j] = split_blob_name(producer, layer.bottom[j], top_idx[1], k)
        # A split layer for each top read more than once.
        for j in range(len(layer.top)):
            top_idx = (i, j)
            split_count = top_idx_to_bottom_count.get(top_idx, 0)
            if split_count > 1:
                loss_weight = top_idx_to_loss_weight.get(top_idx, 0.0)
                configure_split_layer(
                    layer_idx_to_layer_name[i], layer.top[j], j, split_count, loss_weight,
                    out.layer.add(),
                )
                if loss_weight:
                    layer.ClearField("loss_weight")
                    top_idx_to_bottom_split_idx[top_idx] = (
                        top_idx_to_bottom_split_idx.get(top_idx, 0) + 1
                    )
    return out
