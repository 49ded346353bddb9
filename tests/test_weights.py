"""The shipped weights: one checkpoint per preset, each measured on the real 10k test set."""

import pytest

from mnistlab import arch, checkpoint, train


def test_every_preset_ships_weights_with_the_command_that_made_them():
    shipped = checkpoint.shipped()
    assert set(shipped) == set(arch.PRESETS)
    for name, path in shipped.items():
        log = path.with_suffix(".txt").read_text()
        assert log.startswith(f"$ python3 -m mnistlab train --preset {name} ")
        assert "final test accuracy" in log
        config = checkpoint.load(path).config  # made with the recipe the preset ships with now
        assert {k: config.get(k) for k in train.RECIPES[name]} == train.RECIPES[name], name


@pytest.mark.parametrize("name", list(arch.PRESETS))  # every shipped preset reaches the target
def test_shipped_weights_reach_the_target_on_the_official_test_set(name, mnist):
    ck = checkpoint.load(checkpoint.shipped()[name])
    assert ck.spec == arch.preset(name)
    _, accuracy = train.evaluate(ck.model(), mnist.test)
    assert arch.count_params(ck.spec) < 20_000
    assert accuracy >= 99.4, f"{name}: {accuracy:.2f} %"
    # the accuracy recorded at training time is the final epoch's, and it is what we measure now
    assert ck.history[-1]["test_accuracy"] == pytest.approx(accuracy, abs=0.02)
