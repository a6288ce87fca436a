// Fuzzes parse_safetensors_header with a fixed seed: random bytes and mutations of valid
// headers. Every input must return (never crash or read out of bounds: run it under ASan),
// and every accepted header must satisfy the format's invariants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace moeserve {
namespace {

std::string with_length(const std::string& header, const std::string& buffer) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + buffer;
}

// Valid seed files of a few shapes: metadata, several dtypes, zero-size and rank-0 tensors.
std::vector<std::string> seeds() {
  std::vector<std::string> out;
  out.push_back(with_length("{}", ""));
  out.push_back(with_length(
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})",
      std::string(24, '\x01')));
  out.push_back(with_length(R"({"a":{"dtype":"BF16","shape":[4],"data_offsets":[8,16]},)"
                            R"("b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
                            R"("c":{"dtype":"U8","shape":[0,7],"data_offsets":[16,16]},)"
                            R"("d":{"dtype":"F8_E4M3","shape":[],"data_offsets":[16,17]}}    )",
                            std::string(17, '\x02')));
  out.push_back(with_length(R"(  {"x":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]},)"
                            R"("y":{"dtype":"F64","shape":[1,1],"data_offsets":[3,11]}})",
                            std::string(11, '\x03')));
  return out;
}

// Checks an accepted header against the invariants the parser promises.
void check_invariants(const SafetensorsHeader& h, size_t prefix_size, uint64_t file_size) {
  ASSERT_GE(file_size, 8u);
  ASSERT_LE(h.header_len, file_size - 8);
  ASSERT_LE(h.header_len + 8, prefix_size);
  std::vector<const TensorInfo*> sorted;
  std::set<std::string> names;
  for (const TensorInfo& t : h.tensors) {
    sorted.push_back(&t);
    ASSERT_TRUE(names.insert(t.name).second) << "duplicate " << t.name;
    ASSERT_NE(t.name, "__metadata__");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      ASSERT_GE(d, 0);
      ASSERT_FALSE(__builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel));
    }
    ASSERT_LE(t.begin, t.end);
    ASSERT_EQ(t.end - t.begin, numel * dtype_size(t.dtype)) << t.name;
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  uint64_t expected = 0;
  for (const TensorInfo* t : sorted) {
    ASSERT_EQ(t->begin, expected) << t->name;
    expected = t->end;
  }
  ASSERT_EQ(8 + h.header_len + expected, file_size);
}

// Runs one input from an exactly-sized heap copy so that ASan flags any overread.
// Returns whether it was accepted.
bool run_one(const std::string& bytes, uint64_t file_size, size_t* accepted_tensors) {
  std::unique_ptr<char[]> copy(new char[bytes.size() + 1]);
  std::copy(bytes.begin(), bytes.end(), copy.get());
  const std::string_view view(copy.get(), bytes.size());
  auto h = parse_safetensors_header(view, file_size, "fuzz.safetensors");
  if (!h.ok()) {
    EXPECT_NE(std::string(h.status().message()).find("fuzz.safetensors"), std::string::npos)
        << h.status();
    return false;
  }
  check_invariants(*h, bytes.size(), file_size);
  *accepted_tensors += h->tensors.size();
  return true;
}

// Sets the 8-byte length to the current header length (header = everything up to the buffer,
// whose size is kept), so that mutations reach the JSON and tiling checks.
std::string fix_length(std::string img, size_t buffer_size) {
  if (img.size() < 8 + buffer_size) return img;
  const uint64_t n = img.size() - 8 - buffer_size;
  for (int i = 0; i < 8; ++i) img[i] = static_cast<char>(n >> (8 * i));
  return img;
}

const char* const kNumbers[] = {"-1",
                                "0",
                                "-0",
                                "1.5",
                                "1e308",
                                "-1e308",
                                "9223372036854775807",
                                "9223372036854775808",
                                "18446744073709551615",
                                "18446744073709551616",
                                "340282366920938463463374607431768211456",
                                "4294967296",
                                "100000000",
                                "7"};
const char kJsonBytes[] = "{}[]\":,- 0123456789eE.tfn\\";

std::string mutate(const std::string& seed, size_t buffer_size, std::mt19937_64& rng) {
  std::string img = seed;
  auto pick = [&rng](size_t n) { return static_cast<size_t>(rng() % n); };
  int kind = static_cast<int>(rng() % 6);
  // After a truncation the header/buffer split is gone: only the layout-free mutations apply.
  if (img.size() < 8 + buffer_size && (kind >= 2 && kind <= 4)) kind = 0;
  if (img.empty()) return img;
  switch (kind) {
    case 0: {  // bit flips anywhere, length bytes included
      const int flips = 1 + static_cast<int>(pick(4));
      for (int i = 0; i < flips; ++i) img[pick(img.size())] ^= static_cast<char>(1 << pick(8));
      return img;
    }
    case 1:  // truncation
      return img.substr(0, pick(img.size() + 1));
    case 2: {  // replace a number in the header with a hostile one
      std::vector<std::pair<size_t, size_t>> runs;
      const size_t end = img.size() - buffer_size;
      for (size_t i = 8; i < end;) {
        if (std::isdigit(static_cast<unsigned char>(img[i]))) {
          size_t j = i;
          while (j < end && std::isdigit(static_cast<unsigned char>(img[j]))) ++j;
          runs.emplace_back(i, j - i);
          i = j;
        } else {
          ++i;
        }
      }
      if (runs.empty()) return img;
      const auto [pos, len] = runs[pick(runs.size())];
      img.replace(pos, len, kNumbers[pick(std::size(kNumbers))]);
      return fix_length(img, buffer_size);
    }
    case 3: {  // byte insertion (JSON-significant or random), length fixed or not
      const size_t pos = 8 + pick(img.size() - 8 + 1);
      const char c = pick(2) ? kJsonBytes[pick(sizeof(kJsonBytes) - 1)] : static_cast<char>(rng());
      img.insert(pos, 1, c);
      return pick(2) ? fix_length(img, buffer_size) : img;
    }
    case 4: {  // byte deletion inside the header, length fixed
      const size_t header_end = img.size() - buffer_size;
      if (header_end <= 8) return img;
      img.erase(8 + pick(header_end - 8), 1);
      return fix_length(img, buffer_size);
    }
    default: {  // buffer grows or shrinks
      if (pick(2) && !img.empty()) return img.substr(0, img.size() - 1);
      return img + std::string(1 + pick(16), '\0');
    }
  }
}

TEST(SafetensorsFuzzTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20240611);
  size_t tensors = 0;
  int accepted = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    const size_t len = rng() % 96;
    std::string bytes(len, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    // Half the time, a plausible small length so the JSON parser sees the random bytes.
    if (len >= 8 && rng() % 2) {
      const uint64_t n = rng() % (len - 7);
      for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(n >> (8 * i));
    }
    const uint64_t file_size = bytes.size() + (rng() % 4 == 0 ? rng() % 1000 : 0);
    accepted += run_one(bytes, file_size, &tensors);
    if (HasFatalFailure()) return;
  }
  RecordProperty("accepted", accepted);
  // Random bytes are almost never valid JSON objects with tiling tensors.
  EXPECT_LT(accepted, 50);
}

TEST(SafetensorsFuzzTest, MutatedHeadersKeepInvariants) {
  const std::vector<std::string> base = seeds();
  const size_t buffer_sizes[] = {0, 24, 17, 11};
  for (size_t i = 0; i < base.size(); ++i) {
    size_t tensors = 0;
    ASSERT_TRUE(run_one(base[i], base[i].size(), &tensors)) << "seed " << i;
  }
  std::mt19937_64 rng(42);
  size_t tensors = 0;
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 25000; ++iter) {
    const size_t s = rng() % base.size();
    std::string img = base[s];
    // Stack up to three mutations.
    const int rounds = 1 + static_cast<int>(rng() % 3);
    for (int r = 0; r < rounds && !img.empty(); ++r) img = mutate(img, buffer_sizes[s], rng);
    const uint64_t file_size = img.size();
    if (run_one(img, file_size, &tensors)) {
      ++accepted;
    } else {
      ++rejected;
    }
    // The same image as a prefix of a larger file: must be rejected or consistent.
    run_one(img, file_size + 1 + rng() % 64, &tensors);
    if (HasFatalFailure()) return;
  }
  RecordProperty("accepted", accepted);
  RecordProperty("rejected", rejected);
  RecordProperty("accepted_tensors", static_cast<int>(tensors));
  // Both outcomes must occur, or the mutations are not exercising the validator.
  EXPECT_GT(accepted, 50);
  EXPECT_GT(rejected, 5000);
}

}  // namespace
}  // namespace moeserve
