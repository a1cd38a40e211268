// Fused CPU kernels for RIN's pair scorer: logits_ij = Wr relu(a_i + b_j) + br, where a = A h + b_m and
// b = B h (model/pair_scorer.py). PyTorch builds the (B, n, n, d) pair tensor in memory, then multiplies
// it by Wr; here each relu(a_i + b_j) lives only in registers, so the work is bound by multiply-adds
// instead of memory traffic. The GRU cells (gru_cell, at the end) are here for the same reason.
// Written with GCC/Clang vector extensions, built once per instruction-set level
// (model/pair_kernels.py: -march=x86-64-v3 for AVX2 + FMA, x86-64-v4 for AVX-512, plus -mavx512bf16), so one
// source serves every x86-64 CPU with AVX2. The optional bfloat16 scorer (--precision bf16) uses AVX512-BF16
// intrinsics and exists only in the build that targets them.
//
// Threads: every parallel loop hands out fixed chunks from a shared counter (parallel_chunks), so a thread
// that the OS deschedules (another process busy on its core) delays only the chunk it holds, not a static
// half of the work; per-chunk partial sums are added in chunk order, so results do not depend on the
// thread count or on which thread ran which chunk.
//
// Layouts (built by model/pair_kernels.py; contiguous; float32 unless said):
//   left       (B, n, d)        a_i, Wm's bias included
//   right_t    (B, d, np)       b_j transposed, zero-padded to np (a multiple of LANES) positions
//   right_2    (B, d/2, np, 2)  bfloat16 scorer: b_j with features k, k + 1 side by side (d even)
//   right_p    (B, np, dp)      b_j zero-padded to np positions and dp (a multiple of LANES) features
//   weight_t   (d, Rp)          Wr transposed, zero-padded to Rp (a multiple of 8) relations
//   weight_2   (d/2, Rp) int32  bfloat16 scorer: each a bfloat16 pair (Wr[r, k], Wr[r, k + 1]), k even
//   weight_p   (R, dp)          Wr zero-padded to dp features
//   logits     (B, n, R, np)    pair logits with j fastest, -inf outside real cells; viewed as (B, n, n, R)
//   probs      (B, n, R, np)    sigmoid of the pair logits, 0 outside real cells (pair_bce)
#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include <immintrin.h>

#if defined(__AVX512BF16__) && defined(__AVX512VL__) && PAIR_LANES == 8
#define PAIR_BF16 1
#define PAIR_HAS_BF16 true
#else
#define PAIR_HAS_BF16 false
#endif

#define PAIR_STRING_(x) #x
#define PAIR_STRING(x) PAIR_STRING_(x)

namespace {

constexpr int LANES = PAIR_LANES;
using vec = float __attribute__((vector_size(LANES * sizeof(float))));
using ivec = int32_t __attribute__((vector_size(LANES * sizeof(float))));
using vec_u = float __attribute__((vector_size(LANES * sizeof(float)), aligned(sizeof(float))));

inline vec load(const float* p) { return *reinterpret_cast<const vec_u*>(p); }
inline void store(float* p, vec v) { *reinterpret_cast<vec_u*>(p) = v; }
// A broadcast and max(v, 0) as single instructions: `vec{} + x` costs a scalar add (0 + x is not x for
// x = -0) before the broadcast, and `v > 0 ? v : 0` a compare and an and, in the innermost loops.
#if PAIR_LANES == 8
inline vec splat(float x) { return reinterpret_cast<vec>(_mm256_set1_ps(x)); }
inline vec relu(vec v) { return reinterpret_cast<vec>(_mm256_max_ps(reinterpret_cast<__m256>(v), _mm256_setzero_ps())); }
#elif PAIR_LANES == 16 && defined(__AVX512F__)
inline vec splat(float x) { return reinterpret_cast<vec>(_mm512_set1_ps(x)); }
inline vec relu(vec v) { return reinterpret_cast<vec>(_mm512_max_ps(reinterpret_cast<__m512>(v), _mm512_setzero_ps())); }
#else  // e.g. RIN_PAIR_LANES=16 in the AVX2 build: two registers per vector
inline vec splat(float x) {
  vec v;
  for (int l = 0; l < LANES; ++l) v[l] = x;
  return v;
}
inline vec relu(vec v) { return v > vec{} ? v : vec{}; }
#endif

// The float32 scorer: right_t (B, d, np), weight_t (d, Rp). For JV vectors of LANES positions j from j0 and
// RB relations from r0: acc[v * RB + r] = bias[r0 + r] + sum_k weight_t[k, r0 + r] relu(a[k] + b_j[k]). Each
// broadcast of a weight feeds JV multiply-adds and each relu(a + b) feeds RB: with AVX2's 16 registers a
// 2 x 6 tile (12 accumulators) issues one broadcast per two multiply-adds, where 1 x 8 issued one per one.
struct Fp32Scorer {
  static constexpr int max_j_vectors = PAIR_J_VECTORS;
  const float *right_t, *weight_t, *bias;
  int64_t hidden, np, rp;

  template <int RB, int JV>
  void score(const float* a, int64_t b, int64_t j0, int64_t r0, vec* acc) const {
    const float* rt = right_t + b * hidden * np + j0;
#pragma GCC unroll 32
    for (int x = 0; x < JV * RB; ++x) acc[x] = splat(bias[r0 + x % RB]);
    for (int64_t k = 0; k < hidden; ++k) {
      vec pair[JV];
#pragma GCC unroll 4
      for (int v = 0; v < JV; ++v) pair[v] = relu(load(rt + k * np + v * LANES) + a[k]);
      const float* w = weight_t + k * rp + r0;
#pragma GCC unroll 32
      for (int r = 0; r < RB; ++r) {
        const vec weight = splat(w[r]);
#pragma GCC unroll 4
        for (int v = 0; v < JV; ++v) acc[v * RB + r] += pair[v] * weight;
      }
    }
  }
};

#ifdef PAIR_BF16
// The bfloat16 scorer: relu(a_k + b_jk) is formed in float32, rounded to bfloat16 (to nearest even) and
// multiplied by Wr rounded likewise, two features per instruction (vdpbf16ps), summed in float32: twice the
// multiply-adds of the float32 scorer per instruction. right_2 (B, d/2, np, 2), weight_2 (d/2, Rp).
struct Bf16Scorer {
  static constexpr int max_j_vectors = 1;
  const float* right_2;
  const int32_t* weight_2;
  const float* bias;
  int64_t hidden, np, rp;

  template <int RB, int JV>
  void score(const float* a, int64_t b, int64_t j0, int64_t r0, vec* acc) const {
    static_assert(JV == 1, "the bfloat16 scorer scores one vector of j at a time");
    const float* r2 = right_2 + b * hidden * np + 2 * j0;  // (d/2) * np * 2 floats per sentence
    __m256 sums[RB];
#pragma GCC unroll 32
    for (int r = 0; r < RB; ++r) sums[r] = _mm256_set1_ps(bias[r0 + r]);
    for (int64_t k = 0; k < hidden; k += 2) {
      double a_pair;  // (a[k], a[k + 1]) in one 64-bit lane, repeated: matches right_2's (j, k | k + 1) order
      std::memcpy(&a_pair, a + k, sizeof(a_pair));
      const __m512 sum = _mm512_add_ps(_mm512_loadu_ps(r2 + k * np), _mm512_castpd_ps(_mm512_set1_pd(a_pair)));
      const __m256bh pair_bf16 = _mm512_cvtneps_pbh(_mm512_max_ps(sum, _mm512_setzero_ps()));
      const int32_t* w = weight_2 + (k / 2) * rp + r0;
#pragma GCC unroll 32
      for (int r = 0; r < RB; ++r) {
        sums[r] = _mm256_dpbf16_ps(sums[r], pair_bf16, (__m256bh)_mm256_set1_epi32(w[r]));
      }
    }
#pragma GCC unroll 32
    for (int r = 0; r < RB; ++r) acc[r] = reinterpret_cast<vec&>(sums[r]);
  }
};
#endif

// Calls visit(std::integral_constant<int, RB>, first relation) over blocks of PAIR_BLOCK relations, then the
// rest of Rp (a multiple of 8) in blocks of 8, 4 and 2. model/pair_kernels.py builds 24 for AVX-512 (24
// accumulators plus a few temporaries fill its 32 vector registers) and 6 for AVX2 (2 x 6 of its 16).
template <typename Visit>
inline void for_each_relation_block(int64_t rp, Visit visit) {
  static_assert(PAIR_BLOCK % 2 == 0, "blocks of 8, 4 and 2 cover the rest of Rp only after even blocks");
  int64_t r0 = 0;
  for (; r0 + PAIR_BLOCK <= rp; r0 += PAIR_BLOCK) visit(std::integral_constant<int, PAIR_BLOCK>{}, r0);
  for (; r0 + 8 <= rp; r0 += 8) visit(std::integral_constant<int, 8>{}, r0);
  if (r0 + 4 <= rp) visit(std::integral_constant<int, 4>{}, r0), r0 += 4;
  if (r0 + 2 <= rp) visit(std::integral_constant<int, 2>{}, r0), r0 += 2;
}

// Scores RB relations from r0 of token i (left row a, sentence b) against the first `computed` positions j
// (a multiple of LANES), tiles of Scorer::max_j_vectors vectors first, and calls emit(j0, r, logits) for
// every vector of j in ascending j0.
template <int RB, typename Scorer, typename Emit>
inline void score_block(const Scorer& scorer, const float* a, int64_t b, int64_t computed, int64_t r0, Emit emit) {
  constexpr int JV = Scorer::max_j_vectors;
  int64_t j0 = 0;
  if constexpr (JV > 1) {
    vec acc[JV * RB];
    for (; j0 + JV * LANES <= computed; j0 += JV * LANES) {
      scorer.template score<RB, JV>(a, b, j0, r0, acc);
      for (int v = 0; v < JV; ++v) {
        for (int r = 0; r < RB; ++r) emit(j0 + v * LANES, r, acc[v * RB + r]);
      }
    }
  }
  vec acc[RB];
  for (; j0 < computed; j0 += LANES) {
    scorer.template score<RB, 1>(a, b, j0, r0, acc);
    for (int r = 0; r < RB; ++r) emit(j0, r, acc[r]);
  }
}

constexpr float NEG_INF = -std::numeric_limits<float>::infinity();

inline ivec lane_ids() {
  ivec lane{};
  for (int l = 0; l < LANES; ++l) lane[l] = l;
  return lane;
}

// Calls body(begin, end) for the chunks [c * chunk, min(n, (c + 1) * chunk)) of [0, n). Intra-op threads
// take the next chunk from a shared counter whenever they finish one (at::parallel_for alone would give
// each thread one static share, and the whole loop would wait for a descheduled thread's share).
template <typename Body>
void parallel_chunks(int64_t n, int64_t chunk, const Body& body) {
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), chunks);
  if (threads <= 1 || at::in_parallel_region()) {
    for (int64_t c = 0; c < chunks; ++c) body(c * chunk, std::min(n, (c + 1) * chunk), c);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      body(c * chunk, std::min(n, (c + 1) * chunk), c);
    }
  });
}

// Rows (token i of a sentence) per chunk of the forward kernels: about 64 chunks per call, at least 4 rows.
inline int64_t row_chunk(int64_t rows) { return std::max<int64_t>(4, (rows + 63) / 64); }

struct Shapes {
  int64_t batch, length, hidden, np, relations, rp;
};

// One int64 length per sentence, each in 0..length: the kernels loop to it, so a larger one would read and write
// past the buffers (the model passes mask.sum(1); these checks guard direct calls of the Python wrappers).
void check_lengths(const torch::Tensor& lengths, int64_t batch, int64_t length, const char* where) {
  TORCH_CHECK(lengths.scalar_type() == torch::kInt64 && lengths.is_contiguous() && lengths.dim() == 1 &&
                  lengths.numel() == batch,
              where, ": lengths must be a contiguous int64 tensor of one length per sentence");
  const int64_t* lens = lengths.data_ptr<int64_t>();
  TORCH_CHECK(std::all_of(lens, lens + batch, [length](int64_t n) { return 0 <= n && n <= length; }), where,
              ": every length must lie in 0..", length, " (the padded sentence length)");
}

// Checks the forward kernels' inputs and calls body(shapes, scorer) with the scorer their layout asks for:
// float32 for a float32 weight_t (d, Rp) with right_t (B, d, np), bfloat16 for an int32 weight_2 (d/2, Rp)
// with right_2 (B, d/2, np, 2).
template <typename Body>
void with_scorer(const torch::Tensor& left, const torch::Tensor& right, const torch::Tensor& weight,
                 const torch::Tensor& bias, const torch::Tensor& lengths, int64_t relations, Body body) {
  TORCH_CHECK(left.dim() == 3 && weight.dim() == 2, "pair kernels: bad ranks");
  TORCH_CHECK(left.is_contiguous() && right.is_contiguous() && weight.is_contiguous() && bias.is_contiguous(),
              "pair kernels: inputs must be contiguous");
  TORCH_CHECK(left.scalar_type() == torch::kFloat32 && right.scalar_type() == torch::kFloat32 &&
                  bias.scalar_type() == torch::kFloat32,
              "pair kernels: float32 inputs only");
  const bool bf16 = weight.scalar_type() == torch::kInt32;
  const int64_t features = bf16 ? 2 * weight.size(0) : weight.size(0);
  const Shapes s{left.size(0), left.size(1), left.size(2), right.size(2), relations, weight.size(1)};
  TORCH_CHECK(right.dim() == (bf16 ? 4 : 3) && right.size(0) == s.batch && features == s.hidden &&
                  right.size(1) == weight.size(0) && (!bf16 || right.size(3) == 2) && s.np % LANES == 0 &&
                  s.np >= s.length && s.rp % 8 == 0 && s.rp >= relations && bias.numel() == s.rp,
              "pair kernels: inconsistent shapes");
  check_lengths(lengths, s.batch, s.length, "pair kernels");
  if (!bf16) {
    TORCH_CHECK(weight.scalar_type() == torch::kFloat32, "pair kernels: weight must be float32 or int32");
    body(s, Fp32Scorer{right.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(), s.hidden, s.np,
                       s.rp});
    return;
  }
#ifdef PAIR_BF16
  body(s, Bf16Scorer{right.data_ptr<float>(), weight.data_ptr<int32_t>(), bias.data_ptr<float>(), s.hidden, s.np,
                     s.rp});
#else
  TORCH_CHECK(false, "pair kernels: this build has no bfloat16 scorer (the CPU lacks AVX512-BF16)");
#endif
}

// Logits of token i (left row a, sentence b) against every j of its sentence into out_row (R, np); -inf at
// j >= length.
template <typename Scorer>
inline void row_logits(const Shapes& s, const Scorer& scorer, const float* a, int64_t b, int64_t length,
                       float* out_row) {
  const int64_t computed = (length + LANES - 1) / LANES * LANES;
  for (int64_t r = 0; r < s.relations; ++r) std::fill(out_row + r * s.np + computed, out_row + (r + 1) * s.np, NEG_INF);
  const ivec lane = lane_ids();
  for_each_relation_block(s.rp, [&](auto block, int64_t r0) {
    score_block<decltype(block)::value>(scorer, a, b, computed, r0, [&](int64_t j0, int r, vec logits) {
      if (r0 + r >= s.relations) return;
      const ivec real = lane + static_cast<int32_t>(j0) < static_cast<int32_t>(length);
      store(out_row + (r0 + r) * s.np + j0, real ? logits : splat(NEG_INF));
    });
  });
}

// All pair logits, (B, n, R, np), -inf outside real cells (i or j >= the sentence's length): the BCE and
// the decoder then need no mask, and padded rows and columns cost nothing.
torch::Tensor pair_logits(torch::Tensor left, torch::Tensor right, torch::Tensor weight, torch::Tensor bias,
                          torch::Tensor lengths, int64_t relations) {
  torch::Tensor out;
  with_scorer(left, right, weight, bias, lengths, relations, [&](const Shapes& s, const auto& scorer) {
    out = torch::empty({s.batch, s.length, s.relations, s.np}, left.options());
    const float* a_all = left.data_ptr<float>();
    const int64_t* lens = lengths.data_ptr<int64_t>();
    float* out_all = out.data_ptr<float>();
    const int64_t rows = s.batch * s.length;
    parallel_chunks(rows, row_chunk(rows), [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / s.length;
        float* out_row = out_all + row * s.relations * s.np;
        if (row % s.length < lens[b]) {
          row_logits(s, scorer, a_all + row * s.hidden, b, lens[b], out_row);
        } else {
          std::fill(out_row, out_row + s.relations * s.np, NEG_INF);
        }
      }
    });
  });
  return out;
}

inline float lane_sum(vec v) {
  float total = 0.0f;
  for (int l = 0; l < LANES; ++l) total += v[l];
  return total;
}

// exp(x) for x <= 0, as Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, exp(r) from a degree-6 polynomial
// (about 1 ulp), times 2^n built in the exponent bits. Below -87 it returns exp(-87) (about 1.6e-38) rather
// than a subnormal: an absolute error under 2e-38.
inline vec exp_nonpositive(vec x) {
  x = x < splat(-87.0f) ? splat(-87.0f) : x;
  const ivec n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, ivec);  // trunc = ceil here: round
  const vec nf = __builtin_convertvector(n, vec);
  const vec r = x - nf * 0.693359375f - nf * -2.12194440e-4f;  // ln2 in two parts, so r stays exact
  vec p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * reinterpret_cast<vec>((n + 127) << 23);
}

// log(1 + e) for 0 <= e <= 1, as Cephes' logf on m = 1 + e: m = 2^k (1 + f) with k = 1 above sqrt(2). f is
// formed from e without rounding 1 + e first, so tiny e keep their precision (log1p, not log).
inline vec log1p_unit(vec e) {
  const ivec upper = e > splat(0.41421356237f);
  const vec k = upper ? splat(1.0f) : vec{};
  const vec f = upper ? (e - 1.0f) * 0.5f : e;
  const vec z = f * f;
  vec y = splat(7.0376836292e-2f);
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z + k * -2.12194440e-4f - 0.5f * z;
  return f + y + k * 0.693359375f;
}

// The BCE of token i's row against every j of its sentence, without storing a logit: sigmoid(z) into
// prob_row (R, np), 0 at j >= length; each relation's sum of sigmoid(z) into prob_sums (R). Returns the
// row's sum of softplus(z) = max(z, 0) + log(1 + exp(-|z|)). With e = exp(-|z|), sigmoid(z) is
// 1 / (1 + e) for z >= 0 and e / (1 + e) below, stable for every z.
template <typename Scorer>
inline float row_bce(const Shapes& s, const Scorer& scorer, const float* a, int64_t b, int64_t length,
                     float* prob_row, float* prob_sums) {
  const int64_t computed = (length + LANES - 1) / LANES * LANES;
  for (int64_t r = 0; r < s.relations; ++r) std::fill(prob_row + r * s.np + computed, prob_row + (r + 1) * s.np, 0.0f);
  const ivec lane = lane_ids();
  vec softplus_sum{};
  for_each_relation_block(s.rp, [&](auto block, int64_t r0) {
    constexpr int RB = decltype(block)::value;
    vec prob_acc[RB];
#pragma GCC unroll 32
    for (int r = 0; r < RB; ++r) prob_acc[r] = vec{};
    score_block<RB>(scorer, a, b, computed, r0, [&](int64_t j0, int r, vec z) {
      if (r0 + r >= s.relations) return;
      const ivec real = lane + static_cast<int32_t>(j0) < static_cast<int32_t>(length);
      const ivec positive = z >= vec{};
      const vec e = exp_nonpositive(positive ? -z : z);
      const vec prob = real ? (positive ? splat(1.0f) : e) / (e + 1.0f) : vec{};
      softplus_sum += real ? relu(z) + log1p_unit(e) : vec{};
      prob_acc[r] += prob;
      store(prob_row + (r0 + r) * s.np + j0, prob);
    });
    for (int r = 0; r < RB && r0 + r < s.relations; ++r) prob_sums[r0 + r] = lane_sum(prob_acc[r]);
  });
  return lane_sum(softplus_sum);
}

// The pair scorer's BCE pieces for every cell, from logits that never leave registers: sigmoid(z) as
// (B, n, R, np) with 0 outside real cells, each row's sum of softplus(z) (B, n) and each row's per-relation
// sum of sigmoid(z) (B, n, R). The loss is sum(softplus) - sum(z at positive cells), d(loss)/dz is
// sigmoid(z) - y: model/pair_scorer.py adds the few positive cells.
std::vector<torch::Tensor> pair_bce(torch::Tensor left, torch::Tensor right, torch::Tensor weight,
                                    torch::Tensor bias, torch::Tensor lengths, int64_t relations) {
  torch::Tensor probs, softplus, prob_sums;
  with_scorer(left, right, weight, bias, lengths, relations, [&](const Shapes& s, const auto& scorer) {
    probs = torch::empty({s.batch, s.length, s.relations, s.np}, left.options());
    softplus = torch::empty({s.batch, s.length}, left.options());
    prob_sums = torch::empty({s.batch, s.length, s.relations}, left.options());
    const float* a_all = left.data_ptr<float>();
    const int64_t* lens = lengths.data_ptr<int64_t>();
    float *probs_all = probs.data_ptr<float>(), *softplus_all = softplus.data_ptr<float>();
    float* sums_all = prob_sums.data_ptr<float>();
    const int64_t rows = s.batch * s.length;
    parallel_chunks(rows, row_chunk(rows), [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / s.length;
        float* prob_row = probs_all + row * s.relations * s.np;
        float* sums = sums_all + row * s.relations;
        if (row % s.length < lens[b]) {
          softplus_all[row] = row_bce(s, scorer, a_all + row * s.hidden, b, lens[b], prob_row, sums);
        } else {
          std::fill(prob_row, prob_row + s.relations * s.np, 0.0f);
          std::fill(sums, sums + s.relations, 0.0f);
          softplus_all[row] = 0.0f;
        }
      }
    });
  });
  return {probs, softplus, prob_sums};
}

// Token i's max over real j of the pair logits and its arg-max, per relation, into values and winner (R each):
// each lane keeps a running max of its positions j beside the accumulators (a later j replaces it only when
// strictly greater), then the lanes are reduced, the smallest j winning ties. No logit is stored, and the max
// costs a compare and two blends per vector of logits instead of a scalar pass over all of them. An empty
// sentence gives -inf at j = 0. A NaN logit never wins (the PyTorch path would return it; the loss, from
// pair_bce, still turns NaN).
template <typename Scorer>
inline void row_max(const Shapes& s, const Scorer& scorer, const float* a, int64_t b, int64_t length, float* values,
                    int64_t* winner) {
  const int64_t computed = (length + LANES - 1) / LANES * LANES;
  const ivec lane = lane_ids();
  for_each_relation_block(s.rp, [&](auto block, int64_t r0) {
    constexpr int RB = decltype(block)::value;
    vec best[RB];
    ivec best_j[RB];
#pragma GCC unroll 32
    for (int r = 0; r < RB; ++r) best[r] = splat(NEG_INF), best_j[r] = lane;
    score_block<RB>(scorer, a, b, computed, r0, [&](int64_t j0, int r, vec logits) {
      const ivec j = lane + static_cast<int32_t>(j0);
      const ivec better = (j < static_cast<int32_t>(length)) & (logits > best[r]);
      best[r] = better ? logits : best[r];
      best_j[r] = better ? j : best_j[r];
    });
    for (int r = 0; r < RB && r0 + r < s.relations; ++r) {
      float value = best[r][0];
      int32_t j = best_j[r][0];
      for (int l = 1; l < LANES; ++l) {
        if (best[r][l] > value || (best[r][l] == value && best_j[r][l] < j)) value = best[r][l], j = best_j[r][l];
      }
      values[r0 + r] = value;
      winner[r0 + r] = j;
    }
  });
}

// max over real j of the pair logits and its arg-max, both (B, n, R); ties go to the smallest j. Padded
// rows i get their values too (as the PyTorch path), so the GRU input stays finite there.
std::vector<torch::Tensor> pair_max(torch::Tensor left, torch::Tensor right, torch::Tensor weight,
                                    torch::Tensor bias, torch::Tensor lengths, int64_t relations) {
  torch::Tensor values, winner;
  with_scorer(left, right, weight, bias, lengths, relations, [&](const Shapes& s, const auto& scorer) {
    values = torch::empty({s.batch, s.length, s.relations}, left.options());
    winner = torch::empty({s.batch, s.length, s.relations}, lengths.options());
    const float* a_all = left.data_ptr<float>();
    const int64_t* lens = lengths.data_ptr<int64_t>();
    float* values_all = values.data_ptr<float>();
    int64_t* winner_all = winner.data_ptr<int64_t>();
    const int64_t rows = s.batch * s.length;
    parallel_chunks(rows, row_chunk(rows), [&](int64_t begin, int64_t end, int64_t) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t b = row / s.length;
        row_max(s, scorer, a_all + row * s.hidden, b, lens[b], values_all + row * s.relations,
                winner_all + row * s.relations);
      }
    });
  });
  return {values, winner};
}

// Per-chunk copies of grad_weight, summed in chunk order after the parallel loop. Chunks are fixed runs of
// sentences (at most 16 per call, whatever the thread count), so a step gives the same bits every time.
class ChunkSums {
 public:
  ChunkSums(int64_t batch, int64_t size)
      : chunk_(std::max<int64_t>(1, (batch + 15) / 16)), size_(size), sums_(((batch + chunk_ - 1) / chunk_) * size, 0.0f) {}
  int64_t chunk() const { return chunk_; }
  float* get(int64_t chunk_index) { return sums_.data() + chunk_index * size_; }
  void sum_into(float* out) const {
    for (size_t offset = 0; offset < sums_.size(); offset += size_) {
      for (int64_t x = 0; x < size_; ++x) out[x] += sums_[offset + x];
    }
  }

 private:
  int64_t chunk_, size_;
  std::vector<float> sums_;
};

// Backward of sum(grad_logits * logits) for two pairs (i, j) and (i, j + 1) over KC vectors of features:
// grad_pair = relu'(pair) * (grad_logits @ Wr) feeds grad_left[i], grad_right[j]; grad_weight += g pair^T.
template <int KC>
inline void backward_tile(const float* g0, const float* g1, int64_t g_stride, const float* a, const float* b0,
                          const float* b1, const float* weight, int64_t w_stride, int64_t relations,
                          float* grad_a, float* grad_b0, float* grad_b1, float* grad_weight) {
  vec p0[KC], p1[KC], m0[KC], m1[KC];
#pragma GCC unroll 8
  for (int c = 0; c < KC; ++c) p0[c] = p1[c] = vec{};
  for (int64_t r = 0; r < relations; ++r) {
    const float x0 = g0[r * g_stride], x1 = g1[r * g_stride];
#pragma GCC unroll 8
    for (int c = 0; c < KC; ++c) {
      const vec w = load(weight + r * w_stride + c * LANES);
      p0[c] += w * x0;
      p1[c] += w * x1;
    }
  }
#pragma GCC unroll 8
  for (int c = 0; c < KC; ++c) {
    const vec av = load(a + c * LANES);
    m0[c] = av + load(b0 + c * LANES);
    m1[c] = av + load(b1 + c * LANES);
    p0[c] = m0[c] > vec{} ? p0[c] : vec{};
    p1[c] = m1[c] > vec{} ? p1[c] : vec{};
    m0[c] = relu(m0[c]);
    m1[c] = relu(m1[c]);
    store(grad_a + c * LANES, load(grad_a + c * LANES) + p0[c] + p1[c]);
    store(grad_b0 + c * LANES, load(grad_b0 + c * LANES) + p0[c]);
    store(grad_b1 + c * LANES, load(grad_b1 + c * LANES) + p1[c]);
  }
  for (int64_t r = 0; r < relations; ++r) {
    const float x0 = g0[r * g_stride], x1 = g1[r * g_stride];
    float* gw = grad_weight + r * w_stride;
#pragma GCC unroll 8
    for (int c = 0; c < KC; ++c) store(gw + c * LANES, load(gw + c * LANES) + m0[c] * x0 + m1[c] * x1);
  }
}

template <typename Visit>
inline void for_each_feature_chunk(int64_t vectors, Visit visit) {
  int64_t c0 = 0;
  for (; c0 + 8 <= vectors; c0 += 8) visit(std::integral_constant<int, 8>{}, c0);
  switch (vectors - c0) {
    case 7: visit(std::integral_constant<int, 7>{}, c0); break;
    case 6: visit(std::integral_constant<int, 6>{}, c0); break;
    case 5: visit(std::integral_constant<int, 5>{}, c0); break;
    case 4: visit(std::integral_constant<int, 4>{}, c0); break;
    case 3: visit(std::integral_constant<int, 3>{}, c0); break;
    case 2: visit(std::integral_constant<int, 2>{}, c0); break;
    case 1: visit(std::integral_constant<int, 1>{}, c0); break;
    default: break;
  }
}

// Gradients of sum(grad_logits * logits) with respect to left, right and Wr. grad_logits must be zero at
// padded cells (i or j >= length), as it is after the BCE; the loops stop at each sentence's length.
std::vector<torch::Tensor> pair_backward(torch::Tensor grad_logits, torch::Tensor left_p, torch::Tensor right_p,
                                         torch::Tensor weight_p, torch::Tensor lengths) {
  TORCH_CHECK(grad_logits.is_contiguous() && left_p.is_contiguous() && right_p.is_contiguous() &&
                  weight_p.is_contiguous(),
              "pair_backward: inputs must be contiguous");
  const int64_t batch = left_p.size(0), length = left_p.size(1), dp = left_p.size(2);
  const int64_t relations = weight_p.size(0), np = grad_logits.size(3);
  TORCH_CHECK(dp % LANES == 0 && right_p.size(1) == np && right_p.size(2) == dp && weight_p.size(1) == dp &&
                  grad_logits.size(0) == batch && grad_logits.size(1) == length &&
                  grad_logits.size(2) == relations && np % 2 == 0 && np >= length && right_p.size(0) == batch,
              "pair_backward: inconsistent shapes");
  TORCH_CHECK(grad_logits.scalar_type() == torch::kFloat32 && left_p.scalar_type() == torch::kFloat32 &&
                  right_p.scalar_type() == torch::kFloat32 && weight_p.scalar_type() == torch::kFloat32,
              "pair_backward: float32 inputs only");
  check_lengths(lengths, batch, length, "pair_backward");
  auto grad_left = torch::zeros_like(left_p);
  auto grad_right = torch::zeros_like(right_p);
  auto grad_weight = torch::zeros_like(weight_p);
  const float *g_all = grad_logits.data_ptr<float>(), *a_all = left_p.data_ptr<float>();
  const float *b_all = right_p.data_ptr<float>(), *w = weight_p.data_ptr<float>();
  float *ga_all = grad_left.data_ptr<float>(), *gb_all = grad_right.data_ptr<float>();
  float* gw_all = grad_weight.data_ptr<float>();
  const int64_t* lens = lengths.data_ptr<int64_t>();
  ChunkSums weight_sums(batch, relations * dp);
  parallel_chunks(batch, weight_sums.chunk(), [&](int64_t begin, int64_t end, int64_t chunk_index) {
    float* gw_local = weight_sums.get(chunk_index);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t real = lens[b];
      for (int64_t i = 0; i < real; ++i) {
        const int64_t row = b * length + i;
        const float* g = g_all + row * relations * np;
        for (int64_t j = 0; j < real; j += 2) {  // np is even and grad_logits is zero at j = real
          for_each_feature_chunk(dp / LANES, [&](auto chunk, int64_t c0) {
            constexpr int KC = decltype(chunk)::value;
            const int64_t k = c0 * LANES;
            const float* b0 = b_all + (b * np + j) * dp + k;
            float* gb0 = gb_all + (b * np + j) * dp + k;
            backward_tile<KC>(g + j, g + j + 1, np, a_all + row * dp + k, b0, b0 + dp, w + k, dp, relations,
                              ga_all + row * dp + k, gb0, gb0 + dp, gw_local + k);
          });
        }
      }
    }
  });
  weight_sums.sum_into(gw_all);
  return {grad_left, grad_right, grad_weight};
}

// Backward of pair_max: each (i, r) passes grad[i, r] to its winning cell (i, winner[i, r], r) only, so
// the cost per token is O(R d), not O(n R d): relu'(pair) * grad * Wr[r] goes to left[i] and right[winner].
std::vector<torch::Tensor> pair_max_backward(torch::Tensor grad, torch::Tensor winner, torch::Tensor left_p,
                                             torch::Tensor right_p, torch::Tensor weight_p) {
  TORCH_CHECK(grad.is_contiguous() && winner.is_contiguous() && left_p.is_contiguous() && right_p.is_contiguous() &&
                  weight_p.is_contiguous(),
              "pair_max_backward: inputs must be contiguous");
  const int64_t batch = left_p.size(0), length = left_p.size(1), dp = left_p.size(2);
  const int64_t relations = weight_p.size(0);
  TORCH_CHECK(dp % LANES == 0 && right_p.sizes() == left_p.sizes() && weight_p.size(1) == dp &&
                  grad.sizes() == winner.sizes() && grad.size(0) == batch && grad.size(1) == length &&
                  grad.size(2) == relations && grad.scalar_type() == torch::kFloat32 &&
                  winner.scalar_type() == torch::kInt64,
              "pair_max_backward: inconsistent shapes");
  TORCH_CHECK(left_p.scalar_type() == torch::kFloat32 && right_p.scalar_type() == torch::kFloat32 &&
                  weight_p.scalar_type() == torch::kFloat32,
              "pair_max_backward: float32 inputs only");
  const int64_t* winner_all = winner.data_ptr<int64_t>();
  const auto within = [length](int64_t j) { return 0 <= j && j < length; };
  TORCH_CHECK(std::all_of(winner_all, winner_all + winner.numel(), within),
              "pair_max_backward: every winner must lie in 0..", length - 1);
  auto grad_left = torch::zeros_like(left_p);
  auto grad_right = torch::zeros_like(right_p);
  auto grad_weight = torch::zeros_like(weight_p);
  const float *g_all = grad.data_ptr<float>(), *a_all = left_p.data_ptr<float>();
  const float *b_all = right_p.data_ptr<float>(), *w = weight_p.data_ptr<float>();
  float *ga_all = grad_left.data_ptr<float>(), *gb_all = grad_right.data_ptr<float>();
  float* gw_all = grad_weight.data_ptr<float>();
  ChunkSums weight_sums(batch, relations * dp);
  parallel_chunks(batch, weight_sums.chunk(), [&](int64_t begin, int64_t end, int64_t chunk_index) {
    float* gw_local = weight_sums.get(chunk_index);
    for (int64_t row = begin * length; row < end * length; ++row) {
      const float* a = a_all + row * dp;
      float* ga = ga_all + row * dp;
      for (int64_t r = 0; r < relations; ++r) {
        const float g = g_all[row * relations + r];
        if (g == 0.0f) continue;
        const int64_t j = (row / length) * length + winner_all[row * relations + r];
        const float* b = b_all + j * dp;
        float* gb = gb_all + j * dp;
        const float* wr = w + r * dp;
        float* gw = gw_local + r * dp;
        for (int64_t k = 0; k < dp; k += LANES) {
          const vec pair = load(a + k) + load(b + k);
          const vec grad_pair = pair > vec{} ? load(wr + k) * g : vec{};
          store(ga + k, load(ga + k) + grad_pair);
          store(gb + k, load(gb + k) + grad_pair);
          store(gw + k, load(gw + k) + relu(pair) * g);
        }
      }
    }
  });
  weight_sums.sum_into(gw_all);
  return {grad_left, grad_right, grad_weight};
}

// ---- The GRU cells (model/layers.py GRUCell) ----
// PyTorch's CPU GRUCell writes both (N, 3H) products to memory, then makes about ten elementwise passes over
// them, and its backward about as many more: the passes took as long as the products. Here blocks of
// GRU_BLOCK rows are multiplied (ATen's matrix product, one thread per block) into per-thread buffers that
// stay in cache, and the gates are formed from them in one pass: r = sigmoid(gi_r + gh_r),
// z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r gh_n), h' = n + z (h - n), with gi = W_ih x + b_ih and
// gh = W_hh h + b_hh (PyTorch's gate order and formula). For training the pass also keeps r, z, n and gh_n,
// from which gru_cell_backward forms the gradients of gi and gh in one more pass.
constexpr int64_t GRU_BLOCK = 128;  // 2 x 128 x 3H floats: 300 KB at H = 100, within a 512 KB L2 cache

// sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|): stable for every x.
inline vec sigmoid(vec x) {
  const vec e = exp_nonpositive(x < vec{} ? x : -x);
  const vec inverse = 1.0f / (1.0f + e);
  return x < vec{} ? e * inverse : inverse;
}

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|).
inline vec tanh_vec(vec x) {
  const vec magnitude = x < vec{} ? -x : x;
  const vec e = exp_nonpositive(-2.0f * magnitude);
  const vec t = (1.0f - e) / (1.0f + e);
  return x < vec{} ? -t : t;
}

// Calls body(load, store, k) for the features k, k + LANES, ... of a row of `hidden`: load(p) and store(p, v)
// move the LANES floats at p, or only the hidden - k that are left at the row's end (zeros beyond), so a row
// needs no padding and never touches the next one.
template <typename Body>
inline void for_each_vector(int64_t hidden, Body body) {
  for (int64_t k = 0; k < hidden; k += LANES) {
    const int64_t count = std::min<int64_t>(LANES, hidden - k);
    const auto part_load = [count](const float* p) {
      if (count == LANES) return load(p);
      float padded[LANES] = {};
      std::memcpy(padded, p, count * sizeof(float));
      return load(padded);
    };
    const auto part_store = [count](float* p, vec v) {
      if (count == LANES) return store(p, v);
      float padded[LANES];
      store(padded, v);
      std::memcpy(p, padded, count * sizeof(float));
    };
    body(part_load, part_store, k);
  }
}

// One row's h' from its gi, gh (3H each) and h (H); with `saved` (4H), also r, z, n and gh_n.
inline void gru_row(const float* gi, const float* gh, const float* h, float* out, float* saved, int64_t hidden) {
  for_each_vector(hidden, [&](auto ld, auto st, int64_t k) {
    const vec reset = sigmoid(ld(gi + k) + ld(gh + k));
    const vec update = sigmoid(ld(gi + hidden + k) + ld(gh + hidden + k));
    const vec hidden_n = ld(gh + 2 * hidden + k);
    const vec candidate = tanh_vec(ld(gi + 2 * hidden + k) + reset * hidden_n);
    st(out + k, candidate + update * (ld(h + k) - candidate));
    if (saved != nullptr) {
      st(saved + k, reset);
      st(saved + hidden + k, update);
      st(saved + 2 * hidden + k, candidate);
      st(saved + 3 * hidden + k, hidden_n);
    }
  });
}

void check_gru(const std::vector<const torch::Tensor*>& tensors, const char* where) {
  for (const auto* t : tensors) {
    TORCH_CHECK(t->scalar_type() == torch::kFloat32 && t->is_contiguous() && t->device().is_cpu(), where,
                ": contiguous float32 CPU tensors only");
  }
}

// h' (N, H), and with `save` the (N, 4H) rows of r, z, n, gh_n that gru_cell_backward reads (else empty).
std::vector<torch::Tensor> gru_cell(torch::Tensor input, torch::Tensor hidden, torch::Tensor weight_ih,
                                    torch::Tensor weight_hh, torch::Tensor bias_ih, torch::Tensor bias_hh, bool save) {
  TORCH_CHECK(input.dim() == 2 && hidden.dim() == 2, "gru_cell: inconsistent shapes");
  const int64_t rows = hidden.size(0), size = hidden.size(1), inputs = input.size(1);
  TORCH_CHECK(input.size(0) == rows && weight_ih.sizes() == torch::IntArrayRef({3 * size, inputs}) &&
                  weight_hh.sizes() == torch::IntArrayRef({3 * size, size}) &&
                  bias_ih.sizes() == torch::IntArrayRef({3 * size}) &&
                  bias_hh.sizes() == torch::IntArrayRef({3 * size}),
              "gru_cell: inconsistent shapes");
  check_gru({&input, &hidden, &weight_ih, &weight_hh, &bias_ih, &bias_hh}, "gru_cell");
  auto out = torch::empty_like(hidden);
  auto saved = torch::empty({save ? rows : 0, 4 * size}, hidden.options());
  const auto weight_ih_t = weight_ih.detach().t(), weight_hh_t = weight_hh.detach().t();
  const auto input_data = input.detach(), hidden_data = hidden.detach();
  const float* h_all = hidden.data_ptr<float>();
  float *out_all = out.data_ptr<float>(), *saved_all = save ? saved.data_ptr<float>() : nullptr;
  parallel_chunks(rows, GRU_BLOCK, [&](int64_t begin, int64_t end, int64_t) {
    const at::NoGradGuard no_gradient;  // grad mode is per thread: the intra-op threads do not inherit it
    thread_local std::vector<float> buffer;
    buffer.resize(2 * GRU_BLOCK * 3 * size);
    const int64_t count = end - begin;
    auto gi = torch::from_blob(buffer.data(), {count, 3 * size}, torch::kFloat32);
    auto gh = torch::from_blob(buffer.data() + GRU_BLOCK * 3 * size, {count, 3 * size}, torch::kFloat32);
    at::addmm_out(gi, bias_ih.detach(), input_data.narrow(0, begin, count), weight_ih_t);
    at::addmm_out(gh, bias_hh.detach(), hidden_data.narrow(0, begin, count), weight_hh_t);
    for (int64_t row = 0; row < count; ++row) {
      const int64_t at_row = begin + row;
      gru_row(gi.data_ptr<float>() + row * 3 * size, gh.data_ptr<float>() + row * 3 * size, h_all + at_row * size,
              out_all + at_row * size, save ? saved_all + at_row * 4 * size : nullptr, size);
    }
  });
  return {out, saved};
}

// From d(loss)/dh' (N, H), gru_cell's saved rows and h: the gradients of gi and gh (N, 3H each) and the part
// of h's gradient that bypasses the products, z d(loss)/dh'. The products' gradients follow in PyTorch
// (model/layers.py).
std::vector<torch::Tensor> gru_cell_backward(torch::Tensor grad, torch::Tensor saved, torch::Tensor hidden) {
  const int64_t rows = hidden.size(0), size = hidden.size(1);
  TORCH_CHECK(hidden.dim() == 2 && grad.sizes() == hidden.sizes() &&
                  saved.sizes() == torch::IntArrayRef({rows, 4 * size}),
              "gru_cell_backward: inconsistent shapes");
  check_gru({&grad, &saved, &hidden}, "gru_cell_backward");
  auto grad_gi = torch::empty({rows, 3 * size}, hidden.options());
  auto grad_gh = torch::empty({rows, 3 * size}, hidden.options());
  auto grad_hidden = torch::empty_like(hidden);
  const float *g_all = grad.data_ptr<float>(), *s_all = saved.data_ptr<float>(), *h_all = hidden.data_ptr<float>();
  float *gi_all = grad_gi.data_ptr<float>(), *gh_all = grad_gh.data_ptr<float>();
  float* dh_all = grad_hidden.data_ptr<float>();
  parallel_chunks(rows, GRU_BLOCK, [&](int64_t begin, int64_t end, int64_t) {
    for (int64_t row = begin; row < end; ++row) {
      const float *g = g_all + row * size, *s = s_all + row * 4 * size, *h = h_all + row * size;
      float *d_gi = gi_all + row * 3 * size, *d_gh = gh_all + row * 3 * size, *d_h = dh_all + row * size;
      for_each_vector(size, [&](auto ld, auto st, int64_t k) {
        const vec g_out = ld(g + k), reset = ld(s + k), update = ld(s + size + k);
        const vec candidate = ld(s + 2 * size + k), hidden_n = ld(s + 3 * size + k);
        const vec d_candidate = g_out * (1.0f - update) * (1.0f - candidate * candidate);  // through tanh
        const vec d_update = g_out * (ld(h + k) - candidate) * update * (1.0f - update);
        const vec d_reset = d_candidate * hidden_n * reset * (1.0f - reset);
        st(d_gi + k, d_reset);
        st(d_gh + k, d_reset);
        st(d_gi + size + k, d_update);
        st(d_gh + size + k, d_update);
        st(d_gi + 2 * size + k, d_candidate);
        st(d_gh + 2 * size + k, d_candidate * reset);
        st(d_h + k, g_out * update);
      });
    }
  });
  return {grad_gi, grad_gh, grad_hidden};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("pair_logits", &pair_logits, "all pair logits (B, n, R, np)");
  m.def("pair_bce", &pair_bce, "sigmoid of every pair logit, and per-row sums of softplus and sigmoid");
  m.def("pair_max", &pair_max, "max over real j of the pair logits, and its arg-max");
  m.def("pair_backward", &pair_backward, "gradients of sum(grad_logits * logits)");
  m.def("pair_max_backward", &pair_max_backward, "gradients of pair_max's values");
  m.def("gru_cell", &gru_cell, "a GRU cell's new state (nn.GRUCell's formula), and what its backward pass reads");
  m.def("gru_cell_backward", &gru_cell_backward, "gradients of a GRU cell's two products, and h's direct one");
  m.attr("has_bf16") = pybind11::bool_(PAIR_HAS_BF16);
  m.attr("isa") = pybind11::str(PAIR_STRING(PAIR_ISA));
}
