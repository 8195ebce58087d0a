#!/usr/bin/env bash
# Sets up everything beyondgloss needs on a fresh Debian machine: FFmpeg's shared libraries for
# torchcodec, Chromium for the web app's browser test, a virtual environment, a CPU build of torch, and
# the package with its test extras.
# Idempotent: a second run checks and returns quickly.
set -euo pipefail
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-test}
PYTHON=${PYTHON:-python3}

if ! ldconfig -p 2>/dev/null | grep -q 'libavcodec.so.59'; then
    echo "[install] FFmpeg shared libraries (for torchcodec)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        libavcodec59 libavformat59 libavutil57 libavdevice59 libavfilter8 libswscale6 libswresample4 >/dev/null
fi

# Debian's Chromium and its driver, for the browser test of `beyondgloss serve` (Selenium drives them; nothing
# downloads a browser).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "[install] Chromium and chromedriver (for the web app's browser test)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "[install] virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --disable-pip-version-check --upgrade pip 2>/dev/null || true
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$PIP install -q --disable-pip-version-check -c requirements/constraints.txt torch
$PIP install -q --disable-pip-version-check -c requirements/constraints.txt -e ".[$EXTRAS]"
echo "[install] done: $($VENV/bin/python -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
