"""Receptive fields made visible: on Draw, point at a unit of any conv layer's feature map and see the pixels of your
own digit it can see; on Architecture, how the view grows layer by layer against the 28-pixel image.

The explorer is a small components-v2 element (as the drawing pad, ``drawpad.py``): every unit's window is computed
here (``receptive.spans``) and sent once per drawing, and the browser only draws, so hovering follows the pointer
with no rerun. Nothing comes back from the browser.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .. import analysis, receptive
from ..arch import ArchSpec, Net
from ..layerplan import INPUT_SIZE
from .figures import GREEN, GREY, RED

MAX_MARGIN = 8  # input pixels of padding drawn around the digit; a window reaching further is said in words

_HTML = '<div class="rf-root"></div>'

_CSS = """
.rf { display: flex; flex-direction: column; gap: 0.6rem; font-family: var(--st-font, sans-serif);
      color: var(--st-text-color, #31333f); }
.bar { display: flex; flex-wrap: wrap; gap: 0.4rem; }
button { font: inherit; color: inherit; background: var(--st-background-color, #fff); cursor: pointer;
         border: 1px solid var(--st-border-color, #ccc); border-radius: var(--st-button-radius, 0.5rem);
         padding: 0.2rem 0.7rem; min-height: 2.2rem; }
button[aria-pressed="true"] { border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }
.views { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure { margin: 0; display: flex; flex-direction: column; gap: 0.3rem; }
figcaption { font-size: 0.85rem; opacity: 0.75; max-width: 300px; }
canvas { image-rendering: pixelated; border-radius: 0.25rem; }
canvas.map { cursor: crosshair; touch-action: none; }
p { margin: 0; line-height: 1.5; }
"""

# One view per mounted element (keyed by the element Streamlit hands in): the chosen layer and the pinned unit stay
# when a new drawing arrives. The exact window is outlined in AMBER (filled strips, so its pixels are exact); the
# full window, where it differs, is dashed.
_JS = """
const VIEWS = new WeakMap();
const S = 8, AMBER = '#ffb000', PADDING = '#1f3347';

function build() {
  const v = {el: document.createElement('div'), layer: 0, pinned: null, hover: null, data: null};
  v.el.className = 'rf';
  v.el.dataset.testid = 'rfExplorer';
  v.bar = document.createElement('div');
  v.bar.className = 'bar';
  const views = document.createElement('div');
  views.className = 'views';
  const figure = (cls, testid, caption) => {
    const f = document.createElement('figure'), c = document.createElement('canvas');
    const t = document.createElement('figcaption');
    c.className = cls; c.dataset.testid = testid; t.textContent = caption;
    f.append(c, t); views.append(f);
    return c;
  };
  v.map = figure('map', 'rfMap',
                 'The layer\\'s feature map (its most active channel): hover over a unit, or tap it to pin it.');
  v.digit = figure('digit', 'rfDigit', 'Your digit: the amber frame is what that unit sees; dark blue is padding.');
  v.text = document.createElement('p');
  v.text.setAttribute('aria-live', 'polite');
  v.el.append(v.bar, views, v.text);
  const unitAt = (e) => {
    const r = v.map.getBoundingClientRect(), n = v.data.layers[v.layer].size;
    const at = (p, lo, len) => Math.min(n - 1, Math.max(0, Math.floor((p - lo) / len * n)));
    return [at(e.clientY, r.top, r.height), at(e.clientX, r.left, r.width)];
  };
  v.map.addEventListener('pointermove', (e) => { v.hover = unitAt(e); render(v); });
  v.map.addEventListener('pointerleave', () => { v.hover = null; render(v); });
  v.map.addEventListener('pointerdown', (e) => { v.pinned = unitAt(e); v.hover = null; render(v); });
  return v;
}

function buttons(v) {
  const names = v.data.layers.map((l) => l.name);
  if (v.bar.dataset.names !== names.join('|')) {
    v.bar.replaceChildren(...names.map((name, i) => {
      const b = document.createElement('button');
      b.type = 'button'; b.textContent = name.split(' (')[0];  b.title = name;
      b.addEventListener('click', () => { v.layer = i; v.pinned = v.hover = null; render(v); });
      return b;
    }));
    v.bar.dataset.names = names.join('|');
  }
  [...v.bar.children].forEach((b, i) => b.setAttribute('aria-pressed', String(i === v.layer)));
}

function drawMap(v, L, unit) {
  const cell = Math.max(1, Math.floor(224 / L.size)), c = v.map, ctx = c.getContext('2d');
  c.width = c.height = L.size * cell;
  for (let i = 0; i < L.size * L.size; i++) {
    ctx.fillStyle = `rgb(${L.map[i]},${L.map[i]},${L.map[i]})`;
    ctx.fillRect((i % L.size) * cell, Math.floor(i / L.size) * cell, cell, cell);
  }
  ctx.strokeStyle = AMBER; ctx.lineWidth = 2;
  ctx.strokeRect(unit[1] * cell + 1, unit[0] * cell + 1, cell - 2, cell - 2);
  c.dataset.unit = unit.join(',');
}

function drawDigit(v, rows, cols) {
  const M = v.data.margin, N = 28, side = (N + 2 * M) * S, c = v.digit, ctx = c.getContext('2d');
  c.width = c.height = side;
  ctx.fillStyle = PADDING; ctx.fillRect(0, 0, side, side);
  for (let y = 0; y < N; y++) for (let x = 0; x < N; x++) {
    const inside = y >= rows[0] && y <= rows[1] && x >= cols[0] && x <= cols[1];
    const g = Math.round(v.data.image[y * N + x] * (inside ? 1 : 0.3) + (inside ? 0 : 10));
    ctx.fillStyle = `rgb(${g},${g},${g})`;
    ctx.fillRect((x + M) * S, (y + M) * S, S, S);
  }
  const box = (r, k) => [(k[0] + M) * S, (r[0] + M) * S, (k[1] - k[0] + 1) * S, (r[1] - r[0] + 1) * S];
  const [x0, y0, w, h] = box(rows, cols);
  ctx.fillStyle = AMBER;
  for (const [x, y, bw, bh] of [[x0, y0, w, 2], [x0, y0 + h - 2, w, 2], [x0, y0, 2, h], [x0 + w - 2, y0, 2, h]]) {
    ctx.fillRect(x, y, bw, bh);
  }
  if (rows[2] !== rows[0] || rows[3] !== rows[1] || cols[2] !== cols[0] || cols[3] !== cols[1]) {
    ctx.setLineDash([6, 4]); ctx.strokeStyle = '#ffe08a'; ctx.lineWidth = 1;
    const [fx, fy, fw, fh] = box(rows.slice(2), cols.slice(2));
    ctx.strokeRect(fx + 0.5, fy + 0.5, fw - 1, fh - 1);
    ctx.setLineDash([]);
  }
  c.dataset.window = [rows[0], rows[1], cols[0], cols[1]].join(',');
}

function describe(v, L, unit, rows, cols) {
  const rf = rows[3] - rows[2] + 1;
  const past = [['top', -rows[2]], ['bottom', rows[3] - 27], ['left', -cols[2]], ['right', cols[3] - 27]]
    .filter(([, px]) => px > 0).map(([side, px]) => `${side} by ${px} px`);
  let text = `${L.name}, unit (row ${unit[0]}, column ${unit[1]}) of its ${L.size}×${L.size} map` +
    (v.pinned && !v.hover ? ' (pinned)' : '') + `: it sees rows ${rows[0]}–${rows[1]} and columns ` +
    `${cols[0]}–${cols[1]} of your 28×28 digit, ${rows[1] - rows[0] + 1}×${cols[1] - cols[0] + 1} pixels. `;
  text += past.length ? `Its full ${rf}×${rf} window reaches past the image (${past.join(', ')}): there it ` +
    'sees padding, zeros, not ink.' : `Its whole ${rf}×${rf} window lies inside the image.`;
  v.text.textContent = text;
}

function render(v) {
  if (v.layer >= v.data.layers.length) v.layer = 0;
  const L = v.data.layers[v.layer], mid = Math.floor(L.size / 2);
  buttons(v);
  let unit = v.hover || v.pinned || [mid, mid];
  if (unit[0] >= L.size || unit[1] >= L.size) unit = [mid, mid];
  const rows = L.spans[unit[0]], cols = L.spans[unit[1]];
  drawMap(v, L, unit);
  drawDigit(v, rows, cols);
  describe(v, L, unit, rows, cols);
  v.el.dataset.layer = L.name;
}

export default function ({ parentElement, data }) {
  let v = VIEWS.get(parentElement);
  if (!v) { v = build(); VIEWS.set(parentElement, v); }
  const root = parentElement.querySelector('.rf-root') || parentElement;
  if (!root.contains(v.el)) root.appendChild(v.el);
  v.data = data;
  render(v);
}
"""

_explorer = st.components.v2.component("mnistlab_rf_explorer", html=_HTML, css=_CSS, js=_JS)


def explorer_data(model: Net, image: np.ndarray) -> dict:
    """What the browser draws: the digit, and for each conv layer its most active channel's map (0-255) and every
    unit's window along one axis as [lo, hi, full_lo, full_hi] (rows and columns alike)."""
    layers = receptive.conv_layers(model.spec)
    maps = analysis.feature_maps(model, image)
    out, reach = [], 0
    for layer, fm in zip(layers, maps, strict=True):
        channel = int(fm.maps.mean(axis=(1, 2)).argmax())
        m = fm.maps[channel]
        lo, hi = float(m.min()), float(m.max())
        grey = (m - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(m)
        spans = receptive.spans(model.spec, layer.index)
        reach = max([reach] + [max(s.before, s.after) for s in spans])
        out.append({"name": layer.name, "size": layer.size, "channel": channel,
                    "map": [int(g) for g in grey.ravel()],
                    "spans": [[s.lo, s.hi, s.full_lo, s.full_hi] for s in spans]})
    image_grey = [int(round(float(p) * 255)) for p in np.clip(image, 0, 1).ravel()]
    return {"image": image_grey, "margin": min(reach, MAX_MARGIN), "layers": out}


def section(model: Net, image: np.ndarray) -> None:
    """The receptive-field explorer, in an expander computed only when it is opened."""
    with st.expander("Receptive fields: what one unit can see of your digit", key="rf_explorer",
                     on_change="rerun") as box:
        if box.open:
            st.caption("Each unit of a feature map looks at a window of the 28×28 input: a 3×3 conv's unit sees "
                       "3×3 pixels, and every later 3×3 conv or pool widens the window (a 3×3 conv by 2 × the jump; a "
                       "pool doubles the jump; a 1×1 conv widens nothing). Pick a layer, then point at a unit. Rows "
                       "and columns count from 0, as in PyTorch; every channel's unit at one place sees the same "
                       "window.")
            _explorer(data=explorer_data(model, image), key="rf_explorer_view", width="stretch", height="content")


# ------------------------------------------------------------------------------------------ the Architecture page
def growth_figure(spec: ArchSpec) -> go.Figure:
    """One bar per conv and pool: its receptive field in pixels, against the 28-pixel image (a line). The last
    layer before the global average pool and the pool itself stand side by side, labelled."""
    steps = receptive.growth(spec)
    at = next(i for i, s in enumerate(steps) if s.gap)
    colours = [GREY if s.gap else (GREEN if s.receptive_field >= INPUT_SIZE else "#9ecae1") for s in steps]
    fig = go.Figure(go.Bar(
        x=[s.label for s in steps], y=[s.receptive_field for s in steps], marker_color=colours,
        text=[f"{s.receptive_field}" for s in steps], textposition="outside", customdata=[s.jump for s in steps],
        hovertemplate="%{x}: sees %{y} px (jump %{customdata})<extra></extra>"))
    fig.add_hline(y=INPUT_SIZE, line_dash="dash", line_color=RED, annotation_text="the image: 28 px",
                  annotation_position="top left")
    # Arrows from the left, one above the other, so that the two labels never overlap each other or a bar's number.
    if at:
        before = steps[at - 1]
        fig.add_annotation(x=before.label, y=before.receptive_field, yshift=16, ax=-70, ay=-30, arrowhead=2,
                           xanchor="right", text=f"before the pool: {before.receptive_field} px")
    gap = steps[at]
    fig.add_annotation(x=gap.label, y=gap.receptive_field, yshift=16, ax=-50, ay=-70, arrowhead=2, xanchor="right",
                       text=f"through the GAP: {gap.receptive_field} px")
    top = max(s.receptive_field for s in steps)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      yaxis=dict(title="receptive field (px)", range=[0, max(top, INPUT_SIZE) * 1.6]),
                      xaxis=dict(type="category", title="layer"))
    return fig


def growth_chart(spec: ArchSpec) -> None:
    """The Architecture page's receptive-field growth chart, with the before-the-pool teaching point."""
    st.subheader("How far each layer sees")
    st.plotly_chart(growth_figure(spec), width="stretch", config={"displayModeBar": False}, key="rf_growth")
    through = next(s for s in receptive.growth(spec) if s.gap).receptive_field
    before = receptive.before_gap(spec)
    st.caption(f"Each bar is how many pixels one unit of that layer's map sees. The count through the global "
               f"average pool ({through} px) is the one the check uses, but the pool only averages: each place of "
               f"the map it averages sees {before} px (the bar beside it)"
               + ("; less than the 28-pixel image, though MNIST centres its digits in a 20×20 box."
                  if before < INPUT_SIZE else ", the whole 28-pixel image.")
               + " Explore it unit by unit on your own digit on the Draw page.")
