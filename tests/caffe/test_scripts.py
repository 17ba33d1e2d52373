"""pycaffe scripts run unchanged against bpinspect.caffe: the classification steps of
examples/00-classification.ipynb on a small net, net surgery (fully connected to
convolution), and a solver loop; the values are computed independently with NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

import bpinspect.caffe as caffe

DEPLOY = """name: 'MiniNet'
layer { name: 'data' type: 'Input' top: 'data'
  input_param { shape { dim: 10 dim: 3 dim: 8 dim: 8 } } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
  convolution_param { num_output: 4 kernel_size: 3 stride: 1 } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'fc' type: 'InnerProduct' bottom: 'conv1' top: 'fc'
  inner_product_param { num_output: 5 } }
layer { name: 'prob' type: 'Softmax' bottom: 'fc' top: 'prob' }
"""


def conv_valid(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Convolution (correlation), stride 1, no pad: (N,C,H,W) * (K,C,kh,kw)."""
    windows = sliding_window_view(x, w.shape[2:], axis=(2, 3))  # N,C,H',W',kh,kw
    return np.einsum("nchwij,kcij->nkhw", windows, w) + b[None, :, None, None]


@pytest.fixture
def files(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    # "trained" weights: a net of the same layers saved once
    caffe.Net(str(deploy), caffe.TEST).save(str(tmp_path / "mini.caffemodel"))
    rng = np.random.default_rng(0)
    image = (rng.uniform(size=(12, 10, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "cat.png")
    np.save(tmp_path / "mean.npy", rng.uniform(90, 130, size=(3, 8, 8)))
    return tmp_path


def test_classification_steps(files) -> None:
    model_def, model_weights = str(files / "deploy.prototxt"), str(files / "mini.caffemodel")
    caffe.set_mode_cpu()
    net = caffe.Net(model_def, model_weights, caffe.TEST)

    mu = np.load(str(files / "mean.npy"))
    mu = mu.mean(1).mean(1)
    transformer = caffe.io.Transformer({"data": net.blobs["data"].data.shape})
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_mean("data", mu)
    transformer.set_raw_scale("data", 255)
    transformer.set_channel_swap("data", (2, 1, 0))

    net.blobs["data"].reshape(3, 3, 8, 8)
    image = caffe.io.load_image(str(files / "cat.png"))
    transformed_image = transformer.preprocess("data", image)
    net.blobs["data"].data[...] = transformed_image
    output = net.forward()
    output_prob = output["prob"][0]

    # Independently: Pillow's bilinear resize, then the same steps by hand.
    raw = np.asarray(Image.open(files / "cat.png"), dtype=np.float32) / 255
    resized = np.stack([np.asarray(Image.fromarray(raw[:, :, k], mode="F").resize(
        (8, 8), Image.Resampling.BILINEAR)) for k in range(3)], axis=2)
    expected_in = resized.transpose(2, 0, 1)[::-1] * 255 - mu[:, None, None]
    np.testing.assert_allclose(transformed_image, expected_in, rtol=1e-5, atol=1e-3)
    assert image.shape == (12, 10, 3) and image.dtype == np.float32 and image.max() <= 1

    params = {k: [b.data.astype(np.float64) for b in v] for k, v in net.params.items()}
    x = np.repeat(expected_in[None].astype(np.float64), 3, axis=0)
    conv = np.maximum(conv_valid(x, *params["conv1"]), 0)
    fc = conv.reshape(3, -1) @ params["fc"][0].T + params["fc"][1]
    prob = np.exp(fc - fc.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    np.testing.assert_allclose(output_prob, prob[0], rtol=1e-4, atol=1e-6)
    assert output_prob.argmax() == prob[0].argmax()
    assert net.blobs["conv1"].data[0].shape == (4, 6, 6)
    assert [(k, v.data.shape) for k, v in net.blobs.items()] == [
        ("data", (3, 3, 8, 8)), ("conv1", (3, 4, 6, 6)), ("fc", (3, 5)), ("prob", (3, 5))]
    assert [(k, v[0].data.shape, v[1].data.shape) for k, v in net.params.items()] == [
        ("conv1", (4, 3, 3, 3), (4,)), ("fc", (5, 144), (5,))]
    # The weights are the file's: a second net from the same file agrees.
    again = caffe.Net(model_def, caffe.TEST, weights=model_weights)
    np.testing.assert_array_equal(again.params["fc"][0].data, net.params["fc"][0].data)
    # deprocess undoes preprocess
    np.testing.assert_allclose(transformer.deprocess("data", transformed_image), resized,
                               rtol=1e-5, atol=1e-5)


FULL_CONV = DEPLOY.replace(
    "layer { name: 'fc' type: 'InnerProduct' bottom: 'conv1' top: 'fc'\n"
    "  inner_product_param { num_output: 5 } }\n"
    "layer { name: 'prob' type: 'Softmax' bottom: 'fc' top: 'prob' }\n",
    "layer { name: 'fc-conv' type: 'Convolution' bottom: 'conv1' top: 'fc-conv'\n"
    "  convolution_param { num_output: 5 kernel_size: 6 } }\n"
    "layer { name: 'prob' type: 'Softmax' bottom: 'fc-conv' top: 'prob' }\n",
).replace("dim: 8 dim: 8", "dim: 10 dim: 10")


def test_net_surgery_fully_connected_to_convolution(files) -> None:
    net = caffe.Net(str(files / "deploy.prototxt"), str(files / "mini.caffemodel"), caffe.TEST)
    (files / "full_conv.prototxt").write_text(FULL_CONV)
    net_full_conv = caffe.Net(str(files / "full_conv.prototxt"), caffe.TEST)
    params, params_full_conv = ["fc"], ["fc-conv"]
    fc_params = {pr: (net.params[pr][0].data, net.params[pr][1].data) for pr in params}
    conv_params = {pr: (net_full_conv.params[pr][0].data, net_full_conv.params[pr][1].data)
                   for pr in params_full_conv}
    assert conv_params["fc-conv"][0].shape == (5, 4, 6, 6)
    for pr, pr_conv in zip(params, params_full_conv, strict=True):
        conv_params[pr_conv][0].flat = fc_params[pr][0].flat  # flat unrolls the arrays
        conv_params[pr_conv][1][...] = fc_params[pr][1]
    net_full_conv.params["conv1"][0].data[...] = net.params["conv1"][0].data
    net_full_conv.params["conv1"][1].data[...] = net.params["conv1"][1].data

    x = np.random.default_rng(5).standard_normal((10, 3, 10, 10)).astype(np.float32)
    out = net_full_conv.forward(data=x)
    assert out["prob"].shape == (10, 5, 3, 3)
    # The top-left 8x8 window of the large input is the small net's input.
    small = net.forward(data=x[:, :, :8, :8])
    np.testing.assert_allclose(net_full_conv.blobs["fc-conv"].data[:, :, 0, 0],
                               net.blobs["fc"].data, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["prob"][:, :, 0, 0], small["prob"], rtol=1e-4, atol=1e-6)
    net_full_conv.save(str(files / "surgery.caffemodel"))
    reloaded = caffe.Net(str(files / "full_conv.prototxt"), str(files / "surgery.caffemodel"),
                         caffe.TEST)
    np.testing.assert_array_equal(reloaded.params["fc-conv"][0].data, conv_params["fc-conv"][0])


TRAIN_NET = """name: 'reg' force_backward: true
layer { name: 'data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 }
    data_filler { type: 'gaussian' std: 1 } data_filler { type: 'gaussian' std: 1 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 0.3 } } }
layer { name: 'loss' type: 'EuclideanLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""


def test_solver_loop(tmp_path) -> None:
    (tmp_path / "train.prototxt").write_text(TRAIN_NET)
    (tmp_path / "solver.prototxt").write_text(
        "net: 'train.prototxt'\nbase_lr: 0.1\nlr_policy: 'fixed'\nmax_iter: 10\n"
        "momentum: 0\nweight_decay: 0\nsnapshot_prefix: 'snap'\nrandom_seed: 1\n")
    solver = caffe.get_solver(str(tmp_path / "solver.prototxt"))
    assert isinstance(solver, caffe.SGDSolver)
    assert isinstance(solver.net, caffe.Net) and solver.test_nets == []
    before = solver.net.params["ip"][0].data.copy()
    bias = solver.net.params["ip"][1].data.copy()
    solver.step(1)
    assert solver.iter == 1
    # After an iteration the diff holds the update (base_lr * gradient), data -= diff.
    update = solver.net.params["ip"][0].diff
    np.testing.assert_allclose(solver.net.params["ip"][0].data, before - update, rtol=1e-6)
    # The gradient of the batch the step used, by hand: d/dW 1/(2N) |W x + b - y|^2
    x, y = solver.net.blobs["data"].data, solver.net.blobs["label"].data
    residual = x @ before.T + bias - y
    np.testing.assert_allclose(update, 0.1 * residual.T @ x / 4, rtol=1e-4, atol=1e-7)
    losses = []
    for _ in range(3):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    assert solver.iter == 4 and all(np.isfinite(losses))
    typed = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    assert typed.iter == 0 and "ip" in typed.net.params


def _mini_prob(params: dict, x: np.ndarray) -> np.ndarray:
    """The mini net's forward by hand, in float64."""
    conv = np.maximum(conv_valid(x, *params["conv1"]), 0)
    fc = conv.reshape(len(x), -1) @ params["fc"][0].T + params["fc"][1]
    prob = np.exp(fc - fc.max(1, keepdims=True))
    return prob / prob.sum(1, keepdims=True)


def test_classifier_centre_crop_and_oversampling(files) -> None:
    mean = np.array([100.0, 110.0, 120.0])
    classifier = caffe.Classifier(str(files / "deploy.prototxt"), str(files / "mini.caffemodel"),
                                  image_dims=(10, 10), mean=mean, raw_scale=255,
                                  channel_swap=(2, 1, 0))
    rng = np.random.default_rng(9)
    images = [rng.uniform(size=(10, 10, 3)).astype(np.float32) for _ in range(2)]
    params = {k: [b.data.astype(np.float64) for b in v] for k, v in classifier.params.items()}

    def caffe_in(crop: np.ndarray) -> np.ndarray:
        return crop.transpose(2, 0, 1)[::-1] * 255 - mean[:, None, None]

    centre = classifier.predict(images, oversample=False)
    expected = _mini_prob(params, np.stack([caffe_in(im[1:9, 1:9]) for im in images]))
    np.testing.assert_allclose(centre, expected, rtol=1e-4, atol=1e-6)

    averaged = classifier.predict(images, oversample=True)
    assert averaged.shape == (2, 5)
    for i, im in enumerate(images):
        corners = [im[y:y + 8, x:x + 8] for y in (0, 2) for x in (0, 2)] + [im[1:9, 1:9]]
        crops = corners + [c[:, ::-1] for c in corners]
        want = _mini_prob(params, np.stack([caffe_in(c) for c in crops])).mean(0)
        np.testing.assert_allclose(averaged[i], want, rtol=1e-4, atol=1e-6)
