// exp(x) for x <= 0 written so that the compiler vectorises loops over it (no libm call):
// exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 (Cody-Waite, two-part ln 2), exp(r) by a
// Taylor polynomial of degree 7 (float, < 1e-8 relative) or 12 (double, < 2e-16 relative) on |r| <= ln2/2.
#ifndef SINKHORN_HELPERS_CPU_FAST_EXP_H
#define SINKHORN_HELPERS_CPU_FAST_EXP_H

#include <cmath>
#include <cstdint>
#include <cstring>

namespace sinkhorn {
namespace helpers {

inline float expNonPositive(float x) {
  const float cut = -87.0f;  // below: the result is under float's normal range, return 0
  const float xc = x < cut ? cut : x;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < cut ? 0.0f : p * scale;
}

inline double expNonPositive(double x) {
  const double cut = -708.0;
  const double xc = x < cut ? cut : x;
  const double n = std::floor(xc * 1.4426950408889634 + 0.5);
  const double r = (xc - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const int64_t bits = (static_cast<int64_t>(n) + 1023) << 52;
  double scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < cut ? 0.0 : p * scale;
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
