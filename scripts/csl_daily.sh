#!/usr/bin/env bash
# BeyondGloss on CSL-Daily (Chinese Sign Language), end to end, with the paper's settings: the recipe of
# scripts/phoenix14t.sh (trim mBART, pre-train, fine-tune, score on test) for CSL-Daily. The reference's configs for
# the two datasets differ only in paths; this recipe also uses the zh_CN language code where the reference forces
# de_DE, and scores Chinese per character (plain sacrebleu settings on character-split text, docs/metrics.md).
#
#   DATA_DIR=/data/CSL-Daily HANDS=/data/csl_hamer DESCRIPTIONS=/data/csl_desc bash scripts/csl_daily.sh
#
# Other settings (OUT, MBART, DINO, NPROC, PRECISION, WORKERS) as in scripts/phoenix14t.sh.
set -euo pipefail
DATASET=csl_daily TARGET_LANGUAGE=zh_CN CONVENTION=plain OUT=${OUT:-runs/csl_daily} \
  exec bash "$(dirname "$0")/phoenix14t.sh"
