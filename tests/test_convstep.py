"""The first convolution, number by number (mnistlab/convstep.py): every number must be the model's own."""

import json

import numpy as np
import pytest
import torch

from mnistlab import analysis, checkpoint, convstep, drawing
from mnistlab.ui import convstep as convstep_ui

from .test_draw_page import drawn

SEVEN = drawing.to_mnist(drawn([(0.2, 0.15), (0.8, 0.15), (0.45, 0.9)]))


@pytest.fixture(scope="module", params=sorted(checkpoint.shipped()))
def model(request):
    return checkpoint.load(checkpoint.shipped()[request.param]).model()


@torch.no_grad()
def model_outputs(model, image):
    """The model's own first conv output, and its output after each layer up to the next conv or pool."""
    x = analysis._as_batch(image, torch.device("cpu"))
    outs = []
    for layer in model.layers:
        if outs and isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
            break
        x = layer(x)
        outs.append(x[0].double().numpy())
    return outs


def cells(side):
    return [(0, 0), (0, side - 1), (side // 2, side // 2), (side - 1, 3), (side - 1, side - 1), (9, 14)]


def test_the_multiply_add_of_a_cell_is_the_models_conv_output(model):
    outs = model_outputs(model, SEVEN)
    fc = convstep.first_conv(model)
    side = outs[0].shape[1]
    assert side == (28 if fc.padding else 26)
    for channel in range(fc.channels):
        for row, col in cells(side):
            c = convstep.cell(model, SEVEN, channel, row, col)
            assert c.conv == pytest.approx(float((c.inputs * c.weights).sum() + c.bias))  # 9 x 9 + bias
            assert c.conv == pytest.approx(outs[0][channel, row, col], abs=1e-5)
            for (name, value), out in zip(c.after, outs[1:], strict=True):
                assert value == pytest.approx(out[channel, row, col], abs=1e-5), name
            assert c.output == pytest.approx(outs[-1][channel, row, col], abs=1e-5)


def test_whole_maps_are_the_models(model):
    outs = model_outputs(model, SEVEN)
    fc = convstep.first_conv(model)
    for channel in range(fc.channels):
        maps = convstep.channel_maps(fc, SEVEN, channel)
        assert np.abs(maps.conv - outs[0][channel]).max() < 1e-5
        for after, out in zip(maps.after, outs[1:], strict=True):
            assert np.abs(after - out[channel]).max() < 1e-5


def test_the_layers_after_the_conv_are_the_specs_in_its_order(model):
    fc = convstep.first_conv(model)
    spec = model.spec
    names = [a.name for a in fc.after[0]]
    expected = ["ReLU", "BatchNorm"] if spec.order == "relu_bn" else ["BatchNorm", "ReLU"]
    assert names == expected + (["Dropout"] if spec.dropout else [])
    assert fc.has_bias == spec.bias
    text = convstep_ui.describe(fc)
    assert text.index(expected[0]) < text.index(expected[1]) and ("with a bias" in text) == spec.bias


def test_padding_is_a_zero_of_the_normalised_input_not_a_black_pixel():
    model = checkpoint.load(checkpoint.shipped()["best"]).model()
    c = convstep.cell(model, SEVEN, 0, 0, 0)
    assert np.isnan(c.pixels[0]).all() and np.isnan(c.pixels[:, 0]).all()
    assert (c.inputs[0] == 0).all() and (c.inputs[:, 0] == 0).all()
    assert c.inputs[1, 1] == pytest.approx(-0.1307 / 0.3081, abs=1e-6)  # a black pixel of the image
    with pytest.raises(IndexError):
        convstep.cell(model, SEVEN, 0, 28, 0)


def test_the_default_channel_is_the_most_active_feature_map():
    model = checkpoint.load(checkpoint.shipped()["seed"]).model()
    fc = convstep.first_conv(model)
    first = analysis.feature_maps(model, SEVEN)[0].maps  # after the ReLU
    assert convstep.most_active(fc, SEVEN) == int(first.mean(axis=(1, 2)).argmax())


def test_what_the_browser_is_sent_is_the_cells_numbers(model):
    fc = convstep.first_conv(model)
    data = json.loads(json.dumps(convstep_ui.stepper_data(fc, SEVEN, 2)))  # plain JSON
    side, full = data["side"], 28 + 2 * data["pad"]
    assert len(data["inputs"]) == full**2 and len(data["conv"]) == side**2 and len(data["weights"]) == 9
    row, col = side // 2, side // 2 - 3
    c = convstep.cell(model, SEVEN, 2, row, col)
    assert data["conv"][row * side + col] == pytest.approx(c.conv, abs=1e-6)
    assert data["after"][-1]["values"][row * side + col] == pytest.approx(c.output, abs=1e-6)
    window = np.array(data["inputs"]).reshape(full, full)[row:row + 3, col:col + 3]
    assert np.allclose(window, c.inputs, atol=1e-6) and np.allclose(data["weights"], c.weights.ravel(), atol=1e-6)
    assert (data["bias"] is None) == (not model.spec.bias)
