// Bounding box of point clouds: its diagonal is GeomLoss's diameter estimate, its centre a translation
// that leaves every cost unchanged and keeps |x|^2 small in the shifted-potential form.
#ifndef SINKHORN_HELPERS_BOUNDING_BOX_H
#define SINKHORN_HELPERS_BOUNDING_BOX_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "host_parallel.h"

namespace sinkhorn {
namespace helpers {

struct BoundingBox {
  explicit BoundingBox(int64_t d)
      : lo(d, std::numeric_limits<double>::infinity()), hi(d, -std::numeric_limits<double>::infinity()) {}
  std::vector<double> lo, hi;
  double diagonal() const {
    double s = 0;
    for (size_t t = 0; t < lo.size(); ++t) s += (hi[t] - lo[t]) * (hi[t] - lo[t]);
    return std::sqrt(s);
  }
  std::vector<double> centre() const {
    std::vector<double> c(lo.size());
    for (size_t t = 0; t < lo.size(); ++t) c[t] = 0.5 * (lo[t] + hi[t]);
    return c;
  }
};

// Extends box by the rows of p (rows x d), in parallel; false when p holds a NaN or an infinity.
// Finiteness rides along: sum_t v * 0 is 0 for finite values and NaN otherwise.
template <typename T>
bool extendBox(BoundingBox& box, const T* p, int64_t rows, int64_t d) {
  const int chunks = hostChunkCount(rows, d);
  std::vector<std::vector<T>> lo(chunks, std::vector<T>(d, std::numeric_limits<T>::infinity()));
  std::vector<std::vector<T>> hi(chunks, std::vector<T>(d, -std::numeric_limits<T>::infinity()));
  std::vector<std::vector<T>> poison(chunks, std::vector<T>(d, T(0)));
  forRowChunks(rows, chunks, [&](int c, int64_t begin, int64_t end) {
    T* l = lo[c].data();
    T* h = hi[c].data();
    T* z = poison[c].data();
    for (int64_t i = begin; i < end; ++i) {
      const T* row = p + i * d;
      for (int64_t t = 0; t < d; ++t) {
        const T v = row[t];
        l[t] = v < l[t] ? v : l[t];
        h[t] = v > h[t] ? v : h[t];
        z[t] += v * T(0);
      }
    }
  });
  bool finite = true;
  for (int c = 0; c < chunks; ++c)
    for (int64_t t = 0; t < d; ++t) {
      finite = finite && poison[c][t] == T(0);
      box.lo[t] = std::min(box.lo[t], double(lo[c][t]));
      box.hi[t] = std::max(box.hi[t], double(hi[c][t]));
    }
  return finite;
}

// dst_ij = src_ij - shift_j over rows x d values, in parallel; dst may be src.
template <typename T>
void translateRows(const T* src, T* dst, int64_t rows, int64_t d, const std::vector<double>& shift) {
  forRowChunks(rows, hostChunkCount(rows, d), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      for (int64_t t = 0; t < d; ++t) dst[i * d + t] = T(double(src[i * d + t]) - shift[t]);
  });
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
