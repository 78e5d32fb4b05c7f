// GeomLoss's eps-scaling schedule for p = 2 (the cost's exponent), and its diameter estimate.
#ifndef SINKHORN_HELPERS_EPS_SCHEDULE_H
#define SINKHORN_HELPERS_EPS_SCHEDULE_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace sinkhorn {
namespace helpers {

// [D^2] + [exp(e) for e in arange(2 log D, 2 log blur, 2 log scaling)] + [blur^2]
inline std::vector<double> geomlossEpsSchedule(double diameter, double blur, double scaling) {
  const double start = 2 * std::log(diameter), stop = 2 * std::log(blur), step = 2 * std::log(scaling);
  std::vector<double> eps{diameter * diameter};
  const double steps = std::ceil((stop - start) / step);  // numpy's arange length
  for (int64_t i = 0; i < static_cast<int64_t>(steps); ++i) eps.push_back(std::exp(start + i * step));
  eps.push_back(blur * blur);
  return eps;
}

// Bounding box of both clouds: its diagonal is GeomLoss's diameter, its centre a translation that
// leaves every cost unchanged and keeps |x|^2 small in the shifted-potential form.
struct BoundingBox {
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

template <typename T>
BoundingBox boundingBox(const T* x, int64_t n, const T* y, int64_t m, int64_t d) {
  BoundingBox box{std::vector<double>(d, std::numeric_limits<double>::infinity()),
                  std::vector<double>(d, -std::numeric_limits<double>::infinity())};
  auto extend = [&](const T* p, int64_t rows) {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t t = 0; t < d; ++t) {
        box.lo[t] = std::min(box.lo[t], double(p[i * d + t]));
        box.hi[t] = std::max(box.hi[t], double(p[i * d + t]));
      }
  };
  extend(x, n);
  extend(y, m);
  return box;
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
