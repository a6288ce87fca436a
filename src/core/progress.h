// A one-line progress report for long loads (checkpoints of hundreds of GiB).
// On a terminal it redraws one line in place (at most every 100 ms); otherwise it prints one
// line at each further 10% step, so logs stay short. Not thread-safe: one owner calls update().
// With a checkpoint:
//   ProgressBar bar("loading " + dir, 0);
//   auto ckpt = Checkpoint::open(dir, [&](size_t done, size_t n) { bar.update(done, n); });
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace moeserve {

class ProgressBar {
 public:
  // `total` units of work (bytes when `bytes` is set, which formats them as GiB/MiB).
  // `out` defaults to stderr; whether it is a terminal decides the style.
  ProgressBar(std::string label, uint64_t total, bool bytes = false, std::FILE* out = nullptr);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Reports `done` of `total` units; `total` may be revised (0 keeps the current one).
  void update(uint64_t done, uint64_t total = 0);
  // Prints the final state once (also done by the destructor).
  void finish();

 private:
  void draw(bool final_line);
  std::string amount(uint64_t v) const;

  std::string label_;
  uint64_t total_;
  uint64_t done_ = 0;
  bool bytes_;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  int last_step_ = -1;  // last 10% step printed (non-terminal mode)
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace moeserve
