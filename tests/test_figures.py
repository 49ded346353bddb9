import numpy as np

from mnistlab.ui import figures


def test_probability_chart_labels_every_digit():
    fig = figures.probabilities(np.full(10, 0.1))
    # a numeric axis would label only 0, 2, 4, 6, 8; a category axis labels each bar
    assert fig.layout.xaxis.type == "category"
    assert list(fig.data[0].x) == [str(d) for d in range(10)]


def test_a_students_name_is_plain_text_in_the_comparison_legend():
    label = '<a href="https://ev.il/">A+</a> <b>big</b>'
    fig = figures.compare_curves([(label, [{"epoch": 1, "test_accuracy": 98.0}])])
    name = fig.data[0].name
    assert "<a" not in name and "<b>" not in name  # plotly would render these as a link and bold text
    assert name == '&lt;a href="https://ev.il/"&gt;A+&lt;/a&gt; &lt;b&gt;big&lt;/b&gt;'  # plotly shows &lt; as <
