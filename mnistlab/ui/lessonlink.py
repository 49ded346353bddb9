"""A lesson step in this session: opened into the editor and the Train form, and, from a teacher's link, fixed.

The link (``?lesson=N&controls=open|fixed|hidden``, parsed by ``lessons.parse_link``) is read on whichever page it
opens, like ``?arch=``. While a lesson fixes the controls, the Architecture and Train pages keep the step's network
and recipe in force, say so, offer a way out, and carry the link in their own address so that a reload keeps it.
"""

from __future__ import annotations

import streamlit as st

from .. import lessons
from . import editor, links, trainform

STEP = "lesson_step"  # the step the Lessons page shows
PICK = "lesson_pick"  # its selector's widget key
LOCK = "lesson_lock"  # {"step": n, "controls": "fixed" | "hidden"} while a lesson fixes the controls
_SEEN = "lesson_link_seen"  # the link's values last acted on: a link acts once, not on every rerun
LESSON_KEY, CONTROLS_KEY = "lesson", "controls"


def read_link() -> str | None:
    """Act on a lesson link in the address once: show its step, and with ``controls`` open its network and recipe
    (fixed or hidden as it says). Return what is wrong with the link, if anything, for the page to show."""
    raw = tuple(_bounded(st.query_params.get(k)) for k in (LESSON_KEY, CONTROLS_KEY))
    if raw == (None, None) or raw == st.session_state.get(_SEEN):
        return None
    st.session_state[_SEEN] = raw
    number, controls, message = lessons.parse_link(*raw)
    if message:
        return message
    show_step(number)
    if controls:
        open_step(number, None if controls == "open" else controls)
    return None


def _bounded(value: str | None) -> str | None:
    """A link's value, cut short before anything looks at it (the parser refuses anything this long anyway)."""
    return None if value is None else value[: lessons.MAX_LINK_VALUE + 1]


def show_step(number: int) -> None:
    st.session_state[STEP] = number
    st.session_state[PICK] = number


def show_in_address(number: int) -> None:
    """Put the step shown in the page's address (``?lesson=N``), so that the address can be shared as it is."""
    if st.query_params.get(LESSON_KEY) != str(number):
        st.query_params[LESSON_KEY] = str(number)
    if CONTROLS_KEY in st.query_params:
        del st.query_params[CONTROLS_KEY]
    st.session_state[_SEEN] = (str(number), None)


def open_step(number: int, controls: str | None = None) -> None:
    """Load the step's network into the editor and its recipe into the Train form; ``controls`` "fixed" or
    "hidden" also locks them there until the student leaves the lesson."""
    s = lessons.step(number)
    links.set_spec(s.spec)
    editor.load_draft(s.spec.to_dict())
    trainform.use_recipe(s.config, s.spec.name)
    if controls:
        st.session_state[LOCK] = {"step": number, "controls": controls}
    else:
        st.session_state.pop(LOCK, None)


def locked() -> tuple[lessons.Step, str] | None:
    """(the step, "fixed" or "hidden") while a lesson fixes the controls, else None."""
    lock = st.session_state.get(LOCK)
    if not isinstance(lock, dict) or lock.get("controls") not in ("fixed", "hidden") \
            or lock.get("step") not in range(1, len(lessons.STEPS) + 1):
        return None
    return lessons.step(lock["step"]), lock["controls"]


def leave() -> None:
    """Unlock: the network and recipe stay as they are, now the student's to change; the address drops the link."""
    st.session_state.pop(LOCK, None)
    for key in (LESSON_KEY, CONTROLS_KEY):
        if key in st.query_params:
            del st.query_params[key]
    st.session_state[_SEEN] = (None, None)


def fixed_by_lesson() -> str | None:
    """On a page with network or recipe controls: while a lesson fixes them, keep its network in force, say so with
    a way out, and keep the link in the address; return "fixed" or "hidden", else None."""
    lock = locked()
    if lock is None:
        return None
    s, controls = lock
    if links.current_spec() != s.spec or st.session_state.get("draft") != s.spec.to_dict():
        links.set_spec(s.spec)
        editor.load_draft(s.spec.to_dict())
    text, button = st.columns([3, 1], vertical_alignment="center")
    text.info(f"Network and recipe **fixed by the lesson**: step {s.number}, {s.title}. Ask your teacher before "
              "leaving it.", icon="🔒")
    button.button("Leave the lesson", on_click=leave, key="leave_lesson", width="stretch")
    link = {LESSON_KEY: str(s.number), CONTROLS_KEY: controls}
    for key, value in link.items():
        if st.query_params.get(key) != value:
            st.query_params[key] = value
    st.session_state[_SEEN] = (link[LESSON_KEY], link[CONTROLS_KEY])
    return controls


def architecture_controls():
    """The Architecture page's editor, as a lesson leaves it: free, disabled, or hidden (the network is then shown
    by the page's table and JSON only). Returns ``editor.editor``'s (spec, message)."""
    controls = fixed_by_lesson()
    if controls == "hidden":
        st.caption("The lesson hides the editor: study this network's table and train it as it is.")
        return links.current_spec(), None
    return editor.editor(disabled=controls == "fixed")


def recipe_note(spec) -> None:
    """On Train: a lesson network trains with its step's recipe; name the parts the form does not show."""
    cfg = lessons.recipe_for(spec)
    if cfg is not None:
        st.caption(f"This lesson's recipe: {cfg.optimizer.upper()} with momentum {cfg.momentum}, "
                   f"{'a one-cycle' if cfg.schedule == 'onecycle' else 'a ' + cfg.schedule} learning rate, "
                   f"weight decay {cfg.weight_decay:g}.")
