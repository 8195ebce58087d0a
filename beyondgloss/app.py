# Copyright 2026 The beyondgloss authors. MIT license.
"""`beyondgloss serve`: a web app (Gradio) to translate sign videos and look at what the model saw.

```
beyondgloss serve --model runs/demo/model                      # http://127.0.0.1:7860
beyondgloss serve --model your-name/phoenix14t-beyondgloss --host 0.0.0.0 --port 8080
```

A video comes in as an upload, a webcam recording or one of the example clips in the checkpoint's `examples/` folder.
For a translation checkpoint (`BeyondGlossForSignTranslation`) the page shows the translation, the beam
alternatives with their scores, the frames the processor kept (after sampling and cropping, un-normalised back to
pixels) and the time each stage took (decode, encode, generate). For a pre-training checkpoint
(`BeyondGlossForContrastivePretraining`) it ranks sentences the user types by their similarity to the video.
A translation checkpoint's page has a second tab, live captions of the webcam (`beyondgloss.app_live`).

The work is done by [`SignVideoAnalyser`], which needs no web framework (tests and scripts call it directly);
[`build_app`] puts it in a page; `beyondgloss serve` (`beyondgloss.cli.serve`) is the command. Gradio is the optional
extra `app`: `pip install 'beyondgloss[app]'`. What the server takes and keeps is bounded (`beyondgloss.app_limits`,
`docs/serve_limits.md`): each upload is deleted when its request ends, and the page names no path of the server.
"""

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .app_live import live_tab
from .app_limits import ServeArguments, UploadLedger, check_candidates, image_html, one_line, public_model_name, \
    start

__all__ = [
    "Analysis",
    "AppInputError",
    "ServeArguments",
    "SignVideoAnalyser",
    "build_app",
    "example_videos",
    "frame_strip",
    "launch",
    "load_analyser",
    "start",
]

logger = logging.getLogger(__name__)

PRETRAINING_ARCHITECTURE = "BeyondGlossForContrastivePretraining"
# The strip shows at most this many of the kept frames, evenly spread (a 300-frame video would be 300 thumbnails).
STRIP_FRAMES = 16
# Thumbnails are enlarged to at least this height (nearest neighbour, so pixels stay visible): a 32 px SynthSign frame
# is otherwise a smudge.
STRIP_HEIGHT = 96
# Sentences are encoded this many at a time (memory stays that of one batch however many there are), and the page
# plots the most similar ones only (the analyser returns them all).
CANDIDATE_BATCH, PLOTTED_SENTENCES = 256, 20
STATUS_ID, TRANSLATION_ID = "status", "translation"


class AppInputError(ValueError):
    """A video the app cannot take: unreadable, too large or too long; the message is shown in the page as is."""


@dataclass
class Analysis:
    """What the app shows for one video.

    Attributes:
        translations (`list[tuple[str, float]]`): `(sentence, score)` per returned beam, best first (translation
            checkpoints); the score is the length-normalised log-probability beam search ranks by (greedy search:
            the mean log-probability per generated token).
        similarities (`list[tuple[str, float]]`): `(sentence, cosine similarity)` per typed sentence, most similar
            first (pre-training checkpoints).
        frames (`torch.Tensor`): uint8 `(T, 3, H, W)`, the frames the model saw, back in pixels.
        frame_indices (`list[int]`): the source frame of each kept frame.
        timings (`dict[str, float]`): seconds per stage (`decode`, `encode`, then `generate` or `retrieve`).
        num_source_frames (`int`), duration (`float` or `None`): of the source video.
    """

    frames: torch.Tensor
    frame_indices: list[int]
    timings: dict[str, float]
    num_source_frames: int
    duration: float | None
    translations: list[tuple[str, float]] = field(default_factory=list)
    similarities: list[tuple[str, float]] = field(default_factory=list)


def example_videos(model: str) -> list[Path]:
    """The `*.mp4` clips in the checkpoint's `examples/` folder (a Hub checkpoint's are downloaded), sorted; none when
    there are none or they cannot be fetched (offline)."""
    folder = Path(model)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, allow_patterns=["examples/*.mp4"]))
        except Exception as error:  # offline, private, no such repo: the app works without examples
            logger.info("No example clips for %s: %s", model, error)
            return []
    return sorted(path for path in (folder / "examples").glob("*.mp4") if path.is_file())


def frame_strip(frames: torch.Tensor, limit: int = STRIP_FRAMES, height: int = STRIP_HEIGHT, gap: int = 2):
    """Joins up to `limit` evenly spread frames side by side, enlarged to at least `height` pixels, into one image.

    Args:
        frames (`torch.Tensor`): uint8 `(T, 3, H, W)`.

    Returns:
        `(numpy.ndarray, list[int])`: the uint8 `(H', W', 3)` image and the positions (in `frames`) it shows.
    """
    count = frames.shape[0]
    tiles = min(limit, count)
    shown = sorted({round(i * (count - 1) / max(tiles - 1, 1)) for i in range(tiles)})
    chosen = frames[shown]
    scale = max(1, math.ceil(height / chosen.shape[-2]))
    if scale > 1:
        chosen = chosen.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    pad = torch.full((*chosen.shape[:3], gap), 255, dtype=torch.uint8)
    tiles = [part for frame, spacer in zip(chosen, pad) for part in (frame, spacer)][:-1]
    return torch.cat(tiles, dim=-1).permute(1, 2, 0).contiguous().numpy(), shown


@contextmanager
def _timed(module: torch.nn.Module, timings: dict, name: str):
    """Adds the time spent in `module`'s forward calls to `timings[name]` (the encoder runs inside `generate`)."""
    started = []

    def before(*_):
        started.append(time.perf_counter())

    def after(*_):
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started.pop()

    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class SignVideoAnalyser:
    """Runs a beyondgloss checkpoint on one video at a time and keeps what the app shows ([`Analysis`]).

    A translation checkpoint is loaded as the "sign-translation" pipeline and translated with its video processor and
    its model's `generate()` under the pipeline's settings, so the best beam is the pipeline's translation; a
    pre-training checkpoint is loaded with `AutoModelForPreTraining` and its processor.

    Args:
        model (`str`): a checkpoint folder or Hub id.
        num_beams, max_new_tokens (`int`, *optional*): generation settings (default: the model's).
        num_alternatives (`int`, defaults to 3): beams returned (at most the beam width).
        max_upload_mb (`float`), max_duration_seconds (`float`): the largest and the longest video accepted.
        max_candidates (`int`), max_candidate_chars (`int`): the most sentences one retrieval may compare, and the
            most characters they may hold together.
        device (`str`, defaults to `"cpu"`).
        inference_precision (`str`, defaults to `"fp32"`): `"fp32"`, `"bf16"`, `"int8"` or `"auto"`, see
            `set_inference_precision` of the models (`beyondgloss serve` passes `"auto"`).

    Example:

    ```python
    >>> from beyondgloss.app import SignVideoAnalyser
    >>> analyser = SignVideoAnalyser("runs/demo/model")
    >>> result = analyser.analyse("signing.mp4")
    >>> result.translations[0], result.timings
    (('am tag sonne im süden', -0.41), {'decode': 0.02, 'encode': 0.05, 'generate': 0.11})
    ```
    """

    def __init__(self, model: str, num_beams: int | None = None, max_new_tokens: int | None = None,
                 num_alternatives: int = 3, max_upload_mb: float = 50.0, max_duration_seconds: float = 60.0,
                 device: str = "cpu", inference_precision: str = "fp32", max_candidates: int = 20_000,
                 max_candidate_chars: int = 2_000_000):
        from transformers import AutoConfig, AutoModelForPreTraining, AutoProcessor, pipeline

        from .pipeline_sign_translation import TASK, _sized_video_processor

        self.model_id = model
        self.max_upload_mb = max_upload_mb
        self.max_duration_seconds = max_duration_seconds
        self.max_candidates, self.max_candidate_chars = max_candidates, max_candidate_chars
        architectures = AutoConfig.from_pretrained(model).architectures or []
        self.pretraining = PRETRAINING_ARCHITECTURE in architectures
        if self.pretraining:
            self.model = AutoModelForPreTraining.from_pretrained(model).to(device).eval()
            self.processor = AutoProcessor.from_pretrained(model)
            # As the pipeline does: frames at the model's size when the saved processor has none.
            self.video_processor = _sized_video_processor(self.processor.video_processor, self.model)
            self.pipeline = None
        else:
            self.pipeline = pipeline(TASK, model=model, device=torch.device(device))
            self.model, self.processor = self.pipeline.model.eval(), self.pipeline.processor
            # The pipeline's, which brings frames to the model's size when the saved processor has none.
            self.video_processor = self.pipeline.video_processor
            settings = self.model.generation_config
            beams = num_beams or settings.num_beams or 1
            self.generate_kwargs = {"num_beams": beams, "num_return_sequences": min(num_alternatives, beams),
                                    "output_logits": beams == 1}  # greedy search's scores come from its logits
            if max_new_tokens is not None:
                self.generate_kwargs["max_new_tokens"] = max_new_tokens
            if self.pipeline.tokenizer.pad_token_id is not None:  # as the pipeline passes it
                self.generate_kwargs["pad_token_id"] = self.pipeline.tokenizer.pad_token_id
        self.model.set_inference_precision(inference_precision)
        self.examples = example_videos(model)
        # Imported once here: requests that decode in parallel threads would otherwise race to import it first, and
        # `video_io` would meet a half-imported module (measured with --concurrency_limit 4, docs/serve_limits.md).
        import torchcodec.decoders  # noqa: F401

    @property
    def kind(self) -> str:
        return "retrieval" if self.pretraining else "translation"

    def check(self, path: str | Path):
        """Opens the video without decoding it; raises [`AppInputError`] when it is too large, too long or unreadable.

        Returns:
            `VideoSource`: the opened video.
        """
        from .video_io import VideoReadError, open_video

        path = Path(path)
        megabytes = path.stat().st_size / 2**20
        if megabytes > self.max_upload_mb:
            raise AppInputError(f"{path.name} is {megabytes:.1f} MB; this app takes videos up to "
                                f"{self.max_upload_mb:g} MB. Trim or compress it and try again.")
        try:
            source = open_video(str(path))
        except (VideoReadError, OSError) as error:
            raise AppInputError(_readable(error, path)) from error
        if source.fps and source.num_frames / source.fps > self.max_duration_seconds:
            raise AppInputError(
                f"{path.name} lasts {source.num_frames / source.fps:.1f} s; this app takes videos up to "
                f"{self.max_duration_seconds:g} s. Cut it into shorter clips (one sentence each) and try again."
            )
        return source

    def analyse(self, path: str | Path, sentences: list[str] | None = None,
                progress: Callable[[float, str], None] | None = None) -> Analysis:
        """Translates the video (or ranks `sentences` for a pre-training checkpoint) and times each stage.

        Args:
            path (`str` or `Path`): a video file.
            sentences (`list[str]`, *optional*): candidate sentences (pre-training checkpoints; required there).
            progress (`Callable[[float, str], None]`, *optional*): called with the fraction done and the stage.

        Raises:
            [`AppInputError`]: the video is unreadable, too large or too long; no sentences were given, or more
                than the analyser takes.
        """
        from .video_io import VideoReadError

        report = progress or (lambda fraction, stage: None)
        path = Path(path)
        sentences = [s.strip() for s in sentences or [] if s.strip()]
        if self.pretraining and not sentences:
            raise AppInputError("Type at least one sentence (one per line) to compare the video with.")
        too_many = self.pretraining and check_candidates(sentences, self.max_candidates, self.max_candidate_chars)
        if too_many:
            raise AppInputError(too_many)
        report(0.0, "reading the video")
        timings = {}
        started = time.perf_counter()
        source = self.check(path)
        try:
            features = self.video_processor(source, training=False, return_tensors="pt", return_frame_indices=True)
        except (VideoReadError, ValueError, OSError) as error:
            raise AppInputError(_readable(error, path)) from error
        timings["decode"] = time.perf_counter() - started
        pixels = features["pixel_values_videos"].to(self.model.device)
        mask = features["video_attention_mask"].to(self.model.device)
        analysis = Analysis(
            frames=self._to_pixels(features["pixel_values_videos"][0]), frame_indices=features["frame_indices"][0],
            timings=timings, num_source_frames=source.num_frames,
            duration=source.num_frames / source.fps if source.fps else None,
        )
        report(0.3, "encoding and translating" if not self.pretraining else "encoding")
        with torch.inference_mode():
            if self.pretraining:
                analysis.similarities = self._retrieve(pixels, mask, sentences, timings)
            else:
                analysis.translations = self._translate(pixels, mask, timings)
        report(1.0, "done")
        return analysis

    def _translate(self, pixels, mask, timings) -> list[tuple[str, float]]:
        started = time.perf_counter()
        with _timed(self.model.sign_encoder, timings, "encode"):
            output = self.model.generate(pixel_values_videos=pixels, video_attention_mask=mask, output_scores=True,
                                         return_dict_in_generate=True, **self.generate_kwargs)
        timings["generate"] = time.perf_counter() - started - timings.get("encode", 0.0)
        texts = self.pipeline.tokenizer.batch_decode(output.sequences.tolist(), skip_special_tokens=True)
        return list(zip(texts, self._scores(output)))

    def _scores(self, output) -> list[float]:
        """Beam search's own score of each returned beam (its length-normalised log-probability); for greedy search,
        the mean log-probability per generated token, from the raw logits of each step."""
        if getattr(output, "sequences_scores", None) is not None:
            return [float(score) for score in output.sequences_scores]
        steps = torch.stack(output.logits, dim=1).float().log_softmax(dim=-1)  # (N, generated, vocab)
        generated = output.sequences[:, -steps.shape[1]:]
        chosen = steps.gather(-1, generated.unsqueeze(-1)).squeeze(-1)
        pad = self.pipeline.tokenizer.pad_token_id
        real = generated != pad if pad is not None else torch.ones_like(generated, dtype=torch.bool)
        return (chosen * real).sum(-1).div(real.sum(-1).clamp(min=1)).tolist()

    def _retrieve(self, pixels, mask, sentences, timings) -> list[tuple[str, float]]:
        started = time.perf_counter()
        encoded = self.model.sign_encoder(pixels, mask)
        video = self.model.encode_video(encoded)
        timings["encode"] = time.perf_counter() - started
        started = time.perf_counter()
        # A batch at a time, of sentences of similar length (little padding): memory is that of one batch.
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
        similarity = [0.0] * len(sentences)
        for start in range(0, len(order), CANDIDATE_BATCH):
            batch = order[start:start + CANDIDATE_BATCH]
            text = self.processor(text=[sentences[i] for i in batch], padding=True, truncation=True,
                                  return_tensors="pt")
            embeds = self.model.encode_text(text["input_ids"].to(video.device),
                                            text["attention_mask"].to(video.device))
            for i, value in zip(batch, (video @ embeds.T)[0].tolist()):
                similarity[i] = value
        timings["retrieve"] = time.perf_counter() - started
        return sorted(zip(sentences, similarity), key=lambda pair: -pair[1])

    def _to_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Undoes the processor's scaling and normalisation: float `(T, 3, H, W)` -> uint8."""
        vp = self.video_processor
        if vp.do_normalize:
            std = torch.tensor(vp.image_std).view(1, 3, 1, 1)
            mean = torch.tensor(vp.image_mean).view(1, 3, 1, 1)
            pixels = pixels * std + mean
        return (pixels * 255).round().clamp(0, 255).to(torch.uint8)


def _readable(error: Exception, path: Path) -> str:
    # The upload's temporary path means nothing to the user and the server's paths are not theirs to see: its file
    # name, and one line.
    return f"This file cannot be read as a video: {one_line(str(error), (str(path), path.name))}"


# --------------------------------------------------------------------------------------------------------------
# The page


def _format_timings(analysis: Analysis, total: float) -> str:
    stages = " · ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in analysis.timings.items())
    return f"{stages} · total {total * 1000:.0f} ms"


def build_app(analyser: SignVideoAnalyser, max_duration_seconds: float | None = None):
    """The Gradio page for `analyser` (not launched): video in, translation (or retrieval), frames and timings out.

    Each upload is deleted when the request that used it ends (its `upload_ledger`, an [`UploadLedger`] whose cap
    [`start`] sets, knows them); the frames come back inside the page, so no output is written to disk.
    """
    gr = require_gradio()
    import pandas as pd  # a Gradio dependency (its plots take data frames)

    retrieval = analyser.pretraining
    max_duration_seconds = max_duration_seconds or analyser.max_duration_seconds
    title = "beyondgloss: sign video retrieval" if retrieval else "beyondgloss: sign language translation"
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(600, 3600)) as app:
        app.upload_ledger = UploadLedger(max_bytes=0, forget=app.upload_file_set)
        run = _runner(analyser, app.upload_ledger, gr, pd)
        gr.Markdown(f"# {title}\nModel: `{public_model_name(analyser.model_id)}`. Upload a video, record one with the "
                    f"webcam, or pick an example (videos up to {analyser.max_upload_mb:g} MB and "
                    f"{max_duration_seconds:g} s; the server deletes each upload once it is analysed).")
        with gr.Tabs():
            with gr.Tab("Translate a video", elem_id="video-tab"):
                with gr.Row():
                    with gr.Column():
                        video = gr.Video(label="Sign video", sources=["upload", "webcam"], elem_id="video", height=320,
                                         webcam_options=gr.WebcamOptions(mirror=False))
                        inputs = [video]
                        if retrieval:
                            sentences = gr.Textbox(label=f"Sentences to compare (one per line, up to "
                                                   f"{analyser.max_candidates:,})", lines=5, elem_id="sentences")
                            inputs.append(sentences)
                        button = gr.Button("Analyse" if retrieval else "Translate", variant="primary")
                        if analyser.examples:
                            gr.Examples([[str(path)] for path in analyser.examples], inputs=[video],
                                        label="Example clips")
                    with gr.Column():
                        status = gr.Markdown(elem_id=STATUS_ID)
                        outputs = _output_components(gr, retrieval)
            if not retrieval:
                live_tab(gr, app, analyser)
        # An upload, a finished recording and an example click all change the video and translate it. Retrieval
        # waits for the button: the upload is deleted after its one request, which needs the sentences.
        for trigger in ([button.click] if retrieval else [video.change, button.click]):
            trigger(run, inputs=inputs, outputs=[status, *outputs])
    return app


def _runner(analyser: SignVideoAnalyser, uploads: UploadLedger, gr, pd):
    """The page's callback: a video (and, for retrieval, sentences) -> the status line and every output. The upload
    is deleted when it returns or fails (an example clip is not an upload)."""
    retrieval = analyser.pretraining

    def run(video, sentences="", progress=gr.Progress()):
        empty = _empty_outputs(retrieval)
        if not video:
            return ("Upload a video, record one, or pick an example.", *empty)
        started = time.perf_counter()
        try:
            if not Path(video).is_file():
                raise AppInputError("This video is no longer on the server (each upload is deleted once analysed). "
                                    "Upload it again.")
            analysis = analyser.analyse(video, (sentences or "").splitlines(),
                                        progress=lambda fraction, stage: progress(fraction, desc=stage))
        except AppInputError as error:
            return (f"**Cannot use this video.** {error}", *empty)
        finally:
            uploads.release(video)
        return _outputs(analysis, time.perf_counter() - started, retrieval, pd)

    return run


def _outputs(analysis: Analysis, total: float, retrieval: bool, pd) -> tuple:
    """The status line and the outputs of `_output_components` for one analysis that took `total` seconds."""
    strip, shown = frame_strip(analysis.frames)
    seen = (f"{len(analysis.frame_indices)} of {analysis.num_source_frames} source frames kept"
            + (f" ({analysis.duration:.1f} s)" if analysis.duration else "")
            + f"; showing source frames {', '.join(str(analysis.frame_indices[i]) for i in shown)}")
    status = f"Done. {seen}."
    timings = _format_timings(analysis, total)
    image = image_html(strip, f"frames {', '.join(str(analysis.frame_indices[i]) for i in shown)}")
    if retrieval:
        top = analysis.similarities[:PLOTTED_SENTENCES]
        if len(top) < len(analysis.similarities):
            status += f" The plot shows the {len(top)} most similar of {len(analysis.similarities):,} sentences."
        plot = pd.DataFrame({"sentence": [s for s, _ in top], "similarity": [round(v, 4) for _, v in top]})
        return status, plot, image, timings
    best = analysis.translations[0][0]
    beams = [[rank + 1, text, round(score, 4)] for rank, (text, score) in enumerate(analysis.translations)]
    return status, best, beams, image, timings


def _output_components(gr, retrieval: bool) -> list:
    """The result column: the similarity plot (retrieval) or the translation and its beams, then frames and
    timings."""
    if retrieval:
        outputs = [gr.BarPlot(x="sentence", y="similarity", label="Video-to-sentence similarity (cosine)",
                              sort="-y", elem_id="similarity")]
    else:
        outputs = [
            gr.Textbox(label="Translation", elem_id=TRANSLATION_ID, interactive=False),
            gr.Dataframe(headers=["rank", "translation", "score"], label="Beams (log-probability per "
                         "token, as beam search ranks them)", interactive=False, elem_id="beams"),
        ]
    return outputs + [gr.HTML(label="Frames the model saw (after sampling and cropping)", elem_id="frames",
                              show_label=True, container=True),
                      gr.Markdown(elem_id="timings")]


def _empty_outputs(retrieval: bool) -> tuple:
    if retrieval:
        return None, "", ""
    return "", [], "", ""


def launch(model: str, host: str = "127.0.0.1", port: int = 7860, block: bool = True, **settings):
    """Loads the checkpoint, builds the page and serves it.

    Args:
        model (`str`): a checkpoint folder or Hub id.
        host (`str`), port (`int`): where to listen (port 0: a free one).
        block (`bool`, defaults to `True`): serve until interrupted; `False` returns once the server is up (tests).
        settings: the other [`ServeArguments`] fields.

    Returns:
        The launched Gradio `Blocks` (its `local_url`; `close()` stops it).
    """
    arguments = ServeArguments(model=model, host=host, port=port, **settings)
    return start(build_app(load_analyser(arguments)), arguments, block)


def load_analyser(arguments: ServeArguments) -> SignVideoAnalyser:
    """The [`SignVideoAnalyser`] of `arguments.model` with the arguments' settings."""
    return SignVideoAnalyser(
        arguments.model, num_beams=arguments.num_beams, max_new_tokens=arguments.max_new_tokens,
        num_alternatives=arguments.num_alternatives, max_upload_mb=arguments.max_upload_mb,
        max_duration_seconds=arguments.max_duration_seconds, device=arguments.device,
        inference_precision=arguments.inference_precision, max_candidates=arguments.max_candidates,
        max_candidate_chars=arguments.max_candidate_chars,
    )


def require_gradio():
    from .utils.import_utils import require

    return require("gradio", "beyondgloss serve")
