"""Measures `beyondgloss preprocess` on the demo corpus: its time and peak memory, and an epoch of training data read
back from it against an epoch of decoding the videos.

    python scripts/bench_preprocess.py --work_dir /tmp/bench_preprocess [--num_train 3000] [--resize_sizes 32 128]

1. The demo's SynthSign corpus (3,000 / 300 / 300 clips, 32 px, `beyondgloss demo`'s settings) is generated into
   `--work_dir` (or reused).
2. `beyondgloss preprocess` runs under `/usr/bin/time -v` once per `--resize_sizes` entry (32: the demo's processor;
   larger sizes make the stored frames larger than the memory bound, to show that peak RSS does not follow the
   corpus size). Printed: wall time, peak RSS, bytes written.
3. One epoch of the training split through the demo's pre-training collator (batch 32, shuffled, training mode,
   one process, `--threads` torch threads, freed memory kept as the training commands keep it), decoding the mp4 files, then reading the preprocessed frames; `--rounds`
   alternations, each epoch's time printed, then the medians and their ratio.

Each figure is printed as a JSON line; nothing is written outside `--work_dir`.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPOSITORY = Path(__file__).resolve().parents[1]


def corpus_options(args) -> dict:
    return {"num_train": args.num_train, "num_validation": args.num_train // 10, "num_test": args.num_train // 10,
            "seed": 0, "image_size": 32, "description_dim": 64}


def run_preprocess(args, size: int) -> dict:
    """`beyondgloss preprocess` in its own process under /usr/bin/time -v: wall time, peak RSS, output size."""
    output = Path(args.work_dir) / f"prepared-{size}"
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "beyondgloss.cli", "preprocess", "--dataset", "synthsign",
               "--data_dir", str(Path(args.work_dir) / "synthsign"), "--cache_dir", str(Path(args.work_dir) / "cache"),
               "--dataset_options", json.dumps(corpus_options(args)), "--output_dir", str(output),
               "--resize_size", str(size), "--crop_size", str(size)]
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY), "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        sys.exit(f"preprocess failed ({process.returncode}):\n{process.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", process.stderr).group(1))
    # The folder this run wrote or found, as the command prints it (the output folder may hold older preprocessings).
    folder = Path(re.search(r"^  dataset  (.+)$", process.stdout, re.MULTILINE).group(1))
    stored = sum(f.stat().st_size for f in folder.rglob("*.arrow"))
    return {"figure": "preprocess", "resize_size": size, "wall_s": round(wall, 1), "peak_rss_gb": round(peak_kb / 2**20, 3),
            "stored_gb": round(stored / 2**30, 3), "folder": str(folder)}


def epoch_seconds(dataset, collator, seed: int) -> float:
    import torch

    loader = torch.utils.data.DataLoader(dataset, batch_size=32, shuffle=True, collate_fn=collator,
                                         generator=torch.Generator().manual_seed(seed))
    started = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - started


def compare_epochs(args, folder: str) -> list:
    import torch

    from beyondgloss import BeyondGlossProcessor, BeyondGlossVideoProcessor
    from beyondgloss.data import PretrainingCollator, load_sign_dataset, train_sign_tokenizer
    from beyondgloss.utils import keep_freed_memory

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `beyondgloss pretrain` and `finetune` do: batches reuse the last batch's pages
    source = load_sign_dataset("synthsign", data_dir=str(Path(args.work_dir) / "synthsign"),
                               cache_dir=str(Path(args.work_dir) / "cache"), **corpus_options(args))["train"]
    prepared = load_sign_dataset("preprocessed", data_dir=folder)["train"]
    tokenizer = train_sign_tokenizer(source["text"], vocab_size=1000, language_codes=["en_XX"], language="en_XX")
    # The demo's processor (beyondgloss.training.demo): 32 px clips, no augmentation.
    video = BeyondGlossVideoProcessor(size={"shortest_edge": 32}, crop_size=32, augment=False)
    collator = PretrainingCollator(BeyondGlossProcessor(video_processor=video, tokenizer=tokenizer,
                                                        target_language="en_XX"), training=True)
    times = {"decode videos": [], "read preprocessed": []}
    figures = []
    for round_ in range(args.rounds):
        for name, dataset in (("decode videos", source), ("read preprocessed", prepared)):
            seconds = epoch_seconds(dataset, collator, seed=round_)
            times[name].append(seconds)
            figures.append({"figure": "epoch", "round": round_, "path": name, "seconds": round(seconds, 2),
                            "samples": len(dataset)})
            print(json.dumps(figures[-1]), flush=True)
    decode, read = statistics.median(times["decode videos"]), statistics.median(times["read preprocessed"])
    figures.append({"figure": "epoch median", "decode_videos_s": round(decode, 2), "read_preprocessed_s": round(read, 2),
                    "speedup": round(decode / read, 2), "rounds": args.rounds, "threads": args.threads})
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--num_train", type=int, default=3000)
    parser.add_argument("--resize_sizes", type=int, nargs="+", default=[32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs_only", metavar="KEY",
                        help="only the epoch comparison, on the 32 px folder KEY (prepared-32/KEY) that an earlier run "
                             "of this script prepared")
    args = parser.parse_args()
    sys.path.insert(0, str(REPOSITORY))
    from beyondgloss.data import generate_synthsign

    options = corpus_options(args)
    generate_synthsign(str(Path(args.work_dir) / "synthsign"), **options)
    if args.epochs_only:
        folder = str(Path(args.work_dir) / "prepared-32" / args.epochs_only)
    else:
        results = [run_preprocess(args, size) for size in args.resize_sizes]
        for result in results:
            print(json.dumps(result), flush=True)
        demo_size = next((r for r in results if r["resize_size"] == 32), None)
        if demo_size is None:
            return
        folder = demo_size["folder"]
    final = compare_epochs(args, folder)[-1]
    print(json.dumps(final), flush=True)


if __name__ == "__main__":
    main()
