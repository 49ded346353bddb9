"""Plotly figures and images for the pages (no Streamlit calls here, so they are easy to test)."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..rules import PARAM_LIMIT, TARGET_ACCURACY

RED, GREEN, GREY = "#d62728", "#2ca02c", "#7f7f7f"


def budget_bar(params: int, limit: int = PARAM_LIMIT) -> go.Figure:
    """A horizontal bar of the parameter count against the challenge's budget; red past it."""
    over = params >= limit
    fig = go.Figure(go.Bar(x=[params], y=["parameters"], orientation="h", marker_color=RED if over else GREEN,
                           text=[f"{params:,}"], textposition="auto", hoverinfo="skip"))
    fig.add_vline(x=limit, line_dash="dash", line_color=GREY, annotation_text=f"{limit:,} budget")
    fig.update_layout(height=110, margin=dict(l=10, r=10, t=25, b=10), showlegend=False,
                      xaxis=dict(range=[0, max(limit * 1.25, params * 1.05)]), yaxis=dict(visible=False))
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


def confusion(cm: np.ndarray) -> go.Figure:
    text = [[str(v) if v else "" for v in row] for row in cm]
    z = np.log1p(cm)  # the diagonal would wash out every mistake on a linear scale
    fig = go.Figure(go.Heatmap(z=z, x=[str(i) for i in range(10)], y=[str(i) for i in range(10)], text=text,
                               texttemplate="%{text}", colorscale="Blues", showscale=False,
                               hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_layout(height=420, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      xaxis=dict(type="category", dtick=1), yaxis=dict(type="category", dtick=1),  # all ten digits
                      margin=dict(l=10, r=10, t=10, b=10))
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
