"""Run by tests/test_training_distributed.py under `torchrun --standalone --nproc_per_node 2` (gloo, CPU).

1. Gathered contrastive negatives: each process takes its half of one joined batch; the mean over processes of the
   gathered contrastive losses must equal the single-process losses on the joined batch (same weights, eval mode).
   The alignment loss's gradient averaged over processes (what DDP applies) is compared with the single-process
   gradient, for the model's gather and for an all-gather whose backward returns every process's gradient.
2. A short `BeyondGlossPretrainingTrainer` run with gathered negatives on an uneven dataset.

Rank 0 writes the numbers as JSON to the path given as the first argument.
"""

import json
import sys

import datasets
import numpy as np
import torch
import torch.distributed as dist

from beyondgloss import BeyondGlossForContrastivePretraining
from beyondgloss.testing import tiny_config
from beyondgloss.training import BeyondGlossPretrainingTrainer, pretraining_arguments

HAND_DIM, DESCRIPTION_DIM, FRAMES, PER_RANK = 6, 24, 4, 3


def joined_batch(count: int, seed: int = 1) -> dict:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([FRAMES - i % 2 for i in range(count)])
    video_mask = (torch.arange(FRAMES)[None] < lengths[:, None]).long()
    text_lengths = torch.tensor([3 + i % 3 for i in range(count)])
    text_mask = (torch.arange(5)[None] < text_lengths[:, None]).long()
    return {
        "pixel_values_videos": torch.randn(count, FRAMES, 3, 28, 28, generator=generator) * video_mask[..., None, None, None],
        "video_attention_mask": video_mask,
        "input_ids": torch.randint(4, 60, (count, 5), generator=generator).masked_fill(text_mask == 0, 1),
        "attention_mask": text_mask,
        "description_embeds": torch.randn(count, DESCRIPTION_DIM, generator=generator),
        "hand_features": torch.randn(count, FRAMES, HAND_DIM, generator=generator),
        "hand_mask": video_mask.clone(),
    }


def autograd_gather(embeds: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather whose backward sends every process's gradient to the owner of each row."""
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(embeds.contiguous()), dim=0), dist.get_rank() * embeds.shape[0]


def contrastive_gradient(model, inputs: dict, world: int) -> torch.Tensor:
    """Gradient of the alignment loss over every trainable parameter, averaged over processes as DDP does."""
    model.zero_grad()
    model(**inputs).alignment_loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    if world > 1:
        dist.all_reduce(gradient)
        gradient /= world
    return gradient


def gathered_versus_joined(rank: int, world: int) -> dict:
    import beyondgloss.modeling_beyondgloss as modeling

    torch.manual_seed(0)
    model = BeyondGlossForContrastivePretraining(
        tiny_config(hand_dim=HAND_DIM, description_dim=DESCRIPTION_DIM, gather_distributed_negatives=True)).eval()
    batch = joined_batch(PER_RANK * world)
    local = {key: value[rank * PER_RANK:(rank + 1) * PER_RANK] for key, value in batch.items()}
    with torch.no_grad():
        outputs = model(**local)
    parts = torch.stack([outputs.alignment_loss, outputs.description_loss, outputs.hand_loss])
    dist.all_reduce(parts)
    parts /= world
    result = {"gathered": parts.tolist(), "logits_columns": outputs.logits_per_video.shape[1]}
    gradient = contrastive_gradient(model, local, world)
    model_gather = modeling.gather_with_grad
    modeling.gather_with_grad = autograd_gather
    try:
        autograd_gradient = contrastive_gradient(model, local, world)
    finally:
        modeling.gather_with_grad = model_gather
    model.config.gather_distributed_negatives = False
    if rank == 0:
        with torch.no_grad():
            joined = model(**batch)
        result["joined"] = [float(joined.alignment_loss), float(joined.description_loss), float(joined.hand_loss)]
        reference = contrastive_gradient(model, batch, 1)
        result["gradient_max_abs"] = float(reference.abs().max())
        result["gradient_difference_model_gather"] = float((gradient - reference).abs().max())
        result["gradient_difference_autograd_gather"] = float((autograd_gradient - reference).abs().max())
    return result


class Collator:
    def __call__(self, rows):
        batch = {key: torch.stack([torch.as_tensor(np.asarray(row[key])) for row in rows])
                 for key in ("pixel_values_videos", "video_attention_mask", "input_ids", "attention_mask",
                             "description_embeds", "hand_features", "hand_mask")}
        for key in ("pixel_values_videos", "description_embeds", "hand_features"):
            batch[key] = batch[key].float()
        return batch


def short_training_run(output_dir: str) -> dict:
    torch.manual_seed(0)
    model = BeyondGlossForContrastivePretraining(
        tiny_config(hand_dim=HAND_DIM, description_dim=DESCRIPTION_DIM, gather_distributed_negatives=True))
    # 10 samples over 2 processes with batches of 2: the last step of the epoch is short.
    batch = joined_batch(10, seed=2)
    dataset = datasets.Dataset.from_dict({key: value.numpy() for key, value in batch.items()})
    args = pretraining_arguments(output_dir, per_device_train_batch_size=2, max_steps=4, logging_steps=2,
                                 eval_strategy="no", save_strategy="no", load_best_model_at_end=False, use_cpu=True,
                                 disable_tqdm=True, dataloader_num_workers=0, ddp_backend="gloo")
    trainer = BeyondGlossPretrainingTrainer(model=model, args=args, train_dataset=dataset, data_collator=Collator())
    trainer.train()
    return {"global_step": trainer.state.global_step, "world_size": args.world_size,
            "log_history": trainer.state.log_history}


def main():
    output = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = gathered_versus_joined(rank, world)
    result["training"] = short_training_run(sys.argv[2])
    if rank == 0:
        with open(output, "w") as handle:
            json.dump(result, handle)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
