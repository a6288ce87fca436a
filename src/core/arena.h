// A per-step bump allocator for scratch buffers: the model takes every layer's temporary
// buffers from one Arena instead of allocating (and zero-filling) them in each layer.
//
// Memory is handed out in 64-byte-aligned pieces and is never zero-filled; a kernel that
// needs zeros writes them itself. Pieces stay valid until the Scope that was open when they
// were taken closes, or until reset(). Blocks are never moved while pieces may be live: when
// a step needs more than the current block, another block is added, and reset() (between
// steps, nothing live) replaces them by one block of the high-water size. After the first
// steps of a given shape the arena therefore allocates nothing and touches only pages it
// already owns.
//
// Thread-safety: one thread (the engine loop) allocates; the pieces may be written by any
// thread (e.g. inside parallel_for).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

namespace moeserve {

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  Arena(Arena&&) noexcept = default;
  Arena& operator=(Arena&&) noexcept = default;

  // n uninitialised values of T (trivial types only), 64-byte aligned.
  template <typename T>
  std::span<T> alloc(int64_t n) {
    static_assert(std::is_trivially_default_constructible_v<T> &&
                  std::is_trivially_destructible_v<T>);
    if (n <= 0) return {};
    return {static_cast<T*>(alloc_bytes(static_cast<size_t>(n) * sizeof(T))),
            static_cast<size_t>(n)};
  }

  // Frees everything and, when the last step spilled into several blocks, replaces them by
  // one block of the high-water size. Call between steps only (no piece live).
  void reset();

  // Releases the pieces taken while it was open (a layer's scratch), so that the next layer
  // reuses the same memory.
  class Scope {
   public:
    explicit Scope(Arena& a) : arena_(a), block_(a.block_), offset_(a.offset_) {}
    ~Scope() { arena_.rewind(block_, offset_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Arena& arena_;
    size_t block_, offset_;
  };

  // Bytes held (all blocks) and the most ever in use at once.
  size_t capacity() const;
  size_t high_water() const { return high_water_; }

 private:
  struct Block {
    struct Free {
      void operator()(std::byte* p) const;
    };
    std::unique_ptr<std::byte, Free> data;
    size_t size = 0;
    size_t used_before = 0;  // bytes in use in the blocks before this one when it was entered
  };
  void* alloc_bytes(size_t bytes);
  void rewind(size_t block, size_t offset);
  static Block make_block(size_t bytes);

  std::vector<Block> blocks_;
  size_t block_ = 0;   // current block
  size_t offset_ = 0;  // bytes used in the current block
  size_t high_water_ = 0;
};

}  // namespace moeserve
