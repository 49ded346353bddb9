"""Receptive fields unit by unit (mnistlab/receptive.py): known windows, and every window checked against what torch
itself says a unit depends on."""

import pytest
import torch
from torch import nn

from mnistlab import analysis, arch, receptive
from mnistlab.arch import ArchSpec, Block


def net(*blocks, head="conv1"):
    return ArchSpec(blocks=tuple(blocks), head=head, dropout=0.0)


ONE_CONV = net(Block((4,), padding=0, pool=False))  # one 3x3 conv at 28x28, then the head
ONE_PADDED = net(Block((4,), padding=1, pool=False))
POOLED = net(Block((4, 4), padding=1, pool=True, transition=4), Block((4,), padding=1, pool=False))
# 28 -> 26 -> pool 13 -> 11 -> 9 -> 7 -> pool 3 (the 7x7 map's last row and column are dropped) -> padded 3
ODD_POOL = net(Block((4,), padding=0, pool=True), Block((4, 4, 4), padding=0, pool=True),
               Block((4,), padding=1, pool=False))


def conv_index(spec, n):
    return receptive.conv_layers(spec)[n - 1].index


def test_a_3x3_conv_at_28x28_sees_3x3_pixels():
    w = receptive.window(ONE_CONV, conv_index(ONE_CONV, 1), 5, 7)
    assert (w.rows.lo, w.rows.hi, w.cols.lo, w.cols.hi) == (5, 7, 7, 9)
    assert w.size == 3 and not w.past_edge
    assert receptive.conv_layers(ONE_CONV)[0].size == 26


def test_padding_shifts_the_window_and_a_corner_unit_reaches_past_the_image():
    i = conv_index(ONE_PADDED, 1)
    middle = receptive.window(ONE_PADDED, i, 5, 7)
    assert (middle.rows.lo, middle.rows.hi, middle.cols.lo, middle.cols.hi) == (4, 6, 6, 8)
    corner = receptive.window(ONE_PADDED, i, 0, 27)
    assert (corner.rows.lo, corner.rows.hi, corner.cols.lo, corner.cols.hi) == (0, 1, 26, 27)  # clipped
    assert (corner.rows.full_lo, corner.cols.full_hi) == (-1, 28) and corner.size == 3
    assert corner.past_edge == {"top": 1, "right": 1}


def test_after_a_pool_the_jump_doubles():
    transition = conv_index(POOLED, 3)  # the 1x1 conv after the pool
    spans = receptive.spans(POOLED, transition)
    assert len(spans) == 14
    assert {b.full_lo - a.full_lo for a, b in zip(spans, spans[1:])} == {2}  # neighbours are 2 px apart
    assert spans[5].full_hi - spans[5].full_lo + 1 == 6  # 5 px after two 3x3 convs, one more through the pool
    after = receptive.spans(POOLED, conv_index(POOLED, 4))  # the 3x3 conv after it widens by 2 x 2
    assert after[5].full_hi - after[5].full_lo + 1 == 10
    table = arch.summary(POOLED).layers
    assert table[transition].jump == 2 and table[transition].receptive_field == 6


def test_the_best_heads_corner_unit_reads_six_pixels_of_padding():
    best = arch.preset("best")
    head = receptive.conv_layers(best)[-1]
    assert head.name == "conv 8 (head, 10 ch)" and head.size == 3
    w = receptive.window(best, head.index, 0, 0)
    assert w.size == 32 and (w.rows.lo, w.rows.hi) == (0, 25) and w.past_edge == {"top": 6, "left": 6}
    with pytest.raises(IndexError):
        receptive.window(best, head.index, 3, 0)


def test_a_unit_next_to_a_row_the_pool_dropped_does_not_see_it():
    w = receptive.window(ODD_POOL, conv_index(ODD_POOL, 5), 2, 2)
    assert (w.rows.full_lo, w.rows.full_hi) == (4, 29) and w.past_edge == {"bottom": 2, "right": 2}
    assert (w.rows.lo, w.rows.hi) == (4, 25)  # not 27: pixels 26-27 reach it only through the dropped row


def depends_on(spec: ArchSpec, index: int, row: int, col: int) -> tuple[int, int, int, int]:
    """The input pixels unit (row, col) of plan layer ``index`` depends on, as torch computes it: the spec's layers
    with every weight 1, no nonlinearity, and an average pool in place of a max-pool (the same window, with a
    gradient for every input), differentiated; (first row, last row, first column, last column)."""
    layers = []
    for p in arch.plan(spec)[: index + 1]:
        if p.type == "Conv2d":
            conv = nn.Conv2d(1, 1, p.kernel, stride=p.stride, padding=p.padding, bias=False)
            nn.init.ones_(conv.weight)
            layers.append(conv)
        elif p.type in ("MaxPool2d", "AvgPool2d"):
            layers.append(nn.AvgPool2d(p.kernel, p.stride))
    x = torch.ones(1, 1, 28, 28, requires_grad=True)
    nn.Sequential(*layers)(x)[0, 0, row, col].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


@pytest.mark.parametrize("spec", [*arch.PRESETS.values(), ONE_PADDED, POOLED, ODD_POOL],
                         ids=[*arch.PRESETS, "one_padded", "pooled", "odd_pool"])
def test_every_window_is_what_torch_says_the_unit_depends_on(spec):
    for layer in receptive.conv_layers(spec):
        n = layer.size
        for row, col in {(0, 0), (0, n - 1), (n // 2, n // 2), (n - 1, 1 % n), (n - 1, n - 1)}:
            w = receptive.window(spec, layer.index, row, col)
            assert (w.rows.lo, w.rows.hi, w.cols.lo, w.cols.hi) == depends_on(spec, layer.index, row, col), \
                (layer.name, row, col)


@pytest.mark.parametrize("name", list(arch.PRESETS))
def test_growth_is_the_layer_tables_count_with_the_figure_before_the_pool(name):
    spec = arch.preset(name)
    table = arch.summary(spec)
    steps = receptive.growth(spec)
    for s in steps:
        row = table.layers[s.index - 1]
        assert (s.receptive_field, s.jump) == (row.receptive_field, row.jump)
    assert [s.label for s in steps if s.gap] == ["GAP"]
    assert next(s for s in steps if s.gap).receptive_field == table.receptive_field
    assert receptive.before_gap(spec) == table.receptive_field_before_pool
    documented = {"seed": 32, "best": 32, "lean": 24, "tiny": 24}  # README, "The receptive field"
    assert receptive.before_gap(spec) == documented.get(name, table.receptive_field_before_pool)


def test_one_3x3_conv_before_the_pool_reads_30_px_through_it_and_3_before():
    steps = receptive.growth(ONE_PADDED)
    assert [s.label for s in steps] == ["conv 1", "head", "GAP"]
    assert [s.receptive_field for s in steps] == [3, 3, 30]
    assert receptive.before_gap(ONE_PADDED) == 3


@pytest.mark.parametrize("name", list(arch.PRESETS))
def test_the_conv_layers_are_named_and_sized_as_their_feature_maps(name):
    spec = arch.preset(name)
    maps = analysis.feature_maps(arch.build(spec), torch.zeros(28, 28).numpy())
    assert [(c.name, c.size) for c in receptive.conv_layers(spec)] == [(m.name, m.maps.shape[1]) for m in maps]
