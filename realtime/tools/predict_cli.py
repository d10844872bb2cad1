"""``mnist-live predict FILE``: classify one image or one recorded ink and print the top-3 digits.

``FILE`` is an image (PNG, JPEG, WebP, GIF, BMP; any polarity) or a JSON Lines ink recording (``.jsonl``
or ``.jsonl.gz``, like ``../shared/data/pen``; the first ink, or ``--index i``). Inks are drawn centred
on the page's 280 x 280 canvas with its 16 px pen. By default the model runs in this process
(``MNIST_LIVE_MODEL_PATH``); with ``--url`` the file is sent to a server's ``POST /predict``.

``--number`` reads the file as a number (number mode, ``docs/protocol.md``): an image as it is; inks
``--index i,j,k`` written side by side, 150 px high on a 280 px high canvas
(:func:`shared.compose.side_by_side`).

Output: one line per digit, most probable first (``--json``: one JSON object); in number mode the
number, then one line per character. Errors are one line on stderr and exit code 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from realtime.tools import argtypes
from shared.canvas import CANVAS_PX, PEN_WIDTH_PX
from shared.inks import Strokes, fit_to_canvas, load_inks

INK_BOX = 200.0
"""Longer side of an ink drawn on the canvas, px (centred, like a person writing in the middle)."""


class PredictFailed(Exception):
    """A failure to report as one line (``message``) with exit code 1."""


def is_ink_file(path: Path) -> bool:
    """True for JSON Lines recordings (``.jsonl``, ``.jsonl.gz``, ``.ndjson``)."""
    name = path.name.lower()
    return name.endswith((".jsonl", ".jsonl.gz", ".ndjson"))


def ink_strokes(path: Path, index: int) -> tuple[Strokes, int]:
    """Read ink ``index`` of a recording and centre it on the canvas.

    Args:
        path: The ``.jsonl`` / ``.jsonl.gz`` file.
        index: 0-based position of the ink in the file.

    Returns:
        ``(strokes, label)``: canvas px (y down, 280 x 280 canvas) and the recorded digit.

    Raises:
        PredictFailed: unreadable file, malformed line, or no ink at ``index``.
    """
    try:
        inks = load_inks(path, limit=index + 1)
    except OSError as exc:
        raise PredictFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise PredictFailed(f"{path} is not an ink recording: {exc}") from exc
    if index >= len(inks):
        raise PredictFailed(f"{path} has {len(inks)} ink(s); there is no index {index}")
    ink = inks[index]
    margin = (CANVAS_PX - INK_BOX) / 2
    try:
        strokes = fit_to_canvas(ink, INK_BOX, margin, margin)
    except (ValueError, TypeError, IndexError) as exc:
        raise PredictFailed(f"{path}: ink {index} has malformed strokes") from exc
    # fit_to_canvas puts the bounding box's top-left at the margin; centre the shorter side too.
    xs = [p[0] for s in strokes for p in s]
    ys = [p[1] for s in strokes for p in s]
    dx = (CANVAS_PX - (max(xs) + min(xs))) / 2
    dy = (CANVAS_PX - (max(ys) + min(ys))) / 2
    centred = [[[round(x + dx, 2), round(y + dy, 2)] for x, y, *_ in s] for s in strokes]
    return centred, ink.label


def number_strokes(path: Path, indices: list[int]) -> tuple[Strokes, str, int]:
    """Read inks ``indices`` of a recording and write them side by side as a number.

    Returns:
        ``(strokes, labels, width)``: canvas px (y down, 280 px high), the recorded digits, canvas width.

    Raises:
        PredictFailed: unreadable file, malformed line, or no ink at an index.
    """
    from shared.compose import side_by_side

    try:
        inks = load_inks(path, limit=max(indices) + 1)
    except OSError as exc:
        raise PredictFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise PredictFailed(f"{path} is not an ink recording: {exc}") from exc
    if max(indices) >= len(inks):
        raise PredictFailed(f"{path} has {len(inks)} ink(s); there is no index {max(indices)}")
    try:
        number = side_by_side([inks[i] for i in indices])
    except (ValueError, TypeError, IndexError) as exc:
        raise PredictFailed(f"{path}: an ink has malformed strokes") from exc
    return number.strokes, number.text, number.width


def predict_local(body: bytes | Strokes, number: bool = False, width: int = CANVAS_PX) -> dict[str, Any]:
    """Classify in this process with the configured model.

    Args:
        body: Encoded image bytes, or strokes on the canvas (px, y down, 280 px high).
        number: Read it as a number (number mode).
        width: Canvas width of strokes, px.

    Returns:
        ``{"status", "digit", "probabilities", "confidence", "not_a_digit_score"}`` (number mode: also
        ``number`` and ``digits``).

    Raises:
        PredictFailed: the model cannot be loaded or the input is rejected.
    """
    import dataclasses

    from shared import errors
    from shared.inference import Predictor
    from shared.number import as_number, read_number
    from shared.preprocess import ImageFrame, StrokesFrame
    from shared.settings import Settings

    settings = Settings()
    try:
        predictor = Predictor.of(settings)
        frame = (
            ImageFrame(body)
            if isinstance(body, bytes)
            else StrokesFrame(body, width, CANVAS_PX, PEN_WIDTH_PX)
        )
        if number:
            return dataclasses.asdict(read_number(predictor, as_number(frame), settings.limits))
        prediction = predictor.predict([frame], settings.limits)[0]
    except errors.MnistLiveError as exc:
        raise PredictFailed(f"{exc.code}: {exc.message}") from exc
    return dataclasses.asdict(prediction)


def predict_remote(
    url: str,
    body: bytes | Strokes,
    name: str,
    token: str | None,
    timeout: float,
    *,
    number: bool = False,
    width: int = CANVAS_PX,
) -> Any:
    """Send to a server's ``POST /predict`` (image as a multipart upload, strokes as JSON).

    Args:
        url: Server base URL or the full ``.../predict`` URL.
        body: Encoded image bytes, or strokes on the canvas (280 px high).
        name: File name for the upload.
        token: Bearer token, if the server requires one.
        timeout: Seconds to wait for the answer.
        number: Ask in number mode (``?mode=number`` for an upload, ``"mode": "number"`` in JSON).
        width: Canvas width of strokes, px.

    Returns:
        The server's JSON answer.

    Raises:
        PredictFailed: connection failure, timeout or an error answer.
    """
    import httpx

    from realtime.tools.replay import predict_endpoint

    endpoint = predict_endpoint(url)
    mode = {"mode": "number"} if number else {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        if isinstance(body, bytes):
            response = httpx.post(
                endpoint, files={"file": (name, body)}, params=mode, headers=headers, timeout=timeout
            )
        else:
            payload = {
                "strokes": body,
                "width": width,
                "height": CANVAS_PX,
                "stroke_width": PEN_WIDTH_PX,
                **mode,
            }
            response = httpx.post(endpoint, json=payload, headers=headers, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise PredictFailed(f"{endpoint} did not answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, httpx.ConnectError):
            reason = "connection refused" if "refused" in reason.lower() else reason
        raise PredictFailed(f"cannot connect to {endpoint}: {reason}") from exc
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200:
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            detail = f"{err.get('code')}: {err.get('message')}"
        else:
            detail = response.reason_phrase
        raise PredictFailed(f"server answered {response.status_code} ({detail})")
    if not isinstance(data, dict) or "status" not in data:
        raise PredictFailed(f"{endpoint} did not answer with a prediction")
    return data


def top3(probabilities: list[float] | None) -> list[dict[str, float | int]]:
    """The three most probable digits as ``[{"digit", "probability"}]``, most probable first."""
    if not probabilities:
        return []
    order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])[:3]
    return [{"digit": i, "probability": float(probabilities[i])} for i in order]


def format_text(name: str, result: dict[str, Any], label: int | None) -> str:
    """Human-readable answer: a header line, then the top-3 digits with probabilities and bars."""
    lines = []
    suffix = "" if label is None else f" (recorded label {label})"
    if not result.get("probabilities"):
        return f"{name}: blank canvas, no digit{suffix}"
    if result.get("status") == "not_a_digit":
        score = float(result.get("not_a_digit_score") or 0.0)
        lines.append(f"{name}: not a digit ({score * 100:.1f} % sure){suffix}; closest digits:")
    else:
        lines.append(f"{name}: {result['digit']}{suffix}")
    for rank, item in enumerate(top3(result["probabilities"]), start=1):
        p = float(item["probability"])
        bar = "█" * round(p * 30)
        pct = f"{p * 100:6.2f}" if p >= 0.00005 else " <0.01"
        lines.append(f"  {rank}. {item['digit']}  {pct} %  {bar}".rstrip())
    return "\n".join(lines)


def format_number(name: str, result: dict[str, Any], labels: str | None) -> str:
    """Human-readable number-mode answer: the number, then each character's reading."""
    suffix = "" if labels is None else f" (recorded digits {labels})"
    digits = result.get("digits") or []
    if result.get("status") != "ok" or not digits:
        return f"{name}: blank canvas, no number{suffix}"
    lines = [f"{name}: {result.get('number') or 'not a number'}{suffix}"]
    for k, d in enumerate(digits, start=1):
        where = "" if d.get("strokes") is None else f"  strokes {d['strokes']}"
        x0, y0, x1, y1 = d["bbox"]
        reading = (
            f"{d['digit']}  {100 * d['confidence']:6.2f} %" if d.get("status") == "ok" else "not a digit"
        )
        lines.append(f"  {k}. {reading}  box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}){where}")
    return "\n".join(lines)


def add_command(sub: Any) -> None:
    """Register ``predict``."""
    p = sub.add_parser(
        "predict",
        help="classify an image or a recorded ink and print the top-3 digits",
        description="Classify one image or one recorded ink and print the top-3 digits.",
        epilog="Exit codes: 0 printed a prediction, 1 error (one line on stderr), 2 usage.",
    )
    p.add_argument("file", type=Path, help="image (PNG/JPEG/WebP/GIF/BMP) or .jsonl ink recording")
    p.add_argument(
        "--index",
        default="0",
        help="which ink of a .jsonl file, 0-based (default 0); with --number, several: 3,17,42",
    )
    p.add_argument("--number", action="store_true", help="read it as a number (number mode)")
    p.add_argument(
        "--url",
        type=argtypes.http_url,
        default=None,
        help="server to ask (http://host:port); default: in-process",
    )
    p.add_argument("--token", default=None, help="Bearer token for --url")
    p.add_argument(
        "--timeout", type=argtypes.positive_float, default=10.0, help="seconds to wait for --url (default 10)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        indices = _indices(args.index, args.number)
        label: int | str | None = None
        body: bytes | Strokes
        width = CANVAS_PX
        if is_ink_file(path) and args.number:
            body, label, width = number_strokes(path, indices)
        elif is_ink_file(path):
            body, label = ink_strokes(path, indices[0])
        else:
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise PredictFailed(f"cannot read {path}: {exc.strerror or exc}") from exc
        if args.url:
            result = predict_remote(
                args.url, body, path.name, args.token, args.timeout, number=args.number, width=width
            )
        else:
            result = predict_local(body, args.number, width)
    except PredictFailed as exc:
        print(f"mnist-live predict: error: {exc}", file=sys.stderr)
        return 1
    if args.number:
        labels = label if isinstance(label, str) else None
        if not args.json:
            print(format_number(path.name, result, labels))
            return 0
        keys = ("status", "number", "digits")
        extra = {} if labels is None else {"index": indices, "labels": labels}
        print(json.dumps({"file": str(path), "mode": "number", **{k: result.get(k) for k in keys}, **extra}))
        return 0
    if args.json:
        out: dict[str, Any] = {
            "file": str(path),
            "status": result.get("status"),
            "digit": result.get("digit"),
            "confidence": result.get("confidence"),
            "not_a_digit_score": result.get("not_a_digit_score"),
            "top_k": top3(result.get("probabilities")),
            "probabilities": result.get("probabilities"),
        }
        if label is not None:
            out["index"] = indices[0]
            out["label"] = label
        print(json.dumps(out))
    else:
        print(format_text(path.name, result, label if isinstance(label, int) else None))
    return 0


def _indices(text: str, number: bool) -> list[int]:
    """``--index``: one index, or with ``--number`` a comma-separated list; each >= 0."""
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise PredictFailed(
            "--index must be an integer (with --number: integers separated by commas)"
        ) from None
    if len(indices) > 1 and not number:
        raise PredictFailed("several --index values need --number")
    if min(indices) < 0:
        raise PredictFailed("--index must be >= 0")
    return indices
