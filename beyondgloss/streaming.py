# Copyright 2026 The beyondgloss authors. MIT license.
"""Live captions: translation of a stream of frames on a sliding window (docs/streaming.md).

Each frame goes through the processor's per-frame transform and the frame encoder once, as it arrives; its feature
(the frame projection and BatchNorm output: per frame in eval mode) is kept in a ring buffer of one window. Every
`stride_seconds` the rest of the model (hand head and fusion, temporal encoder, description head, mBART) runs on the
window, and [`CaptionMerger`] turns the overlapping windows' translations into captions, each sentence emitted once.
A model with a signing gate (`config.signing_gate`) first asks it whether the window holds signing: a window below
`config.signing_threshold` is not decoded and counts as an empty translation.
"""

import copy
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import torch

__all__ = ["Caption", "CaptionMerger", "StreamingTranslator", "WindowTranslation", "window_encoder_states"]

STAGES = ("decode", "frame_encoder", "temporal_encoder", "decoder")


@dataclass
class WindowTranslation:
    """The translation of one window: its time span in seconds, text, confidence and per-stage latency, and the
    signing gate's probability that it holds signing (`None` without a gate; an idle window's text is empty and its
    confidence `-inf`: it was not decoded)."""

    start: float
    end: float
    text: str
    confidence: float
    latency: dict = field(default_factory=dict)
    signing_probability: float | None = None


@dataclass
class Caption:
    r"""One caption.

    Attributes:
        start, end (`float`): seconds of the stream it covers (first frame of its first window, last frame of the
            window that confirmed it, plus one frame).
        text (`str`): the translation.
        confidence (`float`): mean log-probability of its generated tokens (at most 0; higher is surer), of the
            window that confirmed it (with `signing_probability`, the caption's confidence).
        latency (`dict[str, float]`): seconds spent per stage on the window that confirmed it: `decode` (reading the
            frames new since the previous window), `frame_encoder` (those frames), `temporal_encoder` (heads and
            temporal encoder on the window), `decoder` (mBART generation), and `total`.
        signing_probability (`float`, *optional*): the signing gate's probability that the confirming window holds
            signing; `None` for a model without a gate.
    """

    start: float
    end: float
    text: str
    confidence: float
    latency: dict = field(default_factory=dict)
    signing_probability: float | None = None


class CaptionMerger:
    r"""Turns the translations of overlapping windows into captions, each sentence once.

    The rule (local agreement): a text is emitted when `agreement` consecutive windows produce it (after stripping
    and collapsing spaces), unless it is the text emitted last. The caption starts where the first of those windows
    starts and ends where the confirming one ends. An empty text is never emitted and breaks a run. A text produced by
    fewer consecutive windows is dropped as a flicker, except at the end of the stream: [`flush`] emits the last
    window's text when it is new, as no later window can confirm it. `agreement=1` emits every change of text.
    """

    def __init__(self, agreement: int = 2):
        if agreement < 1:
            raise ValueError(f"agreement must be at least 1 window, got {agreement}")
        self.agreement = agreement
        self.run: list[WindowTranslation] = []
        self.last_text: str | None = None

    def push(self, window: WindowTranslation) -> Caption | None:
        """Adds the next window's translation; returns the caption it confirms, if any."""
        text = " ".join(window.text.split())
        if not text:
            self.run = []
            return None
        if self.run and " ".join(self.run[-1].text.split()) != text:
            self.run = []
        self.run.append(window)
        if len(self.run) == self.agreement:
            return self._emit(text)
        return None

    def flush(self) -> Caption | None:
        """The end of the stream: the last window's text as a caption when it is new and was not emitted."""
        if self.run and len(self.run) < self.agreement:
            return self._emit(" ".join(self.run[-1].text.split()))
        return None

    def _emit(self, text: str) -> Caption | None:
        first, last = self.run[0], self.run[-1]
        if text == self.last_text:
            return None
        self.last_text = text
        return Caption(first.start, last.end, text, last.confidence, dict(last.latency), last.signing_probability)


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


class StreamingTranslator:
    r"""
    Translates a stream of frames as they arrive: a generator of [`Caption`]s.

    Args:
        model ([`BeyondGlossForSignTranslation`]): in eval mode (the frame BatchNorm must use its running statistics
            for a frame's feature to be its own).
        processor ([`BeyondGlossProcessor`]): its video processor's per-frame transform (resize, crop, normalise)
            and its tokenizer.
        window_seconds (`float`, defaults to 4.0): the span translated at once; at most `config.max_frames` frames.
        stride_seconds (`float`, defaults to 1.0): how often a window is translated; at most `window_seconds`.
        fps (`float`, defaults to 25.0): frame rate of the stream, for frames given without timestamps and for
            the window's length in frames.
        agreement (`int`, defaults to 2): consecutive windows that must agree on a text ([`CaptionMerger`]).
        generate_kwargs (`dict`, *optional*): generation settings (`num_beams`, `max_new_tokens`, ...).

    Frames are uint8 RGB `(3, H, W)` tensors or `(H, W, 3)` arrays, or `(timestamp_seconds, frame)` pairs. The first
    window is translated once it is full, then every `stride` frames; at the end of the stream, frames not yet in a
    translated window are translated with the window ending at the last frame.
    """

    def __init__(self, model, processor, window_seconds: float = 4.0, stride_seconds: float = 1.0, fps: float = 25.0,
                 agreement: int = 2, generate_kwargs: dict | None = None):
        if model.training:
            raise ValueError("StreamingTranslator needs the model in eval mode (model.eval()): in training mode the "
                             "frame BatchNorm mixes the frames of a window")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.window = max(1, round(window_seconds * fps))
        self.stride = max(1, round(stride_seconds * fps))
        max_frames = model.config.max_frames
        if self.window > max_frames:
            raise ValueError(f"window_seconds={window_seconds} at {fps} frames/s is {self.window} frames, more than "
                             f"the model's max_frames={max_frames}: shorten the window")
        if self.stride > self.window:
            raise ValueError(f"stride_seconds={stride_seconds} is longer than window_seconds={window_seconds}: "
                             "frames between windows would never be translated")
        self.model, self.processor, self.fps = model, processor, fps
        self.agreement = agreement
        self.generate_kwargs = dict(generate_kwargs or {})

    def encode_frame(self, frame) -> torch.Tensor:
        """One frame's normalised feature `(frame_dim,)`: per-frame transform, frame encoder, projection, BatchNorm."""
        frame = torch.as_tensor(frame)
        if frame.dim() == 3 and frame.shape[0] != 3 and frame.shape[-1] == 3:
            frame = frame.permute(2, 0, 1)
        if frame.dim() != 3 or frame.shape[0] != 3 or frame.dtype != torch.uint8:
            raise ValueError(f"a frame must be uint8 RGB of shape (3, H, W) or (H, W, 3); got {frame.dtype} "
                             f"{tuple(frame.shape)}")
        pixels = self.processor.video_processor.process_frames(frame[None])
        encoder = self.model.sign_encoder
        pixels = pixels.to(device=self.model.device, dtype=encoder.frame_proj.weight.dtype)
        with torch.inference_mode():
            return encoder.frame_features(pixels)[0]

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
            with model.mbart_precision():
                output = model.mbart.generate(inputs_embeds=states, attention_mask=step_mask,
                                              generation_config=generation_config, **extra)
        eos = generation_config.eos_token_id
        eos = set() if eos is None else {eos} if isinstance(eos, int) else set(eos)
        text = self.processor.tokenizer.decode(output.sequences[0], skip_special_tokens=True)
        confidence = _mean_log_probability(output, eos)
        return text.strip(), confidence, encoded - began, time.perf_counter() - encoded

    def __call__(self, frames: Iterable) -> Iterator[Caption]:
        """Yields each caption as soon as the window that confirms it has been translated."""
        features, times = deque(maxlen=self.window), deque(maxlen=self.window)
        merger = CaptionMerger(self.agreement)
        spent = dict.fromkeys(("decode", "frame_encoder"), 0.0)
        new, index, source = 0, 0, iter(frames)
        while True:
            began = time.perf_counter()
            item = next(source, None)
            if item is None:
                break
            spent["decode"] += time.perf_counter() - began
            timestamp, frame = item if isinstance(item, tuple) else (index / self.fps, item)
            began = time.perf_counter()
            features.append(self.encode_frame(frame))
            spent["frame_encoder"] += time.perf_counter() - began
            times.append(float(timestamp))
            index, new = index + 1, new + 1
            if len(features) == self.window and (new >= self.stride or index == self.window):
                caption = merger.push(self._window(features, times, spent))
                spent, new = dict.fromkeys(spent, 0.0), 0
                if caption is not None:
                    yield caption
        if new:  # frames not yet in a translated window (or a stream shorter than one window)
            caption = merger.push(self._window(features, times, spent))
            if caption is not None:
                yield caption
        caption = merger.flush()
        if caption is not None:
            yield caption

    def _window(self, features: deque, times: deque, spent: dict) -> WindowTranslation:
        stacked = torch.stack(list(features))
        began = time.perf_counter()
        probability = self.signing_probability(stacked)
        gate_seconds = time.perf_counter() - began
        if probability is not None and probability < self.model.config.signing_threshold:
            text, confidence, encoder_seconds, decoder_seconds = "", float("-inf"), 0.0, 0.0  # idle: no decoding
        else:
            text, confidence, encoder_seconds, decoder_seconds = self.translate_window(stacked)
        self._kept_states = None
        latency = {**spent, "temporal_encoder": gate_seconds + encoder_seconds, "decoder": decoder_seconds}
        latency["total"] = sum(latency.values())
        return WindowTranslation(times[0], times[-1] + 1.0 / self.fps, text, confidence, latency, probability)
