"""Each malformed input kind has its own error code, and nothing else escapes.

The fuzz tests run >= 2,000 examples per entry point (``preprocess`` with image bytes, with base64 text,
with strokes; ``decode_base64``) on valid PNG/JPEG/GIF/BMP/WebP bytes mutated or truncated, and on
random data. Each must return ``None`` or a ``(1, 1, 28, 28)`` float32 tensor in [0, 1], or raise a
:class:`~shared.errors.ClientError` with a known code and a short message that does not echo the input.
"""

from __future__ import annotations

import ast
import base64
import math
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from shared import decode as decode_module
from shared import errors
from shared import preprocess as preprocess_module
from shared import stroke_input as stroke_input_module
from shared.decode import decode_base64, decode_image
from shared.limits import Limits
from shared.preprocess import ImageFrame, StrokesFrame, preprocess, rasterize_strokes
from tests.shared.imaging import canvas, encode, png_with_header

IMAGE_CODES = {
    "invalid_base64",
    "empty_image",
    "not_an_image",
    "invalid_image",
    "truncated_image",
    "image_too_large",
    "payload_too_large",
}
STROKE_CODES = {"invalid_strokes", "invalid_field_type"}
FUZZ = hsettings(max_examples=2000, deadline=None)


def _digit(size: int = 40, mode: str = "L") -> Image.Image:
    img = canvas(255, size=size).convert(mode)
    ImageDraw.Draw(img).line(
        (size // 4, size // 5, size // 2, size * 4 // 5), fill=0, width=max(2, size // 10)
    )
    return img


PNG = encode(_digit())
SEEDS = [
    PNG,
    encode(_digit(mode="RGBA")),
    encode(_digit(mode="P")),
    encode(_digit(), "JPEG"),
    encode(_digit(mode="CMYK"), "JPEG"),
    encode(_digit(), "GIF"),
    encode(_digit(), "BMP"),
    encode(_digit(mode="RGB"), "WEBP"),
    encode(_digit(mode="RGBA"), "WEBP", lossless=True),
]
PNG_B64 = base64.b64encode(PNG).decode()


def _check_error(exc: errors.MnistLiveError, allowed: set[str], submitted: bytes | str | None = None) -> None:
    assert isinstance(exc, errors.ClientError), repr(exc)
    assert exc.code in allowed
    assert 0 < len(exc.message) <= errors.MAX_MESSAGE_CHARS
    assert exc.message == str(exc)
    if exc.__cause__ is not None:
        assert not isinstance(exc.__cause__, errors.MnistLiveError)
    if isinstance(submitted, str) and len(submitted) >= 12:
        assert submitted[-12:] not in exc.message
    assert exc.to_dict() == {"code": exc.code, "message": exc.message}


def _check_result(out: Any, planes: int = 1) -> None:
    """A model input: ``(1, planes, 28, 28)`` float32 in [0, 1] (1 plane for images, 7 for strokes)."""
    if out is None:
        return
    assert out.shape == (1, planes, 28, 28)
    assert out.dtype == np.float32
    assert float(out.min()) >= 0.0
    assert float(out.max()) <= 1.0


def _outcome(frame: ImageFrame | StrokesFrame) -> str:
    try:
        _check_result(preprocess(frame), 7 if isinstance(frame, StrokesFrame) else 1)
    except errors.MnistLiveError as exc:
        _check_error(exc, IMAGE_CODES | STROKE_CODES)
        return exc.code
    return "ok"


# ----------------------------------------------------------------------------------- one kind, one code

DATA = b"data:image/png;base64,"
IMAGE_CASES: dict[str, tuple[bytes | str, str]] = {
    "not base64": ("!!!not base64!!!", "invalid_base64"),
    "one base64 character": ("A", "invalid_base64"),
    "padding in the middle": (PNG_B64[:8] + "==" + PNG_B64[8:], "invalid_base64"),
    "non-ASCII text": ("ÿØÿ" * 8, "invalid_base64"),
    "data URL without base64": ("data:image/png," + PNG_B64, "invalid_base64"),
    "data URL without comma": ("data:image/png;base64" + PNG_B64, "invalid_base64"),
    "empty bytes": (b"", "empty_image"),
    "empty text": ("", "empty_image"),
    "whitespace text": (" \r\n\t ", "empty_image"),
    "empty data URL": ("data:image/png;base64,", "empty_image"),
    "text bytes": (b"hello, this is not an image at all", "not_an_image"),
    "text as base64": (base64.b64encode(b"just some text, no pixels").decode(), "not_an_image"),
    "data URL of text/plain": ("data:text/plain;base64," + PNG_B64, "not_an_image"),
    "data URL of application/pdf": ("data:application/pdf;base64," + PNG_B64, "not_an_image"),
    "TIFF": (encode(_digit(), "TIFF"), "not_an_image"),
    "ICO": (encode(_digit(32), "ICO"), "not_an_image"),
    "RIFF WAVE": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32), "not_an_image"),
    "zero width PNG": (png_with_header(0, 10), "invalid_image"),
    "zero height PNG": (png_with_header(10, 0), "invalid_image"),
    "PNG bit depth 3": (png_with_header(10, 10, bit_depth=3), "invalid_image"),
    "PNG colour type 5": (png_with_header(10, 10, colour_type=5), "invalid_image"),
    "PNG corrupt IDAT": (png_with_header(10, 10, idat=b"\x78\x9c" + b"\xff" * 30), "invalid_image"),
    "PNG cut in the signature": (PNG[:6], "truncated_image"),
    "PNG cut in IHDR": (PNG[:20], "truncated_image"),
    "PNG cut before IDAT": (PNG[:33], "truncated_image"),
    "PNG cut in IDAT": (PNG[: len(PNG) // 2], "truncated_image"),
    "JPEG cut in the header": (SEEDS[3][:100], "truncated_image"),
    "JPEG cut in the scan": (SEEDS[3][: len(SEEDS[3]) - 200], "truncated_image"),
    "GIF cut": (SEEDS[5][: len(SEEDS[5]) // 2], "truncated_image"),
    "BMP cut": (SEEDS[6][: len(SEEDS[6]) // 2], "truncated_image"),
    "WebP cut": (SEEDS[7][: len(SEEDS[7]) // 2], "truncated_image"),
    "truncated PNG as data URL": (
        "data:image/png;base64," + base64.b64encode(PNG[:60]).decode(),
        "truncated_image",
    ),
    "12000 x 12000 PNG": (png_with_header(12000, 12000), "image_too_large"),
    "4097 x 4096 PNG": (png_with_header(4097, 4096), "image_too_large"),
    "1 x 2**31-1 PNG": (png_with_header(1, 2**31 - 1), "image_too_large"),
    "bytes over 1 MiB": (PNG + bytes(1 << 20), "payload_too_large"),
    "base64 over 1 MiB": (base64.b64encode(PNG + bytes(1 << 20)).decode(), "payload_too_large"),
    "huge text": ("A" * (4 << 20), "payload_too_large"),
}


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_each_malformed_image_has_its_own_code(name: str) -> None:
    data, code = IMAGE_CASES[name]
    with pytest.raises(errors.ClientError) as info:
        preprocess(ImageFrame(data))
    assert info.value.code == code
    _check_error(info.value, {code}, data)


def test_decoded_size_limit_is_exact() -> None:
    limits = Limits(max_encoded_bytes=1000)
    assert len(decode_base64(base64.b64encode(bytes(1000)).decode(), limits)) == 1000
    with pytest.raises(errors.PayloadTooLarge):
        decode_base64(base64.b64encode(bytes(1001)).decode(), limits)
    with pytest.raises(errors.PayloadTooLarge):
        decode_image(bytes(1001), limits)


def test_decode_base64_forms() -> None:
    assert decode_base64(PNG_B64) == PNG
    assert decode_base64("data:image/png;base64," + PNG_B64) == PNG
    assert decode_base64("DATA:Image/PNG;BASE64," + PNG_B64) == PNG
    assert decode_base64("data:image/png;charset=x;base64," + PNG_B64) == PNG
    wrapped = "\n".join(PNG_B64[i : i + 76] for i in range(0, len(PNG_B64), 76))
    assert decode_base64("data:image/png;base64,\r\n" + wrapped + "\n") == PNG
    assert decode_base64(PNG_B64.rstrip("=")) == PNG
    assert decode_base64(base64.urlsafe_b64encode(PNG).decode()) == PNG


GOOD = [[[10, 10], [200, 250]]]
STROKE_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "strokes not a list": ({"strokes": "abc"}, "invalid_strokes"),
    "strokes a dict": ({"strokes": {"a": 1}}, "invalid_strokes"),
    "strokes None": ({"strokes": None}, "invalid_strokes"),
    "stroke not a list": ({"strokes": [5]}, "invalid_strokes"),
    "point not a list": ({"strokes": [[5, 6]]}, "invalid_strokes"),
    "point of strings": ({"strokes": [[["1", "2"]]]}, "invalid_strokes"),
    "point with null": ({"strokes": [[[None, 2], [3, 4]]]}, "invalid_strokes"),
    "point with one value": ({"strokes": [[[1]]]}, "invalid_strokes"),
    "point with four values": ({"strokes": [[[1, 2, 3, 4]]]}, "invalid_strokes"),
    "ragged points": ({"strokes": [[[1, 2], [3]]]}, "invalid_strokes"),
    "nested points": ({"strokes": [[[[1, 2]], [[3, 4]]]]}, "invalid_strokes"),
    "point is a dict": ({"strokes": [[{"x": 1, "y": 2}]]}, "invalid_strokes"),
    "NaN": ({"strokes": [[[math.nan, 2], [3, 4]]]}, "invalid_strokes"),
    "infinity": ({"strokes": [[[math.inf, 2], [3, 4]]]}, "invalid_strokes"),
    "coordinate 1e7": ({"strokes": [[[1e7, 2], [3, 4]]]}, "invalid_strokes"),
    "integer 10**30": ({"strokes": [[[10**30, 2], [3, 4]]]}, "invalid_strokes"),
    "all booleans": ({"strokes": [[[True, False], [False, True]]]}, "invalid_strokes"),
    "a boolean among ints": ({"strokes": [[[True, 200], [1, 1]]]}, "invalid_strokes"),
    "a boolean among floats": ({"strokes": [[[1.5, 200.0], [False, 1.0]]]}, "invalid_strokes"),
    "a boolean timestamp": ({"strokes": [[[1, 200, True], [1, 1, 0]]]}, "invalid_strokes"),
    "65 strokes": ({"strokes": [[[1, 2], [3, 4]]] * 65}, "invalid_strokes"),
    "4097 points": ({"strokes": [[[1, 2]] * 4097]}, "invalid_strokes"),
    "4097 points over strokes": ({"strokes": [[[1, 2]] * 2000, [[3, 4]] * 2097]}, "invalid_strokes"),
    "width a string": ({"width": "280"}, "invalid_field_type"),
    "width null": ({"width": None}, "invalid_field_type"),
    "width a boolean": ({"width": True}, "invalid_field_type"),
    "width zero": ({"width": 0}, "invalid_field_type"),
    "height negative": ({"height": -280}, "invalid_field_type"),
    "height NaN": ({"height": math.nan}, "invalid_field_type"),
    "height infinite": ({"height": math.inf}, "invalid_field_type"),
    "width 10**400": ({"width": 10**400}, "invalid_field_type"),
    "width 1e7": ({"width": 1e7}, "invalid_field_type"),
    "stroke_width zero": ({"stroke_width": 0}, "invalid_field_type"),
    "stroke_width a list": ({"stroke_width": [16]}, "invalid_field_type"),
}


@pytest.mark.parametrize("name", sorted(STROKE_CASES))
def test_each_malformed_stroke_frame_has_its_own_code(name: str) -> None:
    fields, code = STROKE_CASES[name]
    frame = StrokesFrame(**{"strokes": GOOD, "width": 280, "height": 280, **fields})
    with pytest.raises(errors.ClientError) as info:
        preprocess(frame)
    assert info.value.code == code
    _check_error(info.value, {code})


def test_points_may_carry_a_timestamp() -> None:
    a = preprocess(StrokesFrame([[[10, 10, 0], [200, 250, 16.7]]], 280, 280))
    b = preprocess(StrokesFrame(GOOD, 280, 280))
    assert a is not None
    assert b is not None
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("stamp", [float("nan"), float("inf"), 10**400], ids=["nan", "inf", "huge"])
def test_a_timestamp_that_is_not_a_finite_number_is_refused(stamp: float) -> None:
    """The same rule on both validation paths: a huge integer takes the stroke-by-stroke one."""
    with pytest.raises(errors.InvalidStrokes):
        preprocess(StrokesFrame([[[60, 60, stamp], [220, 60, 1], [120, 240, 2]]], 280, 280))


# ------------------------------------------------------------------------------------------------ fuzz
# Examples come from a seeded ``random.Random`` (one hypothesis draw each): generation stays cheap, so
# 2,000 examples per entry point fit the CI budget; hypothesis still replays and reports the seed.


def _template(node: ast.expr) -> str | None:
    """Regex for an error message literal; f-string fields may only be numbers (never input text)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = [
            re.escape(v.value) if isinstance(v, ast.Constant) else r"(?:width|height|stroke_width|[-+0-9.e]+)"
            for v in node.values
        ]
        return "".join(parts)
    return None


def _message_patterns() -> re.Pattern[str]:
    found = set()
    nodes = (
        node
        for module in (preprocess_module, stroke_input_module, decode_module)
        for node in ast.walk(ast.parse(Path(module.__file__).read_text(encoding="utf-8")))
    )
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            base = node.func.value
            if isinstance(base, ast.Name) and base.id == "errors":
                pattern = _template(node.args[0])
                if pattern:
                    found.add(pattern)
    return re.compile("|".join(f"(?:{p})" for p in sorted(found)))


MESSAGES = _message_patterns()


def _check_fuzz_error(exc: errors.MnistLiveError, allowed: set[str]) -> None:
    _check_error(exc, allowed)
    assert MESSAGES.fullmatch(exc.message), exc.message  # a fixed sentence: nothing submitted echoed


def _mutate(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(SEEDS))
    for _ in range(rng.randint(0, 4)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.randrange(5)
        if op == 0:
            del data[i:]
        elif op == 1:
            data[i] ^= rng.randint(1, 255)
        elif op == 2:
            data[i:i] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:
            del data[i : i + rng.randint(1, 64)]
        else:
            data[i:i] = data[i : i + rng.randint(1, 64)]
    return bytes(data)


def _image_bytes(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 256))
    if kind == 1:
        return rng.choice(SEEDS)[: rng.randint(0, 40)] + rng.randbytes(rng.randint(0, 64))
    return _mutate(rng)


B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n\r\t:;,"
PREFIXES = [
    "",
    "",
    "data:image/png;base64,",
    "data:image/jpeg;base64,",
    "data:;base64,",
    "DATA:IMAGE/PNG;BASE64,",
    "data:text/html;base64,",
    "data:image/png,",
    "data:image/png;base64",
    "data:",
]


def _image_text(rng: random.Random) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        return (
            "".join(
                chr(rng.choice([rng.randint(0, 127), rng.randint(0, 0x10FFFF)]))
                for _ in range(rng.randint(0, 64))
            )
            .encode("utf-8", "replace")
            .decode("utf-8", "replace")
        )
    if kind == 1:
        return rng.choice(PREFIXES) + "".join(rng.choice(B64_ALPHABET) for _ in range(rng.randint(0, 128)))
    raw = _image_bytes(rng)
    text = (base64.urlsafe_b64encode if rng.random() < 0.2 else base64.b64encode)(raw).decode()
    if rng.random() < 0.3:
        text = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    if rng.random() < 0.3:
        text = text.rstrip("=")
    text = rng.choice(PREFIXES) + text
    if kind == 5 and text:
        i = rng.randrange(len(text))
        text = text[:i] + rng.choice(["", "!", "é", " ", "=", "\x00", "data:"]) + text[i + 1 :]
    return text


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            True,
            False,
            rng.randint(-(2**70), 2**70),
            rng.randint(-50, 330),
            rng.uniform(-50, 330),
            rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, 5e-324, 1e308, 1e6, 1e6 + 1]),
            "".join(rng.choice("ab1. ") for _ in range(rng.randint(0, 3))),
        ]
    )


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(4 if depth < 4 else 1)
    if kind <= 1:
        return _scalar(rng)
    if kind == 2:
        return [_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice("xyab"): _json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def _coordinate(rng: random.Random) -> Any:
    return rng.uniform(-50, 330) if rng.random() < 0.8 else _scalar(rng)


def _strokes(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind == 0:
        return _json(rng)
    if kind == 1:  # well-formed, random digits-ish scribbles, sometimes with timestamps
        width = rng.choice([2, 3])
        return [
            [[rng.uniform(0, 280) for _ in range(width)] for _ in range(rng.randint(0, 40))]
            for _ in range(rng.randint(0, 4))
        ]
    if kind == 2:  # tiny or degenerate geometry
        x, y = rng.uniform(-20, 300), rng.uniform(-20, 300)
        return [
            [
                [x + rng.uniform(-4, 4), y + rng.choice([0, rng.uniform(-4, 4)])]
                for _ in range(rng.randint(1, 5))
            ]
        ]
    return [
        [
            [_coordinate(rng) for _ in range(rng.choice([2, 2, 2, 1, 3, 4]))]
            if rng.random() < 0.95
            else _json(rng)
            for _ in range(rng.randint(0, 12))
        ]
        if rng.random() < 0.95
        else _json(rng)
        for _ in range(rng.randint(0, 4))
    ]


def _size(rng: random.Random) -> Any:
    return rng.choice([280, 280.0, 1.5, 2048, rng.uniform(1, 5000), _scalar(rng)])


def seeded(fn: Callable[[random.Random], Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 2**64 - 1).map(lambda seed: fn(random.Random(seed)))


@FUZZ
@given(data=st.one_of(seeded(_image_bytes), st.binary(max_size=64)))
def test_fuzz_preprocess_image_bytes(data: bytes) -> None:
    try:
        _check_result(preprocess(ImageFrame(data)))
    except errors.MnistLiveError as exc:
        _check_fuzz_error(exc, IMAGE_CODES - {"invalid_base64"})


@FUZZ
@given(text=st.one_of(seeded(_image_text), st.text(max_size=32)))
def test_fuzz_preprocess_base64_text(text: str) -> None:
    try:
        _check_result(preprocess(ImageFrame(text)))
    except errors.MnistLiveError as exc:
        _check_fuzz_error(exc, IMAGE_CODES)


@FUZZ
@given(text=st.one_of(seeded(_image_text), st.text(max_size=32)))
def test_fuzz_decode_base64(text: str) -> None:
    try:
        raw = decode_base64(text, Limits(max_encoded_bytes=1024))
    except errors.MnistLiveError as exc:
        _check_fuzz_error(exc, {"invalid_base64", "not_an_image", "payload_too_large"})
    else:
        assert isinstance(raw, bytes)
        assert len(raw) <= 1024


@FUZZ
@given(
    frame=seeded(
        lambda rng: StrokesFrame(_strokes(rng), _size(rng), _size(rng), rng.choice([None, _size(rng)]))
    )
)
def test_fuzz_preprocess_strokes(frame: StrokesFrame) -> None:
    try:
        _check_result(preprocess(frame), 7)
    except errors.MnistLiveError as exc:
        _check_fuzz_error(exc, STROKE_CODES)


def test_sliver_at_canvas_edge_does_not_overflow() -> None:
    r = 5e-4
    assert rasterize_strokes([[[-100, 100], [-r + 1e-19, 200]]], 280, 280, 2 * r) is None


def test_every_error_code_is_in_the_protocols_table() -> None:
    """docs/protocol.md lists every code a client can receive, with its HTTP status."""
    from shared.settings import REPO_ROOT

    text = (REPO_ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    classes = [errors.MnistLiveError, *_subclasses(errors.MnistLiveError)]
    missing = [
        c.code
        for c in classes
        if not any(f"`{c.code}`" in row and str(c.http_status) in row.split("|")[2] for row in rows)
    ]
    assert missing == []


def _subclasses(cls: type) -> list[type]:
    return [s for c in cls.__subclasses__() for s in (c, *_subclasses(c))]
