"""Upgrade old Caffe net formats to the current one, on load, as Caffe does.

Follows ``src/caffe/util/upgrade_proto.cpp`` (``UpgradeNetAsNeeded``), in its
order:

1. V0 nets (``layers { layer { type: "conv" ... } }``, Caffe before 2014):
   padding layers folded into the conv/pool layer they feed
   (``UpgradeV0PaddingLayers``), then each V0 layer becomes a V1 layer
   (``UpgradeV0LayerParameter``).
2. V1 data layers whose ``data_param`` (``image_data_param``,
   ``window_data_param``) holds ``scale``/``mean_file``/``crop_size``/``mirror``:
   those move to ``transform_param`` (``UpgradeNetDataTransformation``).
3. V1 nets (``layers { type: CONVOLUTION ... }``) become V2 nets
   (``layer { type: "Convolution" ... }``) with every field carried
   (``UpgradeV1LayerParameter``): ``blobs_lr``/``weight_decay``/``param``/
   ``blob_share_mode`` become ``param { lr_mult decay_mult name share_mode }``.
4. Net-level ``input:`` with ``input_dim:`` (4 per input) or ``input_shape``
   becomes an ``Input`` layer at the front (``UpgradeNetInput``); ``input:``
   alone (old caffemodels) is dropped.
5. ``BatchNorm`` layers that declare three ``param`` get ``lr_mult`` and
   ``decay_mult`` 0 (``UpgradeNetBatchNorm``).

Where Caffe logs an error and goes on (a V0 parameter that does not apply
to the layer's type), we go on too and say so in ``notes``; where Caffe dies
(a net mixing V1 ``layers`` and V2 ``layer``, an unknown V0 type), we raise
a one-line ``BpinspectError`` naming the file.
"""

from __future__ import annotations

from google.protobuf import unknown_fields
from google.protobuf.message import Message

from bpinspect.errors import BpinspectError
from bpinspect.proto import caffe_pb2

__all__ = [
    "V0_LAYER_TYPES",
    "V1_LAYER_TYPES",
    "net_needs_upgrade",
    "upgrade_net",
    "upgrade_v0_net",
    "upgrade_v0_padding_layers",
    "upgrade_v1_net",
]

_V1 = caffe_pb2.V1LayerParameter

# UpgradeV1LayerType: every V1 enum value -> the V2 type string. Types that
# bpinspect does not run still get their string, so the engine can say
# "layer type 'HDF5Data' is not supported" rather than failing here.
V1_LAYER_TYPES: dict[int, str] = {
    _V1.NONE: "",
    _V1.ABSVAL: "AbsVal",
    _V1.ACCURACY: "Accuracy",
    _V1.ARGMAX: "ArgMax",
    _V1.BNLL: "BNLL",
    _V1.CONCAT: "Concat",
    _V1.CONTRASTIVE_LOSS: "ContrastiveLoss",
    _V1.CONVOLUTION: "Convolution",
    _V1.DECONVOLUTION: "Deconvolution",
    _V1.DATA: "Data",
    _V1.DROPOUT: "Dropout",
    _V1.DUMMY_DATA: "DummyData",
    _V1.EUCLIDEAN_LOSS: "EuclideanLoss",
    _V1.ELTWISE: "Eltwise",
    _V1.EXP: "Exp",
    _V1.FLATTEN: "Flatten",
    _V1.HDF5_DATA: "HDF5Data",
    _V1.HDF5_OUTPUT: "HDF5Output",
    _V1.HINGE_LOSS: "HingeLoss",
    _V1.IM2COL: "Im2col",
    _V1.IMAGE_DATA: "ImageData",
    _V1.INFOGAIN_LOSS: "InfogainLoss",
    _V1.INNER_PRODUCT: "InnerProduct",
    _V1.LRN: "LRN",
    _V1.MEMORY_DATA: "MemoryData",
    _V1.MULTINOMIAL_LOGISTIC_LOSS: "MultinomialLogisticLoss",
    _V1.MVN: "MVN",
    _V1.POOLING: "Pooling",
    _V1.POWER: "Power",
    _V1.RELU: "ReLU",
    _V1.SIGMOID: "Sigmoid",
    _V1.SIGMOID_CROSS_ENTROPY_LOSS: "SigmoidCrossEntropyLoss",
    _V1.SILENCE: "Silence",
    _V1.SOFTMAX: "Softmax",
    _V1.SOFTMAX_LOSS: "SoftmaxWithLoss",
    _V1.SPLIT: "Split",
    _V1.SLICE: "Slice",
    _V1.TANH: "TanH",
    _V1.WINDOW_DATA: "WindowData",
    _V1.THRESHOLD: "Threshold",
}

# UpgradeV0LayerType: V0 type strings -> V1 enum.
V0_LAYER_TYPES: dict[str, int] = {
    "accuracy": _V1.ACCURACY,
    "bnll": _V1.BNLL,
    "concat": _V1.CONCAT,
    "conv": _V1.CONVOLUTION,
    "data": _V1.DATA,
    "dropout": _V1.DROPOUT,
    "euclidean_loss": _V1.EUCLIDEAN_LOSS,
    "flatten": _V1.FLATTEN,
    "hdf5_data": _V1.HDF5_DATA,
    "hdf5_output": _V1.HDF5_OUTPUT,
    "im2col": _V1.IM2COL,
    "images": _V1.IMAGE_DATA,
    "infogain_loss": _V1.INFOGAIN_LOSS,
    "innerproduct": _V1.INNER_PRODUCT,
    "lrn": _V1.LRN,
    "multinomial_logistic_loss": _V1.MULTINOMIAL_LOGISTIC_LOSS,
    "pool": _V1.POOLING,
    "relu": _V1.RELU,
    "sigmoid": _V1.SIGMOID,
    "softmax": _V1.SOFTMAX,
    "softmax_loss": _V1.SOFTMAX_LOSS,
    "split": _V1.SPLIT,
    "tanh": _V1.TANH,
    "window_data": _V1.WINDOW_DATA,
}

# UpgradeV0LayerParameter as a table: V0 field -> {V0 type: (V1 sub-message,
# its field)}; "*" applies to every type. Fields missing from a type's entry
# are, as in Caffe, dropped with a note.
_T = "transform_param"
_V0_FIELDS: dict[str, dict[str, tuple[str, str]]] = {
    "num_output": {
        "conv": ("convolution_param", "num_output"),
        "innerproduct": ("inner_product_param", "num_output"),
    },
    "biasterm": {
        "conv": ("convolution_param", "bias_term"),
        "innerproduct": ("inner_product_param", "bias_term"),
    },
    "weight_filler": {
        "conv": ("convolution_param", "weight_filler"),
        "innerproduct": ("inner_product_param", "weight_filler"),
    },
    "bias_filler": {
        "conv": ("convolution_param", "bias_filler"),
        "innerproduct": ("inner_product_param", "bias_filler"),
    },
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {
        "conv": ("convolution_param", "kernel_size"),
        "pool": ("pooling_param", "kernel_size"),
    },
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"), "pool": ("pooling_param", "stride")},
    "pool": {"pool": ("pooling_param", "pool")},  # MAX/AVE/STOCHASTIC: same numbers
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {
        "data": ("data_param", "source"),
        "hdf5_data": ("hdf5_data_param", "source"),
        "images": ("image_data_param", "source"),
        "window_data": ("window_data_param", "source"),
        "infogain_loss": ("infogain_loss_param", "source"),
    },
    "scale": {"*": (_T, "scale")},
    "meanfile": {"*": (_T, "mean_file")},
    "batchsize": {
        "data": ("data_param", "batch_size"),
        "hdf5_data": ("hdf5_data_param", "batch_size"),
        "images": ("image_data_param", "batch_size"),
        "window_data": ("window_data_param", "batch_size"),
    },
    "cropsize": {"*": (_T, "crop_size")},
    "mirror": {"*": (_T, "mirror")},
    "rand_skip": {
        "data": ("data_param", "rand_skip"),
        "images": ("image_data_param", "rand_skip"),
    },
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", "")},  # the whole message
}

# The V1 sub-messages that UpgradeV1LayerParameter copies: every *_param that
# V1LayerParameter has (LayerParameter has all of them under the same name).
_V1_SUB_PARAMS: tuple[str, ...] = tuple(
    f.name
    for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields
    if f.name.endswith("_param") and f.name in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
)

_DATA_PARAMS = {
    _V1.DATA: "data_param",
    _V1.IMAGE_DATA: "image_data_param",
    _V1.WINDOW_DATA: "window_data_param",
}
_MOVED_TO_TRANSFORM = ("scale", "mean_file", "crop_size", "mirror")


def net_needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """NetNeedsUpgrade: whether ``upgrade_net`` would change anything."""
    return (
        len(net.layers) > 0
        or len(net.input) > 0
        or len(net.input_dim) > 0
        or len(net.input_shape) > 0
        or any(_batch_norm_needs_upgrade(layer) for layer in net.layer)
    )


def upgrade_net(
    net: caffe_pb2.NetParameter, source: str = "<net>", notes: list[str] | None = None
) -> caffe_pb2.NetParameter:
    """Bring ``net`` to the current format in place (as Caffe does) and return it.

    ``source`` names the file in errors and notes; ``notes``, when given,
    receives one line per upgrade done and per thing dropped on the way.
    A current-format net comes back unchanged (the same object).
    """
    out = notes if notes is not None else []
    if len(net.layer) > 0 and len(net.layers) > 0:
        raise BpinspectError(
            f"{source}: the net mixes V2 'layer {{ type: \"...\" }}' and V1 "
            "'layers { type: ENUM }' definitions; Caffe refuses it too: "
            "write every layer in the 'layer' format"
        )
    if any(v1.HasField("layer") for v1 in net.layers):
        upgraded = upgrade_v0_net(net, source, out)
        net.Clear()
        net.MergeFrom(upgraded)
        out.append(f"{source}: upgraded from the V0 net format (layers {{ layer {{ ... }} }})")
    if _upgrade_data_transformation(net):
        out.append(
            f"{source}: moved data layers' scale/mean_file/crop_size/mirror to transform_param"
        )
    if len(net.layers) > 0:
        upgrade_v1_net(net, source, out)
        out.append(f"{source}: upgraded from the V1 net format (layers {{ type: ENUM }})")
    if len(net.input) > 0 or len(net.input_dim) > 0 or len(net.input_shape) > 0:
        _upgrade_net_input(net, source, out)
    for layer in net.layer:
        if _batch_norm_needs_upgrade(layer):
            for spec in layer.param:
                spec.lr_mult = 0.0
                spec.decay_mult = 0.0
            out.append(
                f"{source}: BatchNorm layer '{layer.name}' declares 3 params: "
                "set their lr_mult and decay_mult to 0 (Caffe's BatchNorm upgrade)"
            )
    return net


# ---- V0 -> V1 -----------------------------------------------------------------


def upgrade_v0_padding_layers(
    net: caffe_pb2.NetParameter, source: str = "<net>"
) -> caffe_pb2.NetParameter:
    """UpgradeV0PaddingLayers: fold each V0 ``padding`` layer into the conv or
    pool layer it feeds (its ``pad``), and drop it. Returns a new net."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    out.ClearField("layers")
    last_top: dict[str, int] = {name: -1 for name in net.input}
    for i, conn in enumerate(net.layers):
        v0 = conn.layer
        if v0.type != "padding":
            out.layers.add().CopyFrom(conn)
        for j, blob_name in enumerate(conn.bottom):
            if blob_name not in last_top:
                raise BpinspectError(
                    f"{source}: V0 layer '{v0.name}' reads blob '{blob_name}', "
                    "which no earlier layer or input produces"
                )
            top_idx = last_top[blob_name]
            if top_idx == -1:
                continue
            src = net.layers[top_idx]
            if src.layer.type == "padding":
                if v0.type not in ("conv", "pool"):
                    raise BpinspectError(
                        f"{source}: V0 padding layer '{src.layer.name}' feeds layer "
                        f"'{v0.name}' of type '{v0.type}'; only conv and pool layers can take it"
                    )
                if len(conn.bottom) != 1 or len(src.bottom) != 1 or len(src.top) != 1:
                    raise BpinspectError(
                        f"{source}: V0 padding layer '{src.layer.name}' and the layer "
                        f"'{v0.name}' it feeds must each have one bottom (and it one top)"
                    )
                target = out.layers[len(out.layers) - 1]
                target.layer.pad = src.layer.pad
                target.bottom[j] = src.bottom[0]
        for blob_name in conn.top:
            last_top[blob_name] = i
    return out


def upgrade_v0_net(
    net: caffe_pb2.NetParameter, source: str = "<net>", notes: list[str] | None = None
) -> caffe_pb2.NetParameter:
    """UpgradeV0Net: a new V1 net (``layers { type: ENUM }``) from a V0 one.

    As in Caffe, only the name, the layers, ``input``/``input_dim`` and
    ``force_backward`` are carried; V0 parameters that do not apply to a
    layer's type are dropped, with a note each.
    """
    out_notes = notes if notes is not None else []
    padded = upgrade_v0_padding_layers(net, source)
    out = caffe_pb2.NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for conn in padded.layers:
        _upgrade_v0_layer(conn, out.layers.add(), source, out_notes)
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    return out


def _upgrade_v0_layer(
    conn: caffe_pb2.V1LayerParameter,
    layer: caffe_pb2.V1LayerParameter,
    source: str,
    notes: list[str],
) -> None:
    layer.bottom.extend(conn.bottom)
    layer.top.extend(conn.top)
    if not conn.HasField("layer"):
        return
    v0 = conn.layer
    if v0.HasField("name"):
        layer.name = v0.name
    v0_type = v0.type
    if v0.HasField("type"):
        if v0_type not in V0_LAYER_TYPES:
            raise BpinspectError(
                f"{source}: V0 layer '{v0.name}' has unknown type '{v0_type}' "
                f"(V0 types: {', '.join(sorted(V0_LAYER_TYPES))})"
            )
        layer.type = V0_LAYER_TYPES[v0_type]
    layer.blobs.extend(v0.blobs)
    layer.blobs_lr.extend(v0.blobs_lr)
    layer.weight_decay.extend(v0.weight_decay)
    for v0_field, targets in _V0_FIELDS.items():
        if not v0.HasField(v0_field):
            continue
        target = targets.get(v0_type, targets.get("*"))
        if target is None:
            notes.append(
                f"{source}: V0 layer '{v0.name}': parameter '{v0_field}' does not apply "
                f"to type '{v0_type}'; dropped (as Caffe does)"
            )
            continue
        sub_name, field = target
        sub = getattr(layer, sub_name)
        value = getattr(v0, v0_field)
        if not field:
            sub.CopyFrom(value)
            continue
        fd = sub.DESCRIPTOR.fields_by_name[field]
        if fd.is_repeated:
            getattr(sub, field).append(value)
        elif fd.message_type is not None:
            getattr(sub, field).CopyFrom(value)
        else:
            setattr(sub, field, value)


# ---- V1 -> V2 -----------------------------------------------------------------


def _upgrade_data_transformation(net: caffe_pb2.NetParameter) -> bool:
    """UpgradeNetDataTransformation; True when something moved."""
    moved = False
    for v1 in net.layers:
        sub_name = _DATA_PARAMS.get(v1.type)
        if sub_name is None or not v1.HasField(sub_name):
            continue
        sub = getattr(v1, sub_name)
        for field in _MOVED_TO_TRANSFORM:
            if sub.HasField(field):
                setattr(v1.transform_param, field, getattr(sub, field))
                sub.ClearField(field)
                moved = True
    return moved


def upgrade_v1_net(
    net: caffe_pb2.NetParameter, source: str = "<net>", notes: list[str] | None = None
) -> caffe_pb2.NetParameter:
    """UpgradeV1Net, in place: every ``layers`` entry becomes a ``layer``."""
    if len(net.layer) > 0:
        raise BpinspectError(
            f"{source}: the net mixes V2 'layer {{ type: \"...\" }}' and V1 "
            "'layers { type: ENUM }' definitions; Caffe refuses it too: "
            "write every layer in the 'layer' format"
        )
    for i, v1 in enumerate(net.layers):
        _upgrade_v1_layer(v1, net.layer.add(), i, source, notes)
    net.ClearField("layers")
    return net


def _upgrade_v1_layer(
    v1: caffe_pb2.V1LayerParameter,
    layer: caffe_pb2.LayerParameter,
    index: int,
    source: str,
    notes: list[str] | None,
) -> None:
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        layer.type = V1_LAYER_TYPES[v1.type]
    else:
        unknown = _unknown_enum(v1, v1.DESCRIPTOR.fields_by_name["type"].number)
        if unknown is not None:
            raise BpinspectError(
                f"{source}: V1 layer '{v1.name}' has type number {unknown}, which "
                "BVLC Caffe's V1 format does not define (a fork's layer type?)"
            )
    layer.blobs.extend(v1.blobs)  # copies; faster than add().CopyFrom for big blobs

    def param(i: int) -> caffe_pb2.ParamSpec:
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        param(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        # V1's DimCheckMode and ParamSpec's have the same names and numbers.
        param(i).share_mode = mode
    for i, lr in enumerate(v1.blobs_lr):
        param(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        param(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for sub_name in _V1_SUB_PARAMS:
        if v1.HasField(sub_name):
            getattr(layer, sub_name).CopyFrom(getattr(v1, sub_name))
    if v1.HasField("layer") and notes is not None:
        notes.append(f"{source}: V1 layer {index} ('{v1.name}') holds a V0 layer; ignored")


# ---- legacy inputs, BatchNorm -------------------------------------------------


def _upgrade_net_input(net: caffe_pb2.NetParameter, source: str, notes: list[str]) -> None:
    """UpgradeNetInput: ``input`` + ``input_dim``/``input_shape`` -> an Input layer first."""
    names = list(net.input)
    has_shape, has_dim = len(net.input_shape) > 0, len(net.input_dim) > 0
    if not names:
        notes.append(f"{source}: 'input_dim'/'input_shape' without 'input' names no blob; ignored")
    elif has_shape or has_dim:
        if has_shape and has_dim:
            notes.append(
                f"{source}: legacy inputs give both 'input_shape' and 'input_dim'; "
                "used 'input_shape', as Caffe does"
            )
        if has_shape and len(net.input_shape) != len(names):
            raise BpinspectError(
                f"{source}: {len(names)} legacy 'input' blob(s) but "
                f"{len(net.input_shape)} 'input_shape' entries; give one shape per input"
            )
        if not has_shape and len(net.input_dim) != 4 * len(names):
            raise BpinspectError(
                f"{source}: {len(names)} legacy 'input' blob(s) need {4 * len(names)} "
                f"'input_dim' values (4 per input), found {len(net.input_dim)}"
            )
        input_layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(names):
            input_layer.top.append(name)
            shape = input_layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i : 4 * i + 4])
        net.layer.insert(0, input_layer)  # first, to satisfy layer dependencies
        notes.append(
            f"{source}: legacy 'input' field(s) became an Input layer named 'input' "
            f"(tops: {', '.join(names)})"
        )
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def _unknown_enum(message: Message, number: int) -> int | None:
    """The value of an enum field that the parser kept as unknown (binary input)."""
    fields = unknown_fields.UnknownFieldSet(message)
    for i in range(len(fields)):
        field = fields[i]
        if field.field_number == number and isinstance(field.data, int):
            return field.data
    return None


def _batch_norm_needs_upgrade(layer: caffe_pb2.LayerParameter) -> bool:
    return layer.type == "BatchNorm" and len(layer.param) == 3
