#!/usr/bin/env bash
# Wheels that bench/device_check.sh installs on the GPU machine, whose image lacks them and which
# reaches no package registry: nibabel (NIfTI files of the synthetic cohort) and
# segmentation_models_pytorch (the comparison; never a dependency of iphbench). Both are pure
# Python; their own needs (numpy, packaging, timm, torchvision, huggingface-hub, safetensors,
# pillow, tqdm) are on that image. About 3.5 MB, into .whl/ (ignored by git), carried with
# run(carry=[".whl"]).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.whl/' "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null \
  || echo '/.whl/' >> "$(git rev-parse --git-common-dir)/info/exclude"
python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "nibabel>=5" "segmentation-models-pytorch>=0.5"
ls -la .whl
