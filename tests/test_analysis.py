import numpy as np

from mnistlab import arch, checkpoint, analysis


def shipped_model(name="best"):
    return checkpoint.load(checkpoint.shipped()[name]).model()


def test_predict_and_feature_maps_for_one_image(mnist):
    model = shipped_model()
    image = mnist.test.images[0].numpy() / 255.0  # a 7
    probs = analysis.predict(model, image)
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-4 and probs.argmax() == 7
    maps = analysis.feature_maps(model, image)
    convs = [layer for layer in arch.plan(model.spec) if layer.type == "Conv2d"]
    assert len(maps) == len(convs)
    assert maps[0].maps.shape == (16, 28, 28) and (maps[0].maps >= 0).all()  # after ReLU
    assert maps[-1].maps.shape[0] == 10  # the head: one map per digit
    sal = analysis.smoothgrad(model, image)
    assert sal.shape == (28, 28) and np.abs(sal).max() == 1.0
    ink = image > 0.5
    assert sal[ink].mean() > 0 and sal[ink].mean() > np.abs(sal[~ink]).mean()  # the strokes make it a 7


def test_confusion_matrix_and_mistakes(mnist):
    model = shipped_model("tiny")
    split = mnist.test.subset(2000)
    probs = analysis.test_predictions(model, split)
    labels = split.labels.numpy()
    cm = analysis.confusion_matrix(labels, probs)
    assert cm.sum() == 2000 and np.trace(cm) / 2000 > 0.97
    assert (cm.sum(1) == np.bincount(labels, minlength=10)).all()
    true, pred = np.unravel_index(np.argmax(cm - np.diag(np.diag(cm))), cm.shape)
    idx = analysis.misclassified(labels, probs, int(true), int(pred))
    assert len(idx) == cm[true, pred] > 0
    assert (labels[idx] == true).all() and (probs[idx].argmax(1) == pred).all()
    assert (np.diff(probs[idx, pred]) <= 0).all()  # most confident mistakes first


def _logits(model, image):
    import torch

    with torch.no_grad():
        return model(analysis._as_batch(image, torch.device("cpu")))[0].numpy()


def test_each_head_map_averages_to_its_digits_score_whatever_the_head(mnist):
    image = mnist.test.images[0].numpy() / 255.0
    conv1 = arch.build(arch.ArchSpec.from_dict({**arch.preset("best").to_dict(), "head": "conv1"})).eval()
    models = {name: shipped_model(name) for name in ("best", "lean")}  # a 3x3 head; GAP then a 1x1 conv
    for name, model in {**models, "conv1": conv1}.items():
        maps = analysis.head_maps(model, image)
        assert maps.shape[0] == 10 and maps.shape[1] >= 1, name
        np.testing.assert_allclose(maps.mean(axis=(1, 2)), _logits(model, image), atol=1e-4, err_msg=name)
    assert analysis.head_maps(models["lean"], image).shape[1:] == (2, 2)  # the map the pool would have averaged
    assert analysis.head_maps(models["best"], image).mean(axis=(1, 2)).argmax() == 7


def _roughness(a: np.ndarray) -> float:
    """How much neighbouring pixels differ, relative to the map's own size (mean squares): speckle is rough."""
    return float(((np.diff(a, axis=0) ** 2).mean() + (np.diff(a, axis=1) ** 2).mean()) / (a ** 2).mean())


def test_smoothgrad_is_smoother_than_the_plain_gradient_and_repeatable(mnist):
    import torch

    model = shipped_model()
    ratios = []
    for i in range(5):
        image = mnist.test.images[i].numpy() / 255.0
        x = analysis._as_batch(image, torch.device("cpu")).requires_grad_(True)
        logits = model(x)
        logits[0, int(logits.argmax())].backward()
        plain = x.grad[0, 0].numpy()
        smooth = analysis.smoothgrad(model, image)
        ratios.append(_roughness(smooth) / _roughness(plain))
        np.testing.assert_array_equal(smooth, analysis.smoothgrad(model, image))  # seeded: no flicker
    assert max(ratios) < 0.9 and np.mean(ratios) < 0.8, ratios
    assert not np.array_equal(analysis.smoothgrad(model, image, target=3), smooth)  # another digit, another map


def test_unsure_below_the_threshold():
    assert analysis.unsure(np.array([0.5, 0.3, 0.2] + [0.0] * 7))
    assert not analysis.unsure(np.array([0.9, 0.1] + [0.0] * 8))
    assert not analysis.unsure(np.eye(10)[3] * analysis.UNSURE_BELOW)  # at the threshold: sure enough
