"""pycaffe's ``caffe.proto``: ``caffe_pb2`` is bpinspect's generated schema module.

``import bpinspect.caffe.proto.caffe_pb2`` gives ``bpinspect.proto.caffe_pb2``
itself (one module, one set of message classes), registered under this
package's name as well.
"""

import sys

from bpinspect.proto import caffe_pb2

sys.modules[__name__ + ".caffe_pb2"] = caffe_pb2

__all__ = ["caffe_pb2"]
