"""The live-captions part of `beyondgloss demo` (docs/streaming.md): the signing gate's training inputs, and after
training a long test video captioned as a stream.

- [`IdleMarginCollator`]: during translation training, a signing clip gets, with probability 0.8, 0 to 30 idle frames
  (hands at rest or drifting, the clip's own signer) before and after it, with their hand parameters. A stretch of
  signing cut from a live stream holds its sentence between up to a tail and a half (30 frames) of idle frames; a
  decoder that never saw idle frames beside a sentence reads them as signs (with margins of at most 20 frames on half
  the clips, 25 and 20 frames around a test sentence cost 5 BLEU-4 points; with 30 frames on half the clips, a stretch
  now and then still read idle frames before a sentence as a time sign).
  An idle clip is, with probability 1/2, replaced by a freshly rendered one (at rest or drifting, 12 to 60 frames, its
  own signer, a new random motion): the corpus's few hundred idle clips alone left the gate calling one drifting
  stretch in ten signing.
- [`gate_scores`]: the gate's precision and recall on held-out SynthSign clips, signing against idle.
- [`caption_long_video`]: several held-out test sentences with idle stretches between them, as one mp4, captioned by
  [`StreamingTranslator`] with the gate's segmentation (one caption per stretch of signing); writes `captions.srt`,
  `long_test_video.mp4` and `gate_probability.png` and scores the captions: how many per sentence, how many in idle
  stretches, and BLEU-4 against clip-level translation.
"""

import json

import numpy as np
import torch

__all__ = ["IdleMarginCollator", "caption_long_video", "gate_scores", "live_captions", "one_signers_sentences",
           "print_live_captions", "render_idle_frames", "signing_only", "tail_scores"]


def signing_only(split):
    """The rows of a split that hold signing (all of them in a corpus without idle clips)."""
    if "signing" not in split.column_names:
        return split
    return split.filter(lambda signing: signing, input_columns=["signing"])


def render_idle_frames(kind: str, count: int, signer: int, seed: int, image_size: int) -> tuple:
    """`count` idle frames of `kind` ("rest" or "fidget") by `signer`: uint8 (T, 3, S, S), hand parameters (T, D)
    and hand mask (T,), as torch tensors."""
    from ..data.synthsign_idle import render_idle_clip

    frames, params, mask = render_idle_clip({"idle": kind, "num_frames": count, "signer": signer, "seed": seed},
                                            image_size)
    return torch.from_numpy(frames), torch.from_numpy(params), torch.from_numpy(mask)


def _signer_index(row: dict) -> int:
    return int(str(row.get("signer") or "signer0").removeprefix("signer") or 0)


class IdleMarginCollator:
    """Wraps a collator of rows whose videos come from `frames` (`{id: uint8 (T, 3, H, W)}`); signing rows get idle
    margins of 0 to `max_margin` frames on each side with `probability`, and idle rows are replaced by a fresh idle
    clip of `idle_frames` frames with `fresh_idle` (see the module docstring)."""

    def __init__(self, collator, frames: dict, image_size: int, max_margin: int = 30, probability: float = 0.8,
                 fresh_idle: float = 0.5, idle_frames: tuple = (12, 60), seed: int = 0):
        self.collator, self.frames, self.image_size = collator, frames, image_size
        self.max_margin, self.probability = max_margin, probability
        self.fresh_idle, self.idle_frames = fresh_idle, idle_frames
        self.rng = np.random.default_rng([seed, 27])

    def __call__(self, rows: list) -> dict:
        return self.collator([self._with_margins(row) for row in rows])

    def _with_margins(self, row: dict) -> dict:
        video = self.frames[row["id"]]
        if row.get("signing") is False and self.rng.random() < self.fresh_idle:
            return self._fresh_idle(row)
        if row.get("signing") is False or self.rng.random() >= self.probability:
            return {**row, "video": video}
        signer = _signer_index(row)
        parts = []
        for count in self.rng.integers(0, self.max_margin + 1, size=2):
            kind = ("rest", "fidget")[int(self.rng.integers(2))]
            parts.append(render_idle_frames(kind, int(count), signer, int(self.rng.integers(2 ** 31)),
                                            self.image_size))
        (before, hands_before, mask_before), (after, hands_after, mask_after) = parts
        row = {**row, "video": torch.cat([before, video, after])}
        if row.get("hand_features") is not None:
            hands = torch.as_tensor(np.asarray(row["hand_features"], dtype=np.float32))
            mask = torch.as_tensor(np.asarray(row["hand_mask"], dtype=np.float32))
            row["hand_features"] = torch.cat([hands_before, hands, hands_after])
            row["hand_mask"] = torch.cat([mask_before, mask, mask_after])
        return row


    def _fresh_idle(self, row: dict) -> dict:
        kind = ("rest", "fidget")[int(self.rng.integers(2))]
        count = int(self.rng.integers(self.idle_frames[0], self.idle_frames[1] + 1))
        video, hands, mask = render_idle_frames(kind, count, _signer_index(row), int(self.rng.integers(2 ** 31)),
                                                self.image_size)
        row = {**row, "video": video}
        if row.get("hand_features") is not None:
            row["hand_features"], row["hand_mask"] = hands, mask
        return row


def gate_scores(model, collator, rows: list, batch_size: int = 50) -> dict:
    """The gate's precision and recall for signing (positive) and for idle clips over `rows` (held-out clips with a
    `signing` label), at `model.config.signing_threshold`."""
    probabilities, labels = [], []
    model.eval()
    for start in range(0, len(rows), batch_size):
        batch = collator(rows[start:start + batch_size])
        probabilities += model.signing_probability(batch["pixel_values_videos"], batch["video_attention_mask"]).tolist()
        labels += batch["signing"].tolist()
    said = np.asarray(probabilities) >= model.config.signing_threshold
    return {**_precision_recall(said, np.asarray(labels).astype(bool), "clips"),
            "threshold": model.config.signing_threshold}


def _precision_recall(said: np.ndarray, truth: np.ndarray, unit: str) -> dict:
    """Precision and recall of boolean decisions `said` against `truth`, for signing and for idle, with the counts."""

    def ratio(hits, total):
        return float(hits / total) if total else float("nan")

    return {
        "signing_precision": ratio((said & truth).sum(), said.sum()),
        "signing_recall": ratio((said & truth).sum(), truth.sum()),
        "idle_precision": ratio((~said & ~truth).sum(), (~said).sum()),
        "idle_recall": ratio((~said & ~truth).sum(), (~truth).sum()),
        f"signing_{unit}": int(truth.sum()), f"idle_{unit}": int((~truth).sum()),
    }


def one_signers_sentences(split, count: int, first: int = 0) -> list:
    """The first `count` rows of `split` from row `first` on that are signed by the signer of row `first`: a long
    video is one person signing."""
    signer = split[first].get("signer")
    rows = (split[index] for index in range(first, len(split)))
    return [row for row in rows if row.get("signer") == signer][:count]


def build_long_video(rows: list, frames: dict, image_size: int, seed: int, gap: tuple = (85, 110)) -> tuple:
    """Test sentences `rows` one after another, with idle stretches (at rest or drifting) of `gap` frames by the
    signer of the first before, between and after them. Returns the uint8 video (T, 3, S, S) and each sentence's
    `(first frame, end frame)`."""
    rng = np.random.default_rng([seed, 28])
    signer = _signer_index(rows[0])
    parts, spans, position = [], [], 0
    for row in [*rows, None]:
        count = int(rng.integers(gap[0], gap[1] + 1))
        kind = ("rest", "fidget")[int(rng.integers(2))]
        parts.append(render_idle_frames(kind, count, signer, int(rng.integers(2 ** 31)), image_size)[0])
        position += count
        if row is not None:
            parts.append(frames[row["id"]])
            spans.append((position, position + len(parts[-1])))
            position += len(parts[-1])
    return torch.cat(parts), spans


def _overlap(first: tuple, second: tuple) -> float:
    return max(0.0, min(first[1], second[1]) - max(first[0], second[0]))


def score_captions(captions: list, spans_seconds: list, references: list, clip_translations: list) -> dict:
    """Matches each caption to the sentence whose span it overlaps most; scores the streamed captions (the matched
    caption per sentence, "" where none) and the clip-level translations against the references (BLEU-4, plain
    convention, `beyondgloss.metrics`)."""
    from ..metrics import compute_translation_metrics

    matched = [[] for _ in spans_seconds]
    in_idle = []
    for caption in captions:
        overlaps = [_overlap((caption.start, caption.end), span) for span in spans_seconds]
        best = int(np.argmax(overlaps))
        (matched[best] if overlaps[best] > 0 else in_idle).append(caption.text)
    streamed = [texts[0] if texts else "" for texts in matched]
    stream_bleu = compute_translation_metrics(streamed, references, language="en", convention="plain")["bleu4"]
    clip_bleu = compute_translation_metrics(clip_translations, references, language="en", convention="plain")["bleu4"]
    return {
        "sentences": len(references), "captions": len(captions),
        "captions_per_sentence": [len(texts) for texts in matched],
        "sentences_without_caption": sum(not texts for texts in matched),
        "duplicate_captions": sum(max(0, len(texts) - 1) for texts in matched),
        "captions_in_idle_stretches": len(in_idle),
        "streamed_bleu4": stream_bleu, "clip_bleu4": clip_bleu,
        "streamed": streamed, "clip_level": clip_translations, "references": references,
    }


def _write_srt(captions: list, path) -> None:
    def stamp(seconds: float) -> str:
        milliseconds = round(seconds * 1000)
        return (f"{milliseconds // 3_600_000:02d}:{milliseconds // 60_000 % 60:02d}:{milliseconds // 1000 % 60:02d},"
                f"{milliseconds % 1000:03d}")

    path.write_text("".join(f"{number}\n{stamp(c.start)} --> {stamp(c.end)}\n{c.text}\n\n"
                            for number, c in enumerate(captions, start=1)), encoding="utf-8")


def _plot_gate(checks: list, spans_seconds: list, captions: list, threshold: float, path) -> None:
    """`checks`: the translator's `stats.gate_checks`, `(first, last frame's time, probability)` per tail."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(12, 3.5))
    for number, (start, end) in enumerate(spans_seconds):
        axis.axvspan(start, end, color="tab:green", alpha=0.15, label="sentence" if number == 0 else None)
    axis.plot([end for _, end, _ in checks], [probability for _, _, probability in checks], ".-", color="tab:blue",
              markersize=3, label="gate probability (tail ending here)")
    axis.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label="threshold")
    for number, caption in enumerate(captions):
        axis.plot([caption.start, caption.end], [1.04, 1.04], color="black", linewidth=3,
                  label="caption" if number == 0 else None)
    axis.set(xlabel="seconds", ylabel="P(signing)", ylim=(-0.02, 1.1),
             title="Signing gate over the long test video (green: sentences; black: captions)")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def caption_long_video(model, processor, rows: list, frames: dict, clip_translations: list, out, image_size: int,
                       seed: int, window_seconds: float, stride_seconds: float, gate_seconds: float,
                       num_beams: int) -> dict:
    """Builds the long test video from `rows` (test sentences), captions it as a stream (the gate's segmentation),
    writes `long_test_video.mp4`, `captions.srt` and `gate_probability.png` into `out`, and returns
    [`score_captions`]' figures with timings."""
    import time

    from ..data.synthsign_rendering import FRAME_RATE, encode_video
    from ..streaming import StreamingTranslator
    from ..video_io import read_video_frames

    video, spans = build_long_video(rows, frames, image_size, seed)
    encode_video(video.numpy(), out / "long_test_video.mp4")
    video = read_video_frames(str(out / "long_test_video.mp4"))  # the stream is the decoded file, as a caller's
    class Timed(StreamingTranslator):  # notes, per caption, the stream time of the decision that emitted it
        def _stretch(self, *args):
            caption = super()._stretch(*args)
            if caption is not None:
                told.append(self.stats.window_times[-1][0])
            return caption

    told = []
    translator = Timed(model.eval(), processor, window_seconds=window_seconds, stride_seconds=stride_seconds,
                       fps=FRAME_RATE, segmentation="gate", gate_seconds=gate_seconds,
                       generate_kwargs={"num_beams": num_beams})
    started = time.perf_counter()
    captions = list(translator(video))
    seconds = time.perf_counter() - started
    spans_seconds = [(first / FRAME_RATE, end / FRAME_RATE) for first, end in spans]
    _write_srt(captions, out / "captions.srt")
    checks = translator.stats.gate_checks
    _plot_gate(checks, spans_seconds, captions, model.config.signing_threshold, out / "gate_probability.png")
    result = score_captions(captions, spans_seconds, [row["text"] for row in rows], clip_translations)
    result["gate_tails"] = tail_scores(checks, spans_seconds, model.config.signing_threshold)
    result.update(video_seconds=round(len(video) / FRAME_RATE, 2), gate_checks=len(checks),
                  stretches_translated=translator.stats.windows, captioning_seconds=round(seconds, 2),
                  window_seconds=window_seconds, stride_seconds=stride_seconds, gate_seconds=gate_seconds,
                  caption_delay_seconds=_caption_delays(captions, told, spans_seconds))
    return result


def tail_scores(checks: list, spans_seconds: list, threshold: float) -> dict:
    """The gate's precision and recall on the tails of a stream (`stats.gate_checks`): a tail wholly inside a sentence
    is signing, one that touches none is idle, one across a sentence's edge is left out."""
    said, truth = [], []
    for start, end, probability in checks:
        inside = any(first <= start and end < last for first, last in spans_seconds)
        touches = any(start < last and end >= first for first, last in spans_seconds)
        if inside or not touches:
            said.append(probability >= threshold)
            truth.append(inside)
    return _precision_recall(np.asarray(said, dtype=bool), np.asarray(truth, dtype=bool), "tails")


def _caption_delays(captions: list, told: list, spans_seconds: list) -> list:
    """Per caption, the seconds of the stream from the end of the sentence it overlaps most to the last frame of the
    decision that emitted it (`told`): what the gate's segmentation waits for, before any computation."""
    delays = []
    for caption, moment in zip(captions, told):
        overlaps = [_overlap((caption.start, caption.end), span) for span in spans_seconds]
        delays.append(round(moment - spans_seconds[int(np.argmax(overlaps))][1], 3))
    return delays


def live_captions(args, data, processor, model, collator, frames: dict, out) -> dict | None:
    """`beyondgloss demo`'s live-captions figures (with a gate): the gate's precision and recall on held-out clips
    (`collator` makes their batches) and the long test video's captions."""
    if model.sign_encoder.signing_gate is None:
        return None
    held_out = [row for split in ("validation", "test") for row in data[split].remove_columns(["video"])]
    result = {"gate": gate_scores(model, collator, held_out)}
    if args.stream_sentences > 0:
        rows = one_signers_sentences(signing_only(data["test"]).remove_columns(["video"]), args.stream_sentences)
        # Clip-level translations of the same sentences: the test evaluation's.
        lines = (out / "test_predictions.jsonl").read_text(encoding="utf-8").splitlines()
        predictions = {record["id"]: record["prediction"] for record in map(json.loads, lines)}
        clip_level = [predictions[row["id"]] for row in rows]
        result["long_video"] = caption_long_video(
            model, processor, rows, frames, clip_level, out, model.config.vision_config.image_size, args.seed,
            args.window_seconds, args.stride_seconds, args.gate_seconds, args.num_beams)
    return result


def print_live_captions(captions: dict | None, out) -> None:
    """Prints the figures of [`live_captions`]."""
    if captions:
        gate = captions["gate"]
        print(f"[demo] signing gate on {gate['signing_clips']} held-out signing and {gate['idle_clips']} idle clips: "
              f"precision {gate['signing_precision']:.3f}, recall {gate['signing_recall']:.3f} (idle: precision "
              f"{gate['idle_precision']:.3f}, recall {gate['idle_recall']:.3f})")
    if captions and "long_video" in captions:
        video = captions["long_video"]
        print(f"[demo] long test video ({video['video_seconds']:.0f} s, {video['sentences']} sentences): "
              f"{video['captions']} captions, {video['duplicate_captions']} duplicates, "
              f"{video['sentences_without_caption']} sentences uncaptioned, {video['captions_in_idle_stretches']} "
              f"captions in idle stretches; BLEU-4 streamed {video['streamed_bleu4']:.2f} vs clip-level "
              f"{video['clip_bleu4']:.2f}; captions: {out / 'captions.srt'}, gate: {out / 'gate_probability.png'}")
        tails = video["gate_tails"]
        print(f"[demo] the gate on the stream's {tails['signing_tails']} signing and {tails['idle_tails']} idle tails: "
              f"precision {tails['signing_precision']:.3f}, recall {tails['signing_recall']:.3f} (idle: precision "
              f"{tails['idle_precision']:.3f}, recall {tails['idle_recall']:.3f})")
