#!/usr/bin/env bash
# Builds the CUDA backend's check/timing harnesses, softmin_check and dense_check (no CMake, no JDK):
#   custom-ops-cuda/src/test/cuda/build.sh [OUT_DIR] [ARCH...]
# OUT_DIR defaults to custom-ops-cuda/target/cuda-test; ARCH defaults to 90 (e.g. "80 90").
# NVCC_EXTRA adds flags (e.g. -DSINKHORN_SOFTMIN_STATS: count the exact updates of the tensor kernels).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cpp=$(cd "$here/../../main/cpp" && pwd)
out=${1:-$here/../../../target/cuda-test}
shift || true
archs=${*:-90}
mkdir -p "$out"
gencode=()
for a in $archs; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
flags=(-std=c++17 -O3 --use_fast_math -lineinfo ${NVCC_EXTRA:-} -I "$cpp/include" -I "$cpp" -Xcompiler -pthread "${gencode[@]}")
objs=()
for f in "$cpp"/ops/declarable/helpers/cuda/*.cu; do
  o="$out/$(basename "$f" .cu).o"
  # always rebuilt: the objects must agree with the headers (SoftminPass) the harness sees
  nvcc "${flags[@]}" -Xptxas -v -c "$f" -o "$o" 2> "$out/$(basename "$f" .cu).ptxas.txt" || { cat "$out/$(basename "$f" .cu).ptxas.txt"; exit 1; }
  objs+=("$o")
done
# The CPU backend (the reference), compiled as the library's CMakeLists does.
for f in "$cpp"/ops/declarable/helpers/cpu/*.cpp; do
  march=x86-64-v3
  [[ $f == *avx512* ]] && march=x86-64-v4
  o="$out/cpu_$(basename "$f" .cpp).o"
  g++ -std=c++17 -O3 -march=$march -ffp-contract=fast -pthread -I "$cpp/include" -I "$cpp" -c "$f" -o "$o"
  objs+=("$o")
done
for harness in softmin_check dense_check; do
  nvcc "${flags[@]}" -c "$here/$harness.cpp" -o "$out/$harness.o"
  nvcc "${flags[@]}" -cudart static "$out/$harness.o" "${objs[@]}" -o "$out/$harness"
  echo "built $out/$harness"
done
