"""Synthetic image scenes: PIL-drawn shapes and digits with their captions and questions.

A scene is one of two kinds, drawn on a plain light background:

* ``shapes``: 1..``max_count`` copies of one shape (circle, square, triangle,
  star) in one colour, scattered without overlap. With a single shape its
  position (left / right / top / bottom / center) is part of the scene.
* ``digit``: one digit 0-9 written large in one colour.

Every scene knows its own facts, so captions and question/answer pairs are
derived from it, each answer with an ``answer_key`` (the word a correct
answer must contain) for scoring::

    scene = sample_scene(random.Random(3), ScenePalette())
    image = draw_scene(scene, size=112)          # PIL.Image, RGB
    caption(scene)                               # 'Three red circles.'
    questions(scene)                             # [QA('How many shapes are there?', 'There are three.', 'three'), ...]

Pure functions of the random generator: the same seed draws the same scenes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from omni.data.synth.numbers import number_to_words

#: Colour name -> RGB, chosen to stay distinct after resizing and on a light background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (235, 200, 0),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star")
POSITIONS = ("left", "right", "top", "bottom", "center")
_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars"}
#: Where a single shape sits, as the centre in unit coordinates.
_ANCHORS = {"left": (0.22, 0.5), "right": (0.78, 0.5), "top": (0.5, 0.22), "bottom": (0.5, 0.78),
            "center": (0.5, 0.5)}


@dataclass(frozen=True)
class ScenePalette:
    """What scenes may contain."""

    colors: tuple[str, ...] = tuple(COLORS)
    shapes: tuple[str, ...] = SHAPES
    max_count: int = 4
    digit_fraction: float = 0.25


@dataclass(frozen=True)
class QA:
    """One question about a scene, its answer sentence and the word a right answer contains."""

    question: str
    answer: str
    answer_key: str
    kind: str


@dataclass
class Scene:
    """The facts of one image; ``items`` are (cx, cy, radius) in unit coordinates."""

    kind: str
    color: str
    shape: str | None = None
    count: int = 1
    position: str | None = None
    digit: int | None = None
    items: list[tuple[float, float, float]] = field(default_factory=list)
    background: tuple[int, int, int] = (250, 250, 250)


def _scatter(rng: random.Random, count: int, radius: float) -> list[tuple[float, float, float]]:
    """Non-overlapping centres for ``count`` shapes of about ``radius`` (unit coordinates)."""
    for _ in range(200):
        items: list[tuple[float, float, float]] = []
        for _ in range(count):
            r = radius * rng.uniform(0.85, 1.0)
            for _ in range(100):
                x, y = rng.uniform(r + 0.03, 1 - r - 0.03), rng.uniform(r + 0.03, 1 - r - 0.03)
                if all(math.hypot(x - a, y - b) > r + c + 0.04 for a, b, c in items):
                    items.append((x, y, r))
                    break
        if len(items) == count:
            return items
    raise RuntimeError(f"cannot place {count} shapes of radius {radius}")


def sample_scene(rng: random.Random, palette: ScenePalette) -> Scene:
    """Draw the facts of one random scene."""
    color = rng.choice(palette.colors)
    background = tuple(rng.randint(238, 255) for _ in range(3))
    if rng.random() < palette.digit_fraction:
        return Scene("digit", color, digit=rng.randrange(10), background=background)  # type: ignore[arg-type]
    shape = rng.choice(palette.shapes)
    count = rng.randint(1, palette.max_count)
    if count == 1:
        position = rng.choice(POSITIONS)
        cx, cy = _ANCHORS[position]
        r = rng.uniform(0.13, 0.17)
        items = [(cx + rng.uniform(-0.03, 0.03), cy + rng.uniform(-0.03, 0.03), r)]
        return Scene("shapes", color, shape, 1, position, items=items, background=background)  # type: ignore[arg-type]
    items = _scatter(rng, count, 0.13 if count <= 3 else 0.11)
    return Scene("shapes", color, shape, count, items=items, background=background)  # type: ignore[arg-type]


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * 0.45
        a = -math.pi / 2 + i * math.pi / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return pts


def draw_scene(scene: Scene, size: int = 112) -> Image.Image:
    """Render a scene as a ``size`` x ``size`` RGB image."""
    img = Image.new("RGB", (size, size), scene.background)
    draw = ImageDraw.Draw(img)
    fill = COLORS[scene.color]
    if scene.kind == "digit":
        font = ImageFont.load_default(size=int(size * 0.7))
        draw.text((size / 2, size / 2), str(scene.digit), fill=fill, font=font, anchor="mm")
        return img
    for cx, cy, r in scene.items:
        x, y, rr = cx * size, cy * size, r * size
        if scene.shape == "circle":
            draw.ellipse((x - rr, y - rr, x + rr, y + rr), fill=fill)
        elif scene.shape == "square":
            s = rr * 0.85
            draw.rectangle((x - s, y - s, x + s, y + s), fill=fill)
        elif scene.shape == "triangle":
            draw.polygon([(x, y - rr), (x - rr * 0.95, y + rr * 0.75), (x + rr * 0.95, y + rr * 0.75)], fill=fill)
        else:
            draw.polygon(_star(x, y, rr * 1.1), fill=fill)
    return img


def _count_words(scene: Scene) -> str:
    assert scene.shape is not None
    noun = scene.shape if scene.count == 1 else _PLURAL[scene.shape]
    return f"{number_to_words(scene.count)} {scene.color} {noun}"


def caption(scene: Scene) -> str:
    """One-sentence description, e.g. 'Three red circles.' or 'A blue square on the left.'"""
    if scene.kind == "digit":
        return f"The digit {number_to_words(scene.digit or 0)} written in {scene.color}."
    if scene.count == 1:
        where = "in the center" if scene.position == "center" else f"at the {scene.position}" \
            if scene.position in ("top", "bottom") else f"on the {scene.position}"
        return f"A {scene.color} {scene.shape} {where}."
    text = _count_words(scene)
    return text[0].upper() + text[1:] + "."


def questions(scene: Scene) -> list[QA]:
    """Every question the scene can answer (the caller picks some)."""
    color = QA("What color is it?" if scene.kind == "digit" or scene.count == 1 else "What color are the shapes?",
               f"It is {scene.color}." if scene.kind == "digit" or scene.count == 1
               else f"They are {scene.color}.", scene.color, "color")
    if scene.kind == "digit":
        word = number_to_words(scene.digit or 0)
        return [QA("What number is written?", f"The number is {word}.", word, "digit"), color]
    assert scene.shape is not None
    count_word = number_to_words(scene.count)
    noun = scene.shape if scene.count == 1 else _PLURAL[scene.shape]  # the key is the word the answer says
    qas = [
        QA("How many shapes are there?", f"There {'is' if scene.count == 1 else 'are'} {count_word}.",
           count_word, "count"),
        QA("What shape do you see?", f"I see {'a ' + noun if scene.count == 1 else noun}.", noun, "shape"),
        color,
    ]
    if scene.count == 1:
        where = {"center": "in the center", "top": "at the top", "bottom": "at the bottom"}.get(
            scene.position or "", f"on the {scene.position}")
        qas.append(QA(f"Where is the {scene.shape}?", f"The {scene.shape} is {where}.", scene.position or "",
                      "position"))
    return qas
