"""`beyondgloss ablate` and SynthSign's "handshape" lexicon: signs that only hand shape tells apart, the ablation's
whole path on a tiny budget (table, plot, json, resume), its folder rules, and Welch's test against a direct
integration of the t density."""

import json
import math

import numpy as np
import pytest

from beyondgloss.cli import main as cli_main
from beyondgloss.data import generate_synthsign
from beyondgloss.data.synthsign_language import LEXICONS, SIGNS_BY_GLOSS, describe_clip
from beyondgloss.data.synthsign_rendering import render_clip
from beyondgloss.training.ablate_report import hand_shape_reading, welch_test

HANDSHAPE = LEXICONS["handshape"]
SIZES = dict(num_train=10, num_validation=2, num_test=3, description_dim=16)


def _motion(sign):
    return sign.trajectory, sign.height, sign.right_colour, sign.left_colour, sign.two_handed


def test_handshape_lexicon_shares_motion_within_a_group_and_only_shape_differs():
    assert set(HANDSHAPE) == set(SIGNS_BY_GLOSS)
    groups = {}
    for sign in HANDSHAPE.values():
        assert (sign.role, sign.forms) == (SIGNS_BY_GLOSS[sign.gloss].role, SIGNS_BY_GLOSS[sign.gloss].forms)
        groups.setdefault(_motion(sign), []).append(sign)
    for members in groups.values():
        assert len({sign.role for sign in members}) == 1  # a group's signs fill the same place in a sentence
        assert len({sign.right_shape for sign in members}) == len(members)  # ... and differ in hand shape alone
    assert sorted(len(members) for members in groups.values()) == [1, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4]
    # In the standard lexicon no two signs share their motion: there, motion alone names every sign.
    assert len({_motion(sign) for sign in SIGNS_BY_GLOSS.values()}) == len(SIGNS_BY_GLOSS)


def test_handshape_signs_render_alike_but_for_the_hands_shape():
    man, woman = HANDSHAPE["MAN"], HANDSHAPE["WOMAN"]
    assert _motion(man) == _motion(woman) and man.right_shape != woman.right_shape
    frames_man, hands_man = render_clip(["MAN"], [8], lexicon="handshape")
    frames_woman, hands_woman = render_clip(["WOMAN"], [8], lexicon="handshape")
    # Hand positions and sizes are the same; only the shape one-hots (the hand-distillation target) differ.
    np.testing.assert_array_equal(hands_man[:, :3], hands_woman[:, :3])
    assert (hands_man[:, 3:9].argmax(1) == man.right_shape).all()
    assert (hands_woman[:, 3:9].argmax(1) == woman.right_shape).all()
    assert not np.array_equal(frames_man, frames_woman)
    assert describe_clip(["MAN"], "handshape") != describe_clip(["WOMAN"], "handshape")


def test_handshape_corpus_has_the_standard_sentences_and_names_its_lexicon(tmp_path):
    standard = generate_synthsign(tmp_path / "standard", seed=3, num_workers=1, **SIZES)
    variant = generate_synthsign(tmp_path / "handshape", seed=3, num_workers=1, lexicon="handshape", **SIZES)
    assert "lexicon" not in json.loads((standard / "settings.json").read_text())
    assert json.loads((variant / "settings.json").read_text())["lexicon"] == "handshape"
    rows = [[json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
            for root in (standard, variant)]
    assert [row["text"] for row in rows[0]] == [row["text"] for row in rows[1]]
    assert [row["description"] for row in rows[0]] != [row["description"] for row in rows[1]]
    assert generate_synthsign(tmp_path / "handshape", seed=3, lexicon="handshape", **SIZES) == variant  # reused
    with pytest.raises(ValueError, match="other settings"):
        generate_synthsign(tmp_path / "handshape", seed=3, **SIZES)
    with pytest.raises(ValueError, match="lexicon='signs'"):
        generate_synthsign(tmp_path / "other", lexicon="signs", **SIZES)


def _reference_p(t: float, df: float) -> float:
    """Two-sided p of Student's t by integrating its density (Simpson's rule on [|t|, 2000])."""
    x = np.linspace(abs(t), 2000.0, 2_000_001)
    density = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi) * (
        1 + x * x / df) ** (-(df + 1) / 2)
    h = x[1] - x[0]
    integral = h / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum() + 2 * density[2:-1:2].sum())
    return 2 * integral


@pytest.mark.parametrize("first, second", [([31.0, 35.0, 33.5], [22.0, 30.5, 24.0]), ([5.0, 5.5, 9.0], [4.0, 8.0]),
                                           ([1.0, 2.0, 3.0], [2.7764451 * math.sqrt(2 / 3) + v for v in (1, 2, 3)])])
def test_welch_test_matches_the_t_density(first, second):
    test = welch_test(first, second)
    assert test["p"] == pytest.approx(_reference_p(test["t"], test["df"]), abs=1e-6)
    assert test["difference"] == pytest.approx(np.mean(first) - np.mean(second))


def test_welch_test_at_the_tabled_critical_value():
    # t = 2.7764451 with 4 degrees of freedom is the two-sided 5% point of Student's table.
    test = welch_test([1.0, 2.0, 3.0], [2.7764451 * math.sqrt(2 / 3) + v for v in (1, 2, 3)])
    assert test["df"] == pytest.approx(4.0) and test["p"] == pytest.approx(0.05, abs=1e-6)
    assert welch_test([1.0, 1.0], [1.0, 1.0])["p"] is None and welch_test([1.0], [2.0, 3.0])["p"] is None


def test_hand_shape_reading_counts_group_mates_as_confusions():
    # Each content word here is in a group of four signs that share one motion (girl/boy/man/woman, want/find/
    # paint/buy, big/small/old/red, tree/boat/apple/letter, ...): a group-mate in its place is a confusion.
    pairs = [("the girl does not want the big boat", "the boy does not want the small boat"),  # girl, big confused
             ("the man sees the ball", "the man sees the ball"),  # man, sees, ball right
             ("the dog helps the tree", "the cat")]  # no group named: nothing counted
    reading = hand_shape_reading(pairs)
    assert (reading["correct"], reading["confused"]) == (5, 2)
    assert reading["accuracy"] == pytest.approx(100 * 5 / 7) and reading["chance"] == pytest.approx(25.0)
    assert hand_shape_reading([("the man sees the ball", "")])["accuracy"] is None


TINY = ["--num_train", "16", "--num_test", "4", "--pretraining_steps", "1", "--translation_steps", "1",
        "--batch_size", "8", "--num_beams", "1", "--seeds", "0", "1", "--rows", "full", "no_hand", "--threads", "1"]


def _ablate(out, *flags) -> int:
    return cli_main(["ablate", "--output_dir", str(out), *TINY, *flags])


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate") / "out"
    assert _ablate(out, "--workers", "2") == 0  # the runs in two processes, as by default
    return out


def test_ablate_writes_table_plot_and_every_run(ablation):
    result = json.loads((ablation / "ablation.json").read_text())
    assert sorted((run["row"], run["seed"]) for run in result["runs"]) == [
        ("full", 0), ("full", 1), ("no_hand", 0), ("no_hand", 1)]
    assert {run["pretraining_steps"] for run in result["runs"]} == {1}
    assert result["rows"]["full"]["n"] == 2 and "versus_full" in result["rows"]["no_hand"]["bleu4"]
    table = (ablation / "ablation.md").read_text()
    assert "| full model | 2 |" in table and "| without hand distillation | 2 |" in table
    assert (ablation / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ablate_resumes_without_redoing_finished_runs(ablation, monkeypatch):
    import beyondgloss.training.demo as demo

    kept = ablation / "runs" / "full" / "seed0" / "metrics.json"
    before = kept.read_text()
    redone = ablation / "runs" / "no_hand" / "seed1"
    (redone / "metrics.json").unlink()  # as if the run had been interrupted
    trained = []
    original = demo._train_variant

    def counting(*args, **kwargs):
        trained.append(args[5])
        return original(*args, **kwargs)

    monkeypatch.setattr(demo, "_train_variant", counting)
    assert _ablate(ablation, "--workers", "1") == 0  # in this process, where the count is seen
    assert trained == [redone] and kept.read_text() == before
    assert len(json.loads((ablation / "ablation.json").read_text())["runs"]) == 4


def test_ablate_refuses_folders_it_did_not_write(ablation, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert cli_main(["ablate", "--output_dir", str(foreign), *TINY]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"beyondgloss ablate: error: {foreign} holds files that are not a beyondgloss ablation's")
    assert sorted(path.name for path in foreign.iterdir()) == ["notes.txt"]
    changed = [*TINY[:-2], "--threads", "1", "--learning_rate", "0.01"]
    assert cli_main(["ablate", "--output_dir", str(ablation), *changed]) == 1
    assert "--overwrite_output_dir" in capsys.readouterr().err
    (ablation / "notes.txt").write_text("mine")
    try:
        assert cli_main(["ablate", "--output_dir", str(ablation), "--overwrite_output_dir", *changed]) == 1
        assert "notes.txt" in capsys.readouterr().err
        assert (ablation / "runs" / "full" / "seed0" / "metrics.json").is_file()
    finally:
        (ablation / "notes.txt").unlink()


def test_ablate_names_a_dataset_it_cannot_load(tmp_path, capsys):
    assert cli_main(["ablate", "--output_dir", str(tmp_path / "out"), "--dataset", str(tmp_path / "absent")]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"beyondgloss ablate: error: --dataset {tmp_path / 'absent'}: unknown sign dataset")


def test_ablate_rejects_bad_rows_and_seeds(tmp_path, capsys):
    assert cli_main(["ablate", "--output_dir", str(tmp_path / "x"), "--rows", "full", "no_legs"]) == 2
    assert "no_legs" in capsys.readouterr().err
    assert cli_main(["ablate", "--output_dir", str(tmp_path / "x"), "--seeds", "1", "1"]) == 2
    assert not (tmp_path / "x").exists()
