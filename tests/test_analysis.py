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
    sal = analysis.saliency(model, image)
    assert sal.shape == (28, 28) and sal.max() == 1.0
    ink = image > 0.5
    assert sal[ink].mean() > sal[~ink].mean()  # the decision leans on the strokes, not the background


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
