"""The architecture editor: widgets that edit a draft spec, validated on every change.

The draft (a plain dict, possibly invalid) lives in ``st.session_state.draft``; each widget's key starts with ``ed_``
and is seeded from the draft. A valid draft becomes the session's spec (and the URL's); an invalid one shows the
validator's message beside the block it names, and the last valid spec stays in force. A problem of the whole
network (too many parameters, a map too small for the head) names no block: its message goes beside the block the
student changed last, or under the general controls when those were changed last.
"""

from __future__ import annotations

import streamlit as st

from .. import arch
from ..arch import ArchSpec, SpecError
from . import links, why

PREFIX = "ed_"
MAX_WIDGET_WIDTH = 512  # the validator, not the widget, says where the real limit (256) is
EDITED = "draft_edited_block"  # the 1-based block the student changed last; None for the general controls
HEAD_LABELS = {"conv3": "3×3 conv → GAP (seed)", "conv1": "1×1 conv → GAP", "gap_conv1": "GAP → 1×1 conv"}
ORDER_LABELS = {"relu_bn": "conv → ReLU → BN (seed)", "bn_relu": "conv → BN → ReLU"}


def _reset_widgets() -> None:
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith(PREFIX)]:
        del st.session_state[key]


def _seed(key: str, value) -> str:
    key = PREFIX + key
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def load_draft(spec_dict: dict, edited_block: int | None = None) -> None:
    st.session_state.draft = spec_dict
    st.session_state[EDITED] = edited_block
    _reset_widgets()


def _load_preset() -> None:
    load_draft(arch.preset(st.session_state.preset_choice).to_dict())


def _add_block() -> None:
    d = st.session_state.draft
    d["blocks"].append({"widths": [16], "padding": 0, "pool": False, "transition": None})
    load_draft(d, edited_block=len(d["blocks"]))


def _remove_block(i: int) -> None:
    d = st.session_state.draft
    if len(d["blocks"]) > 1:
        d["blocks"].pop(i)
    load_draft(d)


def _add_conv(i: int) -> None:
    d = st.session_state.draft
    widths = d["blocks"][i]["widths"]
    if len(widths) < arch.MAX_CONVS_PER_BLOCK:
        widths.append(widths[-1] if widths else 16)
    load_draft(d, edited_block=i + 1)


def _remove_conv(i: int) -> None:
    d = st.session_state.draft
    if len(d["blocks"][i]["widths"]) > 1:
        d["blocks"][i]["widths"].pop()
    load_draft(d, edited_block=i + 1)


def editor(disabled: bool = False) -> tuple[ArchSpec, str | None]:
    """Render the editor (every control ``disabled`` when a lesson fixes the network); return (the spec in force,
    the validation message or None)."""
    if "draft" not in st.session_state:
        st.session_state.draft = links.current_spec().to_dict()
    d = st.session_state.draft
    _preset_picker(d, disabled)
    controls = [_block_controls(i, block, len(d["blocks"]), disabled) for i, block in enumerate(d["blocks"])]
    st.button("+ add block", on_click=_add_block, disabled=disabled or len(d["blocks"]) >= arch.MAX_BLOCKS,
              help=why.EDITOR["add_block"])
    general = _general_controls(d, disabled)
    general_slot = st.empty()

    new = {**d, "blocks": [block for block, _ in controls], **general}
    if new != d:
        new["name"] = "custom"  # edited: no longer the preset it came from
        changed = [i for i, (old, now) in enumerate(zip(d["blocks"], new["blocks"]), 1) if old != now]
        st.session_state[EDITED] = changed[0] if changed else None
    st.session_state.draft = new
    return _validate(new, [slot for _, slot in controls], general_slot)


def _preset_picker(d: dict, disabled: bool = False) -> None:
    """The preset select box and its Load button (loading replaces the draft)."""
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    names = list(arch.PRESETS)
    # A custom network (edited, or opened from a shared link) starts with no preset chosen, not on the first one.
    current = names.index(d["name"]) if d.get("name") in names else None
    c1.selectbox("Start from a preset", names, index=current, key="preset_choice", placeholder="a custom network",
                 format_func=lambda n: f"{n} ({arch.count_params(arch.PRESETS[n]):,} params)",
                 disabled=disabled, help=why.EDITOR["preset"] + "\n\n"
                 + "\n\n".join(f"**{n}**: {note}" for n, note in arch.PRESET_NOTES.items()))
    c2.button("Load preset", on_click=_load_preset, width="stretch",
              disabled=disabled or st.session_state.get("preset_choice") is None)
    chosen = st.session_state.get("preset_choice")
    if chosen and chosen != d.get("name"):
        st.caption(f"Press **Load preset** to replace the network below with `{chosen}`.")


def _block_controls(i: int, block: dict, n_blocks: int, disabled: bool = False):
    """Block ``i``'s widgets; return (the block as its widgets now say, the slot for a message about it)."""
    with st.container(border=True):
        st.markdown(f"**Block {i + 1}**: 3×3 convolutions, then optional max-pool and 1×1 transition")
        cols = st.columns(max(len(block["widths"]), 1) + 3)
        widths = [
            int(cols[j].number_input(f"conv {j + 1} width", 1, MAX_WIDGET_WIDTH, step=1, disabled=disabled,
                                     key=_seed(f"w_{i}_{j}", int(block["widths"][j])), help=why.EDITOR["width"]))
            for j in range(len(block["widths"]))
        ]
        k = len(widths)
        padding = cols[k].selectbox("padding", [1, 0], key=_seed(f"pad_{i}", int(block.get("padding", 1))),
                                    disabled=disabled, help=why.EDITOR["padding"])
        pool = cols[k + 1].checkbox("max-pool", key=_seed(f"pool_{i}", bool(block.get("pool", True))),
                                    disabled=disabled, help=why.EDITOR["pool"])
        transition = int(cols[k + 2].number_input(
            "1×1 width (0 = none)", 0, MAX_WIDGET_WIDTH, step=1, disabled=disabled, help=why.EDITOR["transition"],
            key=_seed(f"t_{i}", int(block.get("transition") or 0))))
        add, rm, rmb, _ = st.columns([1, 1, 1.5, 2])
        add.button("+ conv", key=f"addc{i}", on_click=_add_conv, args=(i,), help=why.EDITOR["add_conv"],
                   disabled=disabled or len(block["widths"]) >= arch.MAX_CONVS_PER_BLOCK)
        rm.button("− conv", key=f"rmc{i}", on_click=_remove_conv, args=(i,), help=why.EDITOR["remove_conv"],
                  disabled=disabled or len(block["widths"]) <= 1)
        rmb.button("remove block", key=f"rmb{i}", on_click=_remove_block, args=(i,), help=why.EDITOR["remove_block"],
                   disabled=disabled or n_blocks <= 1)
        slot = st.empty()
    return {"widths": widths, "padding": padding, "pool": pool, "transition": transition or None}, slot


def _general_controls(d: dict, disabled: bool = False) -> dict:
    """The whole network's widgets (dropout, batch-norm, bias, head, order); return their values."""
    g1, g2 = st.columns(2)
    g3, g4 = st.columns(2)
    dropout = g1.slider("dropout", 0.0, 0.5, step=0.01, key=_seed("dropout", float(d.get("dropout", 0.1))),
                        disabled=disabled, help=why.EDITOR["dropout"])
    batchnorm = g2.toggle("batch-norm", key=_seed("batchnorm", bool(d.get("batchnorm", True))), disabled=disabled,
                          help=why.EDITOR["batchnorm"])
    bias = g2.toggle("conv bias", key=_seed("bias", bool(d.get("bias", True))), disabled=disabled,
                     help=why.EDITOR["bias"])
    head = g3.selectbox("head", list(arch.HEADS), key=_seed("head", d.get("head", "conv3")), disabled=disabled,
                        format_func=lambda h: HEAD_LABELS[h], help=why.EDITOR["head"])
    order = g4.selectbox("order", list(arch.ORDERS), key=_seed("order", d.get("order", "relu_bn")),
                         disabled=disabled, format_func=lambda o: ORDER_LABELS[o], help=why.EDITOR["order"])
    return {"dropout": float(dropout), "batchnorm": bool(batchnorm), "bias": bool(bias), "head": head,
            "order": order}


def _validate(draft: dict, block_slots: list, general_slot) -> tuple[ArchSpec, str | None]:
    """A valid draft becomes the session's spec and the URL's; an invalid one's message goes beside the block it
    names (else the block changed last, else under the general controls), and the last valid spec stays in force."""
    try:
        spec = ArchSpec.from_dict(draft)
    except SpecError as e:
        block = e.block if e.block is not None else st.session_state.get(EDITED)
        in_block = block is not None and 1 <= block <= len(block_slots)
        (block_slots[block - 1] if in_block else general_slot).error(str(e), icon="⚠️")
        return links.current_spec(), str(e)
    links.set_spec(spec)
    links.spec_to_url(spec)
    return spec, None
