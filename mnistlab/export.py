"""A trained run, taken home: a short standalone PyTorch file that rebuilds the network, loads its weights and reads
a digit from an image file.

The file needs torch, numpy and Pillow; it does not import mnistlab. Its module names match ours
(``layers.0.weight`` ...), so it loads our checkpoints as they are. It prepares an image with the very source of
the Draw page's photo path (``photo.photo_grey``, ``photo.photo_to_mnist`` and ``drawing.to_mnist``, copied in with
everything they call), so a digit reads the same at home as on the Draw page.
"""

from __future__ import annotations

import ast
import functools
import inspect
import pprint
import sys
import textwrap

import numpy as np
from torch import nn

from . import drawing, photo
from .arch import ArchSpec, build, count_params, summary
from .data import MEAN, STD

_TEMPLATE = '''"""{name}: a {params:,}-parameter MNIST network trained with MNIST Lab, rebuilt with plain PyTorch.

    python {filename} checkpoint.pt              # load the weights, print the parameter count
    python {filename} checkpoint.pt digit.png    # and read the digit in an image (or several images)

An image is prepared as MNIST was made, by the same code as MNIST Lab's Draw page: the digit is cropped, scaled
to fit 20x20 and centred by its centre of mass in 28x28. Light ink on a dark background is read as it is; dark ink
on light paper (a photo, a scan, a paint program) is inverted first, and the script says so. The paper's own shade,
grey or unevenly lit, and its noise, become black; a photo is turned upright and shrunk first.

Needs torch, numpy and Pillow. The checkpoint is loaded with torch.load(weights_only=True): tensors and plain data
only, never code.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from PIL import Image
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


# ---------------------------------------------------------------------------------------------------------------
# Preparing an image: MNIST Lab's own code (its drawing.py and photo.py), copied in unchanged.

{preprocessing}


# ---------------------------------------------------------------------------------------------------------------


def prepare(path):
    """The image at ``path`` as the network sees it, (28, 28) float32 in [0, 1], white digit on black; and whether
    it was inverted (dark ink on light paper)."""
    with Image.open(path) as img:
        return photo_to_mnist(photo_grey(img))  # cropped round the ink, as the Draw page's photo starts


@torch.no_grad()
def predict(net, image):
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).view(1, 1, 28, 28)
    probabilities = torch.softmax(net((x - MEAN) / STD), dim=1)[0]
    return int(probabilities.argmax()), probabilities.tolist()


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    net = load(sys.argv[1])
    print(f"{{sum(p.numel() for p in net.parameters()):,}} parameters loaded")
    unread = 0
    for path in sys.argv[2:]:
        try:
            image, inverted = prepare(path)
        except (OSError, ValueError) as error:  # not an image, or nothing in it to read (DrawingError)
            print(f"{{path}}: not read: {{error}}")
            unread += 1
            continue
        if inverted:
            print(f"{{path}}: dark ink on a light background, inverted to MNIST's white on black")
        digit, probabilities = predict(net, image)
        print(f"{{path}}: {{digit}} ({{probabilities[digit]:.1%}})")
    sys.exit(1 if unread else 0)
'''

# What the copied code may use from outside its modules: the standalone file imports these itself.
_IMPORTED = {"np": np, "Image": drawing.Image}
_COPIED = (drawing, photo)  # the modules whose functions are copied (each name once: they must not clash)


def _dependencies(*roots) -> dict:
    """``roots`` and every function, class and constant of their own modules that they use, directly or not, by
    (module, name). Raises TypeError for anything else a standalone file could not carry."""
    found: dict = {}
    todo = list(roots)
    while todo:
        obj = todo.pop()
        module = inspect.getmodule(obj)
        if (module.__name__, obj.__name__) in found:
            continue
        found[(module.__name__, obj.__name__)] = obj
        scope = vars(module)
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        if not (tree.body and getattr(tree.body[0], "name", None) == obj.__name__):  # the file was edited since
            raise RuntimeError(f"{module.__file__} has changed since it was loaded; restart to read it again")
        for name in sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}):
            value = scope.get(name)
            if name not in scope or value is _IMPORTED.get(name):
                continue  # a builtin or a local name, or numpy / PIL
            if inspect.isfunction(value) or inspect.isclass(value):
                if inspect.getmodule(value) in _COPIED:
                    todo.append(value)
                elif not (inspect.isclass(value) and issubclass(value, Exception)):
                    raise TypeError(f"{obj.__name__} uses {name} from another module")
                # (an error's base class from elsewhere: the copy derives from ValueError instead)
            elif isinstance(value, (bool, int, float, str)):
                found[(module.__name__, name)] = value
            else:
                raise TypeError(f"{obj.__name__} uses {name}, which a standalone file cannot carry")
    return found


def _source(name: str, value) -> str:
    if not (inspect.isfunction(value) or inspect.isclass(value)):
        return f"{name} = {value!r}"
    text = textwrap.dedent(inspect.getsource(value))
    if inspect.isclass(value) and inspect.getmodule(value.__bases__[0]) is not inspect.getmodule(value):
        header, body = text.split("\n", 1)
        if not header.startswith(f"class {name}(") or not header.endswith("):"):
            raise TypeError(f"class {name}'s header is not on one line")
        text = f"class {name}(ValueError):\n{body}"  # no mnistlab at home: its errors are ValueErrors there
    return text


@functools.cache
def preprocessing_source() -> str:
    """How the standalone file prepares an image, as Python: ``photo.photo_grey`` and ``photo.photo_to_mnist`` (the
    Draw page's own code for a photo, ``drawing.to_mnist`` within), with every constant, error and helper they use,
    copied from their source so that the two cannot drift apart."""
    found = _dependencies(photo.photo_grey, photo.photo_to_mnist)

    def order(key):  # constants, then classes, then functions; each in its module's order
        module, name = key
        value = found[key]
        kind = 2 if inspect.isfunction(value) else 1 if inspect.isclass(value) else 0
        return kind, module, list(vars(sys.modules[module])).index(name)

    keys, names = [], set()
    for key in sorted(found, key=order):  # a constant one module imports from the other: once
        if key[1] not in names:
            keys.append(key)
            names.add(key[1])
    constants = [_source(name, found[(m, name)]) for m, name in keys if not callable(found[(m, name)])]
    code = [_source(name, found[(m, name)]) for m, name in keys if callable(found[(m, name)])]
    return "\n".join(constants) + "\n\n\n" + "\n\n".join(code).rstrip()


# Read now, while the source files are those of the code that runs: inspect reads them from disk, and a file edited
# under a running server would hand out the wrong lines.
preprocessing_source()


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
        lines.append(f"            {_constructor(module)},  # {i}: -> {c}x{h}x{w}, "
                     f"receptive field {row.receptive_field}")
    title = "".join(c for c in spec.name if c.isprintable() and c not in '"\\') or "network"
    return _TEMPLATE.format(name=title, params=count_params(spec), filename=filename(spec),
                            spec=pprint.pformat(spec.to_dict(), width=100, sort_dicts=False), mean=MEAN, std=STD,
                            layers="\n".join(lines), preprocessing=preprocessing_source())
