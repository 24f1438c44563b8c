"""`mask_pans` finds every card number in producer text (issue 13, finding 2): any Luhn-valid 13-19 digit
window of a digit group, whatever light separators or script the digits come in."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.lib import pan
from fraud_assets.lib.pan import contains_pan, mask_pans, normalise_pan
from fraud_assets.lib.pan_leaks import decoded_text, pans_in
from fraud_assets_tests.raw_cleaned_support import hidden_shapes, make_pan

PAN = "4539148803436467"
MASKED = "453914******6467"


def spaced(sep: str) -> str:
    return sep.join(PAN[i : i + 4] for i in range(0, 16, 4))


def test_json_escapes_other_than_digits_and_separators_are_left_as_written():
    assert mask_pans('{"note": "caf\\u00e9 \\u0041BC 1234"}') == '{"note": "caf\\u00e9 \\u0041BC 1234"}'
    assert not contains_pan("\\u0034" * 3)


def test_html_references_read_as_separators_are_exactly_those_of_html5_that_name_one():
    import html.entities
    import re

    separator = re.compile(pan.separator_class())
    named = {
        name[:-1]
        for name, ch in html.entities.html5.items()
        if name.endswith(";") and len(ch) == 1 and (ch.isdecimal() or separator.fullmatch(ch))
    }
    assert set(pan.HTML_SEPARATOR_NAMES) == named
    assert not [
        n for n in named if html.entities.html5[n + ";"].isdecimal()
    ]  # the RE2 pre-filters rely on it
    legacy = {name for name in html.entities.html5 if name[-1] != ";" and name in named}
    assert set(pan.HTML_LEGACY_SEPARATOR_NAMES) == legacy


def _read_both_ways(text: str) -> str:
    """What the masker and the leak detector, each by its own code, read `text` as (they must agree)."""
    assert pan.unescape_digits(text) == decoded_text(text)
    return pan.unescape_digits(text)


def test_html_references_are_read_as_an_html5_parser_reads_them():
    # numeric ones to their last digit, `;` or not; `&AMP;` is `&amp;`; legacy names without `;`
    text = "&#52&#53 &#x36g &AMP;#55; &amp#56; &AMP;nbsp;9 &nbsp0"
    assert _read_both_ways(text) == "45 6g 7 8 \u00a09 \u00a00"
    # a reference beyond Unicode, names in another case, `&` escaped with a name HTML5 does not have
    for text in [
        "&#524539",
        "&#x34539148803436467",
        "&NBSP;",
        "&Nbsp1",
        "&Amp;#52;",
        "&#x",
        "&#" + "9" * 5000,
    ]:
        assert _read_both_ways(text) == text


def test_byte_and_code_point_escapes_are_read_as_the_character_they_stand_for():
    text = "\\x34 \\\\x35 \\xc2\\xa0 \\u{36} \\U{0037} %5Cu0038 %5C%5Cx39 %255Cu0030 \\%5Cx31"
    assert _read_both_ways(text) == "4 5 \u00a0 6 7 8 9 0 1"
    # bytes are UTF-8 (a lone `\xa0` is no character), two hex digits; a code point 1-6 hex digits
    for text in ["\\xa0", "\\x4", "\\xc0\\x80", "\\u{}", "\\u{0000034}", "\\u{110000}", "%5Cq"]:
        assert _read_both_ways(text) == text


def test_a_card_written_as_a_key_value_pair_is_masked_whatever_digit_it_starts_with():
    """Quoted-printable is not read: `=37` as a 7 would take the 3 from `pan=3782...` and leave the American
    Express card in clear (docs/landing-zone.md, escapes read as digits)."""
    for card in [make_pan("378282", 1, 15), make_pan("301234", 2, 14), make_pan("122000", 3, 15)]:
        masked = mask_pans(f"pan={card}&amt=35")
        assert card not in masked
        assert not pans_in(masked)
        assert pans_in(f"pan={card}")


def test_escapes_of_anything_but_digits_and_separators_are_left_as_written():
    for text in ["M&amp;S 1234", "&#65;&#x42;", "AT&T", "&amp;", "&nbsp", "&#xD800;", "&#99999999;", "%2541"]:
        assert mask_pans(text) == text
    assert pan.unescape_digits("&#52; &amp;#x35; %2536 \\\\u0037 %25C2%25A0") == "4 5 6 7 \u00a0"


@pytest.mark.parametrize("shape", list(hidden_shapes(PAN)))
def test_the_vectorised_pre_filter_passes_every_hidden_shape(shape):
    [masked] = pan.mask_texts([f"ref {hidden_shapes(PAN)[shape]} ok"])
    assert MASKED in masked
    assert not pans_in(masked)


def test_ampersands_and_other_html_of_ordinary_text_are_no_candidates_of_the_pre_filter():
    import pyarrow as pa
    import pyarrow.compute as pc

    ordinary = ["M&amp;S Store 4539", "AT&T 2018-04-01", "Fish &amp; Chips &lt;Ltd&gt;", "Q&A", "x" * 20]
    ordinary += ["AT&AMP;T 12", "a=3 x=35 id=1234567890", "C:\\Users\\xavier\\u_2018", "=C2=A0 =34=35"]
    assert not pc.any(pc.match_substring_regex(pa.array(ordinary), pan.PAN_PREFILTER_RE2)).as_py()


def test_a_pan_followed_by_an_expiry_is_masked():
    masked = mask_pans(f"card {PAN} 12/26 ok")
    assert PAN not in masked.replace(" ", "")
    assert not contains_pan(masked)
    assert masked.startswith("card ")
    assert masked.endswith(" ok")


@pytest.mark.parametrize(
    "separator",
    [" ", "-", ".", "/", "\t", "\u00a0", "\u202f", "  ", " - ", "\u2013", "\u200b", "|", "+", " | "],
    ids=[
        "space",
        "dash",
        "dot",
        "slash",
        "tab",
        "nbsp",
        "narrow-nbsp",
        "double-space",
        "spaced-dash",
        "en-dash",
        "zwsp",
        "bar",
        "plus",
        "spaced-bar",
    ],
)
def test_a_pan_keyed_in_groups_with_any_light_separator_is_masked_to_bin_and_last4(separator):
    assert mask_pans(f"pan={spaced(separator)};") == f"pan={MASKED};"


@pytest.mark.parametrize("separator", ["%20", "%2d", "%2B", "%7C", "%09", "%C2%A0", "%E2%80%93", "+"])
def test_a_pan_in_a_url_or_form_body_is_masked(separator):
    query = f"GET /pay?pan={spaced(separator)}&amt=12%2C50"
    masked = mask_pans(query)
    assert MASKED in masked
    assert not contains_pan(masked)
    assert not pans_in(masked)
    assert masked.endswith("&amt=12%2C50")  # escapes of anything but digits and separators stay
    assert normalise_pan(spaced(separator)) == PAN


def test_percent_escaped_digits_are_read_as_digits():
    escaped = "".join(f"%{ord(c):02X}" for c in PAN)
    assert mask_pans(escaped) == MASKED
    assert pans_in(escaped)


def test_an_escape_of_anything_else_is_text_whose_hex_digits_may_begin_a_card():
    # "%45" + "39...": also a % and a card; escapes are ASCII hex ("\\u00" + an Arabic-Indic zero is text)
    for text in [f"%{PAN}", f"\\u0045{PAN}", f"%E2%82%AC{PAN}", f"\\u00\u0660{PAN}"]:
        assert MASKED in mask_pans(text)
        assert PAN in pans_in(text)


# A card starting with 3 (American Express), written in clear after an escape's first characters: the
# escape and the card's first two digits read as one digit (`%37` is a 7), or as a combining mark read as
# nothing (`\u0345`), so decoded alone the card is one or two digits short.
AMEX = make_pan("378282", 1, 15)
BEHIND_AN_ESCAPE = {
    "percent": (f"%{AMEX}", AMEX),
    "json": (f"\\u00{AMEX}", AMEX),
    "bytes": (f"\\x{AMEX}", AMEX),
    "json-mark": (f"\\u03{PAN}", PAN),
    "json-mark-in-a-url": (f"%5Cu03{PAN}", PAN),
}


@pytest.mark.parametrize(("text", "card"), list(BEHIND_AN_ESCAPE.values()), ids=list(BEHIND_AN_ESCAPE))
def test_a_card_whose_first_digits_complete_an_escape_is_masked_where_it_stands(text, card):
    assert not pans_in(decoded_text(text))  # decoded alone, the card is short of its first digits
    assert contains_pan(text)
    assert card in pans_in(text)
    masked = mask_pans(f"ref {text} ok")
    assert masked == f"ref {text[: text.index(card)]}{card[:6]}{'*' * (len(card) - 10)}{card[-4:]} ok"
    assert not contains_pan(masked)
    assert not pans_in(masked)


@pytest.mark.parametrize(("text", "card"), list(BEHIND_AN_ESCAPE.values()), ids=list(BEHIND_AN_ESCAPE))
def test_a_card_behind_an_escape_is_starred_in_place(text, card):
    starred = pan.star_pan_digits(text)
    assert starred == text.replace(card, f"{card[:6]}{'*' * (len(card) - 10)}{card[-4:]}")
    assert not contains_pan(starred)


def test_the_digits_of_an_escaped_card_are_starred_escape_and_all():
    """The pieces of a card cut by a line break are starred in place: a digit read from an escape is
    starred by starring the escape's characters, so the text keeps its length."""
    escaped = "".join(f"\\u{ord(c):04x}" for c in PAN)
    starred = pan.star_pan_digits(f"x {escaped} y")
    assert starred == f"x {escaped[:36]}{'*' * 36}{escaped[-24:]} y"
    assert not contains_pan(starred)
    assert not pans_in(starred)


def test_percent_signs_that_are_no_escape_are_left_as_written():
    for text in ["100%", "50% off 4539", "%zz%4", "%C0%80", "%ED%A0%80", "rate 12.5%20 days"]:
        assert mask_pans(text) == text


def test_a_pan_inside_a_longer_digit_run_is_masked_and_its_neighbours_kept():
    assert mask_pans(f"ref99{PAN}77") == f"ref99{MASKED}77"


def test_a_pan_in_arabic_indic_or_fullwidth_digits_is_masked():
    arabic = "".join(chr(0x0660 + int(c)) for c in PAN)
    fullwidth = "".join(chr(0xFF10 + int(c)) for c in PAN)
    assert mask_pans(arabic) == MASKED
    assert mask_pans(fullwidth) == MASKED


def test_overlapping_luhn_windows_are_masked_entirely():
    assert mask_pans(PAN + PAN) == "*" * 32


def test_digits_a_mask_keeps_never_form_a_card_with_their_neighbours():
    text = f"1234567 {PAN}"  # "1234567" + the BIN "453914" is a 13-digit group
    assert not contains_pan(mask_pans(text))
    assert not pans_in(mask_pans(text))


def test_our_kind_of_values_are_not_card_numbers():
    for text in [
        "rf-20261202T135241551134-a1b2c3",
        "authorizations/2018-04-01/acq_a_2018-04-01_00000.csv.gz",  # 2018040100000 passes Luhn
        "2018-04-01_00000",
        "2018-04-01 00:00:00+00:00",
        "2018-04-01T12:00:01Z",
        "81.12",
        "0" * 20,
        "1,2,3,4,5,6,7,8,9,1,2,3,4",
    ]:
        assert mask_pans(text) == text


def test_a_number_is_masked_by_its_integral_part_only():
    assert pan.mask_number(int(PAN)) == MASKED
    assert pan.mask_number(float(PAN)) == MASKED
    assert pan.mask_number(float("0." + PAN)) is None  # a fraction is a measurement
    assert pan.mask_number(True) is None


def test_mask_texts_masks_the_same_values_as_mask_pans():
    values = ["plain", None, spaced("\u00a0"), f"{PAN} 12/26", 42, "x" * 30, spaced("|"), spaced("%2D")]
    assert pan.mask_texts(values)[-2:] == [MASKED, MASKED]
    assert pan.mask_texts(values) == [
        None if v is None else (mask_pans(str(v)) if contains_pan(str(v)) else v) for v in values
    ]


def test_normalise_pan_reads_separators_other_scripts_and_integral_numbers():
    assert normalise_pan(spaced("\u00a0")) == PAN
    assert normalise_pan("".join(chr(0xFF10 + int(c)) for c in PAN)) == PAN
    assert normalise_pan(int(PAN)) == PAN
    assert normalise_pan(float(PAN)) == PAN
    assert normalise_pan(PAN + "x") is None
    assert normalise_pan("0" * 16) is None


def _chars(categories: set[str]) -> set[str]:
    return {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in categories}


def test_the_separators_are_exactly_unicode_spaces_dashes_format_characters_marks_and_fillers():
    import re

    separator = re.compile(pan.separator_class())
    listed = {chr(c) for c in range(sys.maxunicode + 1) if separator.fullmatch(chr(c))}
    line_breaks = set("\n\x0b\x0c\r\x1c\x1d\x1e\x85")
    controls = _chars({"Cc"}) - line_breaks
    assert listed == _chars({"Zs", "Pd", "Cf", "Mn", "Me"}) | controls | set(
        "./\u2212+|\uff0b\uff5c\u115f\u1160\u2800\u3164\uffa0"
    )
    fast = re.compile(f"{pan._ASCII_VISIBLE}|{pan._ASCII_INVISIBLE}")
    assert {chr(c) for c in range(128) if fast.fullmatch(chr(c))} == {c for c in listed if c.isascii()}


@pytest.mark.parametrize("shape", list(hidden_shapes(PAN)))
def test_digits_apart_by_invisible_marks_or_carrying_marks_are_a_pan(shape):
    text = hidden_shapes(PAN)[shape]
    assert MASKED in mask_pans(text)
    assert not contains_pan(mask_pans(text))
    assert not pans_in(mask_pans(text))
    # a card behind an escape is no PAN value either way: letters as written, two digits short decoded
    assert normalise_pan(text) == (None if shape == "escape-begins-card" else PAN)


_DIGITS = (
    st.sampled_from("0123456789")
    | st.sampled_from("٠١٢٣٤٥٦٧٨٩０１２３４５６７８９")
    | st.sampled_from(
        ["&#52;", "&#x36;", "&#X0031;", "&amp;#53;", "%2534", "%252537", "\\\\u0038", "\\u0664"]
        + ["&#53", "&#x37", "&AMP;#52;", "\\x36", "\\\\x39", "\\u{31}", "%5Cu0032", "%255Cx33"]
    )
)
_SEPARATORS = st.sampled_from(
    [" ", "-", ".", "/", "\t", "\u00a0", "\u2013", "\u200b", "  ", "   ", "|", "+", "%20", "%C2%A0"]
    + ["&nbsp;", "&#160;", "&#x2013;", "&amp;nbsp;", "&ndash;", "&#0;", "&#150;", "%2520", "%25C2%25A0"]
    + ["&nbsp", "&#160", "&AMP;shy;", "\\x20", "\\xc2\\xa0", "\\u{2013}", "%5Cx2d"]
)
_OTHER = st.sampled_from(
    ["a", "T", ",", ":", "\n", "*", "_", "%", "%2", "%C2", "%3A", "\\u00", "    ", "%25", "%253A", "%25C2"]
    + ["&", "&#", "&#x", "&amp;", "&amp", "&bogus;", "&#58;", "&#xD800;", "&#99999999;", "&NBSP;", ";"]
    + ["\\", "\\\\", "\\u0041", "\\\\u00e9", "\\x", "\\x4", "\\xa0", "\\xe2", "\\u{", "\\u{}", "}"]
    + ["%5C", "%5Cu", "\\u%7B34%7D"]
    + ["=", "=3", "=34", "=C2=A0"]
    + ["\\u03", "\\u003", "\\x3", "%3", "%5Cu03"]  # an escape the next digits complete
)
_HIDDEN_SHAPES = st.sampled_from(list(hidden_shapes(PAN).values()))
_TEXT = st.lists(
    st.one_of(
        _DIGITS, _DIGITS, _DIGITS, _SEPARATORS, _OTHER, st.just(PAN), st.just(spaced(" ")), _HIDDEN_SHAPES
    ),
    max_size=80,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_nothing_pan_shaped_survives_mask_pans(text):
    masked = mask_pans(text)
    assert not contains_pan(masked)
    assert not pans_in(masked)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_contains_pan_and_the_independent_detector_agree(text):
    assert contains_pan(text) == bool(pans_in(text))
    assert (mask_pans(text) != text) == contains_pan(text)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_starring_keeps_the_length_and_leaves_no_card(text):
    """`star_pan_digits` (cards cut across lines) stars digits in place, those read from escapes too."""
    starred = pan.star_pan_digits(text)
    assert len(starred) == len(text)
    assert not contains_pan(starred)
    assert not pans_in(starred)
