#include "model/weight_loader.h"

#include "kernels/ops.h"

namespace moeserve {

Status WeightLoader::check_shape(const std::string& name, const Tensor& t,
                                 const std::vector<int64_t>& expected) const {
  if (t.shape() == expected) return absl::OkStatus();
  Tensor e = Tensor::view(nullptr, DType::kF32, expected);
  return absl::InvalidArgumentError(absl::StrCat(ckpt_.file_of(name), ": tensor '", name,
                                                 "' has shape ", t.shape_string(),
                                                 " but config.json implies ", e.shape_string()));
}

StatusOr<Tensor> WeightLoader::linear(const std::string& name, int64_t out, int64_t in) const {
  MS_ASSIGN_OR_RETURN(Tensor t, ckpt_.get(name));
  MS_RETURN_IF_ERROR(check_shape(name, t, {out, in}));
  switch (t.dtype()) {
    case DType::kF32:
    case DType::kBF16:
      return t;
    case DType::kF16: {
      Tensor w = Tensor::empty(DType::kF32, {out, in});
      const uint16_t* s = t.data<uint16_t>();
      float* d = w.data<float>();
      for (int64_t i = 0; i < out * in; ++i) d[i] = f16_to_f32(s[i]);
      return w;
    }
    case DType::kF8E4M3: {
      const std::string sname = name + "_scale_inv";
      if (!ckpt_.has(sname)) {
        return absl::InvalidArgumentError(absl::StrCat(ckpt_.file_of(name), ": tensor '", name,
                                                       "' is F8_E4M3 but '", sname,
                                                       "' is missing"));
      }
      MS_ASSIGN_OR_RETURN(Tensor s, ckpt_.get(sname));
      const int64_t bn = cfg_.fp8_block_n, bk = cfg_.fp8_block_k;
      MS_RETURN_IF_ERROR(check_shape(sname, s, {(out + bn - 1) / bn, (in + bk - 1) / bk}));
      if (s.dtype() != DType::kF32) {
        return absl::InvalidArgumentError(absl::StrCat(ckpt_.file_of(sname), ": tensor '", sname,
                                                       "' must be F32, found ",
                                                       std::string(dtype_name(s.dtype()))));
      }
      Tensor w = Tensor::empty(DType::kBF16, {out, in});
      fp8_block_dequant(t.data<uint8_t>(), s.data<float>(), out, in, bn, bk, nullptr,
                        w.data<uint16_t>());
      return w;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat(ckpt_.file_of(name), ": tensor '", name,
                                                     "' has unsupported dtype ",
                                                     std::string(dtype_name(t.dtype()))));
  }
}

StatusOr<Tensor> WeightLoader::vector_f32(const std::string& name, int64_t n) const {
  MS_ASSIGN_OR_RETURN(Tensor t, ckpt_.get(name));
  MS_RETURN_IF_ERROR(check_shape(name, t, {n}));
  Tensor v = Tensor::empty(DType::kF32, {n});
  float* d = v.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    switch (t.dtype()) {
      case DType::kF32: d[i] = t.data<float>()[i]; break;
      case DType::kBF16: d[i] = bf16_to_f32(t.data<uint16_t>()[i]); break;
      case DType::kF16: d[i] = f16_to_f32(t.data<uint16_t>()[i]); break;
      default:
        return absl::InvalidArgumentError(absl::StrCat(ckpt_.file_of(name), ": tensor '", name,
                                                       "' has unsupported dtype ",
                                                       std::string(dtype_name(t.dtype()))));
    }
  }
  return v;
}

}  // namespace moeserve
