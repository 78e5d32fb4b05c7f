// GeomLoss's eps-scaling schedule for p = 2 (the cost's exponent); its diameter estimate is the
// diagonal of the clouds' bounding box (bounding_box.h).
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

}  // namespace helpers
}  // namespace sinkhorn

#endif
