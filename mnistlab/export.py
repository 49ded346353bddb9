"""A trained run, taken home: a short standalone PyTorch file that rebuilds the network and loads its weights.

The file needs only torch (and Pillow, which torchvision brings, to read an image); it does not import mnistlab.
Its module names match ours (``layers.0.weight`` ...), so it loads our checkpoints as they are.
"""

from __future__ import annotations

import pprint

from torch import nn

from .arch import ArchSpec, build, count_params, summary
from .data import MEAN, STD

_TEMPLATE = '''"""{name}: a {params:,}-parameter MNIST network trained with MNIST Lab, rebuilt with plain PyTorch.

    python {filename} checkpoint.pt              # load the weights, print the parameter count
    python {filename} checkpoint.pt digit.png    # and predict a digit image (white on black, like MNIST)

The checkpoint is loaded with torch.load(weights_only=True): tensors and plain data only, never code.
"""

import sys

import torch
from torch import nn

SPEC = {spec}
MEAN, STD = {mean}, {std}  # the normalisation the network was trained with


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
{layers}
        )

    def forward(self, x):  # x: (N, 1, 28, 28), normalised
        return self.layers(x).flatten(1)  # (N, 10) logits


def load(path):
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state_dict = checkpoint["state_dict"] if "state_dict" in checkpoint else checkpoint
    net = Net()
    net.load_state_dict(state_dict)
    return net.eval()


def read_image(path):
    """A 28x28 grayscale tensor in [0, 1] (the image is resized if it is not 28x28)."""
    from PIL import Image

    image = Image.open(path).convert("L").resize((28, 28))
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(1, 1, 28, 28).float() / 255


@torch.no_grad()
def predict(net, image):
    probabilities = torch.softmax(net((image - MEAN) / STD), dim=1)[0]
    return int(probabilities.argmax()), probabilities.tolist()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    net = load(sys.argv[1])
    print(f"{{sum(p.numel() for p in net.parameters()):,}} parameters loaded")
    for path in sys.argv[2:]:
        digit, probabilities = predict(net, read_image(path))
        print(f"{{path}}: {{digit}} ({{probabilities[digit]:.1%}})")
'''


def _constructor(module: nn.Module) -> str:
    """The module as a constructor call that any recent PyTorch understands (not its repr, which varies)."""
    if isinstance(module, nn.Conv2d):
        return (f"nn.Conv2d({module.in_channels}, {module.out_channels}, {module.kernel_size[0]}, "
                f"padding={module.padding[0]}, bias={module.bias is not None})")
    if isinstance(module, nn.BatchNorm2d):
        return f"nn.BatchNorm2d({module.num_features})"
    if isinstance(module, nn.ReLU):
        return "nn.ReLU()"
    if isinstance(module, nn.Dropout2d):
        return f"nn.Dropout2d({module.p})"
    if isinstance(module, nn.MaxPool2d):
        return f"nn.MaxPool2d({module.kernel_size}, {module.stride})"
    if isinstance(module, nn.AvgPool2d):
        return f"nn.AvgPool2d({module.kernel_size})"
    raise TypeError(f"no constructor for {type(module).__name__}")


def safe_name(spec: ArchSpec) -> str:
    """The spec's name as a file name: letters, digits and underscores only (no path separators)."""
    return "".join(c if c.isalnum() else "_" for c in spec.name.lower()).strip("_") or "network"


def filename(spec: ArchSpec) -> str:
    return f"mnist_{safe_name(spec)}.py"


def standalone_script(spec: ArchSpec) -> str:
    rows = summary(spec).layers
    lines = []
    for i, (module, row) in enumerate(zip(build(spec).layers, rows)):
        c, h, w = row.output_shape
        lines.append(f"            {_constructor(module)},  # {i}: -> {c}x{h}x{w}, receptive field {row.receptive_field}")
    title = "".join(c for c in spec.name if c.isprintable() and c not in '"\\') or "network"
    return _TEMPLATE.format(name=title, params=count_params(spec), filename=filename(spec),
                            spec=pprint.pformat(spec.to_dict(), width=100, sort_dicts=False), mean=MEAN, std=STD,
                            layers="\n".join(lines))
