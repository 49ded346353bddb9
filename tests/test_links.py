"""Shared links (``?arch=...``): whatever a link carries, the page opens a valid network or says why it could not."""

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from mnistlab import arch
from mnistlab.ui.links import spec_from_link

from .test_arch import spec_dicts

ROOT = Path(__file__).resolve().parent.parent

links = (st.none() | st.text(max_size=200) | st.sampled_from(list(arch.PRESETS) + ["", "null", "[]", "{}", "1e999"])
         | spec_dicts.map(json.dumps) | st.text(min_size=4001, max_size=4100))


@settings(max_examples=400, deadline=None)
@given(links)
def test_any_link_gives_a_valid_network_or_the_default_with_a_message(raw):
    spec, message = spec_from_link(raw)
    assert isinstance(spec, arch.ArchSpec)
    arch.validate(spec)
    if message is None:  # taken as given: the link's own network, or a preset it names
        assert raw is None or raw in arch.PRESETS or spec == arch.ArchSpec.from_json(raw)
    else:
        assert spec == arch.preset("best") and "showing the default" in message  # too long, or not valid


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=links.filter(lambda raw: raw is not None))
def test_the_architecture_page_survives_any_link(raw, tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTLAB_RUNS", str(tmp_path / "runs"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("views/1_Architecture.py")
    at.query_params["arch"] = raw
    at.run()
    assert not at.exception
    params = next(m for m in at.metric if m.label == "Parameters").value
    assert int(params.replace(",", "")) > 0


def test_a_link_cannot_put_a_link_or_an_image_on_the_page():
    import re

    from mnistlab.ui import labels, links

    hostile = ('{"blocks": [{"widths": [8]}], "[Your grade: log in](https://evil.example)": 1, '
               '"![x](http://e/x.png)": 2}')
    _, message = links.spec_from_link(hostile)
    shown = labels.plain(message)
    assert "unknown spec field" in message
    assert not re.search(r"(?<!\\)\]\(", shown) and not re.search(r"(?<!\\)!(?!\\)\[", shown)
