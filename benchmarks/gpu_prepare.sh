#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh carries to a GPU machine that cannot reach a package index: wheels of the
# Python requirements its image lacks (for its Python, 3.12 on the lent machines) in ./.whl/, and the real
# ModelNet10 in ./.gpu_data/ (from ../shared/data). Both folders are git-ignored; name them in the device tool's
# carry. Run from the repository root on a machine with network access:
#   bash benchmarks/gpu_prepare.sh [PYTHON_VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-3.12}
mkdir -p .whl
for req in pydantic pydantic-core annotated-types typing-inspection pluggy; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$req"
done
if [ -d ../shared/data/modelnet10_hdf5_1024 ]; then
  mkdir -p .gpu_data && cp -r ../shared/data/modelnet10_hdf5_1024 .gpu_data/
fi
du -sh .whl .gpu_data 2>/dev/null
