"""The first convolution, stepped through on the student's own drawing: the 3x3 kernel sliding over the input, and
for the cell under it the nine inputs times the nine weights, the bias, and what ReLU / BatchNorm / Dropout then do,
with the model's own numbers (``convstep``).

Play, pause and step run in the browser, in a small components-v2 element (as the drawing pad, ``drawpad.py``):
every cell's numbers for the chosen channel are computed here once per drawing and sent together, so a step is
instant and a playing animation costs the shared server nothing (a Streamlit button or timer would rerun the page
on the server for every step, for every student). Nothing comes back from the browser; only the channel is a
Streamlit widget.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from .. import convstep
from ..arch import Net
from ..data import MEAN, STD

_HTML = '<div class="cs-root"></div>'

_CSS = """
.cs { display: flex; flex-direction: column; gap: 0.6rem; font-family: var(--st-font, sans-serif);
      color: var(--st-text-color, #31333f); }
.bar { display: flex; flex-wrap: wrap; gap: 0.4rem; align-items: center; }
button { font: inherit; color: inherit; background: var(--st-background-color, #fff); cursor: pointer;
         border: 1px solid var(--st-border-color, #ccc); border-radius: var(--st-button-radius, 0.5rem);
         padding: 0.2rem 0.8rem; min-height: 2.4rem; }
button:hover { border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }
.where { margin-left: 0.5rem; font-variant-numeric: tabular-nums; }
.views { display: flex; flex-wrap: wrap; gap: 1.2rem; align-items: flex-start; }
figure { margin: 0; display: flex; flex-direction: column; gap: 0.3rem; }
figcaption { font-size: 0.85rem; opacity: 0.75; max-width: 240px; }
canvas { image-rendering: pixelated; border-radius: 0.25rem; }
canvas.out { cursor: pointer; }
.grid { display: grid; grid-template-columns: repeat(3, auto); gap: 0.25rem; font-size: 0.8rem;
        font-variant-numeric: tabular-nums; align-self: flex-start; }
.grid div { border: 1px solid var(--st-border-color, #ccc); border-radius: 0.25rem; padding: 0.2rem 0.4rem;
            text-align: right; white-space: pre; }
.grid div.pad { background: rgba(31, 51, 71, 0.15); }
.sums p { margin: 0; line-height: 1.6; font-variant-numeric: tabular-nums; }
.sums p.result { font-weight: 600; }
"""

# One stepper per mounted element (keyed by the element Streamlit hands in): the current cell stays, and a playing
# animation goes on, when a new drawing or channel arrives. The timer stops itself once its element is gone.
_JS = """
const STEPPERS = new WeakMap();
const C = 7, AMBER = '#ffb000', PADDING = '#1f3347', TICK_MS = 300;
const f = (x, d = 3) => (x < 0 ? '\\u2212' : '') + Math.abs(x).toFixed(d);
const g = (x) => (x < 0 ? `(${f(x)})` : f(x));  // a negative number after an operator, in brackets

function make(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text) e.textContent = text;
  return e;
}

function build() {
  const v = {index: 0, timer: null, data: null, el: make('div', 'cs')};
  v.el.dataset.testid = 'convStep';
  const bar = make('div', 'bar');
  v.back = make('button', '', '\\u25c0 Back');
  v.play = make('button', '', 'Play');
  v.step = make('button', '', 'Step \\u25b6');
  v.where = make('span', 'where');
  for (const b of [v.back, v.play, v.step]) { b.type = 'button'; bar.append(b); }
  bar.append(v.where);
  const views = make('div', 'views');
  const figure = (cls, caption) => {
    const fig = make('figure'), c = make('canvas', cls), t = make('figcaption', '', caption);
    fig.append(c, t); views.append(fig);
    return [c, t];
  };
  [v.input] = figure('in', 'The input the conv reads; the dark blue ring is padding. Amber: the 3\\u00d73 kernel.');
  [v.out, v.outCaption] = figure('out', '');
  v.grid = make('div', 'grid');
  const products = make('figure');
  products.append(v.grid, make('figcaption', '', 'Under the kernel: input \\u00d7 weight = product.'));
  views.append(products);
  v.sums = make('div', 'sums');
  v.el.append(bar, views, v.sums);
  v.back.addEventListener('click', () => { pause(v); go(v, v.index - 1); });
  v.step.addEventListener('click', () => { pause(v); go(v, v.index + 1); });
  v.play.addEventListener('click', () => (v.timer ? pause(v) : play(v)));
  v.out.addEventListener('pointerdown', (e) => {
    const r = v.out.getBoundingClientRect(), n = v.data.side;
    const at = (p, lo, len) => Math.min(n - 1, Math.max(0, Math.floor((p - lo) / len * n)));
    pause(v); go(v, at(e.clientY, r.top, r.height) * n + at(e.clientX, r.left, r.width));
  });
  return v;
}

function go(v, i) { v.index = Math.min(v.data.side ** 2 - 1, Math.max(0, i)); render(v); }

function play(v) {
  if (v.index >= v.data.side ** 2 - 1) v.index = 0;
  v.timer = setInterval(() => {
    if (!v.el.isConnected || v.index >= v.data.side ** 2 - 1) return pause(v);
    go(v, v.index + 1);
  }, TICK_MS);
  render(v);
}

function pause(v) { clearInterval(v.timer); v.timer = null; render(v); }

function drawInput(v, row, col) {
  const d = v.data, full = 28 + 2 * d.pad, ctx = v.input.getContext('2d');
  v.input.width = v.input.height = full * C;
  ctx.fillStyle = PADDING; ctx.fillRect(0, 0, full * C, full * C);
  for (let i = 0; i < 28 * 28; i++) {
    const grey = Math.round(d.pixels[i] * 255);
    ctx.fillStyle = `rgb(${grey},${grey},${grey})`;
    ctx.fillRect((i % 28 + d.pad) * C, (Math.floor(i / 28) + d.pad) * C, C, C);
  }
  ctx.strokeStyle = AMBER; ctx.lineWidth = 2;
  ctx.strokeRect(col * C + 1, row * C + 1, 3 * C - 2, 3 * C - 2);
}

function drawOutput(v) {
  const d = v.data, n = d.side, ctx = v.out.getContext('2d'), vals = d.after.length ? d.after.at(-1).values : d.conv;
  const lo = Math.min(...vals), hi = Math.max(...vals);
  v.out.width = v.out.height = n * C;
  ctx.fillStyle = '#0b0d12'; ctx.fillRect(0, 0, n * C, n * C);
  for (let i = 0; i <= v.index; i++) {
    const grey = hi > lo ? Math.round((vals[i] - lo) / (hi - lo) * 255) : 0;
    ctx.fillStyle = `rgb(${grey},${grey},${grey})`;
    ctx.fillRect((i % n) * C, Math.floor(i / n) * C, C, C);
  }
  ctx.strokeStyle = AMBER; ctx.lineWidth = 2;
  ctx.strokeRect((v.index % n) * C + 1, Math.floor(v.index / n) * C + 1, C - 2, C - 2);
  v.outCaption.textContent =
    `Channel ${d.channel}'s output map, filled in as the kernel slides. Tap a cell to jump to it.`;
}

function numbers(v, row, col) {
  const d = v.data, side = 28 + 2 * d.pad, cells = [];
  let sum = 0;
  for (let i = 0; i < 9; i++) {
    const y = row + Math.floor(i / 3), x = col + (i % 3), input = d.inputs[y * side + x], w = d.weights[i];
    const pad = y < d.pad || x < d.pad || y >= 28 + d.pad || x >= 28 + d.pad;
    sum += input * w;
    const c = make('div', pad ? 'pad' : '', `${pad ? 'pad ' : ''}${f(input)}\\n\\u00d7 ${g(w)}\\n= ${f(input * w)}`);
    cells.push(c);
  }
  v.grid.replaceChildren(...cells);
  const k = row * d.side + col, lines = [`sum of the 9 products = ${f(sum)}`];
  let x = d.conv[k];
  lines.push(d.bias === null ? `no bias: the conv's output is ${f(x)}`
                              : `+ bias ${f(d.bias)} = ${f(x)}, the conv's output`);
  for (const a of d.after) {
    const y = a.values[k];
    if (a.name === 'ReLU') lines.push(`ReLU: max(0, ${f(x)}) = ${f(y)}`);
    else if (a.name === 'BatchNorm') {
      lines.push(`BatchNorm: (${f(x)} \\u2212 ${g(a.mean)}) \\u00f7 \\u221a(${f(a.var)} + ${a.eps}) ` +
                 `\\u00d7 ${g(a.gamma)} + ${g(a.beta)} = ${f(y)}`);
    }
    else lines.push(`Dropout: off when the model predicts, so ${f(y)} passes through`);
    x = y;
  }
  lines.push(`cell (row ${row}, column ${col}) of channel ${d.channel} = ${f(x)}`);
  v.sums.replaceChildren(...lines.map((t, i) => make('p', i === lines.length - 1 ? 'result' : '', t)));
}

function render(v) {
  const d = v.data, row = Math.floor(v.index / d.side), col = v.index % d.side;
  drawInput(v, row, col);
  drawOutput(v);
  numbers(v, row, col);
  v.play.textContent = v.timer ? 'Pause' : 'Play';
  v.where.textContent = `cell (${row}, ${col}) \\u00b7 ${v.index + 1} of ${d.side ** 2}`;
  v.el.dataset.cell = String(v.index);
  v.el.dataset.playing = String(Boolean(v.timer));
}

export default function ({ parentElement, data }) {
  let v = STEPPERS.get(parentElement);
  if (!v) { v = build(); STEPPERS.set(parentElement, v); }
  const root = parentElement.querySelector('.cs-root') || parentElement;
  if (!root.contains(v.el)) root.appendChild(v.el);
  v.data = data;
  v.index = Math.min(v.index, data.side ** 2 - 1);
  render(v);
}
"""

_stepper = st.components.v2.component("mnistlab_conv_step", html=_HTML, css=_CSS, js=_JS)


def _numbers(values: np.ndarray) -> list[float]:
    """Plain floats for the browser, to 6 decimals (three are shown)."""
    return [round(float(x), 6) for x in np.asarray(values).ravel()]


def stepper_data(fc: convstep.FirstConv, image: np.ndarray, channel: int) -> dict:
    """Every number the browser shows for ``channel``: the padded normalised input, the weights and bias, and each
    cell's conv output and value after each later layer (``convstep.channel_maps``: the model's own arithmetic)."""
    maps = convstep.channel_maps(fc, image, channel)
    after = [{"name": a.name, "mean": a.mean, "var": a.var, "eps": a.eps, "gamma": a.gamma, "beta": a.beta,
              "values": _numbers(values)} for a, values in zip(fc.after[channel], maps.after, strict=True)]
    return {"channel": channel, "pad": fc.padding, "side": maps.conv.shape[0],
            "pixels": _numbers(np.clip(image, 0, 1)), "inputs": _numbers(convstep.normalised(image, fc.padding)),
            "weights": _numbers(fc.weights[channel]), "bias": float(fc.bias[channel]) if fc.has_bias else None,
            "conv": _numbers(maps.conv), "after": after}


def describe(fc: convstep.FirstConv) -> str:
    """What the first conv unit does, in the model's order."""
    steps = {"ReLU": "ReLU", "BatchNorm": "BatchNorm (with the averages it kept in training)",
             "Dropout": "Dropout, which is off when the model predicts"}
    then = ", then ".join(steps[a.name] for a in fc.after[0]) or "nothing"
    padding = "padding 1 (a ring of zeros around the input)" if fc.padding else "no padding (the map shrinks to 26×26)"
    return (f"The first layer is a 3×3 conv with {padding}, {'with' if fc.has_bias else 'without'} a bias; after "
            f"it the model applies {then}. The conv reads the normalised input: (pixel − {MEAN}) ÷ {STD}, so black "
            f"is {-MEAN / STD:.2f} and white {(1 - MEAN) / STD:.2f}; padding is 0 in those units, a dark grey, not "
            "black.")


def section(model: Net, image: np.ndarray) -> None:
    """The step-through, in an expander computed only when it is opened."""
    with st.expander("Step through the first convolution", key="conv_step", on_change="rerun") as box:
        if box.open:
            fc = convstep.first_conv(model)
            active = convstep.most_active(fc, image)
            options = [None, *range(fc.channels)]
            if st.session_state.get("conv_step_channel") not in options:  # another model, with fewer channels
                st.session_state.pop("conv_step_channel", None)
            choice = st.selectbox("Channel", options, key="conv_step_channel",
                                  format_func=lambda c: f"the most active: channel {active}" if c is None
                                  else f"channel {c}")
            st.caption(describe(fc))
            _stepper(data=stepper_data(fc, image, active if choice is None else choice), key="conv_step_view",
                     width="stretch", height="content")
