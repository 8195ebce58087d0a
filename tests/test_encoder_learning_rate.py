"""`encoder_learning_rate_scale`: the translation trainer's per-side learning rate (the demo's stage-2 recipe)."""

import pytest
import torch
from transformers import Seq2SeqTrainingArguments

from beyondgloss import BeyondGlossForSignTranslation
from beyondgloss.testing import tiny_config
from beyondgloss.training import BeyondGlossTranslationTrainer

SIDES = BeyondGlossTranslationTrainer.ENCODER_SIDE_PREFIXES


def _trainer(tmp_path, scale, **overrides):
    torch.manual_seed(0)
    model = BeyondGlossForSignTranslation(tiny_config(text_tuning="full"))
    settings = dict(output_dir=str(tmp_path), learning_rate=1e-2, weight_decay=0.0, lr_scheduler_type="linear",
                    warmup_steps=2, max_steps=6, report_to="none", use_cpu=True)
    settings.update(overrides)
    return BeyondGlossTranslationTrainer(model=model, args=Seq2SeqTrainingArguments(**settings),
                                         encoder_learning_rate_scale=scale)


def _side_of(model):
    return {id(p): name.startswith(SIDES) for name, p in model.named_parameters() if p.requires_grad}


def test_each_parameter_once_and_encoder_side_at_the_scaled_rate_through_the_schedule(tmp_path):
    trainer = _trainer(tmp_path, 0.25)
    trainer.create_optimizer_and_scheduler(num_training_steps=6)
    side = _side_of(trainer.model)
    seen = [id(p) for group in trainer.optimizer.param_groups for p in group["params"]]
    assert sorted(seen) == sorted(side) and len(seen) == len(set(seen))
    assert any(side.values()) and not all(side.values())
    for _ in range(5):
        for group in trainer.optimizer.param_groups:
            on_encoder_side = {side[id(p)] for p in group["params"]}
            assert len(on_encoder_side) == 1  # no group mixes the two sides
            expected = trainer.lr_scheduler.lr_lambdas[0](trainer.lr_scheduler.last_epoch) * 1e-2
            expected *= 0.25 if on_encoder_side.pop() else 1.0
            assert group["lr"] == pytest.approx(expected, rel=1e-12)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()


def test_first_adam_step_moves_the_encoder_side_by_the_scaled_rate(tmp_path):
    # Adam's first update of a parameter is lr * g / (|g| + eps): at most lr, and close to it for every entry whose
    # gradient is far above eps, so the largest move on each side is its learning rate.
    trainer = _trainer(tmp_path, 0.1, warmup_steps=0, lr_scheduler_type="constant")
    trainer.create_optimizer_and_scheduler(num_training_steps=6)
    parameters = [p for p in trainer.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in parameters]
    generator = torch.Generator().manual_seed(0)
    for p in parameters:
        p.grad = torch.randn(p.shape, generator=generator)
    trainer.optimizer.step()
    side = _side_of(trainer.model)
    moves = {True: 0.0, False: 0.0}
    for p, old in zip(parameters, before):
        moves[side[id(p)]] = max(moves[side[id(p)]], (p.detach() - old).abs().max().item())
    assert moves[False] == pytest.approx(1e-2, rel=1e-3)
    assert moves[True] == pytest.approx(1e-3, rel=1e-3)


def test_scale_one_leaves_the_trainer_optimizer_as_it_is(tmp_path):
    trainer = _trainer(tmp_path, 1.0)
    trainer.create_optimizer_and_scheduler(num_training_steps=6)
    assert len(trainer.optimizer.param_groups) == 2  # Trainer's own: decayed and not decayed


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan")])
def test_scale_must_be_positive(tmp_path, scale):
    with pytest.raises(ValueError, match="encoder_learning_rate_scale"):
        _trainer(tmp_path, scale)
