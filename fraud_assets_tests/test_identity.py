"""Identities as four eyes compares them (lib/identity.py): spellings of one name that read alike are one
identity, so an approver cannot pass as someone other than the trainer by spelling the same name."""

from __future__ import annotations

import pytest

from fraud_assets.lib.identity import same_identity


@pytest.mark.parametrize(
    "variant",
    [
        " Dana ",
        "DANA",
        "dana\t",
        "\uff44\uff41\uff4e\uff41",  # full-width
        "da\u200bna",  # zero-width space
        "\u200ddana",  # zero-width joiner
        "dana\u2060",  # word joiner
        "\u202edana",  # right-to-left override
    ],
)
def test_spellings_of_one_name_that_read_alike_are_one_identity(variant: str):
    assert same_identity(variant, "dana")


@pytest.mark.parametrize("other", ["dan", "dana2", "erin", "", None])
def test_different_names_and_no_name_are_not_the_same_identity(other):
    assert not same_identity(other, "dana")
    assert not same_identity("", "")
