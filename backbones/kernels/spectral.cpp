// Complex multiply-and-sum over one axis of a stack of 2-D spectra, in one pass.
//
// The online correlation filter's conjugate gradient spends its time in two
// contractions over its stored sample spectra x (N samples x C channels x F
// frequencies, complex64 interleaved):
//   channels: out[n,f] = sum_c x[n,c,f] * v[c,f]        (filter -> responses)
//   samples:  out[c,f] = sum_n x[n,c,f] * conj(r[n,f])  (responses -> filter)
// torch computes each as a broadcast product (a temporary as large as x) and
// then a sum: three passes over ~13 MB per call. Here x is read once and the
// sum is kept in an F-long accumulator that stays in L1, which is what a
// memory-bound loop can gain (about 3x on a Zen 4 core).
//
// Plain loops the compiler vectorises: an AVX2 copy from a target attribute
// (the AVX-512 path runs it too: for an AVX-512 target GCC turns the complex
// product into fused multiply-adds whatever -ffp-contract says, which rounds
// differently, and a memory-bound loop gains nothing from wider vectors).
//
// The sums take torch's order (cascade_sum, ilp4_sum), so that the results
// are torch's to the bit and the tracker's boxes do not move: the filter is
// optimised from a few CG steps, and a rounding difference at the 7th digit
// grows, on some sequences, into another trajectory.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#define B2K_API __attribute__((visibility("default")))

#if (defined(__x86_64__) || defined(__i386__)) && !defined(B2K_PORTABLE)
#define SPEC_X86 1
#define SPEC_T256 __attribute__((target("avx2")))
#else
#define SPEC_X86 0
#endif

namespace {

// acc[f] += a[f] * b[f] (ConjB: * conj(b[f])) for F complex values, interleaved; each product
// rounded as torch rounds it ((ar*br - ai*bi), (ar*bi + ai*br)) before the add.
template <bool ConjB>
inline __attribute__((always_inline)) void mac(float* __restrict acc, const float* __restrict a,
                                               const float* __restrict b, int64_t F) {
    for (int64_t f = 0; f < F; ++f) {
        const float ar = a[2 * f], ai = a[2 * f + 1], br = b[2 * f], bi = ConjB ? -b[2 * f + 1] : b[2 * f + 1];
        acc[2 * f] += ar * br - ai * bi;
        acc[2 * f + 1] += ar * bi + ai * br;
    }
}

inline void add_into(float* acc, const float* x, int64_t F) {
    for (int64_t f = 0; f < 2 * F; ++f) acc[f] += x[f];
}

// o = sum over i < count of a_i * b_i (a_i = a + i*astep, b_i = b + i*bstep), in ATen's cascade
// order: terms added in blocks of 2^p (p = max(4, ceil(log2 count) / 4)), each block's sum
// carried up through four levels of partial sums, the levels added at the end.
template <bool ConjB>
inline __attribute__((always_inline)) void cascade_sum(float* o, const float* a, int64_t astep, const float* b,
                                                       int64_t bstep, int64_t count, int64_t F) {
    constexpr int LEVELS = 4;
    int log2 = 0;
    while ((int64_t(1) << log2) < count) ++log2;
    const int power = log2 / LEVELS > 4 ? log2 / LEVELS : 4;
    const int64_t step = int64_t(1) << power, mask = step - 1;
    // the upper levels: per thread, reused across rows and calls (no allocation per row)
    thread_local std::vector<float> buf;
    if (buf.size() < std::size_t(2 * F) * (LEVELS - 1)) buf.resize(std::size_t(2 * F) * (LEVELS - 1));
    std::fill(buf.begin(), buf.begin() + 2 * F * (LEVELS - 1), 0.f);
    float* acc[LEVELS] = {o, buf.data(), buf.data() + 2 * F, buf.data() + 4 * F};
    for (int64_t f = 0; f < 2 * F; ++f) o[f] = 0.f;
    int64_t i = 0;
    while (i + step <= count) {
        for (int64_t j = 0; j < step; ++j, ++i) mac<ConjB>(acc[0], a + i * astep, b + i * bstep, F);
        for (int j = 1; j < LEVELS; ++j) {
            add_into(acc[j], acc[j - 1], F);
            for (int64_t f = 0; f < 2 * F; ++f) acc[j - 1][f] = 0.f;
            if (i & (mask << (j * power))) break;
        }
    }
    for (; i < count; ++i) mac<ConjB>(acc[0], a + i * astep, b + i * bstep, F);
    for (int j = 1; j < LEVELS; ++j) add_into(acc[0], acc[j], F);
}

// The order torch takes for output columns past its last whole vector block: four interleaved
// cascades (terms k, k+4, k+8, ...), the leftover terms added to the first, then the four added.
template <bool ConjB>
inline __attribute__((always_inline)) void ilp4_sum(float* o, const float* a, int64_t astep, const float* b,
                                                    int64_t bstep, int64_t count, int64_t F) {
    if (F <= 0) return;
    const int64_t q = count / 4;
    std::vector<float> part(std::size_t(2 * F) * 3);
    cascade_sum<ConjB>(o, a, 4 * astep, b, 4 * bstep, q, F);
    for (int k = 1; k < 4; ++k)
        cascade_sum<ConjB>(part.data() + (k - 1) * 2 * F, a + k * astep, 4 * astep, b + k * bstep, 4 * bstep, q, F);
    for (int64_t i = 4 * q; i < count; ++i) mac<ConjB>(o, a + i * astep, b + i * bstep, F);
    for (int k = 0; k < 3; ++k) add_into(o, part.data() + k * 2 * F, F);
}

// One output row of F columns, the first `split` of them in cascade order and the rest in ilp4 order.
template <bool ConjB>
inline __attribute__((always_inline)) void row_sum(float* o, const float* a, int64_t astep, const float* b,
                                                   int64_t bstep, int64_t count, int64_t F, int64_t split) {
    cascade_sum<ConjB>(o, a, astep, b, bstep, count, split);
    ilp4_sum<ConjB>(o + 2 * split, a + 2 * split, astep, b + 2 * split, bstep, count, F - split);
}

struct Job {
    const float* x;
    const float* b;
    float* out;
    int64_t N, C, F;
    int64_t cascade_cols;  // leading columns of the flattened output summed in cascade order
};

// Row i of the channel sum (sample i) or of the sample sum (channel i).
inline __attribute__((always_inline)) void channels_row_body(const Job& j, int64_t i) {
    const int64_t split = j.cascade_cols < j.F ? j.cascade_cols : j.F;
    row_sum<false>(j.out + i * j.F * 2, j.x + i * j.C * j.F * 2, j.F * 2, j.b, j.F * 2, j.C, j.F, split);
}

inline __attribute__((always_inline)) void samples_row_body(const Job& j, int64_t i) {
    int64_t split = j.cascade_cols - i * j.F;
    split = split < 0 ? 0 : (split > j.F ? j.F : split);
    row_sum<true>(j.out + i * j.F * 2, j.x + i * j.F * 2, j.C * j.F * 2, j.b, j.F * 2, j.N, j.F, split);
}

using RowFn = void (*)(const Job&, int64_t);

void channels_row_scalar(const Job& j, int64_t i) { channels_row_body(j, i); }
void samples_row_scalar(const Job& j, int64_t i) { samples_row_body(j, i); }
#if SPEC_X86
SPEC_T256 void channels_row_avx2(const Job& j, int64_t i) { channels_row_body(j, i); }
SPEC_T256 void samples_row_avx2(const Job& j, int64_t i) { samples_row_body(j, i); }
#endif

RowFn pick(int isa, bool channels) {
    switch (isa) {
        case 0: return channels ? channels_row_scalar : samples_row_scalar;
#if SPEC_X86
        case 1:
        case 2: return channels ? channels_row_avx2 : samples_row_avx2;
#endif
        default: return nullptr;
    }
}

// The OpenMP loop lives here, outside the ISA copies: GCC outlines a parallel
// region before inlining, so a region inside them would lose their target.
int run(RowFn fn, const Job& job, int64_t rows, int threads) {
    if (!fn) return -1;
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
    for (int64_t i = 0; i < rows; ++i) fn(job, i);
    return 0;
}

}  // namespace

extern "C" {

// x: (n, c, f) complex64; isa: 0 scalar, 1 avx2, 2 avx512 (the binary kernels' numbering, a
// path this CPU supports); block: torch's column block for its vectorised sum (output columns
// past the last whole block take its ILP-4 order; 0: none do). Returns 0, or -1 for an unknown isa.
B2K_API int b2k_spectral_sum_channels(const float* x, const float* v, float* out, int64_t n, int64_t c, int64_t f,
                                      int64_t block, int isa, int threads) {
    const Job job{x, v, out, n, c, f, block > 0 ? f / block * block : f};
    return run(pick(isa, true), job, n, threads);
}

B2K_API int b2k_spectral_sum_samples(const float* x, const float* r, float* out, int64_t n, int64_t c, int64_t f,
                                     int64_t block, int isa, int threads) {
    const Job job{x, r, out, n, c, f, block > 0 ? c * f / block * block : c * f};
    return run(pick(isa, false), job, c, threads);
}

}  // extern "C"
