// Internal interface between the CUDA backend (cuda_backend.cu) and the softmin kernels: the
// device-ready description of a launch and the launchers. Not part of the library's API.
#ifndef SINKHORN_HELPERS_CUDA_SOFTMIN_LAUNCH_H
#define SINKHORN_HELPERS_CUDA_SOFTMIN_LAUNCH_H

#include <cstddef>
#include <cstdint>

namespace sinkhorn {
namespace helpers {
namespace cuda {

constexpr int kMaxPasses = 4;  // passes fused into one launch
constexpr double kLn2 = 0.693147180559945309417;
constexpr double kLog2e = 1.442695040888963407360;

// One pass as the kernels see it (see ../softmin.h for the meaning of the fields).
template <typename T>
struct DevicePass {
  const T* x;
  const T* y;
  const T* xSqNorm;
  const T* ySqNorm;
  const T* yLogWeights;
  const T* yPotential;  // may be null
  const T* prev;        // may be null
  T* out;
  T* lse;               // may be null
  const T* v;           // null unless averaging
  T* avg;
  const T* pairRow;     // null unless pair-averaging (CUDA-core kernels, plain decomposition)
  const T* pairCol;
  T* pairAvg;
  const uint8_t* active;  // may be null
  const int64_t* xOffsets;
  const int64_t* yOffsets;
  // Tensor-core kernels: x and y prepared (see preparedFormat), ldPrep 32-bit words per row, and
  // their {max |value|, scale of the prepared copy}.
  const void* xPrep;
  const void* yPrep;
  const float* xInfo;
  const float* yInfo;
  const float* bias;  // m + kPrepRowPadding biases (workspace written by the bias kernel)
  // Reference carry (value passes of the tensor-core kernels, see ../softmin.h); drift is the bias
  // kernel's max_j |u_j - uPrev_j| (base 2; zeroed before the launch), the most a row's log-sum-exp
  // can have moved since the carry was written.
  T* lseCarry;
  const T* yPotentialPrev;
  float* drift;
  int64_t ldPrep;
  int64_t segments, n, m, d, k;
  int64_t q, pairK;   // pair weights' dimension, pair-averaged columns of v
  T scale2;   // 2c/eps * log2(e): scores in base 2
  T invEps;   // 1/eps
  T eps, damping, blend;
  // decomposition
  int64_t rowTiles;   // ceil(n / BM)
  int64_t colTiles;   // ceil(m / BN) (single-segment passes)
  int64_t iterBegin;  // first stream-K iteration of this pass
};

template <typename T>
struct LaunchArgs {
  DevicePass<T> pass[kMaxPasses];
  int count;
  int streamK;           // 1: stream-K over (row tile, column tile) iterations of single-segment passes
  int grid;              // CTAs
  int64_t totalIters;    // stream-K iterations over all passes
  int64_t kvBegin;       // first column of v averaged by this launch (0: this launch writes out/lse)
  T* wsLse;              // stream-K partials: grid x 2 x BM
  T* wsAvg;              // grid x 2 x BM x KV
};

// What the backend needs to know about a kernel to plan a launch.
struct KernelShape {
  int bm, bn;       // row tile, column tile
  int kv;           // columns of v averaged per launch (0: no average)
  int threads;
  size_t smemBytes;
  int blocksPerSm;  // occupancy; <= 0 on a CUDA error (minus the error code)
};

// Tensor-core kernels (float, allowTf32). kv: 0 (no average), 8 (k <= 8) or 64. The passes' clouds
// must be prepared in preparedFormat(d).
struct PreparedFormat {
  bool half;        // FP16 scaled by a power of two (d <= 64), else TF32-rounded float
  int64_t ldWords;  // 32-bit words per row
};
PreparedFormat preparedFormat(int64_t d);
constexpr int64_t kPrepRowPadding = 128;  // rows of zeros after a prepared cloud (>= any BM, BN)
// Writes the prepared copy of src (rows x d) into dst (rows + kPrepRowPadding rows of ldWords words)
// and info[0] = max |src|, info[1] = the scale applied (FP16 format; 1 for TF32).
void launchPrepare(const float* src, int64_t rows, int64_t d, void* dst, float* info, void* stream);
KernelShape tensorShape(int64_t d, int kv);
void tensorLaunch(int64_t d, int kv, const LaunchArgs<float>& a, void* stream);

// CUDA-core kernels (strict float32, float64). kv: 0 (no average), 8 (k <= 8) or 64; pair: the
// passes also write their pair-weighted averages (no stream-K).
template <typename T>
KernelShape simtShape(int kv, bool pair);
template <typename T>
void simtLaunch(int kv, bool pair, const LaunchArgs<T>& a, void* stream);

template <typename T>
void launchSquaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out, void* stream);

// Extent of a cloud (rows x d): parts holds extentBlocks(rows) x 2d values, the first 2d of which
// are the column minima, then the maxima, after the launch; *nonFinite becomes 1 if x holds a NaN
// or an infinity.
int64_t extentBlocks(int64_t rows);
template <typename T>
void launchColumnExtent(const T* x, int64_t rows, int64_t d, T* parts, int* nonFinite, void* stream);
// out_i = log w_i, kZeroWeightLog for w_i = 0.
template <typename T>
void launchLogWeights(const T* w, int64_t rows, T* out, void* stream);
// x_ij -= shift_j (shift: d values in device memory).
template <typename T>
void launchTranslate(T* x, int64_t rows, int64_t d, const T* shift, void* stream);
// out_ij = cp_i (x_ij - bary_ij) - cq_i (x_ij - selfBary_ij); selfBary and cq may be null.
template <typename T>
void launchPointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows, int64_t d,
                         T* out, void* stream);

// Per-segment max |a - b| as ordered 64-bit patterns of non-negative doubles (NaN largest) into
// out[segments], which the launcher zeroes first.
template <typename T>
void launchMaxAbsDiff(const T* a, const T* b, int64_t n, const int64_t* offsets, int64_t segments,
                      unsigned long long* out, void* stream);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn

#endif
