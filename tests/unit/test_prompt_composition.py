"""compose_prompt: the one pure function that writes a project's prompts."""

from __future__ import annotations

from atelier.production.prompts import CharacterPrompt, compose_prompt


def test_order_is_style_then_characters_then_shot_then_extra() -> None:
    composed = compose_prompt(
        style_prompt="anime, cel shading",
        characters=[
            CharacterPrompt(
                "Aiko",
                fragment="aiko, 1girl",
                visual_traits={"hair": "silver", "eyes": ["red", "narrow"]},
                lora="aiko.safetensors:0.8",
            )
        ],
        shot="walking in the rain",
        extra="subtle motion",
    )
    assert composed.prompt == (
        "anime, cel shading, aiko, 1girl, eyes: red narrow, hair: silver, "
        "walking in the rain, subtle motion"
    )
    assert composed.loras == ("aiko.safetensors:0.8",)


def test_negatives_merge_without_repeats() -> None:
    composed = compose_prompt(
        style_negative="blurry, lowres", shot_negative="Blurry, extra fingers"
    )
    assert composed.negative_prompt == "blurry, lowres, extra fingers"


def test_repeated_parts_appear_once_and_empty_parts_vanish() -> None:
    composed = compose_prompt(
        style_prompt="anime,, ",
        characters=[
            CharacterPrompt("A", fragment="anime, hero", visual_traits={"cape": "", "x": None}),
            CharacterPrompt("B", fragment="hero, villain", lora="a.safetensors:1"),
            CharacterPrompt("C", lora="a.safetensors:1"),
        ],
        shot="",
    )
    assert composed.prompt == "anime, hero, villain"
    assert composed.loras == ("a.safetensors:1",)


def test_nothing_composes_to_empty_strings() -> None:
    composed = compose_prompt()
    assert (composed.prompt, composed.negative_prompt, composed.loras) == ("", "", ())


def test_same_input_same_output() -> None:
    kwargs = {"style_prompt": "a", "shot": "b", "characters": [CharacterPrompt("x", "c")]}
    assert compose_prompt(**kwargs) == compose_prompt(**kwargs)  # type: ignore[arg-type]
