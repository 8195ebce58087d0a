# Copyright 2026 The beyondgloss authors. MIT license.
"""The bounds of `beyondgloss serve` (`beyondgloss.app`): what one visitor, one request and all uploads together may
take, and what the page may say about the server.

- [`ServeArguments`] holds the command's settings, these bounds among them, each checked.
- [`UploadLedger`] knows the uploads this server holds: their bytes against `--max_upload_disk_mb`, how many
  requests still need each, and deletes each one when the last request that needs it ends (an upload nobody asks
  for is deleted after `UNUSED_UPLOAD_SECONDS`). The checkpoint's example clips are never in it, so never deleted.
- [`LimitsMiddleware`] (an ASGI middleware around Gradio's FastAPI app) turns away, before Gradio reads a byte of
  the body: a client over `--max_requests_per_minute`, an upload over `--max_upload_mb`, one beyond
  `--max_concurrent_uploads` or that would take the uploads over `--max_upload_disk_mb`, and any other request whose
  body is larger than the sentences allowed (`--max_candidate_chars`) could make it.
- [`check_candidates`] bounds the sentences of one retrieval request (`--max_candidates`, `--max_candidate_chars`).
- [`public_model_name`] and [`one_line`] keep server paths out of the page; [`image_html`] sends an image inside the
  page, so that no output is written to disk.

`docs/serve_limits.md` says how each cap holds, what the caps leave open, and the server's memory measured under
load (`scripts/serve_load.py`).
"""

import json
import math
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .app_live import LiveSessions, LiveSettings, is_frame_path, live_routes

__all__ = [
    "LimitsMiddleware",
    "ServeArguments",
    "UNUSED_UPLOAD_SECONDS",
    "UploadLedger",
    "check_candidates",
    "image_html",
    "public_model_name",
    "one_line",
    "request_body_limit",
    "start",
]

# An upload that no request has used after this long (a visitor who closed the page) is deleted.
UNUSED_UPLOAD_SECONDS = 600
# A multipart upload carries its file and a few hundred bytes of boundaries and headers (the file name among them).
MULTIPART_OVERHEAD = 64 * 2**10
# A JSON request carries each character of the sentences in at most 12 bytes (an astral character as two escaped
# UTF-16 halves, `\ud83d\ude00`), plus the request's other fields (the video's path, the session).
JSON_BYTES_PER_CHAR, JSON_OVERHEAD = 12, 64 * 2**10
# A parenthesised detail that names an absolute path (torchcodec's source file, a library's location), and any other
# absolute path: the page shows neither.
_DETAIL_WITH_PATH = re.compile(r"\s*\([^()]*(?:^|[\s,(:=])/[^\s()]*[^()]*\)")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])(?:/[^\s/:,;()'\"]+)+/?")


@dataclass
class ServeArguments:
    """`beyondgloss serve`: a web page that translates sign videos with a checkpoint and shows what it saw."""

    model: str = field(metadata={"help": "A beyondgloss checkpoint: a saved folder or a Hub model id."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on (0.0.0.0: every interface)."})
    port: int = field(default=7860, metadata={"help": "Port to listen on (0: a free one)."})
    num_beams: int | None = field(default=None, metadata={"help": "Beam width (default: the model's)."})
    num_alternatives: int = field(
        default=3, metadata={"help": "Beam alternatives shown with their scores (at most the beam width)."}
    )
    max_new_tokens: int | None = field(default=None, metadata={"help": "Longest translation (default: the model's)."})
    max_upload_mb: float = field(default=50.0, metadata={"help": "Largest accepted video file, in megabytes."})
    max_duration_seconds: float = field(default=60.0, metadata={"help": "Longest accepted video, in seconds."})
    concurrency_limit: int = field(
        default=1, metadata={"help": "Videos analysed at once; further requests wait in the queue."}
    )
    max_queue_size: int = field(default=16, metadata={"help": "Requests that may wait; more are turned away."})
    max_candidates: int = field(default=20_000, metadata={
        "help": "Most sentences one retrieval request may compare with its video (pre-training checkpoints)."})
    max_candidate_chars: int = field(default=2_000_000, metadata={
        "help": "Most characters those sentences may hold together; it also bounds every request's body."})
    max_upload_disk_mb: float = field(default=500.0, metadata={
        "help": "Most megabytes all uploads held on disk may take together; uploads beyond are turned away "
                "until analysed ones are deleted."})
    max_concurrent_uploads: int = field(default=4, metadata={"help": "Uploads received at once; more are turned away."})
    max_requests_per_minute: int = field(default=60, metadata={
        "help": "Uploads and requests one client address may send in any minute (0: no limit)."})
    device: str = field(default="cpu", metadata={"help": "torch device, e.g. cpu or cuda:0."})
    live_fps: float = field(default=10.0, metadata={
        "help": "Live tab: frames a second the page sends (at most; the processor's fps when that is lower)."})
    live_window_seconds: float = field(default=4.0, metadata={"help": "Live tab: span translated at once."})
    live_stride_seconds: float = field(default=1.0, metadata={"help": "Live tab: how often a window is translated."})
    live_agreement: int = field(default=2, metadata={
        "help": "Live tab: consecutive windows that must agree on a caption before it is shown."})
    caption_confidence_threshold: float = field(default=-1.0, metadata={
        "help": "Live tab: captions whose confidence (mean log-probability per token) is below this are greyed "
                "(-1.0: a geometric-mean token probability of 0.37)."})
    max_live_sessions: int = field(default=2, metadata={
        "help": "Live tab: streams translated at once; more are turned away."})
    max_live_seconds: float = field(default=600.0, metadata={"help": "Live tab: the longest one stream may last."})
    inference_precision: str = field(default="auto", metadata={
        "help": "fp32, bf16, int8 (mBART's GEMMs; CPU), or auto: what this machine runs fastest while the quality "
                "guard holds (model.set_inference_precision).", "choices": ["fp32", "bf16", "int8", "auto"]})

    def __post_init__(self):
        for name in ("num_alternatives", "concurrency_limit", "max_queue_size", "num_beams", "max_new_tokens",
                     "max_candidates", "max_candidate_chars", "max_concurrent_uploads", "live_agreement",
                     "max_live_sessions"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} {value}: must be a positive integer (1 or more)")
        for name in ("max_upload_mb", "max_duration_seconds", "live_fps", "live_window_seconds", "live_stride_seconds",
                     "max_live_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} {getattr(self, name)}: must be a positive number")
        if not self.max_upload_disk_mb >= self.max_upload_mb:
            raise ValueError(f"--max_upload_disk_mb {self.max_upload_disk_mb:g}: must be at least --max_upload_mb "
                             f"({self.max_upload_mb:g}), or no upload would fit")
        if self.max_requests_per_minute < 0:
            raise ValueError(f"--max_requests_per_minute {self.max_requests_per_minute}: must be 0 (no limit) or "
                             "more")
        if self.live_stride_seconds > self.live_window_seconds:
            raise ValueError(f"--live_stride_seconds {self.live_stride_seconds:g}: must be at most "
                             f"--live_window_seconds ({self.live_window_seconds:g}), or frames between windows "
                             "would never be translated")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port {self.port}: must be between 0 (a free port) and 65535")


def public_model_name(model: str) -> str:
    """What the page calls the checkpoint: a folder's name (never its path on the server), or the Hub id."""
    path = Path(model).expanduser()
    return path.resolve().name if path.is_dir() else model


def one_line(message: str, *names: tuple[str, str]) -> str:
    """`message`'s first line with each `(path, name)` of `names` given as its name, parenthesised details that name
    a path dropped, and any other absolute path given as its last component."""
    text = (str(message).strip().splitlines() or [""])[0]
    for path, name in names:
        text = text.replace(path, name)
    text = _DETAIL_WITH_PATH.sub("", text)
    return _ABSOLUTE_PATH.sub(lambda match: Path(match.group(0)).name or "/", text).strip()


def image_html(image, alt: str) -> str:
    """A uint8 `(H, W, 3)` image as an `<img>` holding its PNG: it goes to the page with the answer, not to disk."""
    import base64
    import io

    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    return (f'<img alt="{alt}" style="max-width: 100%; image-rendering: pixelated" '
            f'src="data:image/png;base64,{base64.b64encode(png.getvalue()).decode()}">')


def check_candidates(sentences: list[str], max_count: int, max_chars: int) -> str | None:
    """Why the sentences of one retrieval request are too many or too long, or `None` when they are within bounds."""
    if len(sentences) > max_count:
        return (f"{len(sentences):,} sentences given; this app compares a video with at most {max_count:,} at once. "
                "Remove some and try again.")
    chars = sum(len(sentence) for sentence in sentences)
    if chars > max_chars:
        return (f"The sentences hold {chars:,} characters; this app takes at most {max_chars:,} per request. "
                "Shorten or remove some and try again.")
    return None


def request_body_limit(max_candidate_chars: int) -> int:
    """The largest body of a request other than an upload: the allowed sentences in JSON, and the rest."""
    return JSON_BYTES_PER_CHAR * max_candidate_chars + JSON_OVERHEAD


class UploadLedger:
    """The uploads this server holds on disk, the requests that still need each, and the bytes still arriving.

    Thread-safe: the middleware records uploads in the event loop; requests end in Gradio's worker threads.

    Args:
        max_bytes (`int`): the uploads' bytes on disk (those stored and those arriving) never exceed this.
        forget (`set`, *optional*): a set to drop deleted paths from as well (Gradio's `Blocks.upload_file_set`,
            whose own clean-up would keep the path of a file already gone forever).
        unused_seconds (`float`, defaults to `UNUSED_UPLOAD_SECONDS`).
    """

    def __init__(self, max_bytes: int, forget: set | None = None, unused_seconds: float = UNUSED_UPLOAD_SECONDS):
        self.max_bytes = max_bytes
        self.unused_seconds = unused_seconds
        self._forget = forget if forget is not None else set()
        self._lock = threading.Lock()
        self._files = {}  # real path -> [bytes, requests that still need it, time of the last upload]
        self.arriving = 0

    def in_use(self) -> int:
        """Bytes on disk: the stored uploads and those still arriving (counted at their declared size)."""
        with self._lock:
            return self.arriving + sum(size for size, _, _ in self._files.values())

    def reserve(self, size: int) -> bool:
        """Counts `size` bytes as arriving when they fit under the cap (after deleting unused uploads); else False."""
        with self._lock:
            self._delete_unused()
            stored = sum(size for size, _, _ in self._files.values())
            if stored + self.arriving + size > self.max_bytes:
                return False
            self.arriving += size
            return True

    def settle(self, size: int, paths: list[str]):
        """An upload of `size` reserved bytes ended; `paths` are the files it stored (none when it failed)."""
        with self._lock:
            self.arriving -= size
            for path in paths:
                real = os.path.realpath(path)
                try:
                    stored = os.path.getsize(real)
                except OSError:  # Gradio still moving it from another file system: count what was declared
                    stored = size
                entry = self._files.setdefault(real, [stored, 0, 0.0])
                entry[1] += 1  # the same content uploaded twice is one file needed by two requests
                entry[2] = time.monotonic()

    def holds(self, path: str) -> bool:
        with self._lock:
            return os.path.realpath(path) in self._files

    def release(self, path: str):
        """A request that used `path` ended: the file is deleted once no other request needs it. A path that is not
        an upload (an example clip) is left alone."""
        with self._lock:
            real = os.path.realpath(path)
            entry = self._files.get(real)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] <= 0:
                self._delete(real, path)

    def delete_all(self):
        """Deletes every upload (the server stops)."""
        with self._lock:
            for real in list(self._files):
                self._delete(real)
            self.arriving = 0

    def _delete_unused(self):
        now = time.monotonic()
        for real, (_, _, uploaded) in list(self._files.items()):
            if now - uploaded > self.unused_seconds:
                self._delete(real)

    def _delete(self, real: str, *spellings: str):
        del self._files[real]
        for name in (real, *spellings):
            self._forget.discard(name)
        try:
            os.remove(real)
            os.rmdir(os.path.dirname(real))  # Gradio's folder for this upload (named by its content's hash)
        except OSError:  # already gone, or the folder holds another file
            pass


class LimitsMiddleware:
    """An ASGI middleware that turns requests away before Gradio reads them: too frequent (per client address),
    too large, too many uploads at once, or more upload bytes than the ledger's cap.

    Args:
        app: the ASGI app (Gradio's).
        ledger ([`UploadLedger`]).
        max_upload_bytes (`int`): the largest upload (its file).
        max_body_bytes (`int`): the largest body of any other POST.
        max_concurrent_uploads (`int`).
        max_requests_per_minute (`int`): POSTs per client address in any 60 s (0: no limit). The address is the
            connecting one; uvicorn gives the X-Forwarded-For one only from the proxies named in the
            environment variable `FORWARDED_ALLOW_IPS` (default: 127.0.0.1).
    """

    def __init__(self, app, ledger: UploadLedger, max_upload_bytes: int, max_body_bytes: int,
                 max_concurrent_uploads: int, max_requests_per_minute: int):
        self.app = app
        self.ledger = ledger
        self.max_upload_bytes = max_upload_bytes
        self.max_body_bytes = max_body_bytes
        self.max_concurrent_uploads = max_concurrent_uploads
        self.max_requests_per_minute = max_requests_per_minute
        self.uploading = 0
        self._recent = {}  # client address -> deque of the monotonic times of its POSTs in the last minute

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        refusal = self._rate_refusal(scope)
        if refusal is None:
            length = _content_length(scope)
            if scope["path"].endswith("/upload"):
                return await self._upload(scope, receive, send, length)
            refusal = _size_refusal(length, self.max_body_bytes, "request")
        if refusal is not None:
            return await _refuse(send, *refusal)
        return await self.app(scope, receive, send)

    def _rate_refusal(self, scope):
        # A live session's frames come several a second; the session bounds them (docs/serve_limits.md).
        if not self.max_requests_per_minute or is_frame_path(scope["path"]):
            return None
        now = time.monotonic()
        if len(self._recent) > 10_000:  # forget addresses idle for a minute (the table stays bounded)
            self._recent = {client: times for client, times in self._recent.items() if now - times[-1] < 60}
        times = self._recent.setdefault((scope.get("client") or ("unknown",))[0], deque())
        while times and now - times[0] >= 60:
            times.popleft()
        if len(times) >= self.max_requests_per_minute:
            wait = 60 - (now - times[0])
            return 429, (f"Too many requests from your address: this server takes {self.max_requests_per_minute} "
                         f"a minute. Try again in {wait:.0f} s."), {"retry-after": f"{math.ceil(wait)}"}
        times.append(now)
        return None

    async def _upload(self, scope, receive, send, length):
        refusal = _size_refusal(length, self.max_upload_bytes + MULTIPART_OVERHEAD, "upload",
                                shown_limit=self.max_upload_bytes)
        if refusal is None and self.uploading >= self.max_concurrent_uploads:
            refusal = 503, (f"The server is receiving {self.uploading} uploads already, its most at once. Try "
                            "again in a moment."), {"retry-after": "5"}
        if refusal is None and not self.ledger.reserve(length):
            refusal = 503, (f"The server holds {_mb(self.ledger.in_use())} of uploads and takes at most "
                            f"{_mb(self.ledger.max_bytes)}. Try again in a minute."), {"retry-after": "60"}
        if refusal is not None:
            return await _refuse(send, *refusal)
        self.uploading += 1
        response = {"status": None, "body": b"", "settled": False}

        def settle():
            if not response["settled"]:
                response["settled"] = True
                self.uploading -= 1
                self.ledger.settle(length, _stored_paths(response))

        async def record(message):
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
            elif message["type"] == "http.response.body":
                response["body"] += message.get("body", b"") if response["status"] == 200 else b""
                if not message.get("more_body", False):
                    settle()  # before the client has the paths, so that a request naming them finds them held
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            settle()


def _stored_paths(response: dict) -> list[str]:
    """The paths Gradio's upload route answered with (a JSON list), or none."""
    if response["status"] != 200:
        return []
    try:
        paths = json.loads(response["body"])
    except ValueError:
        return []
    return [path for path in paths if isinstance(path, str)] if isinstance(paths, list) else []


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _size_refusal(length: int | None, limit: int, what: str, shown_limit: int | None = None):
    # uvicorn reads exactly Content-Length bytes of a body, so the declared length bounds what Gradio reads.
    if length is None:
        return 411, f"This {what} has no Content-Length; send its length.", {}
    if length > limit:
        shown = shown_limit or limit
        return 413, f"This {what} is {_mb(length)}; this server takes at most {_mb(shown)}.", {}
    return None


def _mb(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


async def _refuse(send, status: int, message: str, headers: dict):
    body = message.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            *((name.encode(), value.encode()) for name, value in headers.items())]})
    await send({"type": "http.response.body", "body": body})


def start(app, arguments: ServeArguments, block: bool = True):
    """Serves `app` on the arguments' host and port within their bounds: its requests queued, and every upload and
    request passing [`LimitsMiddleware`] (rate, size, uploads at once, upload bytes on disk) first."""
    from starlette.middleware import Middleware  # a Gradio dependency

    from .utils.import_utils import require

    gr = require("gradio", "beyondgloss serve")
    app.queue(default_concurrency_limit=arguments.concurrency_limit, max_size=arguments.max_queue_size)
    app.upload_ledger.max_bytes = int(arguments.max_upload_disk_mb * 2**20)
    limits = Middleware(LimitsMiddleware, ledger=app.upload_ledger,
                        max_upload_bytes=int(arguments.max_upload_mb * 2**20),
                        max_body_bytes=request_body_limit(arguments.max_candidate_chars),
                        max_concurrent_uploads=arguments.max_concurrent_uploads,
                        max_requests_per_minute=arguments.max_requests_per_minute)
    # System fonts: the default theme fetches Google fonts, which an offline machine cannot reach.
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])
    routes = []
    if getattr(app, "live_analyser", None) is not None:  # the live tab of a translation checkpoint
        app.live_sessions = LiveSessions(app.live_analyser, _live_settings(app.live_analyser, arguments))
        routes = live_routes(app.live_sessions)
    app.launch(server_name=arguments.host, server_port=arguments.port or _free_port(arguments.host),
               max_file_size=int(arguments.max_upload_mb * 2**20), prevent_thread_lock=not block, show_error=False,
               quiet=not block, ssr_mode=False, theme=theme, footer_links=[],
               app_kwargs={"middleware": [limits], "routes": routes})
    return app


def _live_settings(analyser, arguments: ServeArguments) -> LiveSettings:
    """The live tab's settings: the flags, with frames no faster than the processor keeps (its `fps`)."""
    settings = LiveSettings.from_arguments(arguments)
    kept = getattr(analyser.video_processor, "fps", None)
    if kept:
        settings.fps = min(settings.fps, kept)
    return settings


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
