#include "core/arena.h"

#include <algorithm>
#include <new>

namespace moeserve {
namespace {

constexpr size_t kAlign = 64;
constexpr size_t kMinBlock = size_t{1} << 20;

size_t round_up(size_t n, size_t a) {
  return (n + a - 1) / a * a;
}

}  // namespace

void Arena::Block::Free::operator()(std::byte* p) const {
  ::operator delete[](p, std::align_val_t{kAlign});
}

Arena::Block Arena::make_block(size_t bytes) {
  Block b;
  b.size = round_up(std::max(bytes, kMinBlock), kAlign);
  b.data.reset(static_cast<std::byte*>(::operator new[](b.size, std::align_val_t{kAlign})));
  return b;
}

void* Arena::alloc_bytes(size_t bytes) {
  bytes = round_up(bytes, kAlign);
  while (block_ < blocks_.size() && offset_ + bytes > blocks_[block_].size) {
    // Move on to the next block (one left over from a rewind) or add one below.
    const size_t used = blocks_[block_].used_before + offset_;
    ++block_;
    offset_ = 0;
    if (block_ < blocks_.size()) blocks_[block_].used_before = used;
  }
  if (block_ == blocks_.size()) {
    const size_t used = blocks_.empty() ? 0 : blocks_.back().used_before + blocks_.back().size;
    // Grow geometrically so that a growing step adds few blocks.
    blocks_.push_back(make_block(std::max(bytes, capacity())));
    blocks_.back().used_before = used;
  }
  void* p = blocks_[block_].data.get() + offset_;
  offset_ += bytes;
  high_water_ = std::max(high_water_, blocks_[block_].used_before + offset_);
  return p;
}

void Arena::rewind(size_t block, size_t offset) {
  block_ = block;
  offset_ = offset;
}

void Arena::reset() {
  block_ = 0;
  offset_ = 0;
  if (blocks_.size() > 1) {
    blocks_.clear();
    blocks_.push_back(make_block(high_water_));
  }
}

size_t Arena::capacity() const {
  size_t n = 0;
  for (const Block& b : blocks_) n += b.size;
  return n;
}

}  // namespace moeserve
