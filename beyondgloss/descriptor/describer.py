"""Describing the hand motion of video segments with an open vision-language model."""

from collections.abc import Sequence

import torch
from PIL import Image

from ._models import decode_new_tokens, move_to_model
from .loading import PretrainedWrapper
from .segments import GRID_GAP, GRID_MAX_SIDE, SEGMENT_LENGTH, frame_grid, segment_ranges

__all__ = ["DESCRIBE_PROMPT", "SignVideoDescriber", "NotAnImageTextToTextModelError"]

# Written for this package. The reference's prompt also asks for facial expressions; the refinement drops
# them anyway, so this one keeps the model on the hands from the start.
DESCRIBE_PROMPT = (
    "The image shows consecutive frames of a sign language video, tiled left to right and top to bottom "
    "with white gaps between them. Describe only the hands, in the order the frames show them: for each "
    "hand (left and right), where it is relative to the body (for example near the chest, beside the face, "
    "in front of the shoulder), its shape (which fingers are extended, bent or touching, whether the hand "
    "is flat, a fist or curved, where the palm faces), and how it moves from frame to frame (direction, "
    "trajectory such as straight, circular or arc, repetitions, speed, contact between the hands or with "
    "the body). Say when a hand is not visible or does not move. Do not describe the person, their "
    "clothes, the background or any colours, and do not guess what the signs mean."
)


class NotAnImageTextToTextModelError(ValueError):
    """A model id names a checkpoint that `AutoModelForImageTextToText` cannot load."""


class SignVideoDescriber(PretrainedWrapper):
    """Describes the hand motion of each 16-frame segment of a sign video with a vision-language model.

    Any checkpoint that `transformers.AutoModelForImageTextToText` and `AutoProcessor` load works (LLaVA,
    Qwen2-VL, Idefics, Gemma 3, ...). Each segment is tiled into one grid image (see `frame_grid`), sent
    with `prompt` through the processor's chat template, and decoded greedily.

    Args:
        model (`PreTrainedModel`): an image-text-to-text model.
        processor (`ProcessorMixin`): its processor, with a chat template.
        prompt (`str`): the instruction sent with every grid.
        max_new_tokens (`int`): the longest description, in tokens (the reference's 512).
        segment_length (`int`): frames per segment (the reference's 16).
        gap (`int`), max_side (`int`): grid geometry (the reference's 50 px and 1920 px).
        batch_size (`int`): segments described per `generate` call.

    `from_pretrained(model_id, device_map=None, dtype="auto", trust_remote_code=False, **kwargs)` loads the
    model and processor and raises `NotAnImageTextToTextModelError` for a checkpoint of another kind.

    ```python
    >>> describer = SignVideoDescriber.from_pretrained("path/to/vlm")
    >>> describer.describe_video(frames)        # frames: uint8 (T, 3, H, W)
    ['The right hand, flat with the palm down, rises from the chest ...', ...]
    ```
    """

    auto_model = "AutoModelForImageTextToText"
    auto_preprocessor = "AutoProcessor"
    accepted_model_types = "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"
    wrong_model_hint = (
        "the describer needs a vision-language chat model (for example a LLaVA, Qwen2-VL or Gemma 3 checkpoint)"
    )
    wrong_model_error = NotAnImageTextToTextModelError

    def __init__(
        self,
        model,
        processor,
        prompt: str = DESCRIBE_PROMPT,
        max_new_tokens: int = 512,
        segment_length: int = SEGMENT_LENGTH,
        gap: int = GRID_GAP,
        max_side: int | None = GRID_MAX_SIDE,
        batch_size: int = 4,
    ):
        if getattr(processor, "chat_template", None) is None:
            raise ValueError(
                f"the processor of {model.config.name_or_path or type(model).__name__} has no chat template; "
                "use an instruction-tuned checkpoint or set `processor.chat_template`"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model.eval()
        self.processor = processor
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            # Batched generation with a decoder-only model needs the prompts aligned on the right.
            tokenizer.padding_side = "left"
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.segment_length = segment_length
        self.gap = gap
        self.max_side = max_side
        self.batch_size = batch_size

    def segments(self, num_frames: int) -> list[range]:
        """The frame indices of each segment of a video of `num_frames` frames."""
        return segment_ranges(num_frames, self.segment_length)

    def segment_grid(self, frames: torch.Tensor | Sequence) -> Image.Image:
        """The grid image of one segment's frames (`(n, 3, H, W)` uint8 or a sequence of frames)."""
        return frame_grid(frames, gap=self.gap, max_side=self.max_side)

    def grids(self, frames: torch.Tensor | Sequence) -> list[Image.Image]:
        """The grid image of every segment of a video.

        Args:
            frames (`torch.Tensor` of shape `(T, 3, H, W)` uint8, or a sequence of frames): the whole video.

        Returns:
            `list[PIL.Image.Image]`: one grid per segment, in order.
        """
        return [self.segment_grid([frames[i] for i in segment]) for segment in self.segments(len(frames))]

    def _messages(self) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}]

    @torch.inference_mode()
    def describe_images(self, images: Sequence[Image.Image]) -> list[str]:
        """Describes grid images, `batch_size` at a time.

        Args:
            images (`Sequence[PIL.Image.Image]`): grid images.

        Returns:
            `list[str]`: one description per image.
        """
        text = self.processor.apply_chat_template(self._messages(), add_generation_prompt=True)
        descriptions = []
        for start in range(0, len(images), self.batch_size):
            chunk = list(images[start : start + self.batch_size])
            # One image list per prompt: the form every processor takes (Idefics, SmolVLM, Gemma 3 need it).
            batch = self.processor(
                images=[[image] for image in chunk], text=[text] * len(chunk), return_tensors="pt", padding=True
            )
            batch = move_to_model(batch, self.model)
            generated = self.model.generate(
                **batch, do_sample=False, num_beams=1, max_new_tokens=self.max_new_tokens
            )
            descriptions += decode_new_tokens(self.model, self.processor, generated, batch["input_ids"].shape[1])
        return descriptions

    def describe_video(self, frames: torch.Tensor | Sequence) -> list[str]:
        """Describes every segment of a video, in order.

        Args:
            frames (`torch.Tensor` of shape `(T, 3, H, W)` uint8, or a sequence of frames): the whole video.

        Returns:
            `list[str]`: one description per segment (`segment_ranges(T)`).
        """
        return self.describe_images(self.grids(frames))
