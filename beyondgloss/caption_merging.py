# Copyright 2026 The beyondgloss authors. MIT license.
"""How the translator's decisions on a stream become captions (docs/streaming.md): the caption types, the merge of
overlapping windows by local agreement ([`CaptionMerger`]) and the cut of a stream into stretches of signing by the
signing gate ([`SigningSegmenter`]). Pure bookkeeping: no model here."""

from dataclasses import dataclass, field

__all__ = ["Caption", "CaptionMerger", "SigningSegmenter", "WindowTranslation"]


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
    r"""One caption: of a stretch of signing (the gate's segmentation) or confirmed by agreeing windows.

    Attributes:
        start, end (`float`): seconds of the stream it covers: the stretch's first frame, or the first frame of the
            first agreeing window; the stretch's or the confirming window's last frame, plus one frame.
        text (`str`): the translation.
        confidence (`float`): mean log-probability of its generated tokens (at most 0; higher is surer), of the
            stretch or of the window that confirmed it (with `signing_probability`, the caption's confidence).
        latency (`dict[str, float]`): seconds spent per stage on the decision that emitted it: `decode` (reading the
            frames new since the previous decision), `frame_encoder` (those frames), `temporal_encoder` (the gate on
            the tail, heads and temporal encoder on the stretch or window), `decoder` (mBART generation), `total`,
            and `since_last_frame` (from the arrival of the decision's last frame to the end of its translation).
        signing_probability (`float`, *optional*): the signing gate's probability that the stretch (the confirming
            window) holds signing; `None` for a model without a gate.
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


class SigningSegmenter:
    r"""Cuts a stream into stretches of signing from the signing gate's decisions on its tail.

    Every stride the gate looks at the last `tail` frames. A stretch opens `lookback` frames before the first frame of
    the first tail it calls signing and closes once `patience` decisions in a row call the tail idle, at the last frame
    of the last signing tail: the span is the union of the signing tails and the look-back, and a dip of the gate
    inside a sentence shorter than `patience` decisions does not cut it. The look-back is there because a gate calls a
    tail signing only once most of it holds signing, so the first signing tail can start after the sentence does (on
    the demo, a tail with 16 of its 20 frames in a sentence's first signs scored 0.24, and the next one, wholly in the
    sentence, 0.9). A stretch that would grow past `max_frames` by the next decision (continuous signing) is cut
    there and a new one opens at the next frame. A new stretch never starts before the previous one ended. Frames are
    counted from the start of the stream; a stretch is `(first, end)`, `end` excluded.

    Args:
        tail (`int`): frames the gate looks at.
        stride (`int`): frames between decisions.
        max_frames (`int`): the longest stretch translated at once (the translator's window).
        patience (`int`, defaults to 3): idle decisions in a row that end a stretch.
        lookback (`int`, *optional*): frames a stretch starts before its first signing tail; half a tail by default.
    """

    def __init__(self, tail: int, stride: int, max_frames: int, patience: int = 3, lookback: int | None = None):
        if not 0 < tail <= max_frames or not 0 < stride <= max_frames:
            raise ValueError(f"the gate's tail ({tail} frames) and stride ({stride}) must be positive and at most the "
                             f"window ({max_frames} frames)")
        if patience < 1:
            raise ValueError(f"patience must be at least 1 decision, got {patience}")
        self.tail, self.stride, self.max_frames, self.patience = tail, stride, max_frames, patience
        self.lookback = tail // 2 if lookback is None else lookback
        self.start: int | None = None  # the open stretch's first frame
        self.end = 0  # the open stretch's last signing tail's end, else the last stretch's end
        self.idle = 0  # idle decisions in a row since the open stretch's last signing one

    def push(self, position: int, signing: bool) -> tuple[int, int] | None:
        """The gate's decision on the `tail` frames before frame `position`; returns a stretch to translate, if one
        ends here."""
        if self.start is None:
            if not signing:
                return None
            # Never before the last stretch ended, nor before the oldest frame the window still holds.
            self.start = max(position - self.tail - self.lookback, self.end, position - self.max_frames, 0)
        if signing:
            self.end, self.idle = position, 0
        else:
            self.idle += 1
            if self.idle >= self.patience:
                return self._close(self.end)
        if position + self.stride - self.start > self.max_frames:  # the next decision would not fit in the window
            if not signing:
                return self._close(self.end)
            stretch = self._close(position)
            self.start = position
            return stretch
        return None

    def flush(self, position: int) -> tuple[int, int] | None:
        """The end of the stream at frame `position`: the open stretch, with every frame after its last decision
        unless the gate has called the tail idle since its last signing one."""
        if self.start is None:
            return None
        return self._close(self.end if self.idle else position)

    def _close(self, end: int) -> tuple[int, int] | None:
        start, self.start, self.end, self.idle = self.start, None, end, 0
        return (start, end) if end > start else None
