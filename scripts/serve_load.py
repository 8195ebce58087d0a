"""Load test of `beyondgloss serve`: the server's peak memory under concurrent retrieval requests, and what is left
in its upload folder afterwards. docs/serve_limits.md records its figures.

    python scripts/serve_load.py                      # 30 requests at once, 20,000 sentences each
    python scripts/serve_load.py --requests 5 --candidates 1000 -- --concurrency_limit 2

It saves a tiny random pre-training checkpoint (beyondgloss.testing.tiny_config) in a temporary folder, starts
`beyondgloss serve` on it as a child process on 127.0.0.1 (a free port; its own upload folder through
GRADIO_TEMP_DIR), and sends `--requests` requests at once with gradio_client, each an upload of its own small clip
and `--candidates` sentences. The traffic is bounded: that many requests, each within `--timeout` seconds, and it
goes to 127.0.0.1 only. Flags after `--` go to `beyondgloss serve`; unless `--as_is`, `--max_queue_size` is raised to
hold every request and the per-client rate limit is off (all requests come from one address).

It prints one JSON object: the server's peak resident memory (VmHWM of /proc/<pid>/status, Linux), its resident
memory once loaded and idle, the requests served and refused (with the refusals' messages), the files left in the
upload folder, and the wall time.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

WORDS = ("morgen regnet es im norden heute sonne süden am abend wind an der küste nacht schnee bergen wolken "
         "später gewitter westen osten freundlich kalt warm nebel").split()


def save_checkpoint(folder: Path) -> Path:
    """A tiny random pre-training checkpoint with its processor (28 px frames, at most 8 of them)."""
    from beyondgloss import BeyondGlossForContrastivePretraining
    from beyondgloss.data.tokenizer_training import train_sign_tokenizer
    from beyondgloss.processing_beyondgloss import BeyondGlossProcessor
    from beyondgloss.testing import tiny_config
    from beyondgloss.video_processing_beyondgloss import BeyondGlossVideoProcessor

    tokenizer = train_sign_tokenizer([" ".join(WORDS[i:i + 6]) for i in range(len(WORDS))], language="de_DE")
    processor = BeyondGlossProcessor(BeyondGlossVideoProcessor(size=28, crop_size=28, max_frames=8), tokenizer,
                                     target_language="de_DE")
    torch.manual_seed(0)
    config = tiny_config(vocab_size=len(tokenizer), decoder_start_token_id=processor.language_code_id)
    BeyondGlossForContrastivePretraining(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def candidate_text(count: int, seed: int) -> str:
    """`count` sentences of 5 to 9 words (about 50 characters each), one per line."""
    rng = random.Random(seed)
    return "\n".join(" ".join(rng.choices(WORDS, k=rng.randint(5, 9))) for _ in range(count))


def peak_and_current_rss(pid: int) -> tuple[int, int]:
    """(VmHWM, VmRSS) of the process in bytes."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[name].split()[0]) * 1024 for name in ("VmHWM", "VmRSS"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float):
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"serve_load.py: the server exited with status {server.returncode} before it was up")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    sys.exit(f"serve_load.py: the server did not answer at {url} within {timeout:.0f} s")


def send_requests(url: str, clips: list[Path], sentences: list[str], api_name: str, timeout: float) -> list:
    """Sends every (clip, sentences) request at once; returns ("served", status line) or ("refused", message)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)

    def one(pair):
        clip, text = pair
        try:
            status = client.predict(handle_file(str(clip)), text, api_name=api_name)[0]
        except Exception as error:  # a refusal (queue full, rate limit, upload cap) comes back as an exception
            response = getattr(error, "response", None)  # an HTTP refusal: the server's own message
            said = f"{response.status_code} {response.text}" if response is not None else str(error)
            return "refused", f"{type(error).__name__}: {said[:200]}"
        return ("served" if status.startswith("Done.") else "refused"), status[:200]

    with ThreadPoolExecutor(len(clips)) as pool:
        futures = [pool.submit(one, pair) for pair in zip(clips, sentences)]
        return [future.result(timeout=timeout) for future in futures]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="Requests sent at once (default 30).")
    parser.add_argument("--candidates", type=int, default=20_000, help="Sentences per request (default 20,000).")
    parser.add_argument("--timeout", type=float, default=600, help="Seconds each request may take (default 600).")
    parser.add_argument("--api_name", default="/run", help="The page's endpoint (default /run).")
    parser.add_argument("--as_is", action="store_true",
                        help="Pass only the flags after -- (the server's own defaults otherwise).")
    parser.add_argument("serve_args", nargs="*", help="Flags for beyondgloss serve, after --.")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 100:
        parser.error(f"--requests {args.requests}: must be between 1 and 100 (the test is bounded)")
    from beyondgloss.testing.videos import make_frames, write_mp4

    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        tmp = Path(tmp)
        model = save_checkpoint(tmp / "model")
        # Each request uploads its own clip: one file (Gradio names uploads by their content) per request.
        clips = [write_mp4(tmp / f"clip{i}.mp4", make_frames(24, 32, 32, seed=i)) for i in range(args.requests)]
        sentences = [candidate_text(args.candidates, seed=i) for i in range(args.requests)]
        uploads = tmp / "uploads"
        port = free_port()
        admit_all = ["--max_queue_size", str(max(args.requests, 16)), "--max_requests_per_minute", "0"]
        serve_args = [*([] if args.as_is else admit_all), *args.serve_args]
        command = [sys.executable, "-m", "beyondgloss.cli", "serve", "--model", str(model), "--port", str(port),
                   *serve_args]
        server = subprocess.Popen(command, env={**os.environ, "GRADIO_TEMP_DIR": str(uploads)})
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_until_up(url, server, timeout=180)
            idle = peak_and_current_rss(server.pid)[1]
            started = time.perf_counter()
            results = send_requests(url, clips, sentences, args.api_name, args.timeout)
            wall = time.perf_counter() - started
            peak, after = peak_and_current_rss(server.pid)
            left = sorted(str(path.relative_to(uploads)) for path in uploads.rglob("*") if path.is_file())
        finally:
            server.terminate()
            server.wait(timeout=60)
    served = [message for outcome, message in results if outcome == "served"]
    refused = [message for outcome, message in results if outcome == "refused"]
    print(json.dumps({
        "command": "beyondgloss serve " + " ".join(serve_args), "requests": args.requests,
        "candidates_per_request": args.candidates, "served": len(served), "refused": len(refused),
        "refusals": sorted(set(refused))[:5], "server_peak_rss_gb": round(peak / 1e9, 3),
        "server_rss_idle_gb": round(idle / 1e9, 3), "server_rss_after_gb": round(after / 1e9, 3),
        "files_left_in_upload_folder": left, "wall_seconds": round(wall, 1),
    }, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
