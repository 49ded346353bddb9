"""The Train page's settings form: its values are the student's until they change them, across pages.

Streamlit drops a widget's state when its page is left, so the values last submitted are kept under a plain session
key and seed the widgets when the page comes back: a student who chose quick mode and went to Draw gets quick mode
again, not a full run; after a reload, their latest run's settings. A network with its own recipe seeds the
recipe's values when it is first trained; quick mode is the student's choice whatever the network.
"""

from __future__ import annotations

import streamlit as st

from .. import rules, train
from . import why

BATCH_SIZES = [64, 128, 256, 512]
QUICK_IMAGES = 5000
_SAVED = "train_settings"  # {"network": name, "values": {...}} as last submitted
_KEY = "train_"  # widget keys


def _from_run(run, max_epochs: int) -> dict | None:
    """The settings a stored run was trained with, as the form's values; None if they do not fit the form (the row
    is checked when read, but the widgets' own ranges are narrower than what the trainer accepts)."""
    c = run.config
    values = {"epochs": c.get("epochs"), "batch_size": c.get("batch_size"), "lr": c.get("lr"),
              "augment": bool(c.get("augment")), "learn_from_best": c.get("distill_from") is not None,
              "quick": c.get("train_subset") is not None}
    fits = (isinstance(values["epochs"], int) and 1 <= values["epochs"] <= max_epochs
            and values["batch_size"] in BATCH_SIZES
            and isinstance(values["lr"], (int, float)) and 0.001 <= values["lr"] <= 1.0)
    return {"network": run.name, "values": {**values, "lr": float(values["lr"])}} if fits else None


def _recipe_values(recipe: train.TrainConfig) -> dict:
    return {"epochs": recipe.epochs, "batch_size": recipe.batch_size, "lr": recipe.lr,
            "augment": recipe.augment > 0, "learn_from_best": recipe.distill_from is not None, "quick": False}


def use_recipe(recipe: train.TrainConfig, network: str) -> None:
    """Make the form show this recipe's values for this network from now on (quick mode stays the student's)."""
    saved = st.session_state.get(_SAVED)
    quick = bool(saved and saved["values"].get("quick"))
    st.session_state[_SAVED] = {"network": network, "values": {**_recipe_values(recipe), "quick": quick}}
    for name in _recipe_values(recipe):
        st.session_state.pop(_KEY + name, None)


def _seed(recipe: train.TrainConfig, network: str, mentor_available: bool, saved: dict | None,
          fixed: bool = False) -> None:
    values = _recipe_values(recipe)
    if fixed:  # a lesson fixes the recipe: its values, whatever the widgets held; quick mode stays the student's
        quick = st.session_state.get(_KEY + "quick", bool(saved and saved["values"].get("quick")))
        values["learn_from_best"] = values["learn_from_best"] and mentor_available
        for name, value in {**values, "quick": quick}.items():
            st.session_state[_KEY + name] = value
        return
    if saved:
        values["quick"] = saved["values"]["quick"]
        if saved["network"] == network:
            values.update(saved["values"])
    values["learn_from_best"] = values["learn_from_best"] and mentor_available
    for name, value in values.items():
        st.session_state.setdefault(_KEY + name, value)


def form(recipe: train.TrainConfig, network: str, max_epochs: int, mentor_epochs: int | None, last_run=None,
         fixed: str | None = None) -> train.TrainConfig | None:
    """Render the form; the config to train when Start was pressed, else None. Its values: those last submitted in
    this session, else those of ``last_run`` (the student's latest run, after a reload), else the recipe's. When a
    lesson fixes the recipe (``fixed``: "fixed" or "hidden"), the recipe's, shown disabled or not shown."""
    saved = st.session_state.get(_SAVED) or (_from_run(last_run, max_epochs) if last_run is not None else None)
    _seed(recipe, network, mentor_epochs is not None, saved, fixed=fixed is not None)
    with st.form("settings"):
        if fixed != "hidden":
            _recipe_fields(max_epochs, mentor_epochs, disabled=fixed is not None)
        st.toggle(f"quick mode: train on {QUICK_IMAGES:,} images (fast, but not challenge-eligible)",
                  key=_KEY + "quick", help=why.TRAIN["quick"])
        if not st.form_submit_button("Start training", type="primary"):
            return None
    values = {name: st.session_state[_KEY + name]
              for name in ("epochs", "batch_size", "lr", "augment", "learn_from_best", "quick")}
    st.session_state[_SAVED] = {"network": network, "values": values}
    return train.TrainConfig(**{
        **recipe.to_dict(), "epochs": int(values["epochs"]), "batch_size": int(values["batch_size"]),
        "lr": float(values["lr"]), "augment": (recipe.augment or 0.5) if values["augment"] else 0.0,
        "distill_from": (recipe.distill_from or "best") if values["learn_from_best"] and mentor_epochs else None,
        "train_subset": QUICK_IMAGES if values["quick"] else None})


def _recipe_fields(max_epochs: int, mentor_epochs: int | None, disabled: bool) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("epochs", 1, max_epochs, key=_KEY + "epochs", disabled=disabled,
                    help=why.TRAIN["epochs"] + f" The challenge allows fewer than {rules.EPOCH_LIMIT}.")
    c2.selectbox("batch size", BATCH_SIZES, key=_KEY + "batch_size", disabled=disabled, help=why.TRAIN["batch_size"])
    c3.number_input("learning rate", 0.001, 1.0, step=0.01, format="%.3f", key=_KEY + "lr",
                    disabled=disabled, help=why.TRAIN["lr"])
    c4.toggle("augmentation", key=_KEY + "augment", disabled=disabled, help=why.TRAIN["augment"])
    st.toggle(
        "learn from the shipped best network too (distillation)", disabled=disabled or mentor_epochs is None,
        key=_KEY + "learn_from_best",
        help="Besides the labels, your network learns from the best network's probabilities (\"a 7, a little "
             f"like a 1\"), which tells a small network more per image. Its {mentor_epochs} training epochs count "
             f"towards the {rules.EPOCH_LIMIT}-epoch limit." if mentor_epochs
             else "Not available: the shipped best network's weights are missing or damaged.")
