#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_format.h"

namespace moeserve {

ProgressBar::ProgressBar(std::string label, uint64_t total, bool bytes, std::FILE* out)
    : label_(std::move(label)),
      total_(total),
      bytes_(bytes),
      out_(out != nullptr ? out : stderr),
      tty_(::isatty(::fileno(out_)) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

ProgressBar::~ProgressBar() {
  finish();
}

std::string ProgressBar::amount(uint64_t v) const {
  if (!bytes_) return absl::StrFormat("%d", v);
  const double gib = static_cast<double>(v) / (1024.0 * 1024.0 * 1024.0);
  if (gib >= 1.0) return absl::StrFormat("%.2f GiB", gib);
  return absl::StrFormat("%.1f MiB", static_cast<double>(v) / (1024.0 * 1024.0));
}

void ProgressBar::update(uint64_t done, uint64_t total) {
  if (finished_) return;
  if (total != 0) total_ = total;
  done_ = total_ == 0 ? done : std::min(done, total_);
  if (tty_) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ != total_) return;
    last_draw_ = now;
    draw(false);
    return;
  }
  const int step = total_ == 0 ? 0 : static_cast<int>(done_ * 10 / total_);
  if (step > last_step_) {
    last_step_ = step;
    draw(false);
  }
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  // Non-terminal output already ends with its 100% line when the work completed.
  const bool complete_printed = !tty_ && total_ != 0 && done_ == total_ && last_step_ == 10;
  if (!complete_printed) draw(true);
}

void ProgressBar::draw(bool final_line) {
  const double frac = total_ == 0 ? 0.0 : static_cast<double>(done_) / static_cast<double>(total_);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = absl::StrFormat("%s %3d%% %s/%s %.1fs", label_, static_cast<int>(frac * 100.0),
                                     amount(done_), amount(total_), secs);
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
    std::fprintf(out_, "\r%s [%s] %s\033[K%s", label_.c_str(), bar.c_str(),
                 line.c_str() + label_.size() + 1, final_line ? "\n" : "");
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace moeserve
