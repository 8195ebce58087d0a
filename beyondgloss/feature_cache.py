# Copyright 2026 The beyondgloss authors. MIT license.
"""A per-video cache of the frame encoder's output for training with a frozen DINOv2 (shipped in checkpoints)."""

import hashlib
from collections import OrderedDict

import torch

__all__ = ["FrozenFeatureCache", "weights_stamp"]


def weights_stamp(module: torch.nn.Module) -> tuple:
    """What identifies the current values of `module`'s parameters: each one's object, storage, in-place version
    counter (bumped by loading, an optimizer step, any in-place edit), type and device. Equal stamps, same weights,
    provided the stamped parameters are kept alive (an address can be reused once its tensor is freed)."""
    return tuple((id(p), p.data_ptr(), p._version, p.dtype, str(p.device)) for p in module.parameters())


class FrozenFeatureCache:
    r"""Per-video cache of the frame encoder's output (DINOv2 CLS features, `(frames, hidden_size)`), for when
    DINOv2 does not train (`vision_tuning="frozen"`): without augmentation a video then encodes to the same features
    every epoch, and a hit skips the whole ViT.

    Keys are content digests (BLAKE2b of the frames' bytes, plus shape, dtype and autocast state), computed here
    rather than given by the caller: a video id cannot prove that the pixels are the same (augmentation, another
    crop or frame rate), a digest can, and hashing costs about 1% of encoding the frames. With augmentation on,
    videos simply miss. Entries are dropped when any DINOv2 or LoRA weight changes in place or is replaced
    (optimizer steps, `load_state_dict`), and the least recently used ones when the cache exceeds `max_megabytes`
    (CLS features are small: 300 frames of ViT-S take 0.45 MB). Only the CLS output is cached: the hidden states
    below a LoRA block would take 257 x more memory than the frames they save.
    """

    def __init__(self, max_megabytes: float = 1024.0):
        if max_megabytes <= 0:
            raise ValueError(f"max_megabytes={max_megabytes} must be positive.")
        self.max_bytes = int(max_megabytes * 2**20)
        self.hits = self.misses = 0
        self._entries = OrderedDict()
        self._bytes = 0
        self._weights_stamp = None

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    @staticmethod
    def usable(frame_encoder) -> bool:
        """Only when nothing in the frame encoder (a [`BeyondGlossFrameEncoder`]) trains (cached features carry no
        autograd graph) and it is deterministic (no DINOv2 dropout or drop path active)."""
        vision = frame_encoder.config.vision_config
        stochastic = frame_encoder.training and (vision.drop_path_rate > 0 or vision.hidden_dropout_prob > 0)
        return not stochastic and not any(p.requires_grad for p in frame_encoder.parameters())

    @staticmethod
    def _stamp(frame_encoder) -> tuple:
        # bfloat16 inference encodes other features: the compute type is part of the stamp.
        return (frame_encoder.compute_dtype, *weights_stamp(frame_encoder))

    @staticmethod
    def _key(video: torch.Tensor) -> tuple:
        device = video.device.type
        autocast = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        data = video.detach().contiguous().cpu()
        digest = hashlib.blake2b(data.view(torch.uint8).numpy().data, digest_size=20).hexdigest()
        return digest, tuple(video.shape), video.dtype, str(video.device), autocast

    def encode(self, frames: torch.Tensor, lengths: list[int], encoder, frame_encoder) -> torch.Tensor:
        """Features of packed `frames` `(N, 3, H, W)` of videos of `lengths`; misses are encoded together by
        `encoder` (packed frames -> features) and stored; `frame_encoder` is the module whose weights they depend on."""
        stamp = self._stamp(frame_encoder)
        if stamp != self._weights_stamp:
            self.clear()
            self._weights_stamp = stamp
        videos = frames.split([int(n) for n in lengths])
        keys = [self._key(video) for video in videos]
        missing = [i for i, key in enumerate(keys) if key not in self._entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        computed = {}
        if missing:
            with torch.no_grad():
                encoded = encoder(torch.cat([videos[i] for i in missing]))
            computed = dict(zip(missing, encoded.split([len(videos[i]) for i in missing])))
        features = []
        for index, key in enumerate(keys):
            if index in computed:
                self._store(key, computed[index])
                features.append(computed[index])
            else:
                self._entries.move_to_end(key)
                features.append(self._entries[key])
        return torch.cat(features)

    def _store(self, key, value: torch.Tensor) -> None:
        value = value.detach().clone()
        self._entries[key] = value
        self._bytes += value.numel() * value.element_size()
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= dropped.numel() * dropped.element_size()
