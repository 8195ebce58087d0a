# Copyright 2026 The beyondgloss authors. MIT license.
"""The live tab of `beyondgloss serve`: the browser's webcam in, captions under the picture (docs/streaming.md).

The page opens the camera (`getUserMedia`) and POSTs one JPEG frame at a time, at most `--live_fps` a second, to
`/live/<session>/frame?t=<seconds>`; the answer carries the captions confirmed since the last one the page has.
The server keeps one [`LiveSession`] per started tab: a background thread runs
[`~beyondgloss.streaming.StreamingTranslator`] over a bounded queue of the pushed frames. A frame that finds the queue
full (the model is behind) or that comes sooner than half a frame interval after the previous one is dropped and
counted; a session ends when the page stops it, when no frame came for `LIVE_IDLE_SECONDS`, or after
`--max_live_seconds`, and at most `--max_live_sessions` run at once. The bounds are listed in docs/serve_limits.md.
"""

import io
import logging
import math
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace

__all__ = ["LIVE_IDLE_SECONDS", "LiveSession", "LiveSessions", "LiveSettings", "decode_frame", "live_routes",
           "live_tab"]

logger = logging.getLogger(__name__)

# A session that received no frame for this long (the tab was closed or lost its connection) ends.
LIVE_IDLE_SECONDS = 15.0
# The frames the queue holds, in seconds of stream at --live_fps: a model that falls further behind drops frames.
LIVE_QUEUE_SECONDS = 2.0
# One frame's body, and its size once decoded: the page sends 320 px JPEGs of a few tens of kB.
LIVE_MAX_FRAME_BYTES = 2**20
LIVE_MAX_FRAME_PIXELS = 1920 * 1080
# How long a stop waits for the last window's translation before it answers without it.
LIVE_STOP_WAIT_SECONDS = 30.0
_FRAME_PATH = re.compile(r"/live/[^/]+/frame$")


@dataclass
class LiveSettings:
    """What a live session does (the `--live_*` flags of `beyondgloss serve`, [`~app_limits.ServeArguments`])."""

    fps: float = 10.0
    window_seconds: float = 4.0
    stride_seconds: float = 1.0
    agreement: int = 2
    confidence_threshold: float = -1.0
    max_sessions: int = 2
    max_seconds: float = 600.0
    idle_seconds: float = LIVE_IDLE_SECONDS

    @classmethod
    def from_arguments(cls, arguments) -> "LiveSettings":
        return cls(arguments.live_fps, arguments.live_window_seconds, arguments.live_stride_seconds,
                   arguments.live_agreement, arguments.caption_confidence_threshold, arguments.max_live_sessions,
                   arguments.max_live_seconds)

    @property
    def queue_frames(self) -> int:
        return max(1, math.ceil(LIVE_QUEUE_SECONDS * self.fps))


def is_frame_path(path: str) -> bool:
    """Whether a request path is a live frame's (the per-address request rate does not count those; see
    `LimitsMiddleware`)."""
    return _FRAME_PATH.search(path) is not None


def check_frame(data: bytes) -> str | None:
    """Why `data` is not a frame the live tab takes (not a JPEG, PNG or WebP image, or too large), or `None`. Reads
    the image's header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError):
        return "This frame is not an image; send JPEG, PNG or WebP frames."
    if image.format not in ("JPEG", "PNG", "WEBP"):
        return f"This frame is a {image.format} image; send JPEG, PNG or WebP frames."
    if image.width * image.height > LIVE_MAX_FRAME_PIXELS:
        return (f"This frame is {image.width} x {image.height} pixels; the live tab takes frames up to "
                f"{LIVE_MAX_FRAME_PIXELS:,} pixels.")
    return None


def decode_frame(data: bytes):
    """A checked image's pixels: uint8 RGB `(H, W, 3)`."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert("RGB"))  # a writable copy, as torch wants


class LiveSession:
    """One browser tab's stream: pushed frames go through a bounded queue to a thread that translates them.

    Args:
        translator (`StreamingTranslator`): the session's own (it holds no state between calls).
        settings ([`LiveSettings`]).

    Attributes:
        captions (`list[dict]`): the captions so far, as the pipeline's streaming mode gives them (`start`, `end`,
            `text`, `confidence`, `signing_probability`, `latency`).
        received, queued, dropped, bad (`int`): frames received; put in the queue; dropped (queue full, or too
            soon after the previous one); skipped because they did not decode.
        error (`str`, *optional*): why the translation stopped, when it failed.
    """

    def __init__(self, translator, settings: LiveSettings):
        self.translator, self.settings = translator, settings
        self.frames = queue.Queue(maxsize=settings.queue_frames)
        self.captions: list[dict] = []
        self.received = self.queued = self.dropped = self.bad = 0
        self.error: str | None = None
        self.started = self.last_frame = time.monotonic()
        self.last_timestamp = -math.inf
        self.stopping, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="beyondgloss-live", daemon=True)
        self.thread.start()

    def push(self, timestamp: float, data: bytes) -> None:
        """Queues one checked frame taken at `timestamp` seconds of the stream, or drops it (and counts it)."""
        now = time.monotonic()
        self.received += 1
        too_soon = now - self.last_frame < 0.5 / self.settings.fps and self.queued
        self.last_frame, self.last_timestamp = now, timestamp
        if too_soon or self.stopping.is_set():
            self.dropped += 1
            return
        try:
            self.frames.put_nowait((timestamp, data))
            self.queued += 1
        except queue.Full:
            self.dropped += 1

    def expired(self) -> bool:
        return time.monotonic() - self.started > self.settings.max_seconds

    def stop(self) -> None:
        """Ends the stream: the frames still queued are not translated; the last window's text is flushed."""
        self.stopping.set()

    def state(self, after: int = 0) -> dict:
        """What the page shows: the captions from number `after` on and the frame counts."""
        return {"captions": self.captions[after:], "received": self.received, "dropped": self.dropped,
                "bad": self.bad, "error": self.error, "ended": self.done.is_set()}

    def _frames(self):
        while not self.stopping.is_set():
            try:
                timestamp, data = self.frames.get(timeout=0.1)
            except queue.Empty:
                if time.monotonic() - self.last_frame > self.settings.idle_seconds:
                    return
                continue
            try:
                frame = decode_frame(data)
            except (OSError, ValueError):  # a truncated image whose header was fine
                self.bad += 1
                continue
            yield timestamp, frame

    def _run(self) -> None:
        from .app_limits import one_line
        from .sign_translation_outputs import caption_record

        try:
            for caption in self.translator(self._frames()):
                self.captions.append(caption_record(caption))
        except Exception as error:  # the thread's end is the only place left to tell the page why captions stopped
            logger.exception("The live translation failed")
            self.error = f"The live translation stopped: {one_line(str(error))}"
        finally:
            self.done.set()


class LiveSessions:
    """The live sessions of one server, at most `settings.max_sessions` at once, each named by an unguessable key."""

    def __init__(self, analyser, settings: LiveSettings):
        self.analyser, self.settings = analyser, settings
        self.sessions: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def translator(self):
        """A streaming translator on the analyser's model: greedy decoding (each window must be translated within a
        stride), the analyser's `max_new_tokens`."""
        from .streaming import StreamingTranslator

        analyser, settings = self.analyser, self.settings
        generation = {"num_beams": 1, **{key: analyser.generate_kwargs[key] for key in ("max_new_tokens",
                                                                                           "pad_token_id")
                                         if key in analyser.generate_kwargs}}
        parts = SimpleNamespace(video_processor=analyser.video_processor, tokenizer=analyser.processor.tokenizer)
        return StreamingTranslator(analyser.model, parts, settings.window_seconds, settings.stride_seconds,
                                   settings.fps, settings.agreement, generation)

    def start(self) -> str | None:
        """A new session's key, or `None` when `max_sessions` run already."""
        with self._lock:
            self._forget_ended()
            if len(self.sessions) >= self.settings.max_sessions:
                return None
            key = secrets.token_urlsafe(16)
            self.sessions[key] = LiveSession(self.translator(), self.settings)
            return key

    def get(self, key: str) -> LiveSession | None:
        with self._lock:
            self._forget_ended()
            return self.sessions.get(key)

    def end(self, key: str) -> LiveSession | None:
        """Stops a session and forgets it; returns it (its thread may still flush the last window)."""
        with self._lock:
            session = self.sessions.pop(key, None)
        if session is not None:
            session.stop()
        return session

    def stop_all(self) -> None:
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.stop()

    def _forget_ended(self) -> None:
        for key, session in list(self.sessions.items()):
            if session.done.is_set() or session.expired():
                session.stop()
                del self.sessions[key]


def live_routes(sessions: LiveSessions) -> list:
    """The live tab's HTTP routes (starlette): `POST /live/start`, `/live/<key>/frame?t=&after=`, `/live/<key>/stop`."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    settings = sessions.settings

    async def start(request):
        key = sessions.start()
        if key is None:
            return PlainTextResponse(f"The server runs {settings.max_sessions} live sessions already, its most at "
                                     "once. Try again later.", status_code=503, headers={"retry-after": "30"})
        return JSONResponse({"session": key, "fps": settings.fps, "window_seconds": settings.window_seconds,
                             "stride_seconds": settings.stride_seconds, "max_seconds": settings.max_seconds,
                             "confidence_threshold": settings.confidence_threshold})

    async def frame(request):
        session = sessions.get(request.path_params["key"])
        if session is None:
            return PlainTextResponse("This live session has ended (stopped, idle for "
                                     f"{settings.idle_seconds:g} s or longer than {settings.max_seconds:g} s); "
                                     "start again.", status_code=404)
        refusal = await _frame_refusal(request, session)
        if refusal is not None:
            return PlainTextResponse(refusal[1], status_code=refusal[0])
        session.push(float(request.query_params["t"]), await request.body())
        return JSONResponse(session.state(_after(request)))

    async def stop(request):
        session = sessions.end(request.path_params["key"])
        if session is None:
            return PlainTextResponse("This live session has ended already.", status_code=404)
        await run_in_threadpool(session.thread.join, LIVE_STOP_WAIT_SECONDS)
        return JSONResponse(session.state(_after(request)))

    return [Route("/live/start", start, methods=["POST"]),
            Route("/live/{key}/frame", frame, methods=["POST"]),
            Route("/live/{key}/stop", stop, methods=["POST"])]


def _after(request) -> int:
    try:
        return max(0, int(request.query_params.get("after", 0)))
    except ValueError:
        return 0


async def _frame_refusal(request, session: LiveSession):
    """`(status, message)` for a frame the session does not take, or `None`."""
    try:
        timestamp = float(request.query_params.get("t", "nan"))
    except ValueError:
        timestamp = math.nan
    if not math.isfinite(timestamp) or timestamp < session.last_timestamp:
        return 400, ("Send each frame with t=<seconds since the stream started>, a number that never decreases; got "
                     f"t={request.query_params.get('t')!r}.")
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > LIVE_MAX_FRAME_BYTES:
        return 413, f"A live frame is at most {LIVE_MAX_FRAME_BYTES // 1024} kB, with its Content-Length."
    problem = check_frame(await request.body())
    return None if problem is None else (415, problem)


# --------------------------------------------------------------------------------------------------------------
# The page

_LIVE_HTML = """
<div id="live">
  <video id="live-video" autoplay playsinline muted style="width: 100%; max-width: 480px; background: #222"></video>
  <div style="margin: 0.5em 0">
    <button id="live-start" class="lg primary">Start camera</button>
    <button id="live-stop" class="lg secondary" disabled>Stop</button>
  </div>
  <div id="live-status">Start the camera: frames go to the server and captions appear below.</div>
  <ol id="live-captions" style="padding-left: 1.5em"></ol>
</div>
"""

# Runs once when the tab is mounted (Gradio's `js_on_load`, with `element` the component's root). One frame is in
# flight at a time: a server that answers slowly gets fewer frames, and the page says how many it skipped.
_LIVE_JS = r"""
const $ = (id) => element.querySelector('#' + id);
const video = $('live-video'), list = $('live-captions'), status = $('live-status');
const base = window.location.pathname.replace(/\/[^\/]*$/, '');
const canvas = document.createElement('canvas');
let live = null;
const clock = (s) => `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, '0')}`;
function show(state) {
  for (const c of state.captions) {
    const item = document.createElement('li');
    const low = c.confidence < live.settings.confidence_threshold;
    item.className = 'live-caption' + (low ? ' live-low' : '');
    item.style.color = low ? '#999' : '';
    const gate = c.signing_probability === null ? '' : ` · signing ${c.signing_probability.toFixed(2)}`;
    item.textContent = `[${clock(c.start)} → ${clock(c.end)}] ${c.text}`;
    const detail = document.createElement('small');
    detail.textContent = ` (confidence ${c.confidence.toFixed(2)}${gate} · ${Math.round(c.latency.total * 1000)} ms)`;
    item.appendChild(detail);
    list.appendChild(item);
  }
  live.after += state.captions.length;
  status.textContent = `frames sent ${live.sent}, received by the server ${state.received}, dropped ` +
    `${state.dropped + live.skipped}` + (state.bad ? `, unreadable ${state.bad}` : '') +
    `; captions ${live.after}` + (state.error ? ` — ${state.error}` : '');
}
async function post(path, body) {
  const headers = body ? {'content-type': 'image/jpeg'} : {};
  const response = await fetch(base + path, {method: 'POST', body: body, headers: headers});
  if (!response.ok) throw new Error(await response.text());
  return response.json();
}
async function send() {
  if (!live || live.busy || video.readyState < 2) { if (live) live.skipped += 1; return; }
  live.busy = true;
  try {
    const scale = Math.min(1, 320 / video.videoWidth);
    canvas.width = Math.round(video.videoWidth * scale); canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    const frame = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.8));
    const t = (performance.now() - live.t0) / 1000;
    live.sent += 1;
    show(await post(`/live/${live.settings.session}/frame?t=${t.toFixed(3)}&after=${live.after}`, frame));
  } catch (error) { status.textContent = error.message; await stop(false); }
  if (live) live.busy = false;
}
async function stop(ask = true) {
  if (!live) return;
  const current = live;
  clearInterval(current.timer);
  current.stream.getTracks().forEach((track) => track.stop());
  $('live-start').disabled = false; $('live-stop').disabled = true;
  if (ask) {
    try { show(await post(`/live/${current.settings.session}/stop?after=${current.after}`)); } catch (error) {
      status.textContent = error.message; }
  }
  live = null;
}
$('live-start').addEventListener('click', async () => {
  $('live-start').disabled = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
    video.srcObject = stream;
    const settings = await post('/live/start').catch((error) => {
      stream.getTracks().forEach((track) => track.stop());
      throw error;
    });
    list.replaceChildren();
    live = {stream, settings, after: 0, sent: 0, skipped: 0, busy: false, t0: performance.now()};
    live.timer = setInterval(send, 1000 / settings.fps);
    $('live-stop').disabled = false;
    status.textContent = 'Camera on; sending frames.';
  } catch (error) { status.textContent = `Cannot start: ${error.message}`; $('live-start').disabled = false; }
});
$('live-stop').addEventListener('click', () => stop(true));
"""


def live_tab(gr, app, analyser) -> None:
    """Adds the live tab to the page being built (inside its `gr.Tabs`) and records `analyser` on `app` for the
    routes [`~app_limits.start`] adds ([`live_routes`])."""
    with gr.Tab("Live captions", elem_id="live-tab"):
        gr.Markdown("Sign in front of your webcam: the server translates a sliding window of what it sees and the "
                    "captions appear below the picture, with their times, their confidence (mean log-probability "
                    "per token; greyed below the server's threshold) and, for a model with a signing gate, its "
                    "probability that the window holds signing.")
        gr.HTML(_LIVE_HTML, js_on_load=_LIVE_JS, elem_id="live-panel")
    app.live_analyser = analyser
