"""pycaffe's ``caffe.NetSpec``, ``caffe.layers``, ``caffe.params`` and ``caffe.to_proto``:
writing a net from Python (``python/caffe/net_spec.py``)::

    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[8, 1, 28, 28]), dict(dim=[8])], ntop=2)
    n.ip = L.InnerProduct(n.data, num_output=10, weight_filler=dict(type="xavier"))
    n.loss = L.SoftmaxWithLoss(n.ip, n.label)
    text = str(n.to_proto())

``L.<Type>(*bottoms, **fields)`` makes a layer: ``ntop=`` its number of tops
(0 gives the layer itself), ``in_place=True`` writes its bottoms; a keyword
ending in ``param`` (``param=``, ``transform_param=``) is a LayerParameter
field, any other one a field of the type's own message
(``convolution_param`` for Convolution) or else of the LayerParameter
(``loss_weight``, ``include``). Lists fill repeated fields (a single value
becomes a one-item list), dicts fill messages. Names as pycaffe gives them:
a NetSpec attribute names its top; the layer takes its first top's name;
unnamed tops are ``<Type><k>``, counted per type. ``P.Pooling.MAX`` is the
enum value.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Any

from bpinspect.proto import caffe_pb2

__all__ = ["NetSpec", "Top", "layers", "params", "to_proto"]


def _param_field_names() -> dict[str, str]:
    """Layer type -> its ``*_param`` field, from the message type names
    (``ConvolutionParameter`` -> ``convolution_param``)."""
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith("_param") and field.message_type is not None:
            type_name = field.message_type.name
            if type_name.endswith("Parameter"):
                names[type_name[: -len("Parameter")]] = field.name
    return names


_PARAM_FIELDS = _param_field_names()


def assign_proto(proto: Any, name: str, value: Any) -> None:
    """Set ``proto.name`` from a Python value: lists for repeated fields (one value
    is a one-item list), dicts for messages, anything else directly."""
    field = getattr(proto, name)
    repeated = hasattr(field, "extend")
    if repeated and not isinstance(value, list):
        value = [value]
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            for item in value:
                message = field.add()
                for k, v in item.items():
                    assign_proto(message, k, v)
        else:
            field.extend(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            assign_proto(field, k, v)
    else:
        setattr(proto, name, value)


class Top:
    """One top blob of a layer (``fn``'s ``n``-th)."""

    def __init__(self, fn: Function, n: int) -> None:
        self.fn = fn
        self.n = n

    def to_proto(self) -> caffe_pb2.NetParameter:
        """The layers needed to compute this top."""
        return to_proto(self)

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer: its type, its bottoms (Tops of other layers) and its fields."""

    def __init__(self, type_name: str, inputs: tuple[Any, ...], fields: dict[str, Any]) -> None:
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise TypeError(f"{type_name} input {index} is not a Top "
                                f"(type is {type(bottom)})")
        self.type_name = type_name
        self.inputs = inputs
        fields = dict(fields)
        self.ntop = int(fields.pop("ntop", 1))
        self.in_place = bool(fields.pop("in_place", False))
        self.params = fields
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _auto(self, autonames: Counter) -> str:
        autonames[self.type_name] += 1
        return f"{self.type_name}{autonames[self.type_name]}"

    def _top_name(self, top: Top, names: dict, autonames: Counter) -> str:
        if top not in names:
            names[top] = top.fn._auto(autonames)
        return names[top]

    def _name(self, names: dict, autonames: Counter) -> str:
        if self not in names:
            names[self] = (self._top_name(self.tops[0], names, autonames) if self.ntop > 0
                           else self._auto(autonames))
        return names[self]

    def _to_proto(self, layers: OrderedDict, names: dict, autonames: Counter) -> None:
        if self in layers:
            return
        bottoms = []
        for bottom in self.inputs:
            bottom._to_proto(layers, names, autonames)
            bottoms.append(layers[bottom.fn].top[bottom.n])
        layer = caffe_pb2.LayerParameter(type=self.type_name)
        layer.bottom.extend(bottoms)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            layer.top.extend(self._top_name(top, names, autonames) for top in self.tops)
        layer.name = self._name(names, autonames)
        own = _PARAM_FIELDS.get(self.type_name)
        for key, value in self.params.items():
            if key.endswith("param") or own is None:
                assign_proto(layer, key, value)
                continue
            try:
                assign_proto(getattr(layer, own), key, value)
            except AttributeError:
                assign_proto(layer, key, value)
        layers[self] = layer


def to_proto(*tops: Top) -> caffe_pb2.NetParameter:
    """A NetParameter of every layer needed to compute ``tops``, names made up."""
    layers: OrderedDict = OrderedDict()
    autonames: Counter = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class NetSpec:
    """Tops assigned as attributes (or items) by name; ``to_proto`` gives the net."""

    def __init__(self) -> None:
        object.__setattr__(self, "tops", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        self.tops[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["tops"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        self.__setattr__(key, value)

    def __getitem__(self, item: str) -> Any:
        return self.tops[item]

    def to_proto(self) -> caffe_pb2.NetParameter:
        names = {top: name for name, top in self.tops.items()}
        autonames: Counter = Counter()
        layers: OrderedDict = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``layers.<Type>(*bottoms, **fields)``: a Top, a tuple of Tops (``ntop`` > 1)
    or, with ``ntop=0``, the layer."""

    def __getattr__(self, type_name: str) -> Any:
        if type_name.startswith("__"):
            raise AttributeError(type_name)

        def layer(*args: Any, **kwargs: Any) -> Any:
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            return fn.tops[0] if fn.ntop == 1 else fn.tops

        return layer


class Parameters:
    """``params.<Type>.<NAME>``: an enum value of ``<Type>Parameter`` (``Pooling.MAX``)."""

    def __getattr__(self, type_name: str) -> Any:
        if type_name.startswith("__"):
            raise AttributeError(type_name)
        message = getattr(caffe_pb2, type_name + "Parameter")

        class Param:
            def __getattr__(self, name: str) -> Any:
                return getattr(message, name)

        return Param()


layers = Layers()
params = Parameters()
