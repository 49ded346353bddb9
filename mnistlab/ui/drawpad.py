"""The drawing pad: a square canvas a student draws a digit on with a mouse, a pen or a finger.

Its own small component rather than streamlit-drawable-canvas, whose frontend holds every stroke for 200 ms before
it tells the app (a fixed debounce), and whose invisible toolbar takes any press on the canvas's top-right corner
until the pointer has hovered there a moment (so a "4"'s upright begun there, or a finger, which cannot hover, draws
nothing) and, once shown, covers the pen slider on a phone. This pad keeps its strokes in the browser (a rerun of
the page never redraws it), sends the drawing the moment a stroke ends, and its Undo and Clear act at once, in the
browser, so they cannot race a rerun.

The drawing comes back as a PNG data URL, white ink on black, ``SIZE`` pixels a side, or None while the pad is
empty. It crosses from the browser: `drawing.image_from_data_url` bounds and checks it before anything decodes it.
"""

from __future__ import annotations

import streamlit as st

SIZE = 280  # pixels a side, in the browser and in the PNG

_HTML = '<div class="pad-root"></div>'

_CSS = """
.pad { display: flex; flex-direction: column; gap: 0.5rem; width: min(280px, 100%); }
canvas { display: block; width: 100%; aspect-ratio: 1; touch-action: none; cursor: crosshair;
         border-radius: var(--st-base-radius, 0.5rem); outline: 1px solid var(--st-border-color, #ccc); }
.bar { display: flex; gap: 0.5rem; }
button { font: inherit; font-family: var(--st-font, sans-serif); color: var(--st-text-color, #31333f);
         background: var(--st-background-color, #fff); border: 1px solid var(--st-border-color, #ccc);
         border-radius: var(--st-button-radius, 0.5rem); padding: 0.25rem 0.9rem; min-height: 2.5rem;
         cursor: pointer; }
button:hover { border-color: var(--st-primary-color, #ff4b4b); color: var(--st-primary-color, #ff4b4b); }
button:disabled { opacity: 0.5; cursor: default; border-color: var(--st-border-color, #ccc);
                  color: var(--st-text-color, #31333f); }
"""

# One pad per mounted element (keyed by the element Streamlit hands in), built once: a rerun only passes the pen
# width again. No cleanup function is returned, on purpose: Streamlit may run the cleanup of a mount that a newer one
# superseded while the element stays on the page, and the pad's listeners live on its own nodes, which go with it.
_JS = """
const PADS = new WeakMap();

function build(size) {
  const el = document.createElement('div');
  el.className = 'pad';
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  canvas.dataset.testid = 'drawingPad';
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', 'Drawing pad: draw one digit, white on black');
  const bar = document.createElement('div');
  bar.className = 'bar';
  const undo = document.createElement('button');
  const clear = document.createElement('button');
  undo.type = clear.type = 'button';
  undo.textContent = 'Undo';
  clear.textContent = 'Clear';
  bar.append(undo, clear);
  el.append(canvas, bar);
  const pad = {el, canvas, ctx: canvas.getContext('2d'), strokes: [], base: null, current: null, pen: 18,
               send: () => {}};

  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const segment = (width, a, b) => {
    const c = pad.ctx;
    c.strokeStyle = '#fff'; c.lineWidth = width; c.lineCap = 'round'; c.lineJoin = 'round';
    c.beginPath(); c.moveTo(a[0], a[1]); c.lineTo(b[0], b[1]); c.stroke();
  };
  const paint = () => {
    pad.ctx.fillStyle = '#000';
    pad.ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (pad.base) pad.ctx.drawImage(pad.base, 0, 0, canvas.width, canvas.height);
    for (const s of pad.strokes) {
      for (let i = 0; i < s.points.length; i++) segment(s.width, s.points[Math.max(0, i - 1)], s.points[i]);
    }
    undo.disabled = pad.strokes.length === 0;
    clear.disabled = pad.strokes.length === 0 && !pad.base;
  };
  const send = () => pad.send(pad.strokes.length || pad.base ? canvas.toDataURL('image/png') : null);
  pad.restore = (url) => {  // the drawing this pad had before it left the page, as the page kept it
    if (typeof url !== 'string' || !url.startsWith('data:image/png;base64,')) return;
    const img = new Image();
    img.onload = () => {
      if (pad.strokes.length || pad.base) return;  // the student has drawn since: theirs wins
      pad.base = img; paint(); send();
    };
    img.src = url;
  };

  canvas.addEventListener('pointerdown', (e) => {
    if (pad.current || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    const p = at(e);
    pad.current = {id: e.pointerId, width: pad.pen, points: [p]};
    pad.strokes.push(pad.current);
    segment(pad.current.width, p, p);
    undo.disabled = clear.disabled = false;
  });
  canvas.addEventListener('pointermove', (e) => {
    const s = pad.current;
    if (!s || e.pointerId !== s.id) return;
    for (const ev of (e.getCoalescedEvents ? e.getCoalescedEvents() : [e])) {
      const p = at(ev);
      segment(s.width, s.points[s.points.length - 1], p);
      s.points.push(p);
    }
  });
  const end = (e) => {
    if (!pad.current || e.pointerId !== pad.current.id) return;
    pad.current = null;
    send();
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);
  canvas.addEventListener('lostpointercapture', end);  // a stroke never stays open, whatever took the pointer
  undo.addEventListener('click', () => { pad.strokes.pop(); paint(); send(); });
  clear.addEventListener('click', () => { pad.strokes = []; pad.base = null; paint(); send(); });
  paint();
  return pad;
}

export default function ({ parentElement, data, setStateValue }) {
  let pad = PADS.get(parentElement);
  const fresh = !pad;
  if (fresh) {
    pad = build(data.size);
    PADS.set(parentElement, pad);
  }
  const root = parentElement.querySelector('.pad-root') || parentElement;
  if (!root.contains(pad.el)) root.appendChild(pad.el);
  pad.pen = data.pen;
  pad.send = (png) => setStateValue('png', png);
  if (fresh) pad.restore(data.restore);
}
"""

_pad = st.components.v2.component("mnistlab_drawing_pad", html=_HTML, css=_CSS, js=_JS)


def drawing_pad(pen: int, key: str = "drawing_pad", restore: str | None = None) -> object:
    """The pad, drawing with a pen ``pen`` pixels wide. Returns what the browser last sent: a PNG data URL, or None
    while the pad is empty. Anything else a crafted request may send comes back as it is, for the caller to refuse.

    ``restore``: a drawing this pad sent before (checked by the caller) that a newly mounted pad starts from and sends
    again, so that a pad that left the page (the student looked at a photo meanwhile) comes back with its digit."""
    result = _pad(key=key, data={"pen": int(pen), "size": SIZE, "restore": restore}, default={"png": None},
                  on_png_change=lambda: None, width="content", height="content")
    return result.get("png")
