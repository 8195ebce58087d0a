# Copyright 2026 The beyondgloss authors. MIT license.
"""Live captions: translation of a stream of frames as it arrives (docs/streaming.md).

Each frame goes through the processor's per-frame transform and the frame encoder once, as it arrives; its feature
(the frame projection and BatchNorm output: per frame in eval mode) is kept in a ring buffer of one window. Every
`stride_seconds` the translator decides, in one of two ways (`segmentation`):

- `"gate"` (a model with a signing gate, `config.signing_gate`): the gate looks at the last `gate_seconds` of frames;
  [`SigningSegmenter`] joins the consecutive tails it calls signing into one stretch, and when a tail is idle again
  the rest of the model (hand head and fusion, temporal encoder, description head, mBART) translates the stretch once:
  one caption per stretch of signing, nothing decoded while nobody signs.
- `"agreement"` (any model): the rest of the model translates the whole window, and [`CaptionMerger`] turns the
  overlapping windows' translations into captions by local agreement. With a gate, a window below
  `config.signing_threshold` is not decoded and counts as an empty translation.

With `realtime=True` a thread of its own reads the frames as they arrive into a bounded buffer (a live camera is never
held up), and the frames waiting there are encoded together; when translation falls behind, the oldest waiting frames
are dropped and counted ([`StreamingStats`]).
"""

import copy
import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import torch

from .caption_merging import Caption, CaptionMerger, SigningSegmenter, WindowTranslation

__all__ = ["Caption", "CaptionMerger", "SigningSegmenter", "StreamingStats", "StreamingTranslator",
           "WindowTranslation", "window_encoder_states"]

SEGMENTATIONS = ("auto", "gate", "agreement")

STAGES = ("decode", "frame_encoder", "temporal_encoder", "decoder")


def window_encoder_states(sign_encoder, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The sign encoder's output for one video of real frames, from its frames' features: the sign encoder's own
    per-video part ([`BeyondGlossSignEncoder.forward_features`]) on a batch of one.

    Args:
        sign_encoder ([`BeyondGlossSignEncoder`]): in eval mode.
        features (`torch.FloatTensor` of shape `(frames, frame_dim)`): its `frame_features` of the frames.

    Returns:
        `last_hidden_state` `(1, ceil(frames / 2), 2 * frame_dim)` and its step mask `(1, ceil(frames / 2))`.
    """
    mask = torch.ones(1, features.shape[0], dtype=torch.long, device=features.device)
    output = sign_encoder.forward_features(features, mask)
    return output.last_hidden_state, output.attention_mask


def _as_frame(frame) -> torch.Tensor:
    """A uint8 RGB frame as a `(3, H, W)` tensor, from a `(3, H, W)` tensor or an `(H, W, 3)` array."""
    frame = torch.as_tensor(frame)
    if frame.dim() == 3 and frame.shape[0] != 3 and frame.shape[-1] == 3:
        frame = frame.permute(2, 0, 1)
    if frame.dim() != 3 or frame.shape[0] != 3 or frame.dtype != torch.uint8:
        raise ValueError(f"a frame must be uint8 RGB of shape (3, H, W) or (H, W, 3); got {frame.dtype} "
                         f"{tuple(frame.shape)}")
    return frame


def _mean_log_probability(output, eos_token_id) -> float:
    """Mean log-probability of the generated tokens through the first end-of-sentence token."""
    sequences, steps = output.sequences[0], output.scores
    generated = sequences[-len(steps):]
    values = []
    for token, step in zip(generated.tolist(), steps):
        values.append((step[0, token].float() - step[0].float().logsumexp(dim=-1)).item())
        if token in eos_token_id:
            break
    return sum(values) / len(values) if values else float("-inf")


@dataclass
class StreamingStats:
    r"""What one run of a [`StreamingTranslator`] did with its frames (`translator.stats`, updated as it runs).

    Attributes:
        frames_received (`int`): frames the source delivered.
        frames_subsampled (`int`): frames skipped to sample the stream at the processor's `fps` setting (the rate the
            model was trained on); not dropped, by design.
        frames_dropped (`int`): frames lost because translation fell behind a live source (`realtime=True`: the
            buffer was full and its oldest frame gave way); never silent.
        frames_encoded (`int`): frames through the frame encoder.
        encoder_batches (`int`): frame-encoder calls (frames waiting together are encoded in one call).
        windows (`int`): windows (`"agreement"`) or stretches of signing (`"gate"`) translated.
        seconds (`dict[str, float]`): seconds per stage over the run (`decode`, `frame_encoder`, `temporal_encoder`,
            `decoder`); in real-time mode `decode` is the reader thread's time in the source, beside the rest, waiting
            for a live source's next frame included.
        window_times (`list[tuple[float, float, float]]`): per window translated, the timestamp of its last frame, the
            `time.perf_counter()` at which that frame arrived and the one at which the translation ended (`"gate"`:
            per stretch, its last frame being the last of the idle tail that closed it).
        gate_checks (`list[tuple[float, float, float]]`): `"gate"` segmentation: per decision, the first and last
            frame's timestamps of the tail the gate looked at and its probability of signing.
    """

    frames_received: int = 0
    frames_subsampled: int = 0
    frames_dropped: int = 0
    frames_encoded: int = 0
    encoder_batches: int = 0
    windows: int = 0
    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    window_times: list = field(default_factory=list)
    gate_checks: list = field(default_factory=list)


class _FrameSampler:
    """Keeps the frames of a stream that fall on a grid of `rate` frames per second: the first frame of each
    `1 / rate` slot (every frame when the stream is not faster). A frame without a timestamp is at index / `fps`."""

    def __init__(self, fps: float, rate: float):
        self.fps, self.rate, self.last_slot, self.index = fps, rate, None, 0

    def __call__(self, item) -> tuple[float, object, bool]:
        """`(timestamp, frame, kept)` of the next item of the stream."""
        timestamp, frame = item if isinstance(item, tuple) else (self.index / self.fps, item)
        self.index += 1
        slot = math.floor(float(timestamp) * self.rate + 1e-6)  # the tolerance absorbs the timestamps' round-off
        kept = self.last_slot is None or slot > self.last_slot
        if kept:
            self.last_slot = slot
        return float(timestamp), frame, kept


class _LiveBuffer:
    r"""A live source read by a thread of its own into a buffer of at most `capacity` frames: the source is never
    held up; when the buffer is full the oldest waiting frame is dropped and counted in `stats.frames_dropped`. Each
    frame is stored with its arrival time (`time.perf_counter()`)."""

    def __init__(self, frames: Iterable, capacity: int, sampler: _FrameSampler, stats: StreamingStats):
        self.waiting: deque = deque()
        self.capacity, self.sampler, self.stats = capacity, sampler, stats
        self.condition = threading.Condition()
        self.done, self.stopped, self.error = False, False, None
        self.thread = threading.Thread(target=self._read, args=(iter(frames),), name="beyondgloss-frames", daemon=True)
        self.thread.start()

    def _read(self, source: Iterator) -> None:
        try:
            while not self.stopped:
                began = time.perf_counter()
                item = next(source, None)
                arrived = time.perf_counter()
                if item is None:
                    break
                timestamp, frame, kept = self.sampler(item)
                with self.condition:
                    self.stats.seconds["decode"] += arrived - began
                    self.stats.frames_received += 1
                    if not kept:
                        self.stats.frames_subsampled += 1
                        continue
                    if len(self.waiting) == self.capacity:
                        self.waiting.popleft()
                        self.stats.frames_dropped += 1
                    self.waiting.append((timestamp, frame, arrived))
                    self.condition.notify()
        except BaseException as error:  # noqa: BLE001 (handed to the translating thread, which raises it)
            self.error = error
        finally:
            with self.condition:
                self.done = True
                self.condition.notify()

    def take(self, limit: int) -> list:
        """The oldest frames waiting, at least one and at most `limit`, or `[]` at the end of the stream; a source's
        error once the frames before it are taken."""
        with self.condition:
            self.condition.wait_for(lambda: self.waiting or self.done)
            taken = [self.waiting.popleft() for _ in range(min(max(1, limit), len(self.waiting)))]
        if not taken and self.error is not None:
            raise self.error
        return taken

    def stop(self) -> None:
        """The reader stops after its current frame (a source blocked in its read is left to finish it)."""
        self.stopped = True


class StreamingTranslator:
    r"""
    Translates a stream of frames as they arrive: a generator of [`Caption`]s.

    Args:
        model ([`BeyondGlossForSignTranslation`]): in eval mode (the frame BatchNorm must use its running statistics
            for a frame's feature to be its own).
        processor ([`BeyondGlossProcessor`]): its video processor's per-frame transform (resize, crop, normalise)
            and its tokenizer.
        window_seconds (`float`, defaults to 4.0): the span translated at once; at most `config.max_frames` frames.
        stride_seconds (`float`, *optional*): how often the translator decides (asks the gate, or translates the
            window); at most `window_seconds`. By default 0.2 s with the gate (a check costs a few tens of frames
            through the temporal encoder) and 1.0 s for the agreement rule (each decision is a whole translation).
        fps (`float`, defaults to 25.0): frame rate of the stream, for frames given without timestamps and for
            the window's length in frames.
        agreement (`int`, defaults to 2): consecutive windows that must agree on a text ([`CaptionMerger`];
            `"agreement"` segmentation).
        generate_kwargs (`dict`, *optional*): generation settings (`num_beams`, `max_new_tokens`, ...).
        realtime (`bool`, defaults to `False`): a live source. A thread of its own reads the frames as they arrive
            into a buffer of `buffer_seconds`, so the source is never held up; the frames waiting are encoded
            together; when translation falls behind, the oldest waiting frames are dropped and counted
            (`stats.frames_dropped`). Without it (files) every frame is processed, read as fast as it is translated.
        buffer_seconds (`float`, defaults to 2.0): the real-time buffer, in seconds of frames.
        inference_precision (`str`, *optional*): "fp32", "bf16", "int8" or "auto", set on the model with its
            `set_inference_precision` (bfloat16 frame encoder, int8 mBART: see that method); by default the model runs
            in the precision it has.
        segmentation (`str`, defaults to `"auto"`): `"gate"` (one caption per stretch of signing the signing gate
            finds; needs a model with a gate), `"agreement"` (every window translated, merged by local agreement) or
            `"auto"` (`"gate"` for a model with a gate, else `"agreement"`). With `"gate"` the window is the longest
            stretch translated at once: a stretch of signing longer than it is translated in pieces.
        gate_seconds (`float`, *optional*): `"gate"` segmentation: the tail of the stream the gate looks at every
            stride; by default 0.8 s, or the window less one stride when that is shorter.
        gate_patience (`int`, defaults to 3): `"gate"` segmentation: idle decisions in a row that end a stretch of
            signing (a shorter dip of the gate inside a sentence does not cut it). A caption therefore comes
            `gate_seconds` plus `gate_patience - 1` to `gate_patience` strides after the end of its sentence, plus
            its translation.

    Frames are uint8 RGB `(3, H, W)` tensors or `(H, W, 3)` arrays, or `(timestamp_seconds, frame)` pairs. A stream
    faster than the processor's `fps` setting (the rate the model was trained on) is sampled at that rate, and the
    window's length in frames is counted at it (`stats.frames_subsampled`; not dropped). The first window is
    translated once it is full, then every `stride` frames; at the end of the stream, frames not yet in a translated
    window are translated with the window ending at the last frame. Each window's `latency` also holds
    `since_last_frame`: seconds from the arrival of its last frame to the end of its translation.
    """

    def __init__(self, model, processor, window_seconds: float = 4.0, stride_seconds: float | None = None,
                 fps: float = 25.0, agreement: int = 2, generate_kwargs: dict | None = None, *, realtime: bool = False,
                 buffer_seconds: float = 2.0, inference_precision: str | None = None, segmentation: str = "auto",
                 gate_seconds: float | None = None, gate_patience: int = 3):
        if model.training:
            raise ValueError("StreamingTranslator needs the model in eval mode (model.eval()): in training mode the "
                             "frame BatchNorm mixes the frames of a window")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if not buffer_seconds > 0:
            raise ValueError(f"buffer_seconds must be positive, got {buffer_seconds}")
        target = getattr(processor.video_processor, "fps", None)
        self.rate = min(fps, target) if target else fps  # frames per second the translator uses
        self.segmentation = self._segmentation(model, segmentation)
        if stride_seconds is None:
            stride_seconds = 0.2 if self.segmentation == "gate" else 1.0
        self.window = max(1, round(window_seconds * self.rate))
        self.stride = max(1, round(stride_seconds * self.rate))
        max_frames = model.config.max_frames
        if self.window > max_frames:
            raise ValueError(f"window_seconds={window_seconds} at {self.rate:g} frames/s is {self.window} frames, more "
                             f"than the model's max_frames={max_frames}: shorten the window")
        if self.stride > self.window:
            raise ValueError(f"stride_seconds={stride_seconds} is longer than window_seconds={window_seconds}: "
                             "frames between windows would never be translated")
        self.tail = max(1, round((gate_seconds or 0.8) * self.rate))
        if gate_seconds is None:
            self.tail = max(1, min(self.tail, self.window - self.stride))
        elif self.segmentation == "gate" and self.tail + self.stride > self.window:
            raise ValueError(f"gate_seconds={gate_seconds} plus stride_seconds={stride_seconds} is longer than "
                             f"window_seconds={window_seconds}: lengthen the window")
        if gate_patience < 1:
            raise ValueError(f"gate_patience must be at least 1 decision, got {gate_patience}")
        self.gate_patience = gate_patience
        if inference_precision is not None:
            model.set_inference_precision(inference_precision)
        self.model, self.processor, self.fps = model, processor, fps
        self.agreement = agreement
        self.generate_kwargs = dict(generate_kwargs or {})
        self.realtime, self.buffer_frames = realtime, max(1, round(buffer_seconds * self.rate))
        self.stats = StreamingStats()

    @staticmethod
    def _segmentation(model, segmentation: str) -> str:
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation must be one of {SEGMENTATIONS}, got {segmentation!r}")
        gated = model.sign_encoder.signing_gate is not None
        if segmentation == "gate" and not gated:
            raise ValueError("segmentation='gate' needs a model with a signing gate (config.signing_gate, trained "
                             "with idle clips); use segmentation='agreement'")
        if segmentation == "auto":
            return "gate" if gated else "agreement"
        return segmentation

    def is_signing(self, probability: float, start: float, end: float) -> bool:
        """`"gate"` segmentation: whether the tail from `start` to `end` (seconds of the stream) holds signing, from
        the gate's `probability`: at least `config.signing_threshold`. A subclass may decide otherwise (the streaming
        benchmark follows a script of sentences, as a random model's gate knows none)."""
        return probability >= self.model.config.signing_threshold

    def encode_frame(self, frame) -> torch.Tensor:
        """One frame's normalised feature `(frame_dim,)`: per-frame transform, frame encoder, projection, BatchNorm."""
        return self.encode_frames([frame])[0]

    def encode_frames(self, frames: list) -> torch.Tensor:
        """The features `(len(frames), frame_dim)` of frames encoded together (one frame-encoder call; the same
        features as one at a time, up to the round-off of a batched GEMM)."""
        tensors = [_as_frame(frame) for frame in frames]
        process = self.processor.video_processor.process_frames
        if len({tuple(tensor.shape) for tensor in tensors}) == 1:
            pixels = process(torch.stack(tensors))
        else:  # frames of several sizes (a source that changed resolution): each resized on its own
            pixels = torch.cat([process(tensor[None]) for tensor in tensors])
        encoder = self.model.sign_encoder
        pixels = pixels.to(device=self.model.device, dtype=encoder.frame_proj.weight.dtype)
        with torch.inference_mode():
            return encoder.frame_features(pixels)

    def _encoder_states(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The window's `window_encoder_states`, computed once: the gate and the translation of a window share them."""
        kept = getattr(self, "_kept_states", None)
        if kept is None or kept[0] is not features:
            with torch.inference_mode():
                kept = self._kept_states = (features, *window_encoder_states(self.model.sign_encoder, features))
        return kept[1], kept[2]

    def signing_probability(self, features: torch.Tensor) -> float | None:
        """The signing gate's probability that the window of stacked features holds signing (None without a gate)."""
        gate = self.model.sign_encoder.signing_gate
        if gate is None:
            return None
        states, step_mask = self._encoder_states(features)
        with torch.inference_mode():
            return torch.sigmoid(gate(states, step_mask).float()).item()

    def translate_window(self, features: torch.Tensor) -> tuple[str, float, float, float]:
        """Text, confidence and the seconds of the temporal-encoder and decoder stages for stacked features."""
        model = self.model
        began = time.perf_counter()
        with torch.inference_mode():
            states, step_mask = self._encoder_states(features)
            encoded = time.perf_counter()
            generation_config = copy.deepcopy(model.generation_config)
            extra = generation_config.update(**self.generate_kwargs, output_scores=True, return_dict_in_generate=True)
            output = model.generate_from_encoder_states(states, step_mask, generation_config, **extra)
        eos = generation_config.eos_token_id
        eos = set() if eos is None else {eos} if isinstance(eos, int) else set(eos)
        text = self.processor.tokenizer.decode(output.sequences[0], skip_special_tokens=True)
        confidence = _mean_log_probability(output, eos)
        return text.strip(), confidence, encoded - began, time.perf_counter() - encoded

    def __call__(self, frames: Iterable) -> Iterator[Caption]:
        """Yields each caption as soon as it is decided (a window confirms it, or its stretch of signing ends).
        `self.stats` counts what this run does with the frames."""
        self.stats = stats = StreamingStats()
        self._decoded = 0.0
        sampler = _FrameSampler(self.fps, self.rate)
        buffer = _LiveBuffer(frames, self.buffer_frames, sampler, stats) if self.realtime else None
        batches = buffer.take if buffer is not None else self._file_batches(iter(frames), sampler, stats)
        features, times = deque(maxlen=self.window), deque(maxlen=self.window)
        decide, finish = self._gate_rule() if self.segmentation == "gate" else self._agreement_rule()
        first = self.tail if self.segmentation == "gate" else self.window  # frames before the first decision
        spent = dict.fromkeys(STAGES, 0.0)  # since the last decision
        reach = self.model.config.frame_chunk_size if self.realtime else 0
        new, filled, last_arrival, dropped, position = 0, False, 0.0, 0, 0
        try:
            # Reading a file, at most the frames up to the next decision, so that it is taken as soon as its last
            # frame is in. Live, every frame waiting (up to the frame encoder's chunk): they have all arrived, and a
            # translator that fell behind catches up faster in wider batches.
            while batch := batches(max(self.stride - new if filled else first - len(features), reach)):
                began = time.perf_counter()
                encoded = self.encode_frames([frame for _, frame, _ in batch])
                seconds = time.perf_counter() - began
                spent["frame_encoder"] += seconds
                stats.seconds["frame_encoder"] += seconds
                stats.frames_encoded += len(batch)
                stats.encoder_batches += 1
                # Frames dropped since the last batch still count towards the stride: windows follow the stream's time.
                new, dropped = new + stats.frames_dropped - dropped, stats.frames_dropped
                for (timestamp, _, arrival), feature in zip(batch, encoded):
                    features.append(feature)
                    times.append(timestamp)
                    new, last_arrival, position = new + 1, arrival, position + 1
                    if len(features) >= first and (new >= self.stride or not filled):
                        filled, new = True, 0
                        caption = self._decision(decide, features, times, spent, last_arrival, position)
                        if caption is not None:
                            yield caption
            if new:  # frames after the last decision (or a stream shorter than the first one)
                caption = self._decision(decide, features, times, spent, last_arrival, position)
                if caption is not None:
                    yield caption
        finally:
            if buffer is not None:
                buffer.stop()
        caption = self._decision(finish, features, times, spent, last_arrival, position)
        if caption is not None:
            yield caption

    def _decision(self, rule, features: deque, times: deque, spent: dict, last_arrival: float,
                  position: int) -> Caption | None:
        """Runs one decision of the segmentation rule; its stages' seconds go to the stats, and `spent` starts over."""
        decoded = self.stats.seconds["decode"]  # the reader's decode seconds since the last decision
        spent["decode"], self._decoded = decoded - self._decoded, decoded
        caption = rule(features, times, spent, last_arrival, position)
        for stage in ("temporal_encoder", "decoder"):
            self.stats.seconds[stage] += spent[stage]
        spent.update(dict.fromkeys(spent, 0.0))
        return caption

    def _agreement_rule(self):
        """`"agreement"`: every decision translates the window; [`CaptionMerger`] confirms the captions."""
        merger = CaptionMerger(self.agreement)

        def decide(features, times, spent, last_arrival, position):
            return merger.push(self._record(self._window(features, times, spent), times, last_arrival))

        return decide, lambda *_: merger.flush()

    def _gate_rule(self):
        """`"gate"`: every decision asks the gate about the tail; [`SigningSegmenter`] turns the answers into stretches
        of signing, each translated once when it ends."""
        segmenter = SigningSegmenter(self.tail, self.stride, self.window, self.gate_patience)

        def decide(features, times, spent, last_arrival, position):
            count = min(self.tail, len(features))
            began = time.perf_counter()
            probability = self.signing_probability(torch.stack(list(islice(features, len(features) - count, None))))
            self._kept_states = None
            spent["temporal_encoder"] += time.perf_counter() - began
            self.stats.gate_checks.append((times[-count], times[-1], probability))
            stretch = segmenter.push(position, self.is_signing(probability, times[-count], times[-1]))
            return self._stretch(stretch, features, times, spent, last_arrival, position)

        def finish(features, times, spent, last_arrival, position):
            return self._stretch(segmenter.flush(position), features, times, spent, last_arrival, position)

        return decide, finish

    def _stretch(self, stretch, features: deque, times: deque, spent: dict, last_arrival: float,
                 position: int) -> Caption | None:
        """Translates a stretch of signing `(first, end)` (frames of the stream, all still in the ring buffer) into
        its caption; none when the gate, now looking at the whole stretch, calls it idle."""
        if stretch is None:
            return None
        offset = position - len(features)  # the stream's frame number of the buffer's first frame
        first, end = stretch[0] - offset, stretch[1] - offset
        kept = list(islice(times, first, end))
        window = self._record(self._window(list(islice(features, first, end)), kept, spent), times, last_arrival)
        if not window.text:
            return None
        return Caption(window.start, window.end, " ".join(window.text.split()), window.confidence,
                       dict(window.latency), window.signing_probability)

    def _file_batches(self, source: Iterator, sampler: _FrameSampler, stats: StreamingStats):
        """The batches of a file (not real time): `take(limit)` reads the next kept frames, at most `limit` and the
        frame encoder's chunk (at least one), each `(timestamp, frame, arrival)`; `[]` at the end."""
        chunk = self.model.config.frame_chunk_size

        def take(limit: int) -> list:
            batch = []
            while len(batch) < max(1, min(chunk, limit)):
                began = time.perf_counter()
                item = next(source, None)
                arrived = time.perf_counter()
                if item is None:
                    break
                stats.seconds["decode"] += arrived - began
                stats.frames_received += 1
                timestamp, frame, kept = sampler(item)
                if kept:
                    batch.append((timestamp, frame, arrived))
                else:
                    stats.frames_subsampled += 1
            return batch

        return take

    def _record(self, window: WindowTranslation, times: deque, last_arrival: float) -> WindowTranslation:
        """Counts a translated window and its time since the arrival of the decision's last frame."""
        finished = time.perf_counter()
        window.latency["since_last_frame"] = finished - last_arrival
        self.stats.window_times.append((times[-1], last_arrival, finished))
        self.stats.windows += 1
        return window

    def _window(self, features, times, spent: dict) -> WindowTranslation:
        """Translates the stacked `features` (a deque or list) unless the gate calls them idle."""
        stacked = torch.stack(list(features))
        began = time.perf_counter()
        probability = self.signing_probability(stacked)
        gate_seconds = time.perf_counter() - began
        if probability is not None and probability < self.model.config.signing_threshold:
            text, confidence, encoder_seconds, decoder_seconds = "", float("-inf"), 0.0, 0.0  # idle: no decoding
        else:
            text, confidence, encoder_seconds, decoder_seconds = self.translate_window(stacked)
        self._kept_states = None
        spent["temporal_encoder"] += gate_seconds + encoder_seconds
        spent["decoder"] += decoder_seconds
        latency = {**spent, "total": sum(spent.values())}
        return WindowTranslation(times[0], times[-1] + 1.0 / self.fps, text, confidence, latency, probability)
