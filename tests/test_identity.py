"""The student's remembered name: what a browser may send back is cleaned before it is stored or shown."""

from mnistlab.ui import identity


def test_a_name_keeps_printable_text_only_and_at_most_forty_characters():
    assert identity.clean_name("  Ada Lovelace  ") == "Ada Lovelace"
    assert identity.clean_name("Ada\nLove\x00lace\u202e") == "AdaLovelace"
    assert identity.clean_name("é" * 100) == "é" * 40
    assert identity.clean_name("\t\r\n") == ""
