"""Make nets/digits_train_lmdb and nets/digits_test_lmdb (run once; the output is committed).

This needs scikit-learn (``pip install scikit-learn``), which bpinspect does
NOT depend on: it was run once to write the two LMDBs that the repository
ships, and nobody needs to run it again to use nets/digits_solver.prototxt.

The data: the 1797 handwritten digits scikit-learn ships
(``sklearn.datasets.load_digits``, 8x8 images, values 0..16, from the UCI
"Optical Recognition of Handwritten Digits" set). Each image is scaled to
0..255 (``min(255, v * 16)``), upscaled once to 16x16 with Pillow (bilinear)
so a LeNet-style conv/pool/conv/pool stack fits, and stored as a Caffe
``Datum`` (channels 1, height 16, width 16, uint8 data in CHW order, the
digit as the label), under the key ``'%08d' % i`` as Caffe's convert tools
write them. The records are shuffled once with a fixed seed; the first 1500
go to the train LMDB and the other 297 to the test LMDB. The ``lock.mdb``
files are removed afterwards: readers open the LMDBs with ``lock=False``.

Run from the repository root:  python nets/make_digits_lmdb.py
"""

import os
import shutil
import sys

import lmdb
import numpy as np
from PIL import Image

try:
    from sklearn.datasets import load_digits
except ImportError:  # pragma: no cover - a one-time tool
    sys.exit("make_digits_lmdb.py needs scikit-learn: pip install scikit-learn "
             "(bpinspect itself does not depend on it)")

from bpinspect.proto import caffe_pb2

SIZE = 16          # the images' side after upscaling
N_TRAIN = 1500     # the rest (297) go to the test LMDB
SEED = 1701        # the fixed shuffle

HERE = os.path.dirname(os.path.abspath(__file__))


def to_uint8(image8):
    """An 8x8 array of 0..16 -> a SIZE x SIZE uint8 array of 0..255."""
    pixels = np.minimum(255, image8.astype(np.int64) * 16).astype(np.uint8)
    if SIZE == 8:
        return pixels
    return np.asarray(Image.fromarray(pixels, mode="L").resize(
        (SIZE, SIZE), Image.BILINEAR), dtype=np.uint8)


def write_lmdb(path, images, labels):
    if os.path.exists(path):
        shutil.rmtree(path)
    env = lmdb.open(path, map_size=64 << 20, subdir=True)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(zip(images, labels)):
            datum = caffe_pb2.Datum(channels=1, height=image.shape[0],
                                    width=image.shape[1],
                                    data=image.tobytes(), label=int(label))
            txn.put(("%08d" % i).encode("ascii"), datum.SerializeToString())
    env.close()
    lock = os.path.join(path, "lock.mdb")
    if os.path.exists(lock):
        os.remove(lock)
    print("%s: %d records, data.mdb %d bytes" % (
        path, len(labels), os.path.getsize(os.path.join(path, "data.mdb"))))


def main():
    digits = load_digits()
    images = np.stack([to_uint8(im) for im in digits.images])
    labels = digits.target.astype(np.int64)
    order = np.random.RandomState(SEED).permutation(len(labels))
    images, labels = images[order], labels[order]
    write_lmdb(os.path.join(HERE, "digits_train_lmdb"),
               images[:N_TRAIN], labels[:N_TRAIN])
    write_lmdb(os.path.join(HERE, "digits_test_lmdb"),
               images[N_TRAIN:], labels[N_TRAIN:])


if __name__ == "__main__":
    main()
