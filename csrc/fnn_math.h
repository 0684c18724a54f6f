/* Small vectorisable math for fastnn's kernels.
 *
 * Why C and not Cython: the hot loops (exp over a vocabulary row, tanh over a hidden layer) only run at memory speed
 * when the compiler vectorises them, which needs an inlinable exp and `omp simd` reductions.  These helpers take raw
 * pointers and are called from the Cython kernels, which own all threading and validation.
 *
 * float32 uses a Cephes-style polynomial exp (max relative error ~2e-7 on [-87, 88]); float64 uses libm, because
 * float64 is the gradient-check path where accuracy matters more than speed.
 * NaN propagates through every function (comparisons are written so that NaN is never replaced).
 */
#ifndef FNN_MATH_H
#define FNN_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <immintrin.h>
#endif

#if defined(_OPENMP) || defined(__clang__) || defined(__GNUC__)
#define FNN_PRAGMA(x) _Pragma(#x)
#define FNN_SIMD FNN_PRAGMA(omp simd)
#define FNN_SIMD_SUM(v) FNN_PRAGMA(omp simd reduction(+:v))
#define FNN_SIMD_MAX(m, flag) FNN_PRAGMA(omp simd reduction(max:m) reduction(|:flag))
#else
#define FNN_SIMD_MAX(m, flag)
#define FNN_SIMD
#define FNN_SIMD_SUM(v)
#endif

static inline float fnn_expf(float x) {
    /* exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2]. */
    x = x < -87.3f ? -87.3f : x;          /* keeps 2^n normal; exp(-87.3) ~ 1.2e-38 is 0 for every use here */
    x = x > 88.7f ? 88.7f : x;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick, not floorf(. + 0.5f): floorf needs SSE4.1, so without it (the
       portable build) gcc ran every exp (sigmoid, tanh) one value at a time; ties go to even, r stays in range */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float fnn_tanhf(float x) {
    float a = fabsf(x);
    float t = fnn_expf(-2.0f * a);
    float big = (1.0f - t) / (1.0f + t);
    float x2 = x * x;   /* odd series for small |x|, where 1 - t cancels */
    float small = a * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * (-0.0539682540f))));
    float y = a < 0.0625f ? small : big;
    return x < 0.0f ? -y : (x >= 0.0f ? y : x);   /* the last branch returns NaN for NaN */
}

static inline float fnn_sigmoidf(float x) { return 1.0f / (1.0f + fnn_expf(-x)); }
static inline double fnn_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ---- rows of a softmax ---------------------------------------------------------------------------------------- */

static inline float fnn_row_max_f(const float *x, ptrdiff_t n) {
    float m = -INFINITY;
    int nan = 0;
    FNN_SIMD_MAX(m, nan)
    for (ptrdiff_t j = 0; j < n; j++) { m = x[j] > m ? x[j] : m; nan |= (x[j] != x[j]); }
    return nan ? NAN : m;
}
static inline double fnn_row_max_d(const double *x, ptrdiff_t n) {
    double m = -INFINITY;
    int nan = 0;
    for (ptrdiff_t j = 0; j < n; j++) { m = x[j] > m ? x[j] : m; nan |= (x[j] != x[j]); }
    return nan ? NAN : m;
}

/* Sums of exps run in float within blocks of FNN_BLOCK (vectorised) and in double across blocks, so the float32
 * result stays accurate for rows of 10^6 whatever the compiler does with the inner loop. */
#define FNN_BLOCK 1024

/* out[j] = exp(x[j] - m); returns the sum. out may be x. */
static inline double fnn_row_exp_f(const float *x, float *out, ptrdiff_t n, float m) {
    double total = 0.0;
    for (ptrdiff_t lo = 0; lo < n; lo += FNN_BLOCK) {
        ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
        float s = 0.0f;
        FNN_SIMD_SUM(s)
        for (ptrdiff_t j = lo; j < hi; j++) { float e = fnn_expf(x[j] - m); out[j] = e; s += e; }
        total += s;
    }
    return total;
}
static inline double fnn_row_exp_d(const double *x, double *out, ptrdiff_t n, double m) {
    double s = 0.0;
    for (ptrdiff_t j = 0; j < n; j++) { double e = exp(x[j] - m); out[j] = e; s += e; }
    return s;
}

/* The first two passes of a softmax row in one: per FNN_BLOCK piece, its max (read from memory into L1), the row's
 * running max m updated, then out[j] = exp(x[j] - m) with m as it stands (refs[piece] = that m) and the running sum
 * of exps rescaled whenever m grows.  Returns the sum relative to the final max, written to *m_out; the caller scales
 * piece p by exp(refs[p] - max) (fnn_row_rescale_*).  Reading the row once overlaps its memory traffic with the exps,
 * where a separate max pass would wait on memory alone.  refs has room for (n + FNN_BLOCK - 1) / FNN_BLOCK values;
 * out may be x.  With out NULL (refs unused) only the sum is computed, by the same arithmetic: the same bits. */
static inline double fnn_row_exp_online_f(const float *x, float *out, ptrdiff_t n, float *refs, float *m_out) {
    double total = 0.0;
    float m = -INFINITY;
    for (ptrdiff_t lo = 0, p = 0; lo < n; lo += FNN_BLOCK, p++) {
        ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
        float mp = fnn_row_max_f(x + lo, hi - lo);
        /* the next piece is asked for now, so memory works while the exps below keep the core busy */
        for (ptrdiff_t q = hi; q < hi + FNN_BLOCK && q < n; q += 16) __builtin_prefetch(x + q);
        if (!(mp <= m)) {   /* also takes NaN */
            total *= (double)expf(m - mp);
            m = mp;
        }
        float s = 0.0f;
        if (out) {
            refs[p] = m;
            FNN_SIMD_SUM(s)
            for (ptrdiff_t j = lo; j < hi; j++) { float e = fnn_expf(x[j] - m); out[j] = e; s += e; }
        } else {
            FNN_SIMD_SUM(s)
            for (ptrdiff_t j = lo; j < hi; j++) s += fnn_expf(x[j] - m);
        }
        total += s;
    }
    *m_out = m;
    return total;
}
static inline double fnn_row_exp_online_d(const double *x, double *out, ptrdiff_t n, double *refs, double *m_out) {
    double total = 0.0;
    double m = -INFINITY;
    for (ptrdiff_t lo = 0, p = 0; lo < n; lo += FNN_BLOCK, p++) {
        ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
        double mp = fnn_row_max_d(x + lo, hi - lo);
        if (!(mp <= m)) {
            total *= exp(m - mp);
            m = mp;
        }
        if (out) {
            refs[p] = m;
            for (ptrdiff_t j = lo; j < hi; j++) { double e = exp(x[j] - m); out[j] = e; total += e; }
        } else {
            for (ptrdiff_t j = lo; j < hi; j++) total += exp(x[j] - m);
        }
    }
    *m_out = m;
    return total;
}

/* sum_j exp(x[j] - m) without storing */
static inline double fnn_row_sumexp_f(const float *x, ptrdiff_t n, float m) {
    double total = 0.0;
    for (ptrdiff_t lo = 0; lo < n; lo += FNN_BLOCK) {
        ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
        float s = 0.0f;
        FNN_SIMD_SUM(s)
        for (ptrdiff_t j = lo; j < hi; j++) s += fnn_expf(x[j] - m);
        total += s;
    }
    return total;
}
static inline double fnn_row_sumexp_d(const double *x, ptrdiff_t n, double m) {
    double s = 0.0;
    for (ptrdiff_t j = 0; j < n; j++) s += exp(x[j] - m);
    return s;
}

static inline void fnn_row_scale_f(float *y, ptrdiff_t n, float a) {
    FNN_SIMD
    for (ptrdiff_t j = 0; j < n; j++) y[j] *= a;
}
static inline void fnn_row_scale_d(double *y, ptrdiff_t n, double a) {
    for (ptrdiff_t j = 0; j < n; j++) y[j] *= a;
}

/* out[j] = a * x[j] */
static inline void fnn_row_scale_to_f(const float *x, float *out, ptrdiff_t n, float a) {
    FNN_SIMD
    for (ptrdiff_t j = 0; j < n; j++) out[j] = a * x[j];
}
static inline void fnn_row_scale_to_d(const double *x, double *out, ptrdiff_t n, double a) {
    for (ptrdiff_t j = 0; j < n; j++) out[j] = a * x[j];
}

/* out[j] = a * x[j] with non-temporal (streaming) stores where the CPU has them: out goes to memory without being
 * read into the cache first (a plain store reads each line before writing it), so a result too big for the cache
 * costs one write of memory traffic instead of a read and a write.  Same values as fnn_row_scale_f. */
static inline void fnn_row_scale_stream_f(const float *x, float *out, ptrdiff_t n, float a) {
    ptrdiff_t j = 0;
#if defined(__AVX512F__)
    for (; j < n && ((uintptr_t)(out + j) & 63); j++) out[j] = a * x[j];
    __m512 va = _mm512_set1_ps(a);
    for (; j + 16 <= n; j += 16) _mm512_stream_ps(out + j, _mm512_mul_ps(va, _mm512_loadu_ps(x + j)));
    _mm_sfence();
#elif defined(__AVX__)
    for (; j < n && ((uintptr_t)(out + j) & 31); j++) out[j] = a * x[j];
    __m256 va = _mm256_set1_ps(a);
    for (; j + 8 <= n; j += 8) _mm256_stream_ps(out + j, _mm256_mul_ps(va, _mm256_loadu_ps(x + j)));
    _mm_sfence();
#elif defined(__SSE2__) || defined(_M_X64)
    for (; j < n && ((uintptr_t)(out + j) & 15); j++) out[j] = a * x[j];
    __m128 va = _mm_set1_ps(a);
    for (; j + 4 <= n; j += 4) _mm_stream_ps(out + j, _mm_mul_ps(va, _mm_loadu_ps(x + j)));
    _mm_sfence();
#endif
    for (; j < n; j++) out[j] = a * x[j];
}
static inline void fnn_row_scale_stream_d(const double *x, double *out, ptrdiff_t n, double a) {
    for (ptrdiff_t j = 0; j < n; j++) out[j] = a * x[j];
}

/* out[j] = v, with streaming stores when `stream` (see fnn_row_scale_stream_f); the write-only part of the benchmarks'
 * memory roof. */
static inline void fnn_fill_f(float *out, ptrdiff_t n, float v, int stream) {
    ptrdiff_t j = 0;
#if defined(__AVX512F__)
    if (stream) {
        for (; j < n && ((uintptr_t)(out + j) & 63); j++) out[j] = v;
        __m512 vv = _mm512_set1_ps(v);
        for (; j + 16 <= n; j += 16) _mm512_stream_ps(out + j, vv);
        _mm_sfence();
    }
#elif defined(__AVX__)
    if (stream) {
        for (; j < n && ((uintptr_t)(out + j) & 31); j++) out[j] = v;
        __m256 vv = _mm256_set1_ps(v);
        for (; j + 8 <= n; j += 8) _mm256_stream_ps(out + j, vv);
        _mm_sfence();
    }
#elif defined(__SSE2__) || defined(_M_X64)
    if (stream) {
        for (; j < n && ((uintptr_t)(out + j) & 15); j++) out[j] = v;
        __m128 vv = _mm_set1_ps(v);
        for (; j + 4 <= n; j += 4) _mm_stream_ps(out + j, vv);
        _mm_sfence();
    }
#endif
    FNN_SIMD
    for (ptrdiff_t i = j; i < n; i++) out[i] = v;
}

/* The last pass of a softmax row after fnn_row_exp_online_*: out[j] = a * exp(refs[p] - m) * x[j] for j in piece p,
 * with streaming stores when `stream` (one fence per row, not per piece).  out may be x when not streaming. */
static inline void fnn_row_rescale_f(const float *x, float *out, ptrdiff_t n, const float *refs, float m, double a,
                                     int stream) {
    for (ptrdiff_t lo = 0, p = 0; lo < n; lo += FNN_BLOCK, p++) {
        ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
        float f = (float)(a * exp((double)refs[p] - (double)m));
        ptrdiff_t j = lo;
#if defined(__AVX512F__)
        if (stream) {
            for (; j < hi && ((uintptr_t)(out + j) & 63); j++) out[j] = f * x[j];
            __m512 vf = _mm512_set1_ps(f);
            for (; j + 16 <= hi; j += 16) _mm512_stream_ps(out + j, _mm512_mul_ps(vf, _mm512_loadu_ps(x + j)));
        }
#elif defined(__AVX__)
        if (stream) {
            for (; j < hi && ((uintptr_t)(out + j) & 31); j++) out[j] = f * x[j];
            __m256 vf = _mm256_set1_ps(f);
            for (; j + 8 <= hi; j += 8) _mm256_stream_ps(out + j, _mm256_mul_ps(vf, _mm256_loadu_ps(x + j)));
        }
#elif defined(__SSE2__) || defined(_M_X64)
        if (stream) {
            for (; j < hi && ((uintptr_t)(out + j) & 15); j++) out[j] = f * x[j];
            __m128 vf = _mm_set1_ps(f);
            for (; j + 4 <= hi; j += 4) _mm_stream_ps(out + j, _mm_mul_ps(vf, _mm_loadu_ps(x + j)));
        }
#endif
        FNN_SIMD
        for (ptrdiff_t k = j; k < hi; k++) out[k] = f * x[k];
    }
#if defined(__SSE2__) || defined(_M_X64)
    if (stream) _mm_sfence();
#endif
}
static inline void fnn_row_rescale_d(const double *x, double *out, ptrdiff_t n, const double *refs, double m,
                                     double a, int stream) {
    (void)stream;
    for (ptrdiff_t lo = 0, p = 0; lo < n; lo += FNN_BLOCK, p++) {
        ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
        double f = a * exp(refs[p] - m);
        for (ptrdiff_t j = lo; j < hi; j++) out[j] = f * x[j];
    }
}

/* ---- softmax cross-entropy rows in float32 (_softmax.pyx's _softmax_xent for V <= its CHUNK) ------------------- */

/* exp(d) for d <= 0 (or NaN, which propagates), float32: 2^n * p(r) with n = round(d / ln2) taken from the low bits of
 * d / ln2 + 1.5 * 2^23 (no float-to-int conversion), r = d - n ln2 in [-ln2/2, ln2/2] and p a degree-5 polynomial
 * fitted for relative error; max relative error 1.8e-7 (~1.5 ulp) on [-87.3, 0], against 8.5e-8 for fnn_expf, at
 * ~2/3 of its cost.  Below -87.3 it returns exp(-87.3) ~ 1.2e-38 (0 for every use in a softmax).  d > 0 is out of
 * its domain (a softmax subtracts a maximum first). */
static inline float fnn_expf_nonpos(float d) {
    d = d < -87.3f ? -87.3f : d;
    float t = d * 1.44269504088896341f + 12582912.0f;   /* 12582912 = 1.5 * 2^23: t's low mantissa bits hold n */
    float n = t - 12582912.0f;
    float r = d - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 8.312487043440342e-3f;
    p = p * r + 4.189005494117737e-2f;
    p = p * r + 1.6667114198207855e-1f;
    p = p * r + 4.99992311000824e-1f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (int32_t)((uint32_t)bits << 23) + 0x3F800000;   /* 2^n: n + 127 in the exponent field */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#define FNN_LANES 16

/* out[j] = exp(x[j] - m) (x[j] <= m) for j < n; returns their sum, added in an order the code fixes (element j into
 * lane j % FNN_LANES, then the lanes in turn), so that the bits depend neither on where out is nor on how the
 * compiler vectorises: the loss-only call (out a small scratch) gives the same sum as the gradient call.
 * One cache line at `ahead` (the next piece of the row) is asked for per FNN_LANES exps: spread through the exps,
 * the requests keep memory busy the whole time (asked for all at once, they wait for free line-fill buffers and
 * stall the core; ~20 % slower at V = 10^5). */
static inline float fnn_piece_exp_f(const float *x, float *out, ptrdiff_t n, float m, const float *ahead) {
    float acc[FNN_LANES] = {0.0f};
    ptrdiff_t j = 0;
    for (; j + FNN_LANES <= n; j += FNN_LANES) {
        __builtin_prefetch(ahead + j);
        FNN_SIMD
        for (int k = 0; k < FNN_LANES; k++) {
            float e = fnn_expf_nonpos(x[j + k] - m);
            out[j + k] = e;
            acc[k] += e;
        }
    }
    for (int k = 0; j + k < n; k++) {
        float e = fnn_expf_nonpos(x[j + k] - m);
        out[j + k] = e;
        acc[k] += e;
    }
    float s = 0.0f;
    for (int k = 0; k < FNN_LANES; k++) s += acc[k];
    return s;
}

/* out[j] = f * x[j], with streaming stores when `stream` (no fence: the caller fences once per row). */
static inline void fnn_piece_scale_f(const float *x, float *out, ptrdiff_t n, float f, int stream) {
    ptrdiff_t j = 0;
#if defined(__AVX512F__)
    if (stream) {
        for (; j < n && ((uintptr_t)(out + j) & 63); j++) out[j] = f * x[j];
        __m512 vf = _mm512_set1_ps(f);
        for (; j + 16 <= n; j += 16) _mm512_stream_ps(out + j, _mm512_mul_ps(vf, _mm512_loadu_ps(x + j)));
    }
#elif defined(__AVX__)
    if (stream) {
        for (; j < n && ((uintptr_t)(out + j) & 31); j++) out[j] = f * x[j];
        __m256 vf = _mm256_set1_ps(f);
        for (; j + 8 <= n; j += 8) _mm256_stream_ps(out + j, _mm256_mul_ps(vf, _mm256_loadu_ps(x + j)));
    }
#elif defined(__SSE2__) || defined(_M_X64)
    if (stream) {
        for (; j < n && ((uintptr_t)(out + j) & 15); j++) out[j] = f * x[j];
        __m128 vf = _mm_set1_ps(f);
        for (; j + 4 <= n; j += 4) _mm_stream_ps(out + j, _mm_mul_ps(vf, _mm_loadu_ps(x + j)));
    }
#endif
    FNN_SIMD
    for (ptrdiff_t k = j; k < n; k++) out[k] = f * x[k];
}

/* Floats of per-thread work space fnn_xent_rows_f needs for rows of n. */
static inline ptrdiff_t fnn_xent_work_f(ptrdiff_t n, int stream) {
    ptrdiff_t n_refs = (n + FNN_BLOCK - 1) / FNN_BLOCK, row = (n + 15) / 16 * 16;
    return stream ? 2 * (row + n_refs) : n_refs + FNN_BLOCK;
}

/* Softmax cross-entropy of n_rows consecutive rows of n logits (float32), each row on its own:
 *   loss[r] = logsumexp(x[r]) - x[r, t[r]],  g[r] = scale * (softmax(x[r]) - onehot(t[r]))  (g NULL: loss only).
 * A row is read from memory once, piece by piece (FNN_BLOCK logits): the piece's max, the row's running max m
 * (what is summed so far rescaled when it grows), exps against m into the piece's place (refs[p] = that m); then
 * each piece is scaled by scale * exp(refs[p] - max) / sum.  Where the exps go:
 *   - g NULL: a FNN_BLOCK scratch (only the sum is kept; the same arithmetic, so the same loss bits);
 *   - stream 0: g itself (which may be x), scaled in place while the row is in cache;
 *   - stream 1 (g a separate array too big for the cache): one of two row buffers in `work`, and the scaled row goes
 *     to g with streaming stores.  Rows are pipelined: while row r is read and exp'd, piece by piece, row r - 1 is
 *     written out of the other buffer, so the memory reads, the exps and the memory writes overlap.
 * Every row's result depends only on its own logits (not on how rows are grouped into calls).  work holds
 * fnn_xent_work_f(n, stream) floats.  t[r] in [0, n). */
static inline void fnn_xent_rows_f(const float *x, float *g, const ptrdiff_t *t, float *loss, ptrdiff_t n_rows,
                                   ptrdiff_t n, double scale, float *work, int stream) {
    ptrdiff_t n_refs = (n + FNN_BLOCK - 1) / FNN_BLOCK, row = (n + 15) / 16 * 16;
    float *buf[2], *refs[2];
    stream = stream && g;
    if (stream) {
        buf[0] = work; buf[1] = work + row;
        refs[0] = work + 2 * row; refs[1] = refs[0] + n_refs;
    } else {
        buf[0] = buf[1] = work + n_refs;   /* the loss-only scratch */
        refs[0] = refs[1] = work;
    }
    float m_prev = 0.0f;
    double a_prev = 0.0;
    for (ptrdiff_t r = 0; r <= n_rows; r++) {
        int cur = (int)(r & 1), do_a = r < n_rows, do_b = stream && r > 0;
        const float *xr = x + r * n;
        float *gr = g ? g + r * n : NULL;
        float *gp = do_b ? g + (r - 1) * n : NULL;
        float xt = do_a ? xr[t[r]] : 0.0f;   /* before g (maybe x) is written */
        double total = 0.0;
        float m = -INFINITY;
        for (ptrdiff_t lo = 0, p = 0; lo < n; lo += FNN_BLOCK, p++) {
            ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
            if (do_a) {
                float mp = fnn_row_max_f(xr + lo, hi - lo);
                if (!(mp <= m)) {   /* also takes NaN */
                    total *= (double)expf(m - mp);
                    m = mp;
                }
                refs[cur][p] = m;
                float *out = !g ? buf[cur] : (stream ? buf[cur] + lo : gr + lo);
                /* the piece after next is asked for while this one's exps keep the core busy (rows are
                 * contiguous: past a row's end, the next row's); one piece ahead left the max and exps waiting on
                 * memory: 2026-12-06 Xeon, B 128 x V 10^5, loss only, one thread 3.6-3.9 -> 2.9 ms; three ahead
                 * was slower than two */
                ptrdiff_t ahead = r * n + hi + FNN_BLOCK;
                total += fnn_piece_exp_f(xr + lo, out, hi - lo, m, ahead < n_rows * n ? x + ahead : xr + lo);
            }
            if (do_b) {
                float f = (float)(a_prev * exp((double)refs[cur ^ 1][p] - (double)m_prev));
                fnn_piece_scale_f(buf[cur ^ 1] + lo, gp + lo, hi - lo, f, 1);
            }
        }
        if (do_b) {
#if defined(__SSE2__) || defined(_M_X64)
            _mm_sfence();
#endif
            gp[t[r - 1]] = gp[t[r - 1]] - (float)scale;
        }
        if (!do_a) break;
        loss[r] = (float)((double)(m - xt) + log(total));
        if (g && !stream) {
            double a = scale / total;
            for (ptrdiff_t lo = 0, p = 0; lo < n; lo += FNN_BLOCK, p++) {
                ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n;
                fnn_piece_scale_f(gr + lo, gr + lo, hi - lo, (float)(a * exp((double)refs[0][p] - (double)m)), 0);
            }
            gr[t[r]] = gr[t[r]] - (float)scale;
        }
        m_prev = m;
        a_prev = scale / total;
    }
}

/* out[j] = x[j] - shift (log-softmax) */
static inline void fnn_row_shift_f(const float *x, float *out, ptrdiff_t n, float shift) {
    FNN_SIMD
    for (ptrdiff_t j = 0; j < n; j++) out[j] = x[j] - shift;
}
static inline void fnn_row_shift_d(const double *x, double *out, ptrdiff_t n, double shift) {
    for (ptrdiff_t j = 0; j < n; j++) out[j] = x[j] - shift;
}

/* Ask for the n bytes at p (to be written) ahead of use: the rows a scatter will update a few tokens from now are at
 * random places in a large table, so without it each waits on memory in turn. */
static inline void fnn_prefetch_w(const void *p, ptrdiff_t n) {
    for (ptrdiff_t k = 0; k < n; k += 64) __builtin_prefetch((const char *)p + k, 1, 3);
}

/* ---- small dense vector ops (class-factorized softmax blocks) ------------------------------------------------- */

static inline float fnn_dot_f(const float *x, const float *y, ptrdiff_t n) {
    float s = 0.0f;
    FNN_SIMD_SUM(s)
    for (ptrdiff_t j = 0; j < n; j++) s += x[j] * y[j];
    return s;
}
static inline double fnn_dot_d(const double *x, const double *y, ptrdiff_t n) {
    double s = 0.0;
    for (ptrdiff_t j = 0; j < n; j++) s += x[j] * y[j];
    return s;
}
/* y += a * x */
static inline void fnn_axpy_f(float a, const float *x, float *y, ptrdiff_t n) {
    FNN_SIMD
    for (ptrdiff_t j = 0; j < n; j++) y[j] += a * x[j];
}
static inline void fnn_axpy_d(double a, const double *x, double *y, ptrdiff_t n) {
    for (ptrdiff_t j = 0; j < n; j++) y[j] += a * x[j];
}

/* ---- activations in place: 0 tanh, 1 sigmoid, 2 relu, 3 identity ----------------------------------------------- */

static inline void fnn_act_f(float *h, ptrdiff_t n, int act) {
    if (act == 0) { FNN_SIMD for (ptrdiff_t j = 0; j < n; j++) h[j] = fnn_tanhf(h[j]); }
    else if (act == 1) { FNN_SIMD for (ptrdiff_t j = 0; j < n; j++) h[j] = fnn_sigmoidf(h[j]); }
    else if (act == 2) { FNN_SIMD for (ptrdiff_t j = 0; j < n; j++) h[j] = h[j] < 0.0f ? 0.0f : h[j]; }
}
static inline void fnn_act_d(double *h, ptrdiff_t n, int act) {
    if (act == 0) { for (ptrdiff_t j = 0; j < n; j++) h[j] = tanh(h[j]); }
    else if (act == 1) { for (ptrdiff_t j = 0; j < n; j++) h[j] = fnn_sigmoid(h[j]); }
    else if (act == 2) { for (ptrdiff_t j = 0; j < n; j++) h[j] = h[j] < 0.0 ? 0.0 : h[j]; }
}

/* dz[j] = (g[j] + carry[j]) * f'(z) written in terms of the output h = f(z); then clipped to [-clip, clip] if clip > 0 */
#define FNN_DACT_BODY(T, ZERO, ONE)                                                                        \
    for (ptrdiff_t j = 0; j < n; j++) {                                                                    \
        T d = g[j] + carry[j];                                                                              \
        T y = h[j];                                                                                         \
        T fp = act == 0 ? ONE - y * y : (act == 1 ? y * (ONE - y) : (act == 2 ? (y > ZERO ? ONE : ZERO) : ONE)); \
        d = d * fp;                                                                                         \
        if (clip > ZERO) { d = d > clip ? clip : d; d = d < -clip ? -clip : d; }                            \
        dz[j] = d;                                                                                          \
    }
static inline void fnn_dact_f(const float *g, const float *carry, const float *h, float *dz, ptrdiff_t n, int act,
                              float clip) {
    FNN_SIMD
    FNN_DACT_BODY(float, 0.0f, 1.0f)
}
static inline void fnn_dact_d(const double *g, const double *carry, const double *h, double *dz, ptrdiff_t n,
                              int act, double clip) {
    FNN_DACT_BODY(double, 0.0, 1.0)
}
#undef FNN_DACT_BODY

/* ---- vector code chosen at run time (portable builds) ----------------------------------------------------------
 * A portable build (no -march=native) compiles for the baseline instruction set (SSE2 on x86-64), and the kernels'
 * `#if defined(__AVX512F__)` paths pick their vectors at compile time, so such a build ran 4-wide code on every CPU.
 * A kernel that matters can compile its hot code once more per wider instruction set, with GCC/clang `target`
 * attributes (FNN_TARGET_AVX2, FNN_TARGET_AVX512 below), and choose among them when it is called:
 *   path 0 (FNN_PATH_BASE)    the build's own flags: SSE2 in a portable build, everything the CPU has in a native one
 *   path 1 (FNN_PATH_AVX2)    AVX2 + FMA, 256-bit vectors       } compiled only when FNN_DISPATCH: gcc or clang on
 *   path 2 (FNN_PATH_AVX512)  AVX-512F (+ AVX2, FMA), 512-bit  } x86 building for a baseline without AVX
 * A native build (-march=native: __AVX__ defined) keeps compiling only its own path, as before; so do other
 * compilers and other machines.  fnn_cpu_paths() says which paths this CPU can run (the OS saving the wider
 * registers included: __builtin_cpu_supports checks it).  The paths may differ from each other by rounding (FMA,
 * other register blocking); each one's results are fixed whatever the threads. */
#define FNN_PATH_BASE 0
#define FNN_PATH_AVX2 1
#define FNN_PATH_AVX512 2
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX__) \
    && !defined(FNN_NO_DISPATCH)
#define FNN_DISPATCH 1
#define FNN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#if defined(__clang__)
#define FNN_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
/* gcc keeps to 256-bit vectors for loops unless told (see setup.py's -mprefer-vector-width=512) */
#define FNN_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma,prefer-vector-width=512")))
#endif
#else
#define FNN_DISPATCH 0
#endif

/* The instruction set path 0 was compiled for. */
static inline const char *fnn_base_path_name(void) {
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
    return "avx2";
#elif defined(__AVX__)
    return "avx";
#elif defined(__SSE2__) || defined(_M_X64)
    return "sse2";
#elif defined(__ARM_NEON) || defined(__aarch64__)
    return "neon";
#else
    return "generic";
#endif
}

/* Bit p set: this build has path p and this CPU can run it (bit 0 always). */
static inline int fnn_cpu_paths(void) {
    int bits = 1 << FNN_PATH_BASE;
#if FNN_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        bits |= 1 << FNN_PATH_AVX2;
        if (__builtin_cpu_supports("avx512f")) bits |= 1 << FNN_PATH_AVX512;
    }
#endif
    return bits;
}

/* The float32 softmax rows (fnn_xent_rows_f, fnn_piece_exp_f) per path: path 1 and 2 are the same source inlined whole
 * (flatten) into functions compiled for AVX2 + FMA or AVX-512, where the exp loops run 8 or 16 wide instead of 4.
 * Their lanes add in the same fixed order, so the paths differ only by FMA rounding in the exp polynomial. */
#if FNN_DISPATCH
#define FNN_SOFTMAX_CLONES(SFX, TGT)                                                                              \
    TGT __attribute__((flatten)) static inline void fnn_xent_rows_f##SFX(                                         \
            const float *x, float *g, const ptrdiff_t *t, float *loss, ptrdiff_t n_rows, ptrdiff_t n, double scale,\
            float *work, int stream) {                                                                            \
        fnn_xent_rows_f(x, g, t, loss, n_rows, n, scale, work, stream);                                           \
    }                                                                                                             \
    TGT __attribute__((flatten)) static inline float fnn_piece_exp_f##SFX(const float *x, float *out, ptrdiff_t n,\
                                                                          float m, const float *ahead) {          \
        return fnn_piece_exp_f(x, out, n, m, ahead);                                                              \
    }
FNN_SOFTMAX_CLONES(_avx2, FNN_TARGET_AVX2)
FNN_SOFTMAX_CLONES(_avx512, FNN_TARGET_AVX512)
#undef FNN_SOFTMAX_CLONES
#endif
static inline void fnn_xent_rows_f_path(int path, const float *x, float *g, const ptrdiff_t *t, float *loss,
                                        ptrdiff_t n_rows, ptrdiff_t n, double scale, float *work, int stream) {
#if FNN_DISPATCH
    if (path == FNN_PATH_AVX512) { fnn_xent_rows_f_avx512(x, g, t, loss, n_rows, n, scale, work, stream); return; }
    if (path == FNN_PATH_AVX2) { fnn_xent_rows_f_avx2(x, g, t, loss, n_rows, n, scale, work, stream); return; }
#endif
    (void)path;
    fnn_xent_rows_f(x, g, t, loss, n_rows, n, scale, work, stream);
}
static inline float fnn_piece_exp_f_path(int path, const float *x, float *out, ptrdiff_t n, float m,
                                         const float *ahead) {
#if FNN_DISPATCH
    if (path == FNN_PATH_AVX512) return fnn_piece_exp_f_avx512(x, out, n, m, ahead);
    if (path == FNN_PATH_AVX2) return fnn_piece_exp_f_avx2(x, out, n, m, ahead);
#endif
    (void)path;
    return fnn_piece_exp_f(x, out, n, m, ahead);
}

/* The benchmarks' memory roof (csrc/_blas.pyx's _memory_pass), one piece: kind 0 reads x (returns its maximum, so
 * the reads are used), 1 updates it in place (x += 1), 2 writes it (x = 1, streaming stores when `stream`).  On the
 * vector paths too: a portable build's roof in SSE2 ran up to 1.75x slower than the native one's (dense_adagrad's
 * 5.56 against 3.17 ms, Xeon), slower than the kernels it bounds, which take their AVX-512 path. */
static inline float fnn_memory_piece_f(int kind, float *x, ptrdiff_t n, int stream) {
    if (kind == 0) return fnn_row_max_f(x, n);
    if (kind == 1) fnn_row_shift_f(x, x, n, -1.0f);
    else fnn_fill_f(x, n, 1.0f, stream);
    return 0.0f;
}
#if FNN_DISPATCH
FNN_TARGET_AVX2 __attribute__((flatten)) static inline float fnn_memory_piece_f_avx2(int kind, float *x, ptrdiff_t n,
                                                                                   int stream) {
    return fnn_memory_piece_f(kind, x, n, stream);
}
FNN_TARGET_AVX512 __attribute__((flatten)) static inline float fnn_memory_piece_f_avx512(int kind, float *x,
                                                                                       ptrdiff_t n, int stream) {
    return fnn_memory_piece_f(kind, x, n, stream);
}
#endif
static inline float fnn_memory_piece_f_path(int path, int kind, float *x, ptrdiff_t n, int stream) {
#if FNN_DISPATCH
    if (path == FNN_PATH_AVX512) return fnn_memory_piece_f_avx512(kind, x, n, stream);
    if (path == FNN_PATH_AVX2) return fnn_memory_piece_f_avx2(kind, x, n, stream);
#endif
    (void)path;
    return fnn_memory_piece_f(kind, x, n, stream);
}

#endif
