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


def test_the_confusion_matrix_labels_all_ten_digits_and_the_comparison_whole_epochs():
    fig = figures.confusion(np.eye(10, dtype=int) * 100)
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert list(fig.data[0].x) == [str(i) for i in range(10)] and fig.layout.xaxis.dtick == 1
    history = [{"epoch": e, "test_accuracy": 99.0 + e / 10} for e in (1, 2, 3)]
    compare = figures.compare_curves([("a run", history)])
    assert compare.layout.xaxis.dtick == 1
    assert any("target" in (a.text or "") for a in compare.layout.annotations)  # the target line says what it is
