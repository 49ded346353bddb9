"""The Lessons page: the challenge's path as steps, each with its target, one click to open its network and recipe,
the figures measured for it, why they moved, a question, and a link a teacher can share."""

from __future__ import annotations

import urllib.parse

import streamlit as st

from .. import lessons, rules
from . import lessonlink

OPENED = "lesson_opened"  # the step last opened by its button, for the confirmation under it
PAGES = {"Lessons": "the Lessons page", "Architecture": "the Architecture page", "Train": "the Train page"}


def page() -> None:
    st.title("Lessons")
    lessonlink.fixed_by_lesson()
    figures = lessons.results()
    st.markdown(
        f"From the seed network to one with 40 % of its parameters, **one change per step**. Every step trains for "
        f"the same **{lessons.EPOCHS} epochs** (the seed's notebook trained 20), so the steps compare at equal cost; "
        f"each figure is the test accuracy after the last epoch on the 10,000 test images, {_seeds(figures)}. "
        "A difference smaller than the spread between seeds is noise, not a result.")
    _overview(figures)
    number = _picker()
    _step(lessons.step(number), figures)
    _share(number)


def _overview(figures: dict) -> None:
    rows = []
    for s in lessons.STEPS:
        f = figures.get(s.number)
        rows.append({"step": f"{s.number}. {s.title}", "what changes": s.change,
                     "params": f"{f['params']:,}" if f else "–", "test accuracy %": _accuracy(f),
                     "training": f"{f['train_seconds']:.0f} s" if f else "–"})
    st.dataframe(rows, hide_index=True, width="stretch")
    device = lessons.results_device()
    st.caption(f"Measured by `python benchmarks/lessons.py` on {device or 'the class server'}, while other work "
               "shared the machine; the seconds count training only. Your own runs will take a different time.")


def _seeds(figures: dict) -> str:
    measured = {tuple(f["seeds"]) for f in figures.values()}
    if len(measured) == 1 and len(seeds := next(iter(measured))) > 1:
        return f"over seeds {', '.join(map(str, seeds))} (mean, and the range in brackets)"
    return "the mean over the seeds measured (each figure's ? lists them) and their range in brackets"


def _accuracy(f: dict | None) -> str:
    return f"{f['mean']:.2f} ({f['min']:.2f}–{f['max']:.2f})" if f else "not measured yet"


def _picker() -> int:
    """The step shown: from a link, the student's last choice, else the first; the address follows the choice."""
    if lessonlink.PICK not in st.session_state:
        st.session_state[lessonlink.PICK] = st.session_state.get(lessonlink.STEP, 1)
    number = st.radio("Step", [s.number for s in lessons.STEPS], key=lessonlink.PICK, horizontal=True,
                      format_func=lambda n: f"{n}. {lessons.step(n).title}")
    st.session_state[lessonlink.STEP] = number
    if lessonlink.locked() is None:  # a fixing link stays in the address while it holds
        lessonlink.show_in_address(number)
    return number


def _step(s: lessons.Step, figures: dict) -> None:
    st.subheader(f"Step {s.number}: {s.title}")
    st.markdown(f"**Target.** {s.target}")
    st.caption(f"What changes{f' from step {s.number - 1}' if s.number > 1 else ''}: {s.change}.")
    _metrics(s, figures)
    lock = lessonlink.locked()
    st.button("Open this network and recipe", type="primary", key="open_step", on_click=_open, args=(s.number,),
              disabled=lock is not None, help="Loads it into the Architecture editor and the Train form."
              if lock is None else "A lesson fixes the network: leave the lesson first.")
    if st.session_state.get(OPENED) == s.number:
        st.success(f"Opened: `{s.spec.name}` is in the editor and its recipe in the Train form.", icon="✅")
        a, t = st.columns(2)
        a.page_link("views/1_Architecture.py", label="See it on Architecture →", icon="🧱")
        t.page_link("views/2_Train.py", label="Train it →", icon="🏋️")
    if s.analysis:
        st.markdown(f"**Why the result moved.** {s.analysis}")
    if s.question:
        st.markdown(f"**Question.** {s.question}")
        with st.expander("Show the answer"):
            st.markdown(s.answer)


def _open(number: int) -> None:
    lessonlink.open_step(number)
    st.session_state[OPENED] = number


def _metrics(s: lessons.Step, figures: dict) -> None:
    f, before = figures.get(s.number), figures.get(s.number - 1)
    c1, c2, c3, c4 = st.columns(4)
    if not f:
        c1.metric("Test accuracy", "not measured yet")
    else:
        c1.metric("Test accuracy (mean)", f"{f['mean']:.2f} %",
                  delta=f"{f['mean'] - before['mean']:+.2f} points" if before else None,
                  help=f"Final epoch, seeds {', '.join(map(str, f['seeds']))}: "
                       f"{' / '.join(f'{a:.2f}' for a in f['accuracies'])} %. The target is "
                       f"{rules.TARGET_ACCURACY} %.")
        c3.metric("Epochs", f["epochs"])
        c4.metric("Training", f"{f['train_seconds']:.0f} s")
    params = f["params"] if f else None
    c2.metric("Parameters", f"{params:,}" if params else "–",
              delta=f"{params - before['params']:+,}" if params and before and params != before["params"] else None,
              delta_color="inverse")


def _share(number: int) -> None:
    with st.expander("Share this step (for teachers)"):
        controls = st.radio("The student's network and recipe controls", [None, *lessons.CONTROLS],
                            key="share_controls", format_func=lambda c: "only show this step" if c is None
                            else f"{c}: open it, {lessons.CONTROLS[c]}")
        target = st.selectbox("The link opens", list(PAGES), key="share_page", format_func=PAGES.get,
                              disabled=controls is None)
        st.caption("Copy link for this step (the button at the code's right):")
        st.code(share_url(_app_root(), number, controls, target if controls else "Lessons"), language=None)
        st.caption(
            f"The address scheme: `?lesson=N` (1 to {len(lessons.STEPS)}) shows step N here. Adding "
            "`&controls=open` also loads its network and recipe; `controls=fixed` shows the Architecture and "
            "Train controls disabled, `controls=hidden` hides them (the student still trains the network), each "
            "with a *Leave the lesson* button. Any other value is refused with a message. A lock is a classroom "
            "aid, not a security boundary: a student can always edit the address.")


def share_url(root: str, number: int, controls: str | None, target: str = "Lessons") -> str:
    query = {"lesson": number, **({"controls": controls} if controls else {})}
    return f"{root}/{target}?{urllib.parse.urlencode(query)}"


def _app_root() -> str:
    """The app's address without this page's path (empty where the browser's address is unknown, as in tests)."""
    url = getattr(st.context, "url", None)
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/Lessons"):
        path = path[: -len("/Lessons")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))
