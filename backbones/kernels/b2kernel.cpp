// Bit-packed binary convolution: XOR + popcount over channel-packed 64-bit words.
//
// Plain C++17, no torch headers; loaded from Python with ctypes (extern "C" API
// below). Conventions:
//   * bit = 1 means +1, bit = 0 means -1; an activation bit is (x >= thr[c]),
//     so NaN -> -1 and -0.0 -> +1 exactly like torch's `x >= t`.
//   * activations are packed NHWC: each pixel holds `groups` runs of `wg`
//     words, every group starting on a word boundary; unused tail bits are 0
//     in activations and weights alike, so they never count.
//   * padding is +1: a padded tap holds 1-bits for the real channels.
//   * per output: D = K - 2*popcount(x ^ w) with K = kh*kw*(cin/groups), the
//     exact ±1 dot product; out = float(D)*scale[c] + bias[c] (two roundings,
//     like torch's `D*scale + bias`, so the torch fallback gives identical
//     numbers: build with -ffp-contract=off).
// ISA paths (AVX-512 VPOPCNTDQ, AVX2 pshufb popcount, scalar) are compiled with
// target attributes and chosen at run time, never with -march=native.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

// Only the extern "C" API is exported (built with -fvisibility=hidden).
#define B2K_API __attribute__((visibility("default")))

// B2K_PORTABLE builds only the scalar path (what non-x86 machines get).
#if (defined(__x86_64__) || defined(__i386__)) && !defined(B2K_PORTABLE)
#define B2K_X86 1
#include <immintrin.h>
#define B2K_T512 __attribute__((target("avx512f,avx512vpopcntdq,avx512vl,avx512bw,avx512dq,avx2")))
#define B2K_T256 __attribute__((target("avx2")))
#define B2K_TPOP __attribute__((target("popcnt")))
#else
#define B2K_X86 0
#define B2K_TPOP
#endif

extern "C" {

// Shapes shared with Python (ctypes.Structure of int64 fields, same order).
typedef struct {
    int64_t n, cin, h, w;      // input, logical NCHW
    int64_t in_stride[4];      // element strides of the input (n, c, h, w)
    int64_t cout, kh, kw, stride, pad, groups;
    int64_t out_stride[4];     // element strides of the output (n, c, h, w)
    int64_t merge_rows;        // 1: weights are row-merged (see "row merging" below)
} b2k_shape;

}  // extern "C"

namespace {

constexpr int LANES = 8;  // output channels per weight block (one zmm of u64)

// Everything derived from a b2k_shape.
struct Geo {
    int64_t n, cin, h, w, cout, kh, kw, s, pad, g;
    int64_t cg, cog;     // channels per group in / out
    int64_t wg, gw;      // words per group, words per pixel
    int64_t hp, wp;      // padded input size
    int64_t ho, wo;      // output size
    int64_t K;           // words per output dot: kh*kw*wg, or kh*ewg when row-merged
    int64_t kreal;       // real ±1 terms per output = kh*kw*cg
    int64_t cb;          // 8-channel weight blocks per group
    // The buffer the conv loop reads: the packed input itself, or its
    // row-merged expansion (one "pixel" per output column holding kw taps).
    bool merge;
    int64_t ewg;         // words per group of a merged row (ceil(kw*cg/64))
    int64_t bw, bgw, bwg;  // buffer width (pixels), words per buffer pixel, per group
    int64_t ktx, xstep;  // horizontal taps read by the loop, buffer pixels per output column
    const int64_t* is;   // input strides
    const int64_t* os;   // output strides
};

Geo make_geo(const b2k_shape* sh) {
    Geo q;
    q.n = sh->n; q.cin = sh->cin; q.h = sh->h; q.w = sh->w;
    q.cout = sh->cout; q.kh = sh->kh; q.kw = sh->kw; q.s = sh->stride; q.pad = sh->pad; q.g = sh->groups;
    q.cg = q.cin / q.g; q.cog = q.cout / q.g;
    q.wg = (q.cg + 63) / 64; q.gw = q.g * q.wg;
    q.hp = q.h + 2 * q.pad; q.wp = q.w + 2 * q.pad;
    q.ho = (q.hp - q.kh) / q.s + 1; q.wo = (q.wp - q.kw) / q.s + 1;
    q.K = q.kh * q.kw * q.wg;
    q.kreal = q.kh * q.kw * q.cg;
    q.cb = (q.cog + LANES - 1) / LANES;
    q.merge = sh->merge_rows != 0;
    q.ewg = (q.kw * q.cg + 63) / 64;
    if (q.merge) {
        q.bw = q.wo; q.bgw = q.g * q.ewg; q.bwg = q.ewg; q.ktx = 1; q.xstep = 1;
        q.K = q.kh * q.ewg;
    } else {
        q.bw = q.wp; q.bgw = q.gw; q.bwg = q.wg; q.ktx = q.kw; q.xstep = q.s;
    }
    q.is = sh->in_stride; q.os = sh->out_stride;
    return q;
}

int g_threads = 1;
enum { ISA_SCALAR = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
const char* ISA_NAMES[] = {"scalar", "avx2", "avx512"};

bool cpu_has(int isa) {
    if (isa == ISA_SCALAR) return true;
#if B2K_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2");
    if (isa == ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx2");
#endif
    return false;
}

bool cpu_has_popcnt() {
#if B2K_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("popcnt");
#else
    return true;
#endif
}

int best_isa() {
    for (int i = ISA_AVX512; i > ISA_SCALAR; --i)
        if (cpu_has(i)) return i;
    return ISA_SCALAR;
}

int g_isa = best_isa();

// ---------------------------------------------------------------- packing --

// Bits of a padded tap for one group: 1 for every real channel, 0 in the tail.
inline uint64_t ones_word(const Geo& q, int64_t w) {
    int64_t real = std::min<int64_t>(64, q.cg - 64 * w);
    return real >= 64 ? ~0ull : ((1ull << real) - 1);
}

void fill_pad_pixel(const Geo& q, uint64_t* px) {
    for (int64_t g = 0; g < q.g; ++g)
        for (int64_t w = 0; w < q.wg; ++w) px[g * q.wg + w] = ones_word(q, w);
}

// Any strides; the inner loop walks channels.
void pack_pixel_generic(const Geo& q, const float* x, const float* thr, uint64_t* px) {
    const int64_t sc = q.is[1];
    for (int64_t g = 0; g < q.g; ++g)
        for (int64_t w = 0; w < q.wg; ++w) {
            uint64_t word = 0;
            int64_t c0 = g * q.cg + 64 * w, real = std::min<int64_t>(64, q.cg - 64 * w);
            for (int64_t j = 0; j < real; ++j) {
                float t = thr ? thr[c0 + j] : 0.0f;
                word |= (uint64_t)(x[(c0 + j) * sc] >= t) << j;
            }
            px[g * q.wg + w] = word;
        }
}

// NCHW-like input (unit stride along w): walk each channel's row so reads are contiguous.
void pack_row_planar(const Geo& q, const float* xrow, const float* thr, uint64_t* prow) {
    for (int64_t x = 0; x < q.w; ++x)
        std::memset(prow + x * q.gw, 0, sizeof(uint64_t) * q.gw);
    for (int64_t c = 0; c < q.cin; ++c) {
        const float* p = xrow + c * q.is[1];
        const float t = thr ? thr[c] : 0.0f;
        const int64_t g = c / q.cg, cc = c % q.cg;
        const int64_t wi = g * q.wg + cc / 64;
        const int bit = (int)(cc % 64);
        for (int64_t x = 0; x < q.w; ++x) prow[x * q.gw + wi] |= (uint64_t)(p[x] >= t) << bit;
    }
}

#if B2K_X86
// Channels-last input: 16 compares per instruction give 16 bits at once.
B2K_T512 void pack_pixel_nhwc_512(const Geo& q, const float* x, const float* thr, uint64_t* px) {
    for (int64_t g = 0; g < q.g; ++g)
        for (int64_t w = 0; w < q.wg; ++w) {
            int64_t c0 = g * q.cg + 64 * w, real = std::min<int64_t>(64, q.cg - 64 * w);
            uint64_t word = 0;
            for (int j = 0; j < 64 && j < real; j += 16) {
                int64_t left = real - j;
                __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
                __m512 v = _mm512_maskz_loadu_ps(m, x + c0 + j);
                __m512 t = thr ? _mm512_maskz_loadu_ps(m, thr + c0 + j) : _mm512_setzero_ps();
                uint64_t bits = _mm512_mask_cmp_ps_mask(m, v, t, _CMP_GE_OQ);
                word |= bits << j;
            }
            px[g * q.wg + w] = word;
        }
}

// Channels-last input on AVX2: 8 compares per instruction, movemask gives 8 bits;
// a group's last < 8 channels take the scalar compare (same >= predicate).
B2K_T256 void pack_pixel_nhwc_avx2(const Geo& q, const float* x, const float* thr, uint64_t* px) {
    for (int64_t g = 0; g < q.g; ++g)
        for (int64_t w = 0; w < q.wg; ++w) {
            const int64_t c0 = g * q.cg + 64 * w, real = std::min<int64_t>(64, q.cg - 64 * w);
            uint64_t word = 0;
            int64_t j = 0;
            for (; j + 8 <= real; j += 8) {
                const __m256 v = _mm256_loadu_ps(x + c0 + j);
                const __m256 t = thr ? _mm256_loadu_ps(thr + c0 + j) : _mm256_setzero_ps();
                word |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(v, t, _CMP_GE_OQ)) << j;
            }
            for (; j < real; ++j) word |= (uint64_t)(x[c0 + j] >= (thr ? thr[c0 + j] : 0.0f)) << j;
            px[g * q.wg + w] = word;
        }
}

// Channels-last row stored contiguously (pixel after pixel): one compare per
// 16 floats writes 16 bits of a dense row bit string (bit x*cin + c), then
// each pixel's group words are cut out of it with funnel shifts. thr_rep
// holds the thresholds repeated along the row.
B2K_T512 void pack_row_dense_512(const Geo& q, const float* xrow, const float* thr_rep, uint64_t* prow,
                                 uint64_t* dense) {
    const int64_t total = q.w * q.cin, words = (total + 63) / 64;
    dense[words - 1] = 0;
    dense[words] = 0;
    uint16_t* d16 = reinterpret_cast<uint16_t*>(dense);  // x86 is little-endian: bit i of the string
    for (int64_t i = 0; i < total; i += 16) {
        const int64_t left = total - i;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(m, xrow + i);
        const __m512 t = _mm512_maskz_loadu_ps(m, thr_rep + i);
        d16[i / 16] = (uint16_t)_mm512_mask_cmp_ps_mask(m, v, t, _CMP_GE_OQ);
    }
    for (int64_t x = 0; x < q.w; ++x)
        for (int64_t g = 0; g < q.g; ++g)
            for (int64_t w = 0; w < q.wg; ++w) {
                const int64_t bit = x * q.cin + g * q.cg + 64 * w, idx = bit >> 6, sh = bit & 63;
                const int64_t nb = std::min<int64_t>(64, q.cg - 64 * w);
                uint64_t v = dense[idx] >> sh;
                if (sh) v |= dense[idx + 1] << (64 - sh);
                if (nb < 64) v &= (1ull << nb) - 1;
                prow[x * q.gw + g * q.wg + w] = v;
            }
}

// NCHW-like input: compare 8 pixels of one channel at once and OR that
// channel's bit into the 8 pixel words under the compare mask.
B2K_T512 void pack_row_planar_512(const Geo& q, const float* xrow, const float* thr, uint64_t* prow) {
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i stride = _mm512_mullo_epi64(lane, _mm512_set1_epi64(q.gw));
    for (int64_t x0 = 0; x0 < q.w; x0 += 8) {
        const int nx = (int)std::min<int64_t>(8, q.w - x0);
        const __mmask8 lm = (__mmask8)((1u << nx) - 1);
        for (int64_t g = 0; g < q.g; ++g)
            for (int64_t w = 0; w < q.wg; ++w) {
                const int64_t c0 = g * q.cg + 64 * w, real = std::min<int64_t>(64, q.cg - 64 * w);
                __m512i acc = _mm512_setzero_si512();
                for (int64_t j = 0; j < real; ++j) {
                    const float* p = xrow + (c0 + j) * q.is[1] + x0;
                    const __m256 v = _mm256_maskz_loadu_ps(lm, p);
                    const __m256 t = _mm256_set1_ps(thr ? thr[c0 + j] : 0.0f);
                    const __mmask8 m = _mm256_mask_cmp_ps_mask(lm, v, t, _CMP_GE_OQ);
                    acc = _mm512_mask_or_epi64(acc, m, acc, _mm512_set1_epi64((long long)(1ull << j)));
                }
                uint64_t* dst = prow + x0 * q.gw + g * q.wg + w;
                if (q.gw == 1) _mm512_mask_storeu_epi64(dst, lm, acc);
                else _mm512_mask_i64scatter_epi64(dst, lm, stride, acc, 8);
            }
    }
}
#endif

void pack_row(const Geo& q, int isa, const float* x, const float* thr, const float* thr_rep, int64_t n, int64_t y,
              uint64_t* xp, uint64_t* dense) {
    uint64_t* prow = xp + ((n * q.hp + y + q.pad) * q.wp) * q.gw;
    for (int64_t x0 = 0; x0 < q.pad; ++x0) {
        fill_pad_pixel(q, prow + x0 * q.gw);
        fill_pad_pixel(q, prow + (q.wp - 1 - x0) * q.gw);
    }
    const float* xrow = x + n * q.is[0] + y * q.is[2];
    uint64_t* inner = prow + q.pad * q.gw;
    if (q.is[1] != 1 && q.is[3] == 1) {
#if B2K_X86
        if (isa == ISA_AVX512) {
            pack_row_planar_512(q, xrow, thr, inner);
            return;
        }
#endif
        pack_row_planar(q, xrow, thr, inner);
        return;
    }
#if B2K_X86
    if (isa == ISA_AVX512 && thr_rep && q.is[1] == 1 && q.is[3] == q.cin) {
        pack_row_dense_512(q, xrow, thr_rep, inner, dense);
        return;
    }
    if (isa == ISA_AVX512 && q.is[1] == 1) {
        for (int64_t x0 = 0; x0 < q.w; ++x0) pack_pixel_nhwc_512(q, xrow + x0 * q.is[3], thr, inner + x0 * q.gw);
        return;
    }
    if (isa == ISA_AVX2 && q.is[1] == 1) {
        for (int64_t x0 = 0; x0 < q.w; ++x0) pack_pixel_nhwc_avx2(q, xrow + x0 * q.is[3], thr, inner + x0 * q.gw);
        return;
    }
#endif
    (void)isa; (void)thr_rep; (void)dense;
    for (int64_t x0 = 0; x0 < q.w; ++x0) pack_pixel_generic(q, xrow + x0 * q.is[3], thr, inner + x0 * q.gw);
}

void pack_all(const Geo& q, const float* x, const float* thr, uint64_t* xp) {
    const int isa = g_isa;
    // Top and bottom padding rows.
    for (int64_t n = 0; n < q.n; ++n)
        for (int64_t y = 0; y < q.pad; ++y)
            for (int64_t x0 = 0; x0 < q.wp; ++x0) {
                fill_pad_pixel(q, xp + ((n * q.hp + y) * q.wp + x0) * q.gw);
                fill_pad_pixel(q, xp + ((n * q.hp + q.hp - 1 - y) * q.wp + x0) * q.gw);
            }
    const int64_t rows = q.n * q.h;
    const int nt = (int)std::min<int64_t>(g_threads, std::max<int64_t>(1, rows * q.w * q.cin / 16384));
    // Dense-row path (AVX-512, contiguous channels-last rows, channels not a
    // multiple of 16, where per-pixel compares would waste lanes).
    std::vector<float> thr_rep;
    if (isa == ISA_AVX512 && q.is[1] == 1 && q.is[3] == q.cin && q.cin % 16) {
        thr_rep.assign((size_t)(q.w * q.cin), 0.0f);
        if (thr)
            for (int64_t x0 = 0; x0 < q.w; ++x0) std::memcpy(&thr_rep[(size_t)(x0 * q.cin)], thr, sizeof(float) * q.cin);
    }
    const float* tr = thr_rep.empty() ? nullptr : thr_rep.data();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        std::vector<uint64_t> dense(tr ? (size_t)((q.w * q.cin + 63) / 64 + 1) : 0);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) pack_row(q, isa, x, thr, tr, r / q.h, r % q.h, xp, dense.data());
    }
}

// --------------------------------------------------------------- epilogue --

// Where the tile's outputs go; raw (int32 D) replaces the float epilogue when set.
// The float epilogue is v = D*scale + bias, then optionally v = v > 0 ? v : slope*v
// (PReLU) and v = v + res (a residual of the output's shape, read at its own
// strides): each a separately rounded op, in torch's order, so a fused unit
// gives the same floats as the unfused conv, PReLU and add.
struct Out {
    float* out;
    int32_t* raw;
    const float* scale;
    const float* bias;
    const float* slope = nullptr;
    const float* res = nullptr;
    const int64_t* rs = nullptr;  // residual element strides (n, c, h, w)
};

// The fast (vector) epilogues need the residual channel-contiguous like the output.
inline bool res_contiguous(const Out& o) { return !o.res || o.rs[1] == 1; }

// Writes up to 8 channels of one output pixel from their XOR popcounts:
// D = K - 2 * popcount is the +-1 dot product.
inline void store_counts(const Geo& q, const Out& o, const uint64_t* cnt, int64_t c_abs, int valid, int64_t n,
                         int64_t oh, int64_t ow) {
    const int64_t base = n * q.os[0] + oh * q.os[2] + ow * q.os[3];
    for (int l = 0; l < valid; ++l) {
        const int64_t c = c_abs + l, at = base + c * q.os[1];
        const int32_t d = (int32_t)(q.kreal - 2 * (int64_t)cnt[l]);
        if (o.raw) {
            o.raw[at] = d;
        } else {
            const float t = (float)d * o.scale[c];
            float v = t + o.bias[c];
            if (o.slope) v = v > 0.0f ? v : o.slope[c] * v;
            if (o.res) v = v + o.res[n * o.rs[0] + c * o.rs[1] + oh * o.rs[2] + ow * o.rs[3]];
            o.out[at] = v;
        }
    }
}

// General epilogue: raw output, partial blocks or strided channels. Takes the
// counts through memory so the fast path's accumulators never leave registers.
__attribute__((noinline)) void store_general(const Geo& q, const Out& o, const uint64_t* cnt, int np, int nv,
                                             int64_t b, int64_t g, int64_t n, int64_t oh, int64_t ow) {
    for (int v = 0; v < nv; ++v) {
        const int64_t blk = b + v;
        const int valid = (int)std::min<int64_t>(LANES, q.cog - blk * LANES);
        for (int p = 0; p < np; ++p)
            store_counts(q, o, cnt + (p * nv + v) * LANES, g * q.cog + blk * LANES, valid, n, oh, ow + p);
    }
}

// ------------------------------------------------------------ scalar path --

// Counts for P pixels x one 8-channel block; `wb` is the block's [K][8] words.
template <int P>
__attribute__((always_inline)) inline void tile_scalar_body(const Geo& q, const uint64_t* px, int64_t pstep, const int64_t* off,
                             const uint64_t* wb, uint64_t cnt[P][LANES]) {
    for (int p = 0; p < P; ++p)
        for (int l = 0; l < LANES; ++l) cnt[p][l] = 0;
    for (int64_t k = 0; k < q.K; ++k) {
        const uint64_t* w = wb + k * LANES;
        for (int p = 0; p < P; ++p) {
            const uint64_t a = px[p * pstep + off[k]];
            for (int l = 0; l < LANES; ++l) cnt[p][l] += (uint64_t)__builtin_popcountll(a ^ w[l]);
        }
    }
}

// Same body compiled twice: with the popcnt instruction and without (portable).
template <int P>
B2K_TPOP void tile_scalar_popcnt(const Geo& q, const uint64_t* px, int64_t pstep, const int64_t* off,
                                 const uint64_t* wb, uint64_t cnt[P][LANES]) {
    tile_scalar_body<P>(q, px, pstep, off, wb, cnt);
}

template <int P>
void tile_scalar_plain(const Geo& q, const uint64_t* px, int64_t pstep, const int64_t* off, const uint64_t* wb,
                       uint64_t cnt[P][LANES]) {
    tile_scalar_body<P>(q, px, pstep, off, wb, cnt);
}

bool g_popcnt = cpu_has_popcnt();

void row_scalar(const Geo& q, const uint64_t* xp, const uint64_t* wblk, const Out& o, const int64_t* off, int64_t n,
                int64_t oh, int64_t g, int64_t b0, int64_t b1) {
    constexpr int P = 2;
    const int64_t pstep = q.xstep * q.bgw;
    for (int64_t b = b0; b < b1; ++b) {
        const uint64_t* wb = wblk + (g * q.cb + b) * q.K * LANES;
        const int valid = (int)std::min<int64_t>(LANES, q.cog - b * LANES);
        const int64_t c_abs = g * q.cog + b * LANES;
        for (int64_t ow = 0; ow < q.wo; ow += P) {
            const uint64_t* px = xp + ((n * q.hp + oh * q.s) * q.bw + ow * q.xstep) * q.bgw + g * q.bwg;
            uint64_t cnt[P][LANES];
            const int np = (int)std::min<int64_t>(P, q.wo - ow);
            if (np == P) {
                if (g_popcnt) tile_scalar_popcnt<P>(q, px, pstep, off, wb, cnt);
                else tile_scalar_plain<P>(q, px, pstep, off, wb, cnt);
            } else {
                if (g_popcnt) tile_scalar_popcnt<1>(q, px, pstep, off, wb, reinterpret_cast<uint64_t(*)[LANES]>(cnt));
                else tile_scalar_plain<1>(q, px, pstep, off, wb, reinterpret_cast<uint64_t(*)[LANES]>(cnt));
            }
            for (int p = 0; p < np; ++p) store_counts(q, o, cnt[p], c_abs, valid, n, oh, ow + p);
        }
    }
}

#if B2K_X86
// -------------------------------------------------------------- AVX2 path --
// No vector popcount: nibble lookup with pshufb, and psadbw sums each 64-bit
// lane's byte counts at once (it runs on other ports than pshufb, so it costs
// almost nothing and leaves no byte accumulators to keep). A tile is P pixels
// x one 8-channel block (two ymm of u64): accumulators, weights and the
// lookup table fit the 16 ymm registers, so the inner loop never spills.

template <int P>
B2K_T256 __attribute__((always_inline)) inline void tile_avx2_counts(const uint64_t* px, int64_t pstep,
                                                                     const int64_t* off, int64_t K,
                                                                     const uint64_t* wb, __m256i (&acc)[P][2]) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) acc[p][0] = acc[p][1] = zero;
    for (int64_t k = 0; k < K; ++k) {
        const __m256i w[2] = {_mm256_loadu_si256((const __m256i*)(wb + k * LANES)),
                              _mm256_loadu_si256((const __m256i*)(wb + k * LANES + 4))};
        const uint64_t* a0 = px + off[k];
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) {
            const __m256i a = _mm256_set1_epi64x((long long)a0[p * pstep]);
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                const __m256i x = _mm256_xor_si256(a, w[h]);
                const __m256i c = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                                                  _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
                acc[p][h] = _mm256_add_epi64(acc[p][h], _mm256_sad_epu8(c, zero));
            }
        }
    }
}

// Fast epilogue (channel-contiguous float output, a full block): the block's
// 8 counts as int32, D = K - 2*count, D*scale + bias in two roundings (no FMA),
// then the optional PReLU and residual add of Out (each rounded on its own).
struct Epi256 {
    __m256 sc, bi, sl;
    bool prelu;
    const float* res;  // this tile's first residual pixel, or null
    int64_t rstep;     // residual floats per output column
};

template <int P>
B2K_T256 __attribute__((always_inline)) inline void store_avx2_fast(const __m256i (&acc)[P][2], __m256i kreal,
                                                                    const Epi256& e, float* o, int64_t ostep) {
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);  // low dwords of the u64 lanes first
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
        const __m256i lo = _mm256_permutevar8x32_epi32(acc[p][0], even);
        const __m256i hi = _mm256_permutevar8x32_epi32(acc[p][1], even);
        const __m256i c = _mm256_permute2x128_si256(lo, hi, 0x20);
        const __m256i d = _mm256_sub_epi32(kreal, _mm256_add_epi32(c, c));
        const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(d), e.sc);
        __m256 v = _mm256_add_ps(t, e.bi);
        if (e.prelu) {
            const __m256 pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
            v = _mm256_blendv_ps(_mm256_mul_ps(e.sl, v), v, pos);
        }
        if (e.res) v = _mm256_add_ps(v, _mm256_loadu_ps(e.res + p * e.rstep));
        _mm256_storeu_ps(o + p * ostep, v);
    }
}

template <int P>
B2K_T256 __attribute__((always_inline)) inline void spill_avx2(const Geo& q, const Out& o, const __m256i (&acc)[P][2],
                                                               int np, int64_t b, int64_t g, int64_t n, int64_t oh,
                                                               int64_t ow) {
    alignas(32) uint64_t cnt[P * LANES];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
        _mm256_store_si256((__m256i*)(cnt + p * LANES), acc[p][0]);
        _mm256_store_si256((__m256i*)(cnt + p * LANES + 4), acc[p][1]);
    }
    store_general(q, o, cnt, np, 1, b, g, n, oh, ow);
}

B2K_T256 void row_avx2(const Geo& q, const uint64_t* xp, const uint64_t* wblk, const Out& o, const int64_t* off,
                       int64_t n, int64_t oh, int64_t g, int64_t b0, int64_t b1) {
    constexpr int P = 4;
    const int64_t pstep = q.xstep * q.bgw;
    const uint64_t* xrow = xp + (n * q.hp + oh * q.s) * q.bw * q.bgw + g * q.bwg;
    const __m256i kreal = _mm256_set1_epi32((int)q.kreal);
    for (int64_t b = b0; b < b1; ++b) {
        const uint64_t* wb = wblk + (g * q.cb + b) * q.K * LANES;
        const int64_t c_abs = g * q.cog + b * LANES;
        const bool fast = !o.raw && q.os[1] == 1 && res_contiguous(o) && q.cog - b * LANES >= LANES;
        Epi256 e{_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), o.slope != nullptr, nullptr,
                 o.res ? o.rs[3] : 0};
        if (fast) {
            e.sc = _mm256_loadu_ps(o.scale + c_abs);
            e.bi = _mm256_loadu_ps(o.bias + c_abs);
            if (o.slope) e.sl = _mm256_loadu_ps(o.slope + c_abs);
        }
        float* orow = fast ? o.out + n * q.os[0] + c_abs + oh * q.os[2] : nullptr;
        const float* rrow = o.res ? o.res + n * o.rs[0] + c_abs + oh * o.rs[2] : nullptr;
        int64_t ow = 0;
        for (; ow + P <= q.wo; ow += P) {
            __m256i acc[P][2];
            tile_avx2_counts<P>(xrow + ow * pstep, pstep, off, q.K, wb, acc);
            e.res = rrow ? rrow + ow * e.rstep : nullptr;
            if (fast) store_avx2_fast<P>(acc, kreal, e, orow + ow * q.os[3], q.os[3]);
            else spill_avx2<P>(q, o, acc, P, b, g, n, oh, ow);
        }
        for (; ow < q.wo; ++ow) {  // leftover columns one at a time
            __m256i acc[1][2];
            tile_avx2_counts<1>(xrow + ow * pstep, pstep, off, q.K, wb, acc);
            e.res = rrow ? rrow + ow * e.rstep : nullptr;
            if (fast) store_avx2_fast<1>(acc, kreal, e, orow + ow * q.os[3], q.os[3]);
            else spill_avx2<1>(q, o, acc, 1, b, g, n, oh, ow);
        }
    }
}

// ----------------------------------------------------------- AVX-512 path --
// One zmm = one 8-output-channel block; the input word is broadcast, so the
// accumulators never need a horizontal sum. A tile is P pixels x V blocks.

// Counts of P pixels x V blocks (left in acc).
template <int P, int V>
B2K_T512 __attribute__((always_inline)) inline void tile_512_counts(const uint64_t* px, int64_t pstep,
                                                                    const int64_t* off, int64_t K,
                                                                    const uint64_t* wb, __m512i (&acc)[P][V]) {
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) acc[p][v] = _mm512_setzero_si512();
    const int64_t wstep = K * LANES;
    for (int64_t k = 0; k < K; ++k) {
        __m512i w[V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) w[v] = _mm512_loadu_si512((const void*)(wb + v * wstep + k * LANES));
        const uint64_t* a0 = px + off[k];
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) {
            const __m512i a = _mm512_set1_epi64((long long)a0[p * pstep]);
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v)
                acc[p][v] = _mm512_add_epi64(acc[p][v], _mm512_popcnt_epi64(_mm512_xor_si512(a, w[v])));
        }
    }
}

// D = K - 2*count as 8 int32 (exact).
B2K_T512 __attribute__((always_inline)) inline __m256i d_of(__m512i cnt, __m256i kreal) {
    const __m256i c32 = _mm512_maskz_cvtepi64_epi32((__mmask8)0xFF, cnt);
    return _mm256_sub_epi32(kreal, _mm256_add_epi32(c32, c32));
}

// Fast epilogue: channel-contiguous output, all V blocks full. Two blocks
// share one zmm of 16 floats; D*scale + bias is two roundings (no FMA), then
// the optional PReLU and residual add of Out, each rounded on its own.
template <int V>
struct Epi512 {
    __m512 sc[(V + 1) / 2], bi[(V + 1) / 2], sl[(V + 1) / 2];
    bool prelu;
    const float* res;  // this tile's first residual pixel, or null
    int64_t rstep;     // residual floats per output column
};

template <int V>
B2K_T512 __attribute__((always_inline)) inline __m512 epilogue_512(__m512i d, const Epi512<V>& e, int h, __mmask16 m,
                                                                   const float* res) {
    __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(d), e.sc[h]), e.bi[h]);
    if (e.prelu) {
        const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
        v = _mm512_mask_blend_ps(pos, _mm512_mul_ps(e.sl[h], v), v);
    }
    if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res));
    return v;
}

template <int P, int V>
B2K_T512 __attribute__((always_inline)) inline void store_fast(const __m512i (&acc)[P][V], __m256i kreal,
                                                               const Epi512<V>& e, float* o, int64_t ostep) {
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) {
        const float* r = e.res ? e.res + p * e.rstep : nullptr;
#pragma GCC unroll 8
        for (int v = 0; v + 1 < V; v += 2) {
            const __m512i d = _mm512_inserti64x4(_mm512_castsi256_si512(d_of(acc[p][v], kreal)),
                                                 d_of(acc[p][v + 1], kreal), 1);
            _mm512_storeu_ps(o + p * ostep + v * LANES,
                             epilogue_512<V>(d, e, v / 2, (__mmask16)0xFFFF, r ? r + v * LANES : nullptr));
        }
        if (V % 2) {
            const __m512i d = _mm512_castsi256_si512(d_of(acc[p][V - 1], kreal));
            const __m512 y = epilogue_512<V>(d, e, V / 2, (__mmask16)0xFF, r ? r + (V - 1) * LANES : nullptr);
            _mm256_storeu_ps(o + p * ostep + (V - 1) * LANES, _mm512_castps512_ps256(y));
        }
    }
}

template <int P, int V>
B2K_T512 __attribute__((always_inline)) inline void spill_general(const Geo& q, const Out& o,
                                                                  const __m512i (&acc)[P][V], int64_t b, int64_t g,
                                                                  int64_t n, int64_t oh, int64_t ow) {
    alignas(64) uint64_t cnt[P * V * LANES];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) _mm512_store_si512((void*)(cnt + (p * V + v) * LANES), acc[p][v]);
    store_general(q, o, cnt, P, V, b, g, n, oh, ow);
}

template <int V>
B2K_T512 void row_512_v(const Geo& q, const Out& o, const uint64_t* xrow, int64_t pstep, const int64_t* off,
                        const uint64_t* wb, int64_t b, int64_t g, int64_t n, int64_t oh) {
    constexpr int P = V <= 2 ? 8 : 6;  // accumulators + weights stay within 32 zmm
    const int64_t c_abs = g * q.cog + b * LANES;
    const bool fast = !o.raw && q.os[1] == 1 && res_contiguous(o) && q.cog - b * LANES >= V * LANES;
    Epi512<V> e;
    e.prelu = o.slope != nullptr;
    e.rstep = o.res ? o.rs[3] : 0;
    e.res = nullptr;
    if (fast)
        for (int v = 0; v < (V + 1) / 2; ++v) {
            const int n_ch = std::min(16, (V - 2 * v) * LANES);
            const __mmask16 m = n_ch == 16 ? (__mmask16)0xFFFF : (__mmask16)0xFF;
            e.sc[v] = _mm512_maskz_loadu_ps(m, o.scale + c_abs + 16 * v);
            e.bi[v] = _mm512_maskz_loadu_ps(m, o.bias + c_abs + 16 * v);
            e.sl[v] = o.slope ? _mm512_maskz_loadu_ps(m, o.slope + c_abs + 16 * v) : _mm512_setzero_ps();
        }
    const __m256i kreal = _mm256_set1_epi32((int)q.kreal);
    float* orow = o.out + n * q.os[0] + c_abs + oh * q.os[2];
    const float* rrow = o.res ? o.res + n * o.rs[0] + c_abs + oh * o.rs[2] : nullptr;
    int64_t ow = 0;
    for (; ow + P <= q.wo; ow += P) {
        __m512i acc[P][V];
        tile_512_counts<P, V>(xrow + ow * pstep, pstep, off, q.K, wb, acc);
        e.res = rrow ? rrow + ow * e.rstep : nullptr;
        if (fast) store_fast<P, V>(acc, kreal, e, orow + ow * q.os[3], q.os[3]);
        else spill_general<P, V>(q, o, acc, b, g, n, oh, ow);
    }
    for (; ow < q.wo; ++ow) {  // leftover columns one at a time
        __m512i acc[1][V];
        tile_512_counts<1, V>(xrow + ow * pstep, pstep, off, q.K, wb, acc);
        e.res = rrow ? rrow + ow * e.rstep : nullptr;
        if (fast) store_fast<1, V>(acc, kreal, e, orow + ow * q.os[3], q.os[3]);
        else spill_general<1, V>(q, o, acc, b, g, n, oh, ow);
    }
}

constexpr int V512 = 4;  // 8-channel blocks per task

B2K_T512 void row_512(const Geo& q, const uint64_t* xp, const uint64_t* wblk, const Out& o, const int64_t* off,
                      int64_t n, int64_t oh, int64_t g, int64_t b0, int64_t b1) {
    const int64_t pstep = q.xstep * q.bgw;
    const uint64_t* xrow = xp + (n * q.hp + oh * q.s) * q.bw * q.bgw + g * q.bwg;
    for (int64_t b = b0; b < b1; b += V512) {
        const int v = (int)std::min<int64_t>(V512, b1 - b);
        const uint64_t* wb = wblk + (g * q.cb + b) * q.K * LANES;
        switch (v) {
            case 4: row_512_v<4>(q, o, xrow, pstep, off, wb, b, g, n, oh); break;
            case 3: row_512_v<3>(q, o, xrow, pstep, off, wb, b, g, n, oh); break;
            case 2: row_512_v<2>(q, o, xrow, pstep, off, wb, b, g, n, oh); break;
            default: row_512_v<1>(q, o, xrow, pstep, off, wb, b, g, n, oh); break;
        }
    }
}
#endif  // B2K_X86

// ------------------------------------------------------------ row merging --
// With few channels per group most of each word is empty (3 of 64 bits for an
// RGB conv1, 32 of 64 for a 32-channel layer). Concatenating the kw taps of a
// kernel row into one bit string (bit kx*cg + c) packs them densely: a 7x7
// conv over 3 channels reads 7 words per output instead of 49. The weights are
// laid out the same way (Python decides when this saves words).

inline void append_bits(uint64_t* out, int64_t pos, uint64_t word, int64_t nb) {
    const int64_t idx = pos >> 6, sh = pos & 63;
    out[idx] |= word << sh;
    if (sh && sh + nb > 64) out[idx + 1] |= word >> (64 - sh);
}

// Per row and group: first concatenate every padded pixel's cg bits into one
// dense bit string (one append per input pixel), then cut each output
// column's kw*cg bits out of it with funnel shifts.
void expand_rows(const Geo& q, const uint64_t* xp, uint64_t* xe) {
    const int64_t rows = q.n * q.hp;
    const int64_t dense_words = (q.wp * q.cg + 63) / 64 + 1;  // +1: extraction reads one word ahead
    const int64_t total = q.kw * q.cg;
    const int nt = (int)std::min<int64_t>(g_threads, std::max<int64_t>(1, rows * q.wp * q.gw / 4096));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        std::vector<uint64_t> dense((size_t)dense_words);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t g = 0; g < q.g; ++g) {
                std::fill(dense.begin(), dense.end(), 0ull);
                const uint64_t* src = xp + r * q.wp * q.gw + g * q.wg;
                int64_t pos = 0;
                for (int64_t x = 0; x < q.wp; ++x, src += q.gw)
                    for (int64_t j = 0; j < q.wg; ++j) {
                        const int64_t nb = std::min<int64_t>(64, q.cg - 64 * j);
                        append_bits(dense.data(), pos, src[j], nb);
                        pos += nb;
                    }
                uint64_t* out = xe + r * q.wo * q.bgw + g * q.ewg;
                for (int64_t ow = 0; ow < q.wo; ++ow, out += q.bgw) {
                    const int64_t start = ow * q.s * q.cg;
                    for (int64_t e = 0; e < q.ewg; ++e) {
                        const int64_t bit = start + 64 * e, idx = bit >> 6, sh = bit & 63;
                        uint64_t v = dense[(size_t)idx] >> sh;
                        if (sh) v |= dense[(size_t)idx + 1] << (64 - sh);
                        const int64_t left = total - 64 * e;
                        if (left < 64) v &= (1ull << left) - 1;
                        out[e] = v;
                    }
                }
            }
    }
}

// ----------------------------------------------------------------- driver --

typedef void (*row_fn)(const Geo&, const uint64_t*, const uint64_t*, const Out&, const int64_t*, int64_t, int64_t,
                       int64_t, int64_t, int64_t);

void conv_packed(const Geo& q, const uint64_t* xp, const uint64_t* wblk, const Out& o) {
    row_fn fn = row_scalar;
    int64_t chunk = 1;  // 8-channel blocks per task
#if B2K_X86
    if (g_isa == ISA_AVX512) { fn = row_512; chunk = V512; }
    if (g_isa == ISA_AVX2) fn = row_avx2;
#endif
    // Word offsets of the K taps relative to a pixel's group base: (ky, kx, w).
    std::vector<int64_t> off((size_t)q.K);
    for (int64_t ky = 0, k = 0; ky < q.kh; ++ky)
        for (int64_t kx = 0; kx < q.ktx; ++kx)
            for (int64_t w = 0; w < q.bwg; ++w) off[(size_t)k++] = (ky * q.bw + kx) * q.bgw + w;
    // Tasks: (n, output row, group, channel chunk); rows first so threads split space.
    const int64_t chunks = (q.cb + chunk - 1) / chunk;
    const int64_t tasks = q.n * q.ho * q.g * chunks;
    const int64_t work = tasks * q.wo * chunk * q.K;  // ~word-pairs / 8
    const int nt = (int)std::min<int64_t>(g_threads, std::max<int64_t>(1, std::min(tasks, work / 4096)));
    const int64_t* offp = off.data();
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t t = 0; t < tasks; ++t) {
        int64_t r = t;
        const int64_t c = r % chunks; r /= chunks;
        const int64_t g = r % q.g; r /= q.g;
        const int64_t oh = r % q.ho; const int64_t n = r / q.ho;
        const int64_t b0 = c * chunk, b1 = std::min(q.cb, b0 + chunk);
        fn(q, xp, wblk, o, offp, n, oh, g, b0, b1);
    }
}

bool valid_shape(const b2k_shape* sh) {
    return sh && sh->n > 0 && sh->cin > 0 && sh->h > 0 && sh->w > 0 && sh->cout > 0 && sh->kh > 0 && sh->kw > 0 &&
           sh->stride > 0 && sh->pad >= 0 && sh->groups > 0 && sh->cin % sh->groups == 0 &&
           sh->cout % sh->groups == 0 && sh->h + 2 * sh->pad >= sh->kh && sh->w + 2 * sh->pad >= sh->kw;
}

}  // namespace

namespace {

// With row-merged weights the packed input is first expanded to the rows they read (a per-thread
// buffer); otherwise it is used as it is.
const uint64_t* merged_rows(const Geo& q, const uint64_t* xp) {
    if (!q.merge) return xp;
    thread_local std::vector<uint64_t> ebuf;
    const size_t eneed = (size_t)(q.n * q.hp * q.wo * q.bgw);
    if (ebuf.size() < eneed) ebuf.resize(eneed);
    expand_rows(q, xp, ebuf.data());
    return ebuf.data();
}

}  // namespace

extern "C" {

B2K_API int b2k_version(void) { return 4; }

B2K_API const char* b2k_isa(void) { return ISA_NAMES[g_isa]; }

// 1 if this CPU can run the named path.
B2K_API int b2k_isa_supported(const char* name) {
    for (int i = 0; i < 3; ++i)
        if (!std::strcmp(name, ISA_NAMES[i])) return cpu_has(i) ? 1 : 0;
    return 0;
}

// "auto" picks the best path; returns 0, or -1 if the path is unknown or unsupported.
B2K_API int b2k_set_isa(const char* name) {
    if (!std::strcmp(name, "auto")) { g_isa = best_isa(); return 0; }
    for (int i = 0; i < 3; ++i)
        if (!std::strcmp(name, ISA_NAMES[i])) {
            if (!cpu_has(i)) return -1;
            g_isa = i;
            return 0;
        }
    return -1;
}

B2K_API void b2k_set_num_threads(int n) { g_threads = n < 1 ? 1 : n; }

B2K_API int b2k_get_num_threads(void) { return g_threads; }

B2K_API int b2k_has_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

// Packed words of the padded input: n * (h+2p) * (w+2p) * groups * ceil(cin/groups/64); 0 if invalid.
B2K_API int64_t b2k_packed_words(const b2k_shape* sh) {
    if (!valid_shape(sh)) return 0;
    Geo q = make_geo(sh);
    return q.n * q.hp * q.wp * q.gw;
}

// Threshold + pack (+1 padding included). thr may be NULL (threshold 0 = sign).
B2K_API int b2k_pack(const b2k_shape* sh, const float* x, const float* thr, uint64_t* xp) {
    if (!valid_shape(sh)) return -1;
    pack_all(make_geo(sh), x, thr, xp);
    return 0;
}

// Binary conv of a packed input. wblk: [groups][cb][K][8] words (zero rows for
// missing channels), K = kh*kw*wg, or kh*ceil(kw*cg/64) when merge_rows. Writes float out, or int32 D to raw if raw != NULL.
B2K_API int b2k_conv_packed(const b2k_shape* sh, const uint64_t* xp, const uint64_t* wblk, const float* scale,
                    const float* bias, float* out, int32_t* raw) {
    if (!valid_shape(sh)) return -1;
    Geo q = make_geo(sh);
    Out o{out, raw, scale, bias};
    xp = merged_rows(q, xp);
    conv_packed(q, xp, wblk, o);
    return 0;
}

// Threshold + pack + conv in one call; the packed buffer is reused per thread.
// slope (PReLU, per output channel) and res (a float tensor of the output's
// logical shape at element strides rs) may be NULL; both are ignored for raw.
B2K_API int b2k_conv_ex(const b2k_shape* sh, const float* x, const float* thr, const uint64_t* wblk,
                        const float* scale, const float* bias, const float* slope, const float* res,
                        const int64_t* rs, float* out, int32_t* raw) {
    if (!valid_shape(sh) || (res && !rs)) return -1;
    Geo q = make_geo(sh);
    thread_local std::vector<uint64_t> buf;
    const size_t need = (size_t)(q.n * q.hp * q.wp * q.gw);
    if (buf.size() < need) buf.resize(need);
    pack_all(q, x, thr, buf.data());
    const uint64_t* xp = buf.data();
    xp = merged_rows(q, xp);
    Out o{out, raw, scale, bias};
    if (!raw) {
        o.slope = slope;
        o.res = res;
        o.rs = rs;
    }
    conv_packed(q, xp, wblk, o);
    return 0;
}

B2K_API int b2k_conv(const b2k_shape* sh, const float* x, const float* thr, const uint64_t* wblk, const float* scale,
             const float* bias, float* out, int32_t* raw) {
    return b2k_conv_ex(sh, x, thr, wblk, scale, bias, nullptr, nullptr, nullptr, out, raw);
}

}  // extern "C"
