"""The report of `beyondgloss ablate` (`beyondgloss.training.ablate`): per row the mean and standard deviation over
seeds of BLEU-4 and ROUGE-L, Welch's t-test of each ablated row against the full model, a markdown table, a plot and
`ablation.json`.

Welch's test (unequal variances) compares the seed means of two rows. With 3 seeds a row it has about 2 to 4
degrees of freedom: only large, consistent differences reach p < 0.05, so "not significant" means "these seeds
cannot tell", not "no difference". The test is two-sided and uncorrected for the four comparisons.
"""

import json
import math
from dataclasses import asdict
from pathlib import Path

__all__ = ["hand_shape_reading", "mean_std", "welch_test", "write_report"]

METRICS = (("bleu4", "BLEU-4"), ("rouge_l", "ROUGE-L"))
SHAPE_METRIC = ("shape_accuracy", "hand-shape words")
ALPHA = 0.05


def mean_std(values: list) -> tuple:
    """`(mean, sample standard deviation)`; the deviation is 0.0 for one value."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), by its continued fraction (Numerical Recipes, `betacf`)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
            c = 1.0 + numerator / c
            c = c if abs(c) > 1e-300 else 1e-300
            result *= c * d
        if abs(c * d - 1.0) < 1e-12:
            break
    return front * result


def welch_test(first: list, second: list) -> dict:
    """Welch's two-sided t-test of `mean(first) - mean(second)`: `{difference, t, df, p}`.

    `p` is None when it is undefined: fewer than 2 values on a side, or no spread on either side (then the
    difference is either exactly 0 or cannot be weighed against any noise).
    """
    (mean_a, std_a), (mean_b, std_b) = mean_std(first), mean_std(second)
    result = {"difference": mean_a - mean_b, "t": None, "df": None, "p": None}
    if len(first) < 2 or len(second) < 2:
        return result
    var_a, var_b = std_a ** 2 / len(first), std_b ** 2 / len(second)
    if var_a + var_b == 0.0:
        return result
    t = (mean_a - mean_b) / math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a ** 2 / (len(first) - 1) + var_b ** 2 / (len(second) - 1))
    result.update(t=t, df=df, p=_betainc(df / 2, 0.5, df / (df + t * t)))
    return result


def _shape_groups() -> list:
    """The spoken forms of each group of two or more signs of SynthSign's handshape lexicon that share their motion
    (and differ in hand shape alone): `[[forms of one sign, ...], ...]`."""
    from ..data.synthsign_language import LEXICONS

    groups = {}
    for sign in LEXICONS["handshape"].values():
        key = (sign.trajectory, sign.height, sign.right_colour, sign.two_handed)
        groups.setdefault(key, []).append([form for form in sign.forms if isinstance(form, str)])
    return [members for members in groups.values() if len(members) > 1]


def hand_shape_reading(pairs: list) -> dict:
    """How often a translation names the right sign among signs that only hand shape tells apart (handshape lexicon).

    For each reference word whose sign shares its motion with others, and whose group the prediction names: correct
    when the prediction has that word, confused when it has a group-mate instead. A model that reads the motion but
    not the hand shape is at `chance` (the mean of 1 / group size over the words counted). Returns `{accuracy,
    chance, correct, confused}` (`accuracy` and `chance` None when no word was counted).
    """
    correct = confused = 0
    chance = []
    for reference, prediction in pairs:
        reference, prediction = f" {reference} ", f" {prediction} "
        for members in _shape_groups():
            said = [i for i, forms in enumerate(members) if any(f" {form} " in reference for form in forms)]
            named = [i for i, forms in enumerate(members) if any(f" {form} " in prediction for form in forms)]
            if len(said) != 1 or not named:
                continue
            correct, confused = correct + (said[0] in named), confused + (said[0] not in named)
            chance.append(1 / len(members))
    counted = correct + confused
    return {"accuracy": 100 * correct / counted if counted else None,
            "chance": 100 * sum(chance) / counted if counted else None, "correct": correct, "confused": confused}


def _add_shape_reading(out: Path, runs: list) -> None:
    """Adds `shape_accuracy` (and its counts) to each run, from the run's test predictions."""
    for run in runs:
        path = out / "runs" / run["row"] / f"seed{run['seed']}" / "translation" / "test_predictions.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        reading = hand_shape_reading([(row["reference"], row["prediction"]) for row in rows])
        run["shape_accuracy"] = reading.pop("accuracy")
        run["shape_reading"] = reading


def _metrics(runs: list) -> tuple:
    has_shape = all(run.get("shape_accuracy") is not None for run in runs)
    return METRICS + ((SHAPE_METRIC,) if has_shape else ())


def _summaries(runs: list, labels: dict) -> dict:
    """Per row: n, mean and std of each metric, and (ablated rows) the test against `full` and what it says."""
    metrics = _metrics(runs)
    values = {row: {key: [run[key] for run in runs if run["row"] == row] for key, _ in metrics} for row in labels}
    summary = {}
    for row, label in labels.items():
        entry = {"label": label, "n": len(values[row]["bleu4"])}
        for key, _ in metrics:
            entry[key] = dict(zip(("mean", "std"), mean_std(values[row][key])))
            if row != "full" and "full" in values:
                test = welch_test(values["full"][key], values[row][key])
                test["verdict"] = _verdict(test)
                entry[key]["versus_full"] = test
        summary[row] = entry
    return summary


def _verdict(test: dict) -> str:
    if test["p"] is None:
        return "no test (a row with < 2 seeds, or no spread)"
    if test["p"] >= ALPHA:
        return f"not significant (p = {test['p']:.2f})"
    side = "higher" if test["difference"] > 0 else "lower"
    return f"full model {side}, p " + ("< 0.001" if test["p"] < 0.001 else f"= {test['p']:.3f}")


def _table(summary: dict, metrics: tuple, timing: dict, args, chance: float | None, run_cpu: float) -> str:
    names = [name for _, name in metrics]
    lines = ["| row | n | " + " | ".join(names + [f"{name} vs full" for name in names]) + " |",
             "|---|---|" + "---|" * (2 * len(names))]
    for entry in summary.values():
        cells = [f"{entry[key]['mean']:.2f} +/- {entry[key]['std']:.2f}" for key, _ in metrics]
        tests = [entry[key]["versus_full"]["verdict"] if "versus_full" in entry[key] else "" for key, _ in metrics]
        lines.append(f"| {entry['label']} | {entry['n']} | " + " | ".join(cells + tests) + " |")
    if chance is not None:
        lines += ["", "Hand-shape words: of the test words whose sign shares its motion with other signs, and whose "
                  "group the translation names, the percentage it names right (chance, for a model blind to hand "
                  "shape: {:.1f}).".format(chance)]
    lines += ["", f"Mean +/- sample standard deviation over seeds {', '.join(map(str, args.seeds))} (test split, beam "
              f"{args.num_beams}); Welch's two-sided t-test against the full model, alpha {ALPHA}, uncorrected. "
              f"Dataset: {args.dataset}" + (f" ({args.lexicon} lexicon)" if args.dataset.lower() == "synthsign" else "")
              + f". This invocation: {timing['total_seconds'] / 60:.1f} min wall; the runs' CPU time (all threads of "
              f"each run, of this invocation or an earlier one): {run_cpu / 60:.1f} min; load average "
              f"{timing['load_average_before'][0]:.2f} before, {timing['load_average_after'][0]:.2f} after, on "
              f"{timing['cpu_count']} CPUs."]
    return "\n".join(lines) + "\n"


def _plot(runs: list, summary: dict, metrics: tuple, path: Path) -> None:
    from ..utils import require

    matplotlib = require("matplotlib", "The ablation plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4))
    for axis, (key, name) in zip(axes, metrics):
        rows = list(summary)
        means = [summary[row][key]["mean"] for row in rows]
        stds = [summary[row][key]["std"] for row in rows]
        axis.bar(range(len(rows)), means, yerr=stds, capsize=4, color="#8fb3d9")
        for index, row in enumerate(rows):
            points = [run[key] for run in runs if run["row"] == row]
            axis.plot([index] * len(points), points, "k.", alpha=0.7)
        axis.set_xticks(range(len(rows)), [summary[row]["label"].replace("without", "w/o") for row in rows],
                        rotation=25, ha="right", fontsize=8)
        axis.set(title=f"{name} (mean +/- std; dots: seeds)", ylabel=name)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(out: Path, args, runs: list, labels: dict, timing: dict) -> dict:
    """Writes `ablation.json`, `ablation.md` and `ablation.png` into `out`; returns what the json holds."""
    if args.dataset.lower() == "synthsign" and args.lexicon == "handshape":
        _add_shape_reading(out, runs)
    metrics = _metrics(runs)
    chances = [run["shape_reading"]["chance"] for run in runs if run.get("shape_accuracy") is not None]
    summary = _summaries(runs, labels)
    run_cpu = round(sum(run.get("cpu_seconds", 0.0) for run in runs), 1)
    table = _table(summary, metrics, timing, args, sum(chances) / len(chances) if chances else None, run_cpu)
    result = {"rows": summary, "runs": runs, "timing": timing, "settings": asdict(args),
              "run_seconds_total": round(sum(run["seconds"] for run in runs), 1), "run_cpu_seconds_total": run_cpu}
    (out / "ablation.json").write_text(json.dumps(result, indent=2))
    (out / "ablation.md").write_text(table)
    _plot(runs, summary, metrics, out / "ablation.png")
    print(table, flush=True)
    return result
