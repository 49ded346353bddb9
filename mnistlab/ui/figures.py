"""Plotly figures and images for the pages (no Streamlit calls here, so they are easy to test)."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..rules import PARAM_LIMIT, TARGET_ACCURACY

RED, GREEN, GREY = "#d62728", "#2ca02c", "#7f7f7f"


def budget_bar(params: int, limit: int = PARAM_LIMIT) -> go.Figure:
    """A horizontal bar of the parameter count against the challenge's budget; red past it. The budget's label sits
    above the plot, beside its line, so that no bar ever covers it."""
    over = params >= limit
    end = max(limit * 1.25, params * 1.05)
    fig = go.Figure(go.Bar(x=[params], y=["parameters"], orientation="h", marker_color=RED if over else GREEN,
                           text=[f"{params:,}"], textposition="auto", hoverinfo="skip"))
    fig.add_vline(x=limit, line_dash="dash", line_color=GREY)
    fig.add_annotation(x=limit, y=1, xref="x", yref="paper", yanchor="bottom", showarrow=False,
                       xanchor="right" if limit > end / 2 else "left",  # towards the middle: never cut off
                       text=f"{limit:,} budget", font=dict(color="#31333f", size=12))
    fig.update_layout(height=110, margin=dict(l=10, r=10, t=25, b=10), showlegend=False,
                      xaxis=dict(range=[0, end]), yaxis=dict(visible=False))
    return fig


def smoothed(values: list[float], weight: float = 0.8) -> list[float]:
    """An exponential moving average (TensorBoard's smoothing): one batch's loss is noisy, the trend is what shows."""
    out, avg = [], None
    for v in values:
        avg = v if avg is None else weight * avg + (1 - weight) * v
        out.append(avg)
    return out


def training_curves(history: list[dict], batch_losses: list[tuple[float, float]] = ()) -> go.Figure:
    """Loss and accuracy per epoch, train and test side by side, with the target accuracy's line; while a run trains,
    its batches' training loss (smoothed) too, so that the loss curve moves within an epoch."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy (%)"))
    if batch_losses:
        fig.add_trace(go.Scatter(x=[x for x, _ in batch_losses], y=smoothed([loss for _, loss in batch_losses]),
                                 name="train loss (batches, smoothed)", mode="lines", line_color="#9ecae1"), 1, 1)
    epochs = [h["epoch"] for h in history]
    for key, name, color in (("train", "train", "#1f77b4"), ("test", "test", "#ff7f0e")):
        fig.add_trace(go.Scatter(x=epochs, y=[h[f"{key}_loss"] for h in history], name=f"{name} loss",
                                 mode="lines+markers", line_color=color), 1, 1)
        fig.add_trace(go.Scatter(x=epochs, y=[h[f"{key}_accuracy"] for h in history], name=f"{name} accuracy",
                                 mode="lines+markers", line_color=color, line_dash="dot" if key == "train" else None),
                      1, 2)
    fig.add_hline(y=TARGET_ACCURACY, line_dash="dash", line_color=RED, annotation_text=f"{TARGET_ACCURACY} %",
                  row=1, col=2)
    lo = min([h["test_accuracy"] for h in history] + [h["train_accuracy"] for h in history] + [TARGET_ACCURACY])
    fig.update_yaxes(range=[max(0, lo - 0.5), 100], row=1, col=2)
    fig.update_xaxes(title_text="epoch", dtick=1, rangemode="tozero")
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def compare_curves(runs: list[tuple[str, list[dict]]]) -> go.Figure:
    fig = go.Figure()
    for label, history in runs:
        fig.add_trace(go.Scatter(x=[h["epoch"] for h in history], y=[h["test_accuracy"] for h in history],
                                 name=html.escape(label, quote=False), mode="lines+markers"))  # plotly renders <b>, <a>
    fig.add_hline(y=TARGET_ACCURACY, line_dash="dash", line_color=RED, annotation_text=f"target {TARGET_ACCURACY} %")
    fig.update_layout(height=340, xaxis_title="epoch", yaxis_title="test accuracy (%)",
                      margin=dict(l=10, r=10, t=20, b=10))
    fig.update_xaxes(dtick=1)  # whole epochs only
    return fig


def probabilities(probs: np.ndarray) -> go.Figure:
    top = int(np.argmax(probs))
    colors = [GREEN if i == top else "#9ecae1" for i in range(10)]
    fig = go.Figure(go.Bar(x=[str(i) for i in range(10)], y=probs, marker_color=colors,
                           text=[f"{p:.0%}" if p >= 0.01 else "" for p in probs], textposition="outside"))
    fig.update_layout(height=260, yaxis=dict(range=[0, 1.1], tickformat=".0%"),
                      xaxis=dict(title="digit", type="category"),  # all ten labels, not a numeric axis's 0, 2, 4..
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def head_maps(maps: np.ndarray) -> go.Figure:
    """The head's ten maps (10, h, w), one per digit, in a 2 x 5 grid labelled 0-9 with each map's mean (the digit's
    score), all on ONE colour scale centred on 0 (red: for the digit, blue: against), so the winner's map stands out
    as the reddest; its label is bold and its frame green. One heatmap trace (the maps with blank gaps between them),
    which is quick to build and to draw on every stroke."""
    _, h, w = maps.shape
    gap = max(1, round(max(h, w) / 3))
    scores = maps.mean(axis=(1, 2))
    winner = int(scores.argmax())
    z = np.full((2 * h + gap, 5 * w + 4 * gap), np.nan)
    corners = [((d // 5) * (h + gap), (d % 5) * (w + gap)) for d in range(10)]  # (top row, left column) of each map
    for d, (r, c) in enumerate(corners):
        z[r:r + h, c:c + w] = maps[d]
    span = float(np.abs(maps).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=z, colorscale="RdBu", reversescale=True, zmin=-span, zmax=span, zmid=0,
                               colorbar=dict(title="score", thickness=12), hoverongaps=False,
                               hovertemplate="%{z:.2f}<extra></extra>"))
    for d, (r, c) in enumerate(corners):
        label = f"{d}: {scores[d]:+.1f}"
        fig.add_annotation(x=c + (w - 1) / 2, y=r - 0.5 - gap / 3, text=f"<b>{label}</b>" if d == winner else label,
                           showarrow=False, yanchor="bottom", font=dict(size=15 if d == winner else 13))
    r, c = corners[winner]
    fig.add_shape(type="rect", x0=c - 0.5 - gap / 4, x1=c + w - 0.5 + gap / 4, y0=r - 0.5 - gap / 4,
                  y1=r + h - 0.5 + gap / 4, line=dict(color=GREEN, width=3))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")  # image orientation
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), plot_bgcolor="rgba(0,0,0,0)")
    return fig


def saliency_overlay(image: np.ndarray, saliency: np.ndarray, scale: int = 6) -> np.ndarray:
    """The (28, 28) digit in grey with a signed saliency map (28, 28, in [-1, 1]) laid over it, red where ink pushes
    towards the answer and blue where it would push away, as uint8 RGB enlarged like ``enlarge`` (same size)."""
    grey = np.clip(image, 0, 1)[..., None] * np.array([0.6, 0.6, 0.6])
    s = np.clip(saliency, -1, 1)[..., None]
    alpha = np.clip((np.abs(s) - 0.1) / 0.9, 0, 1)  # the faintest tenth is noise: left clear, so the digit shows
    colour = np.where(s > 0, np.array([0.95, 0.15, 0.15]), np.array([0.25, 0.5, 1.0]))
    rgb = grey * (1 - alpha) + colour * alpha
    out = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return np.kron(out, np.ones((scale, scale, 1), dtype=np.uint8))


def confusion(cm: np.ndarray, picked: tuple[int, int] | None = None) -> go.Figure:
    """The confusion matrix (true digit down, predicted across), each cell a click target for its test images; the
    ``picked`` (true, predicted) cell outlined."""
    digits = [str(i) for i in range(10)]
    text = [[str(v) if v else "" for v in row] for row in cm]
    z = np.log1p(cm)  # the diagonal would wash out every mistake on a linear scale
    fig = go.Figure(go.Heatmap(z=z, x=digits, y=digits, text=text, texttemplate="%{text}", colorscale="Blues",
                               showscale=False, hoverinfo="skip"))
    # A click selects points of a scatter, never the cells of a heatmap (Streamlit passes on only selections), so
    # an invisible marker sits on each cell; with no hover distance limit a click picks the nearest marker, which
    # on a grid is the one of the cell under the pointer. The picked cell's marker is the one shown, as an outline.
    true, pred = np.indices(cm.shape)
    fig.add_trace(go.Scatter(
        x=[digits[i] for i in pred.ravel()], y=[digits[i] for i in true.ravel()], customdata=cm.ravel(),
        mode="markers", marker=dict(symbol="square-open", size=28, color=RED, line_width=3, opacity=0),
        selectedpoints=[picked[0] * 10 + picked[1]] if picked else [], selected=dict(marker_opacity=1),
        unselected=dict(marker_opacity=0), showlegend=False,
        hovertemplate="true %{y}, predicted %{x}: %{customdata}<extra></extra>"))
    # All ten digits, 0 at the top; fixed ranges (the markers would pad them), no pan or zoom.
    fig.update_layout(height=420, xaxis_title="predicted", yaxis_title="true",
                      xaxis=dict(type="category", dtick=1, range=[-0.5, 9.5], fixedrange=True),
                      yaxis=dict(type="category", dtick=1, range=[9.5, -0.5], fixedrange=True),
                      hoverdistance=-1, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def tile(maps: np.ndarray, columns: int = 8, pad: int = 1, scale: int = 3) -> np.ndarray:
    """(C, H, W) feature maps -> one uint8 grid image, each map scaled to its own range, pixels enlarged."""
    c, h, w = maps.shape
    columns = min(columns, c)
    rows = -(-c // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad), 40, dtype=np.uint8)
    for i in range(c):
        m = maps[i]
        lo, hi = float(m.min()), float(m.max())
        norm = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        r, col = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = \
            (norm * 255).astype(np.uint8)
    return np.kron(grid, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else grid


def enlarge(image: np.ndarray, scale: int = 8) -> np.ndarray:
    """A (28, 28) image in [0, 1] -> uint8, each pixel a scale x scale block (no blur, students see the pixels)."""
    return np.kron((np.clip(image, 0, 1) * 255).astype(np.uint8), np.ones((scale, scale), dtype=np.uint8))
