"""Text normalisation shared by the judges."""

import pytest

from knowgen.judges.textnorm import contains_text, normalize, read_text, words


@pytest.mark.parametrize("raw, key", [
    ("Côte d'Ivoire", "cotedivoire"),
    ("  BURKINA   FASO!! ", "burkinafaso"),
    ("Straße", "strasse"),
    ("Ll1|", "iiii"),
    ("O0o", "ooo"),
    ("burn", "bum"),
    ("", ""),
    ("?!.,", ""),
    ("日本", "日本"),
])
def test_normalize(raw, key):
    assert normalize(raw) == key


def test_confusables_fold_on_both_sides():
    assert normalize("ILLINOIS") == normalize("1LL1N0IS") == normalize("|ll|noi5")
    assert normalize("Burkina Faso") != normalize("Burkima Faso")


def test_contains_text_across_lines_and_noise():
    lines = ["WELCOME TO", "BURKINA", "FAS0 2024"]
    assert contains_text(lines, "Burkina Faso")
    assert contains_text(lines, "welcome to burkina")
    assert not contains_text(lines, "Burkina Fasso")
    assert not contains_text([], "Burkina Faso")
    assert contains_text([], "...")


def test_dropped_accents_are_forgiven_but_wrong_letters_are_not():
    assert contains_text(["Cte d'lvoire"], "Côte d'Ivoire")
    assert contains_text(["COTE D'IVOIRE"], "Côte d'Ivoire")
    assert not contains_text(["Cute d'Ivoire"], "Côte d'Ivoire")
    assert not contains_text(["anything"], "日本")


def test_words_keep_boundaries():
    assert words("São Tomé & Príncipe") == ["sao", "tome", "principe"]


def test_stray_line_does_not_merge_with_the_next():
    # "v" + "VIRGIN ..." must not fold to "w" + "irgin ...".
    assert contains_text(["V", "VIRGIN ISLANDS (U.S.)"], "VIRGIN ISLANDS (U.S.)")
    assert contains_text(["COR", "NER SHOP"], "CORNER SHOP")


def test_read_text_tells_exact_buried_wrong_case_and_absent():
    assert read_text(["WELCOME TO", "BURKINA FAS0!"], "Burkina Faso") == "exact"
    assert read_text(["COR", "NER SHOP"], "CORNER SHOP") == "exact"  # split over two lines
    assert read_text(["United States), with the text"], "UNITED STATES") == "buried"
    assert read_text(["Chad"], "CHAD", upper=True) == "wrong_case"
    assert read_text(["CHAD"], "CHAD", upper=True) == "exact"
    # the first exact reading in the wrong case (a logo's wordmark) does not hide a later one
    assert read_text(["Synology", "SYNOLOGY"], "SYNOLOGY", upper=True) == "exact"
    assert read_text(["Synology", "synology"], "SYNOLOGY", upper=True) == "wrong_case"
    assert read_text(["Chad"], "CHAD") == "exact"  # no case asked for
    assert read_text(["Cte d'lvoire"], "Côte d'Ivoire") == "exact"
    assert read_text(["nothing here"], "CHAD") == "absent"
    assert read_text([], "...") == "exact"
