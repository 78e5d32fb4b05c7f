// Errors raised inside the library; the C ABI turns them into sk_status codes and messages.
#ifndef SINKHORN_SYSTEM_STATUS_H
#define SINKHORN_SYSTEM_STATUS_H

#include <stdexcept>
#include <string>

#include "sinkhorn4j.h"

namespace sinkhorn {

class Error : public std::runtime_error {
 public:
  Error(sk_status code, const std::string& message) : std::runtime_error(message), code_(code) {}
  sk_status code() const { return code_; }

 private:
  sk_status code_;
};

inline void require(bool condition, const std::string& message) {
  if (!condition) throw Error(SK_INVALID_ARGUMENT, message);
}

}  // namespace sinkhorn

#endif
