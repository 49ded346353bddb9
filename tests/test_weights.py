"""The shipped weights: one checkpoint per preset, each measured on the real 10k test set."""

import pytest

from mnistlab import arch, checkpoint, rules, train

# The accuracy each shipped preset's weights must reach on the test set: the challenge's target, except micro's,
# whose figures over 5 seeds are in benchmarks/results/time_to_target_micro.jsonl
BARS = {"micro": 99.0}


def test_every_preset_ships_weights_with_the_command_that_made_them():
    shipped = checkpoint.shipped()
    assert set(shipped) == set(arch.PRESETS)
    for name, path in shipped.items():
        log = path.with_suffix(".txt").read_text()
        assert log.startswith(f"$ python3 -m mnistlab train --preset {name} ")
        assert "final test accuracy" in log
        config = checkpoint.load(path).config  # made with the recipe the preset ships with now
        assert {k: config.get(k) for k in train.RECIPES[name]} == train.RECIPES[name], name


@pytest.mark.parametrize("name", list(arch.PRESETS))  # every shipped preset reaches its bar
def test_shipped_weights_reach_the_target_on_the_official_test_set(name, mnist):
    ck = checkpoint.load(checkpoint.shipped()[name])
    assert ck.spec == arch.preset(name)
    _, accuracy = train.evaluate(ck.model(), mnist.test)
    assert arch.count_params(ck.spec) < 20_000
    assert accuracy >= BARS.get(name, rules.TARGET_ACCURACY), f"{name}: {accuracy:.2f} %"
    # the accuracy recorded at training time is the final epoch's, and it is what we measure now
    assert ck.history[-1]["test_accuracy"] == pytest.approx(accuracy, abs=0.02)


def test_micro_is_under_2000_parameters_and_its_recipe_keeps_the_rules_but_the_accuracy():
    spec, cfg = arch.preset("micro"), train.recipe("micro")
    assert arch.count_params(spec) < 2_000
    assert cfg.epochs < rules.EPOCH_LIMIT and cfg.distill_from is None
    verdict = rules.judge(spec, cfg, BARS["micro"])
    assert verdict.eligible and [r.name for r in verdict.failed] == [rules.ACCURACY]
    assert rules.judge(spec, cfg, rules.TARGET_ACCURACY).met
