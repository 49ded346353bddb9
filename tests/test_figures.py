import numpy as np

from mnistlab.ui import figures


def test_probability_chart_labels_every_digit():
    fig = figures.probabilities(np.full(10, 0.1))
    # a numeric axis would label only 0, 2, 4, 6, 8; a category axis labels each bar
    assert fig.layout.xaxis.type == "category"
    assert list(fig.data[0].x) == [str(d) for d in range(10)]
