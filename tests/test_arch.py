import json
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mnistlab import arch, rules
from mnistlab.arch import ArchSpec, SpecError

SEED_REFERENCE = Path(__file__).parent / "data" / "seed_reference.txt"  # copied verbatim from shared/seed


def seed_table():
    """(type, output shape, params) rows of the seed's torchsummary table."""
    rows = []
    for line in SEED_REFERENCE.read_text().splitlines():
        m = re.match(r"\s+(\w+)-\d+\s+\[-1, (\d+), (\d+), (\d+)\]\s+([\d,]+)$", line)
        if m:
            rows.append((m[1], (int(m[2]), int(m[3]), int(m[4])), int(m[5].replace(",", ""))))
    assert len(rows) == 20
    return rows


def test_seed_preset_matches_the_seed_table_layer_by_layer():
    s = arch.summary(arch.preset("seed"))
    ours = [(r.type, r.output_shape, r.params) for r in s.layers if r.type != "ReLU"]  # ReLU is functional there
    assert ours == seed_table()
    assert s.total_params == 19_122
    model = arch.build(arch.preset("seed"))
    assert sum(p.numel() for p in model.parameters()) == 19_122


def test_seed_preset_keeps_the_notebook_layer_order():
    types = [type(m).__name__ for m in arch.build(arch.preset("seed")).layers]
    text = " ".join(types)
    assert text.startswith("Conv2d ReLU BatchNorm2d Dropout2d Conv2d ReLU BatchNorm2d Dropout2d MaxPool2d Conv2d ")
    # the last 3x3 conv: ReLU and dropout, no BN; then the 3x3 head and AvgPool2d(3)
    assert text.endswith("Conv2d Conv2d ReLU Dropout2d Conv2d AvgPool2d")
    assert arch.build(arch.preset("seed")).layers[-1].kernel_size == 3


@pytest.mark.parametrize("name,budget", [("best", 20_000), ("lean", 8_000), ("tiny", 4_000), ("micro", 2_000)])
def test_presets_stay_within_their_budget_and_pass_the_checks(name, budget):
    s = arch.summary(arch.preset(name))
    assert s.total_params < budget and s.total_params < 20_000
    checked = rules.architecture(s)
    assert all(r.passed for r in checked), checked
    out = arch.build(arch.preset(name))(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # the zero-parameter Linear below
def test_no_preset_contains_a_linear_layer_and_the_check_looks_at_the_module():
    for spec in arch.PRESETS.values():
        assert not any(isinstance(m, nn.Linear) for m in arch.build(spec).modules())
        assert {r.name: r.passed for r in rules.architecture(arch.summary(spec))}["no_fc"]
    model = arch.build(arch.preset("seed"))
    model.layers.append(nn.Linear(1, 0))  # a zero-parameter Linear smuggled in: only a look at modules finds it
    checks = {r.name: r for r in rules.architecture(arch.summary(arch.preset("seed")), model)}
    assert not checks["no_fc"].passed and "layers.25" in checks["no_fc"].detail


def test_receptive_field_arithmetic_for_the_seed():
    rows = arch.summary(arch.preset("seed")).layers
    rf = [(r.type, r.receptive_field, r.jump) for r in rows if r.type in ("Conv2d", "MaxPool2d", "AvgPool2d")]
    assert rf == [("Conv2d", 3, 1), ("Conv2d", 5, 1), ("MaxPool2d", 6, 2), ("Conv2d", 6, 2), ("Conv2d", 10, 2),
                  ("Conv2d", 14, 2), ("MaxPool2d", 16, 4), ("Conv2d", 16, 4), ("Conv2d", 24, 4), ("Conv2d", 32, 4),
                  ("AvgPool2d", 40, 12)]
    assert rows[0].macs == 28 * 28 * 16 * 9


def test_spec_json_round_trip():
    for spec in arch.PRESETS.values():
        assert ArchSpec.from_json(spec.to_json()) == spec
        assert json.loads(spec.to_json())["blocks"][0]["widths"]


def seed_dict(**changes):
    d = arch.preset("seed").to_dict()
    d.update(changes)
    return d


@pytest.mark.parametrize("bad,message", [
    (seed_dict(dropout=0.7), "dropout must be between 0 and 0.5"),
    (seed_dict(dropout="a lot"), "dropout must be a number"),
    (seed_dict(blocks=[]), "at least one block"),
    (seed_dict(blocks=[{"widths": [0]}]), "widths must be between 1 and 256"),
    (seed_dict(blocks=[{"widths": [300]}]), "widths must be between 1 and 256"),
    (seed_dict(blocks=[{"widths": [8]}] * 5), "block 5 shrinks the map to 0x0"),
    (seed_dict(blocks=[{"widths": [8]}, {"widths": [8]}, {"widths": [8], "padding": 0}]),
     "3x3 head needs a map of at least 3x3"),
    (seed_dict(blocks=[{"widths": [256, 256, 256]}]), "over the limit of 200,000"),
    (seed_dict(head="dense"), "head must be one of"),
    (seed_dict(colour="red"), "unknown spec field"),
    (seed_dict(blocks=[{"widths": [8.5]}]), "must be a whole number"),
    (seed_dict(batchnorm="yes"), "batchnorm must be true or false"),
    ([1, 2], "must be a JSON object"),
])
def test_bad_specs_get_a_clear_validation_error(bad, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        ArchSpec.from_dict(bad)


def test_bad_json_is_a_spec_error():
    with pytest.raises(SpecError, match="not valid JSON"):
        ArchSpec.from_json("{blocks: ")
    with pytest.raises(SpecError, match="unknown preset"):
        arch.preset("huge")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 600) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
block = st.fixed_dictionaries({"widths": st.lists(st.integers(-2, 300) | json_values, max_size=4)},
                              optional={"padding": st.integers(-1, 2) | json_values, "pool": json_values,
                                        "transition": st.none() | st.integers(0, 300) | json_values})
spec_dicts = st.fixed_dictionaries(
    {"blocks": st.lists(block, max_size=5) | json_values},
    optional={"head": st.sampled_from(list(arch.HEADS) + ["x"]), "dropout": st.floats(-1, 1) | json_values,
              "batchnorm": json_values, "order": st.sampled_from(list(arch.ORDERS)), "bias": st.booleans(),
              "last_conv_bn": st.booleans()},
)


@settings(max_examples=300, deadline=None)
@given(spec_dicts)
def test_any_spec_dict_builds_a_model_or_gives_the_validation_message(d):
    try:
        spec = ArchSpec.from_dict(d)
    except SpecError as e:
        assert str(e)
        return
    s = arch.summary(spec)
    assert s.total_params == sum(p.numel() for p in arch.build(spec).parameters())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(json_values, max_size=3), min_size=1, max_size=3), json_values, json_values, json_values)
def test_a_spec_built_in_python_with_wrong_types_gets_the_validation_message(widths, padding, pool, dropout):
    blocks = tuple(arch.Block(tuple(w), padding=padding, pool=pool) for w in widths)
    try:
        arch.validate(ArchSpec(blocks=blocks, dropout=dropout))
    except SpecError as e:
        assert str(e)


def test_a_transition_of_zero_means_none_as_in_the_editor():
    d = arch.preset("seed").to_dict()
    d["blocks"][0]["transition"] = 0
    assert arch.ArchSpec.from_dict(d).blocks[0].transition is None
    d["blocks"][0]["transition"] = False
    with pytest.raises(arch.SpecError, match="block 1 transition must be a whole number"):
        arch.ArchSpec.from_dict(d)


@pytest.mark.parametrize("text,message", [
    ('{"blocks": [{"widths": [8]}], "dropout": 1' + "0" * 400 + "}", "dropout must be between"),
    ('{"blocks": [{"widths": [8]}], "name": "x\\ud800"}', "name must be plain text"),
    ('{"blocks": [{"widths": [8]}], "name": "' + "x" * 20_000 + '"}', "at most"),
    ("[" * 100_000 + "]" * 100_000, "at most"),
    ("[" * 5000 + "]" * 5000, "must be a JSON object|not valid JSON"),
    ('{"blocks": [{"widths": [1e308]}]}', "widths must be between"),
    ('{"blocks": [{"widths": [NaN]}]}', "whole number"),
])
def test_hostile_spec_json_is_a_spec_error(text, message):
    with pytest.raises(SpecError, match=message):
        ArchSpec.from_json(text)
