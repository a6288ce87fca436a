#include "model/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace moeserve {
namespace {

namespace fs = std::filesystem;

constexpr char kSrc[] = "bad.safetensors";

// Builds a file image: 8-byte little-endian length, `header` verbatim, `buffer_bytes` zeros.
std::string image(const std::string& header, size_t buffer_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + std::string(buffer_bytes, '\0');
}

std::string image_with_len(uint64_t n, const std::string& rest) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + rest;
}

Status parse(const std::string& img) {
  return parse_safetensors_header(img, img.size(), kSrc).status();
}

// Expects a parse error whose message names the file and each of `needles`.
void expect_error(const std::string& img, std::initializer_list<std::string> needles) {
  const Status s = parse(img);
  ASSERT_FALSE(s.ok()) << "accepted: " << img.substr(8, 200);
  const std::string msg(s.message());
  EXPECT_NE(msg.find(kSrc), std::string::npos) << msg;
  for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
}

std::string temp_dir(const std::string& name) {
  const fs::path p =
      fs::path(testing::TempDir()) / ("moeserve_st_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

Tensor random_tensor(DType dt, std::vector<int64_t> shape, std::mt19937& rng) {
  Tensor t = Tensor::empty(dt, std::move(shape));
  auto* p = t.data<unsigned char>();
  for (size_t i = 0; i < t.nbytes(); ++i) {
    p[i] = static_cast<unsigned char>(rng());
    if (dt == DType::kBool) p[i] &= 1;
  }
  return t;
}

TEST(SafetensorsTest, RoundTripEveryDtype) {
  const std::string dir = temp_dir("roundtrip");
  std::mt19937 rng(7);
  const DType all[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF8E4M3, DType::kF64,
                       DType::kI32, DType::kI64, DType::kU8,   DType::kI8,     DType::kBool};
  SafetensorsWriter w;
  std::map<std::string, Tensor> expected;
  for (DType dt : all) {
    const std::string name = "t." + std::string(dtype_name(dt));
    expected[name] = random_tensor(dt, {3, 5}, rng);
    w.add(name, expected[name]);
  }
  expected["scalar"] = random_tensor(DType::kF32, {}, rng);
  w.add("scalar", expected["scalar"]);
  expected["empty"] = Tensor::empty(DType::kBF16, {0, 4});
  w.add("empty", expected["empty"]);
  w.set_metadata("origin", "test");
  const std::string path = dir + "/model.safetensors";
  ASSERT_TRUE(w.write(path).ok());

  auto file = SafetensorsFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  const SafetensorsHeader& h = (*file)->header();
  EXPECT_EQ(h.header_len % 8, 0u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.metadata.at("origin"), "test");
  ASSERT_EQ(h.tensors.size(), expected.size());
  // The writer orders by element size (descending), then name.
  for (size_t i = 1; i < h.tensors.size(); ++i) {
    const TensorInfo& a = h.tensors[i - 1];
    const TensorInfo& b = h.tensors[i];
    if (a.begin == b.begin) continue;  // zero-size tensors share an offset
    const size_t sa = dtype_size(a.dtype), sb = dtype_size(b.dtype);
    EXPECT_TRUE(sa > sb || (sa == sb && a.name < b.name)) << a.name << " before " << b.name;
    EXPECT_EQ(b.begin % dtype_size(b.dtype), 0u) << b.name;
  }
  for (const auto& [name, want] : expected) {
    auto got = (*file)->tensor(name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->dtype(), want.dtype()) << name;
    EXPECT_EQ(got->shape(), want.shape()) << name;
    ASSERT_EQ(got->nbytes(), want.nbytes());
    EXPECT_EQ(std::memcmp(got->raw(), want.raw(), want.nbytes()), 0) << name;
  }
  // A view keeps the mapping alive after the file object is released.
  auto keep = (*file)->tensor("t.F32");
  ASSERT_TRUE(keep.ok());
  file->reset();
  EXPECT_EQ(std::memcmp(keep->raw(), expected["t.F32"].raw(), expected["t.F32"].nbytes()), 0);

  auto missing = SafetensorsFile::open(path);
  ASSERT_TRUE(missing.ok());
  const Status s = (*missing)->tensor("nope").status();
  EXPECT_NE(std::string(s.message()).find("nope"), std::string::npos);
  EXPECT_NE(std::string(s.message()).find(path), std::string::npos);
}

TEST(SafetensorsTest, WriterRejectsDuplicateAndReservedNames) {
  const std::string dir = temp_dir("writer");
  SafetensorsWriter w;
  w.add("a", Tensor::empty(DType::kF32, {2}));
  w.add("a", Tensor::empty(DType::kF32, {2}));
  EXPECT_FALSE(w.write(dir + "/x.safetensors").ok());
  SafetensorsWriter r;
  r.add("__metadata__", Tensor::empty(DType::kF32, {2}));
  EXPECT_FALSE(r.write(dir + "/y.safetensors").ok());
}

TEST(SafetensorsTest, AcceptsWhitespaceAroundHeader) {
  const std::string entry = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  EXPECT_TRUE(parse(image("  \n" + entry, 8)).ok());
  EXPECT_TRUE(parse(image(entry + "     \t  ", 8)).ok());
  EXPECT_TRUE(parse(image("{}", 0)).ok());
}

TEST(SafetensorsTest, ParsesEveryReferenceDtypeName) {
  const std::pair<const char*, bool> names[] = {
      {"BOOL", true},     {"F4", false},          {"F6_E2M3", false},     {"F6_E3M2", false},
      {"U8", true},       {"I8", true},           {"F8_E5M2", false},     {"F8_E4M3", true},
      {"F8_E8M0", false}, {"F8_E4M3FNUZ", false}, {"F8_E5M2FNUZ", false}, {"I16", false},
      {"U16", false},     {"F16", true},          {"BF16", true},         {"I32", true},
      {"U32", false},     {"F32", true},          {"I64", true},          {"U64", false},
      {"F64", true},      {"C64", false}};
  for (const auto& [name, supported] : names) {
    const std::string hdr =
        std::string(R"({"x":{"dtype":")") + name + R"(","shape":[0],"data_offsets":[0,0]}})";
    const Status s = parse(image(hdr, 0));
    EXPECT_EQ(s.ok(), supported) << name << ": " << s;
    if (!supported) {
      EXPECT_NE(std::string(s.message()).find("not supported"), std::string::npos) << s;
    }
  }
  expect_error(image(R"({"x":{"dtype":"F99","shape":[0],"data_offsets":[0,0]}})", 0),
               {"'x'", "unknown dtype"});
}

TEST(SafetensorsTest, RejectsShortFileAndBadLength) {
  expect_error(std::string("\x01\x00\x00", 3), {"shorter than"});
  expect_error(image_with_len(100'000'001, std::string(16, ' ')), {"exceeds the limit"});
  expect_error(image_with_len(~0ull, "{}"), {"exceeds the limit"});
  expect_error(image_with_len(64, "{}      "), {"past the end"});
  // A prefix shorter than the header it announces.
  const std::string img = image("{}      ", 0);
  EXPECT_FALSE(parse_safetensors_header(img.substr(0, 9), img.size(), kSrc).ok());
}

TEST(SafetensorsTest, RejectsBadJson) {
  expect_error(image(R"({"a":)", 0), {"not valid JSON"});
  expect_error(image("[]", 0), {"must be a JSON object"});
  expect_error(image("{} x", 0), {"not valid JSON"});
  expect_error(image("{\"a\xff\":1}", 0), {"not valid JSON"});
  expect_error(image(R"({"a":{"dtype":"F32","shape":[[[1]]],"data_offsets":[0,4]}})", 4),
               {"nesting"});
}

TEST(SafetensorsTest, RejectsMalformedEntries) {
  expect_error(image(R"({"w":[1,2]})", 0), {"'w'", "must be an object"});
  expect_error(image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), {"'w'", "dtype"});
  expect_error(image(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4), {"'w'", "shape"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1]}})", 4), {"'w'", "data_offsets"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", 4),
               {"'w'", "unexpected field 'extra'"});
  expect_error(image(R"({"w":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", 4), {"'w'", "dtype"});
}

TEST(SafetensorsTest, RejectsBadShapes) {
  expect_error(image(R"({"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}})", 4),
               {"'w'", "shape"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
               {"'w'", "non-negative"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
               {"'w'", "non-negative"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4),
               {"'w'", "non-negative"});
  expect_error(
      image(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4),
      {"'w'", "non-negative"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],)"
                     R"("data_offsets":[0,4]}})",
                     4),
               {"'w'", "too many elements"});
  expect_error(image(R"({"w":{"dtype":"F64","shape":[2305843009213693952],)"
                     R"("data_offsets":[0,4]}})",
                     4),
               {"'w'", "too many elements"});
}

TEST(SafetensorsTest, RejectsBadOffsets) {
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 4),
               {"'w'", "two integers"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
               {"'w'", "non-negative"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,1e30]}})", 4),
               {"'w'", "non-negative"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[1],)"
                     R"("data_offsets":[0,18446744073709551616]}})",
                     4),
               {"'w'", "non-negative"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4),
               {"'w'", "begin 4 > end 0"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4),
               {"'w'", "needs 8"});
  expect_error(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
               {"'w'", "run past"});
  expect_error(image(R"({"w":{"dtype":"U8","shape":[1],)"
                     R"("data_offsets":[18446744073709551614,18446744073709551615]}})",
                     4),
               {"'w'", "run past"});
}

TEST(SafetensorsTest, RejectsOverlapHolesAndSizeMismatch) {
  expect_error(image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                     12),
               {"'b'", "overlaps"});
  expect_error(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                     12),
               {"'b'", "hole"});
  expect_error(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
               {"'a'", "hole"});
  expect_error(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 12), {"file is"});
  expect_error(image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                     R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                     8),
               {"duplicate key 'a'"});
}

TEST(SafetensorsTest, RejectsBadMetadata) {
  expect_error(image(R"({"__metadata__":{"format":1}})", 0), {"__metadata__", "'format'"});
  expect_error(image(R"({"__metadata__":"pt"})", 0), {"__metadata__"});
  expect_error(image(R"({"__metadata__":{"a":"x","a":"y"}})", 0), {"duplicate key 'a'"});
  const std::string img = image(R"({"__metadata__":{"format":"pt"}})", 0);
  auto ok = parse_safetensors_header(img, img.size(), kSrc);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->metadata.at("format"), "pt");
}

TEST(SafetensorsTest, OpenNamesFileOnErrors) {
  const std::string dir = temp_dir("open");
  auto missing = SafetensorsFile::open(dir + "/absent.safetensors");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("absent.safetensors"), std::string::npos);
  const std::string path = dir + "/short.safetensors";
  std::ofstream(path) << "abc";
  auto short_file = SafetensorsFile::open(path);
  ASSERT_FALSE(short_file.ok());
  EXPECT_NE(std::string(short_file.status().message()).find(path), std::string::npos);
  const std::string empty = dir + "/empty.safetensors";
  std::ofstream{empty};
  EXPECT_FALSE(SafetensorsFile::open(empty).ok());
  EXPECT_FALSE(SafetensorsFile::open(dir).ok());
}

}  // namespace
}  // namespace moeserve
