"""mBART vocabulary trimming: same logits on kept texts, consistent ids, specials and language codes kept."""

import json

import pytest
import torch
from transformers import MBartConfig, MBartForConditionalGeneration, MBartTokenizer
from transformers.models.mbart.tokenization_mbart import FAIRSEQ_LANGUAGE_CODES

from beyondgloss.convert import kept_token_ids, trim_mbart
from beyondgloss.cli.convert import trim_mbart as trim_command
from beyondgloss.data.tokenizer_training import train_sign_tokenizer
from beyondgloss.testing import assert_same_math

TRAIN = ["morgen regnet es im süden", "am abend sonne im norden.", "nachts regnet es"]
OTHER = ["heute schnee und frost", "der wind weht stark"]


def subword_tokenizer() -> MBartTokenizer:
    """Overlapping subword pieces, so that trimming must keep the segmentation Viterbi chose, not just the words."""
    # "nachts" and "abend" have no whole-word piece: they split into "▁nach"+"ts" and "▁ab"+"end".
    pieces = ["▁morgen", "▁mor", "gen", "▁regnet", "▁reg", "net", "▁es", "▁im", "▁süden", "▁sü", "den", "▁am",
              "▁ab", "end", "▁sonne", "▁son", "ne", "▁norden", "▁nach", "ts", "▁heute", "▁schnee", "▁und", "▁frost",
              "▁der", "▁wind", "▁weht", "▁stark", "."]
    characters = sorted({ch for text in TRAIN + OTHER for ch in text.replace(" ", "")} | {"▁"})
    vocab = [(token, 0.0) for token in ("<s>", "<pad>", "</s>", "<unk>")]
    vocab += [(piece, -1.0 - 0.3 * len(piece) + 0.05 * i) for i, piece in enumerate(pieces)]
    vocab += [(ch, -9.0) for ch in characters if ch not in pieces]
    vocab += [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES] + [("<mask>", 0.0)]
    return MBartTokenizer(vocab=vocab, src_lang="de_DE", tgt_lang="de_DE")


def tiny_mbart(vocab_size: int) -> MBartForConditionalGeneration:
    torch.manual_seed(0)
    config = MBartConfig(vocab_size=vocab_size, d_model=16, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                         max_position_embeddings=32, scale_embedding=True, decoder_start_token_id=2)
    model = MBartForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.final_logits_bias.normal_()
    return model


@pytest.mark.parametrize("make_tokenizer", [subword_tokenizer, lambda: train_sign_tokenizer(
    TRAIN + OTHER, language="de_DE", language_codes=["de_DE", "ase_XX"])], ids=["subword", "train_sign_tokenizer"])
def test_trimmed_model_gives_the_same_logits_on_kept_texts(make_tokenizer):
    tokenizer = make_tokenizer()
    model = tiny_mbart(len(tokenizer)).double()  # the same math on fewer rows: compared in float64
    small, small_tokenizer = trim_mbart(model, tokenizer, TRAIN)
    kept = kept_token_ids(tokenizer, TRAIN)
    new_id = {old: new for new, old in enumerate(kept)}
    assert small.config.vocab_size == len(small_tokenizer) == len(kept) < len(tokenizer)
    assert small.lm_head.weight is small.model.shared.weight is small.model.decoder.embed_tokens.weight
    if "▁nach" in tokenizer.get_vocab():
        assert small_tokenizer.tokenize("nachts am abend") == ["▁nach", "ts", "▁am", "▁ab", "end"]

    full = tokenizer(TRAIN, text_target=TRAIN[::-1], padding=True, return_tensors="pt")
    trimmed = small_tokenizer(TRAIN, text_target=TRAIN[::-1], padding=True, return_tensors="pt")
    for name in ("input_ids", "labels"):
        mapped = full[name].clone().apply_(lambda old: new_id[old])
        assert torch.equal(trimmed[name], mapped), name
    with torch.no_grad():
        reference = model(input_ids=full["input_ids"], attention_mask=full["attention_mask"], labels=full["labels"]).logits
        logits = small(input_ids=trimmed["input_ids"], attention_mask=trimmed["attention_mask"],
                       labels=trimmed["labels"]).logits
    assert_same_math(logits, reference[..., kept], msg="logits")
    assert small_tokenizer.batch_decode(trimmed["labels"], skip_special_tokens=True) == [
        tokenizer.decode(ids, skip_special_tokens=True) for ids in full["labels"]]


def test_specials_and_language_codes_are_kept_and_renumbered(tmp_path):
    tokenizer = train_sign_tokenizer(TRAIN + OTHER, language="de_DE", language_codes=["de_DE", "ase_XX"])
    model = tiny_mbart(len(tokenizer))
    model.generation_config.forced_eos_token_id = 2
    small, small_tokenizer = trim_mbart(model, tokenizer, TRAIN, keep_tokens=["▁frost"])
    assert small_tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    for token in [*FAIRSEQ_LANGUAGE_CODES, "ase_XX", "<mask>", "▁frost"]:
        new = small_tokenizer.convert_tokens_to_ids(token)
        assert new != small_tokenizer.unk_token_id and small_tokenizer.convert_ids_to_tokens(new) == token
        assert torch.equal(small.model.shared.weight[new], model.model.shared.weight[tokenizer.convert_tokens_to_ids(token)])
    assert "▁schnee" in tokenizer.get_vocab() and "▁schnee" not in small_tokenizer.get_vocab()
    target = small_tokenizer(text_target="nachts regnet es")["input_ids"]
    assert small_tokenizer.convert_ids_to_tokens(target[-2:]) == ["</s>", "de_DE"]
    assert (small.config.pad_token_id, small.config.eos_token_id, small.generation_config.forced_eos_token_id) == (1, 2, 2)
    # Saved and reloaded, both stay consistent.
    small.save_pretrained(tmp_path)
    small_tokenizer.save_pretrained(tmp_path)
    reloaded = MBartForConditionalGeneration.from_pretrained(tmp_path)
    assert torch.equal(reloaded.lm_head.weight, small.model.shared.weight)
    assert torch.equal(reloaded.final_logits_bias, small.final_logits_bias)
    assert MBartTokenizer.from_pretrained(tmp_path)(text_target="nachts regnet es")["input_ids"] == target


def test_trim_command_and_bad_input(tmp_path, capsys):
    tokenizer = subword_tokenizer()
    tiny_mbart(len(tokenizer)).save_pretrained(tmp_path / "full")
    tokenizer.save_pretrained(tmp_path / "full")
    (tmp_path / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (tmp_path / "extra.jsonl").write_text('{"text": "heute schnee"}\n')
    assert trim_command([str(tmp_path / "full"), str(tmp_path / "small"), "--texts", str(tmp_path / "train.txt"),
                         str(tmp_path / "extra.jsonl")]) == 0
    small_tokenizer = MBartTokenizer.from_pretrained(tmp_path / "small")
    small = MBartForConditionalGeneration.from_pretrained(tmp_path / "small")
    assert small.config.vocab_size == len(small_tokenizer) == len(kept_token_ids(tokenizer, TRAIN + ["heute schnee"]))
    assert "▁schnee" in small_tokenizer.get_vocab() and "▁wind" not in small_tokenizer.get_vocab()

    (tmp_path / "bad.jsonl").write_text('{"sentence": "x"}\n')
    assert trim_command([str(tmp_path / "full"), str(tmp_path / "out"), "--texts", str(tmp_path / "bad.jsonl")]) == 1
    assert "bad.jsonl, line 1: no string field 'text'" in capsys.readouterr().err
    model = tiny_mbart(len(tokenizer))
    with pytest.raises(ValueError, match="no texts given"):
        trim_mbart(model, tokenizer, [])
    with pytest.raises(ValueError, match="'▁hagel' is not in the tokenizer's vocabulary"):
        trim_mbart(model, tokenizer, TRAIN, keep_tokens=["▁hagel"])
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        trim_mbart(tiny_mbart(20), tokenizer, TRAIN)


def test_trim_command_writes_only_its_own_folder_and_whole(tmp_path, capsys, monkeypatch):
    """A user's folder is never written; an earlier trim is replaced only with --overwrite_output_dir; a failed run
    leaves the earlier output as it was."""
    from beyondgloss.cli.output_dir import RUN_MARKER

    tokenizer = subword_tokenizer()
    tiny_mbart(len(tokenizer)).save_pretrained(tmp_path / "full")
    tokenizer.save_pretrained(tmp_path / "full")
    (tmp_path / "train.txt").write_text("\n".join(TRAIN) + "\n")
    argv = [str(tmp_path / "full"), str(tmp_path / "small"), "--texts", str(tmp_path / "train.txt")]

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"mine": true}')
    assert trim_command([*argv[:1], str(mine), *argv[2:], "--overwrite_output_dir"]) == 1
    assert "did not write (config.json)" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["config.json"]
    assert (mine / "config.json").read_text() == '{"mine": true}'

    assert trim_command(argv) == 0
    assert json.loads((tmp_path / "small" / RUN_MARKER).read_text()) == {"written_by": "trim-mbart"}
    (tmp_path / "plain").mkdir()
    assert (tmp_path / "small").stat().st_mode == (tmp_path / "plain").stat().st_mode
    first = (tmp_path / "small" / "model.safetensors").read_bytes()
    assert trim_command(argv) == 1
    assert "--overwrite_output_dir" in capsys.readouterr().err
    # A run that fails half-way (here: while saving) leaves the earlier output whole, and no staging folder.
    monkeypatch.setattr(MBartTokenizer, "save_pretrained", lambda self, folder: (_ for _ in ()).throw(OSError("full")))
    assert trim_command([*argv, "--overwrite_output_dir"]) == 1
    monkeypatch.undo()
    assert (tmp_path / "small" / "model.safetensors").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert trim_command([*argv, "--keep_tokens", "▁wind", "--overwrite_output_dir", "true"]) == 0
    assert "▁wind" in MBartTokenizer.from_pretrained(tmp_path / "small").get_vocab()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
