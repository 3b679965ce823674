"""Concept configuration: matching modes, MM-Safe masking, compositional sub-concepts, user files."""

from __future__ import annotations

import json

import pytest

from models.data.concepts import concept_from_keywords, get_concept, inflections, load_concepts


def test_shipped_concepts_include_violence_and_the_papers_generalisation_concepts() -> None:
    concepts = load_concepts()
    assert {"violence", "violence-humanml3d", "violence-motionx", "violence-extended",
            "jump", "crawl", "squat", "throw", "zombie"} <= set(concepts)
    paper = concepts["violence-humanml3d"]
    assert set(paper.keywords) == {"kick", "punch", "hit", "beat", "boxe", "boxing", "jab", "uppercut", "hook"}
    assert set(concepts["violence"].sub_concepts) >= {"kick", "punch_jab_box_hit_beat", "weapons"}


@pytest.mark.parametrize("caption, expected", [
    ("a person kicks with the right leg", ["kick"]),
    ("someone is punching the air", ["punch"]),
    ("a man stabbing forward with a knife", ["stab"]),
    ("a person does kung fu", ["kung fu"]),
    ("the man waves his white hand", []),
    ("a person walks to the beat of music", ["beat"]),  # word mode keeps the paper's ambiguity of "beat"
])
def test_word_mode_matches_inflections_not_substrings(caption, expected) -> None:
    assert get_concept("violence").matching_keywords(caption) == expected


def test_substring_mode_reproduces_the_papers_artefacts() -> None:
    paper = get_concept("violence-humanml3d", match_mode="substring")
    assert paper.matches("the man waves his white hand")  # "hit" inside "white"
    assert paper.matches("a person carries boxes")  # "boxe" inside "boxes"
    assert not get_concept("violence-humanml3d").matches("the man waves his white hand")


def test_mm_safe_masking_keeps_pos_tags_and_other_words() -> None:
    concept = get_concept("violence")
    tokens = ["a/DET", "man/NOUN", "kick/VERB", "the/DET", "ball/NOUN"]
    assert concept.mask_tokens(tokens) == ["a/DET", "man/NOUN", "***/VERB", "the/DET", "ball/NOUN"]
    assert concept.mask_caption("A man kicks, then punches!") == "A man ***, then ***!"
    assert concept.mask_caption("a person does kung fu") == "a person does *** ***"
    assert concept.with_mode("substring").mask_tokens(["kicking/VERB", "walk/VERB"]) == ["***/VERB", "walk/VERB"]


def test_sub_concepts_and_inline_keywords() -> None:
    kick = get_concept("violence").sub("kick")
    assert kick.keywords == ("kick",) and not kick.matches("a person punches")
    custom = concept_from_keywords(["cartwheel"], name="acrobatics")
    assert custom.matches("a child does cartwheels") and custom.erase_prompts() == ["cartwheel"]
    with pytest.raises(ValueError, match="sub-concept"):
        get_concept("violence").sub("nope")
    with pytest.raises(ValueError, match="unknown concept"):
        get_concept("no-such-concept")
    with pytest.raises(ValueError, match="match_mode"):
        concept_from_keywords(["x"], match_mode="regex")


def test_user_files_add_and_override(tmp_path) -> None:
    user = tmp_path / "mine.json"
    user.write_text(json.dumps({"version": 1, "concepts": {
        "violence": {"keywords": ["kick"], "match_mode": "word"},
        "dance": {"sub_concepts": {"dance": ["dance", "waltz"]}},
    }}))
    concepts = load_concepts([user])
    assert concepts["violence"].keywords == ("kick",) and concepts["dance"].matches("they waltzed")
    assert get_concept({"name": "inline", "keywords": ["kick"]}).to_dict()["sub_concepts"] == {"inline": ["kick"]}
    with pytest.raises(FileNotFoundError):
        load_concepts([tmp_path / "missing.json"])


def test_inflections_cover_doubling_and_final_e() -> None:
    assert {"stabbing", "stabbed", "stabs"} <= inflections("stab")
    assert {"striking", "strikes"} <= inflections("strike")
    assert "kicking" in inflections("kick") and "kickking" not in inflections("kick")
