"""Prompt composition: one pure function, so what a job was sent is predictable.

The order is fixed: the bible's style prompt, then each character (its prompt fragment,
then its visual traits as ``key: value``), then the shot's own prompt, then the scene
type's words. Parts are trimmed, joined with ", " and a part already present (compared
case-insensitively) is not repeated. Negative prompts are merged the same way: the
bible's first, then the shot's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CharacterPrompt:
    name: str
    fragment: str = ""
    visual_traits: Mapping[str, Any] = field(default_factory=dict)
    lora: str | None = None


@dataclass(frozen=True)
class ComposedPrompt:
    prompt: str
    negative_prompt: str
    loras: tuple[str, ...] = ()


def _parts(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _trait(key: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        value = " ".join(str(item) for item in value)
    return f"{key.replace('_', ' ')}: {value}" if key else str(value)


def _merge(groups: Iterable[Iterable[str]]) -> str:
    seen: set[str] = set()
    merged: list[str] = []
    for group in groups:
        for part in group:
            key = part.casefold()
            if part and key not in seen:
                seen.add(key)
                merged.append(part)
    return ", ".join(merged)


def compose_prompt(
    *,
    style_prompt: str = "",
    style_negative: str = "",
    characters: Sequence[CharacterPrompt] = (),
    shot: str = "",
    shot_negative: str = "",
    extra: str = "",
) -> ComposedPrompt:
    """The prompt, negative prompt and LoRAs a job made from a project is sent."""
    groups: list[list[str]] = [_parts(style_prompt)]
    for character in characters:
        groups.append(_parts(character.fragment))
        groups.append(
            [
                _trait(k, v)
                for k, v in sorted(character.visual_traits.items())
                if v not in ("", None)
            ]
        )
    groups.append(_parts(shot))
    groups.append(_parts(extra))
    negative = _merge([_parts(style_negative), _parts(shot_negative)])
    loras = tuple(dict.fromkeys(c.lora for c in characters if c.lora))
    return ComposedPrompt(prompt=_merge(groups), negative_prompt=negative, loras=loras)
