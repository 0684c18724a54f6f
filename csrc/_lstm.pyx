# cython: language_level=3
"""LSTM recurrence over T steps and its truncated back-propagation through time.

Four gates of K units each, stored side by side in one row of 4K per batch row, in torch's order (i, f, g, o):

    a_t = x_t + h_{t-1} W^T + b                          x_t: the input already projected (one big product by the
    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),   caller), W (4K, K), b (4K,)
    o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Steps are sequential; within a step the recurrent product and the cell update are fused into tiles (no BLAS call
per step: at these sizes BLAS spent as long packing W on every call as multiplying).  A forward tile is MR batch rows
x one vector of VW units of each of the four gates: its 4 x MR accumulator vectors stay in registers while it runs
over the K inputs of W (packed once per call, so that the four gate vectors of a unit block and input k are
contiguous), and the cell update is applied to them before anything is written.  A backward tile is MR rows x 4
vectors of units of the carry d loss / d h_t = d loss / d a_{t+1} W, the cell's backward step t following in the same
tile.  Batch rows are independent sequences, so a block of MR rows is one task for the whole sweep, handed to
whichever thread is free: no barrier between steps (on a busy machine a barrier per step waits for the slowest thread
T times, and a fixed split of the rows waits for the slowest thread's share).  Each
output element is one fixed-order sum whatever the rows around it, so the result does not depend on the thread count
or the row blocking.  dW is one matrix product over all steps after the sweep; db is summed in row order.
Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memset
from fastnn._ext import _info
from _common cimport threads_for, gemm_rm

cdef extern from *:
    """
    #include "fnn_math.h"
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #if defined(_MSC_VER) && !defined(restrict)
    #define restrict __restrict
    #endif

    /* Register blocking per path (fnn_math.h: path 0 is the build's own flags; paths 1 (AVX2 + FMA) and 2 (AVX-512)
     * are compiled with target attributes in a portable build and chosen at run time): vectors of FNN_LSTM_VB<p>
     * bytes, FNN_LSTM_MR<p> batch rows per tile (4 x MR accumulators plus the 4 vectors of W and a broadcast must fit
     * the register file: 32 with AVX-512, 16 otherwise).  FNN_LSTM_TGT<p> marks every function of path p,
     * FNN_LSTM_ROWTGT<p> its element-wise rows.  There is one AVX-512 layout: on Zen 4, which runs a 512-bit
     * instruction as two 256-bit halves, 8-float vectors in AVX-512VL's 32 registers (6 rows x 4 gates, _rnnlm's
     * "ymm" layout) ran the product no faster (36 rows x 35 steps, K 256: 5.68 vs 5.69 ms, both at the FMA roof,
     * 2026-12-06), and the forward's element-wise rows took 1.05 ms at 8 floats against 0.71 at 16. */
    #if defined(__GNUC__) || defined(__clang__)
    #  define FNN_LSTM_VEC 1
    #  if defined(__AVX512F__)
    #    define FNN_LSTM_VB0 64
    #    define FNN_LSTM_MR0 6
    #  elif defined(__AVX__)
    #    define FNN_LSTM_VB0 32
    #    define FNN_LSTM_MR0 2
    #  else
    #    define FNN_LSTM_VB0 16
    #    define FNN_LSTM_MR0 2
    #  endif
    #else
    #  define FNN_LSTM_VEC 0
    #  define FNN_LSTM_VB0 16
    #  define FNN_LSTM_MR0 2
    #endif
    #define FNN_LSTM_TGT0
    /* the tiles' element-wise part (gates, cell) at the micro-kernel's width: gcc's -march=native picks 256-bit
     * vectors for loops on AVX-512 machines, which halves the speed of the transcendentals here */
    #if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
    #  define FNN_LSTM_ROWTGT0 __attribute__((target("prefer-vector-width=512")))
    #else
    #  define FNN_LSTM_ROWTGT0
    #endif
    #if FNN_DISPATCH
    #  define FNN_LSTM_VB1 32
    #  define FNN_LSTM_MR1 2
    #  define FNN_LSTM_TGT1 FNN_TARGET_AVX2
    #  define FNN_LSTM_ROWTGT1 FNN_TARGET_AVX2
    #  define FNN_LSTM_VB2 64
    #  define FNN_LSTM_MR2 6
    #  define FNN_LSTM_TGT2 FNN_TARGET_AVX512
    #  define FNN_LSTM_ROWTGT2 FNN_TARGET_AVX512
    #endif
    #define FNN_LSTM_MRMAX 6

    static inline void *fnn_lstm_align(void *raw) { return (void *) (((uintptr_t) raw + 63) & ~(uintptr_t) 63); }

    /* Asks for the cache lines of n bytes at p (rw 1: to be written).  A tile's element-wise rows read step t's
     * X (forward) or A and dH (backward), which no earlier step left in cache, in pieces of a vector or four per
     * gate and row (K and 4K values apart): the hardware prefetcher does not follow that, and the rows after the
     * product stalled on every load (Zen 4, B32 T35 K256 float32, one thread: forward 7.9 -> 7.0 ms).  Asked for
     * before the product, they arrive while it runs.  (Prefetching A's stores, c_{t-1} or dA's stores too gained
     * nothing.) */
    static inline void fnn_lstm_prefetch(const void *p, size_t n, int rw) {
    #if defined(__GNUC__) || defined(__clang__)
        if (n == 0) return;
        uintptr_t q = (uintptr_t) p & ~(uintptr_t) 63, end = (uintptr_t) p + n;
        for (; q < end; q += 64) {
            if (rw) __builtin_prefetch((const void *) q, 1);
            else __builtin_prefetch((const void *) q, 0);
        }
    #else
        (void) p; (void) n; (void) rw;
    #endif
    }

    /* The micro-kernel: out (MR x 4VW, row-major) = a (MR rows of kd, row stride lda) @ p (kd x 4VW, row-major,
     * 64-byte aligned).  Each output element is one sum over k in order. */
    #if FNN_LSTM_VEC
    #define FNN_LSTM_MK(NAME, T, VW, MR, TGT)                                                              \\
    TGT static inline void NAME(const T *restrict a, ptrdiff_t lda, const T *restrict p, ptrdiff_t kd,           \\
                            T *restrict out) {                                                               \\
        typedef T vt __attribute__((vector_size(VW * sizeof(T))));                                         \\
        vt acc[MR][4];                                                                                       \\
        for (int r = 0; r < MR; r++) { acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = (vt) {0}; }          \\
        for (ptrdiff_t k = 0; k < kd; k++) {                                                                 \\
            const vt *w = (const vt *) (p + k * 4 * VW);                                                     \\
            vt w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];                                                   \\
            for (int r = 0; r < MR; r++) {                                                                   \\
                T s = a[r * lda + k];                                                                        \\
                acc[r][0] += s * w0; acc[r][1] += s * w1; acc[r][2] += s * w2; acc[r][3] += s * w3;          \\
            }                                                                                                \\
        }                                                                                                    \\
        memcpy(out, acc, sizeof acc);                                                                        \\
    }
    #else
    #define FNN_LSTM_MK(NAME, T, VW, MR, TGT)                                                              \\
    TGT static inline void NAME(const T *restrict a, ptrdiff_t lda, const T *restrict p, ptrdiff_t kd,           \\
                            T *restrict out) {                                                               \\
        for (int q = 0; q < MR * 4 * VW; q++) out[q] = (T) 0;                                                \\
        for (ptrdiff_t k = 0; k < kd; k++)                                                                   \\
            for (int r = 0; r < MR; r++) {                                                                   \\
                T s = a[r * lda + k];                                                                        \\
                for (int q = 0; q < 4 * VW; q++) out[r * 4 * VW + q] += s * p[k * 4 * VW + q];              \\
            }                                                                                                \\
    }
    #endif

    #define FNN_LSTM_MK_ALL(SFX, T, VW, TGT)                                                               \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##1, T, VW, 1, TGT)                                                            \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##2, T, VW, 2, TGT)                                                            \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##3, T, VW, 3, TGT)                                                            \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##4, T, VW, 4, TGT)                                                            \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##5, T, VW, 5, TGT)                                                            \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##6, T, VW, 6, TGT)                                                            \\
    TGT static inline void fnn_lstm_mk##SFX(int mr, const T *a, ptrdiff_t lda, const T *p, ptrdiff_t kd, T *out) { \\
        switch (mr) {                                                                                        \\
            case 1: fnn_lstm_mk##SFX##1(a, lda, p, kd, out); break;                                          \\
            case 2: fnn_lstm_mk##SFX##2(a, lda, p, kd, out); break;                                          \\
            case 3: fnn_lstm_mk##SFX##3(a, lda, p, kd, out); break;                                          \\
            case 4: fnn_lstm_mk##SFX##4(a, lda, p, kd, out); break;                                          \\
            case 5: fnn_lstm_mk##SFX##5(a, lda, p, kd, out); break;                                          \\
            default: fnn_lstm_mk##SFX##6(a, lda, p, kd, out); break;                                         \\
        }                                                                                                    \\
    }

    /* Packing W (4K, K), one panel per call.
     * forward panel p (units p VW ..): out[(k * 4 + g) * VW + v] = W[g K + p VW + v, k], zero past unit K;
     * backward panel q (units q 4VW ..): out[j * 4VW + c] = W[j, q 4VW + c], zero past unit K. */
    #define FNN_LSTM_PACK(SFX, T, VW)                                                                      \\
    static inline void fnn_lstm_pack_fwd##SFX(const T *restrict W, ptrdiff_t K, T *restrict out, ptrdiff_t p) { \\
        out += p * 4 * VW * K;                                                                               \\
        for (int g = 0; g < 4; g++)                                                                          \\
            for (int v = 0; v < VW; v++) {                                                                   \\
                ptrdiff_t u = p * VW + v;                                                                    \\
                const T *restrict w = W + (g * K + u) * K;                                                   \\
                for (ptrdiff_t k = 0; k < K; k++) out[(k * 4 + g) * VW + v] = u < K ? w[k] : (T) 0;         \\
            }                                                                                                \\
    }                                                                                                        \\
    static inline void fnn_lstm_pack_bwd##SFX(const T *restrict W, ptrdiff_t K, T *restrict out, ptrdiff_t q) { \\
        out += q * 4 * VW * 4 * K;                                                                           \\
        for (ptrdiff_t j = 0; j < 4 * K; j++)                                                                \\
            for (int c = 0; c < 4 * VW; c++) {                                                               \\
                ptrdiff_t k = q * 4 * VW + c;                                                                \\
                out[j * 4 * VW + c] = k < K ? W[j * K + k] : (T) 0;                                          \\
            }                                                                                                \\
    }

    /* The element-wise part of a tile, one batch row at a time.
     * forward: s (4 x VW: the recurrent products of gates i, f, g, o) IN; x, b (gate g at + g K) IN: the projected
     * input and bias; cp IN: c_{t-1}; a OUT (gate g at + g K): the activations; c, h OUT: c_t, h_t; units 0 .. n.
     * backward: s IN: the carry d loss / d h_t through step t+1; a (gate g at + g K), cp, cc IN: the activations,
     * c_{t-1}, c_t; gh IN: d loss / d h_t from outside; dc INOUT: d loss / d c_t in, d loss / d c_{t-1} out;
     * da OUT (gate g at + g K): d loss / d a_t, clipped to [-clip, clip] when clip > 0; units 0 .. n. */
    #define FNN_LSTM_FWD_ROW(SFX, T, VW, SIGMOID, TANH, SIMD, TGT)                                        \\
    TGT static inline void fnn_lstm_fwd_row##SFX(const T *restrict s, const T *restrict x, const T *restrict b,   \\
                                                 const T *restrict cp, T *restrict a, T *restrict c,            \\
                                                 T *restrict h, ptrdiff_t K, ptrdiff_t n) {                     \\
        SIMD                                                                                                 \\
        for (ptrdiff_t v = 0; v < n; v++) {                                                                  \\
            T i = SIGMOID(s[v] + (x[v] + b[v]));                                                             \\
            T f = SIGMOID(s[VW + v] + (x[K + v] + b[K + v]));                                                \\
            T g = TANH(s[2 * VW + v] + (x[2 * K + v] + b[2 * K + v]));                                       \\
            T o = SIGMOID(s[3 * VW + v] + (x[3 * K + v] + b[3 * K + v]));                                    \\
            T cj = f * cp[v] + i * g;                                                                        \\
            a[v] = i; a[K + v] = f; a[2 * K + v] = g; a[3 * K + v] = o;                                      \\
            c[v] = cj;                                                                                       \\
            h[v] = o * TANH(cj);                                                                             \\
        }                                                                                                    \\
    }
    #define FNN_LSTM_BWD_ROW(SFX, T, TANH, SIMD, TGT)                                                     \\
    TGT static inline void fnn_lstm_bwd_row##SFX(const T *restrict s, const T *restrict a, const T *restrict cp,  \\
                                                 const T *restrict cc, const T *restrict gh, T *restrict dc,    \\
                                                 T *restrict da, ptrdiff_t K, ptrdiff_t n, T clip) {            \\
        SIMD                                                                                                 \\
        for (ptrdiff_t v = 0; v < n; v++) {                                                                  \\
            T i = a[v], f = a[K + v], g = a[2 * K + v], o = a[3 * K + v];                                    \\
            T tc = TANH(cc[v]);                                                                              \\
            T d_h = gh[v] + s[v];                                                                            \\
            T d_c = dc[v] + d_h * o * ((T) 1 - tc * tc);                                                     \\
            T vi = d_c * g * i * ((T) 1 - i);                                                                \\
            T vf = d_c * cp[v] * f * ((T) 1 - f);                                                            \\
            T vg = d_c * i * ((T) 1 - g * g);                                                                \\
            T vo = d_h * tc * o * ((T) 1 - o);                                                               \\
            if (clip > (T) 0) {                                                                              \\
                vi = vi > clip ? clip : (vi < -clip ? -clip : vi);                                           \\
                vf = vf > clip ? clip : (vf < -clip ? -clip : vf);                                           \\
                vg = vg > clip ? clip : (vg < -clip ? -clip : vg);                                           \\
                vo = vo > clip ? clip : (vo < -clip ? -clip : vo);                                           \\
            }                                                                                                \\
            da[v] = vi; da[K + v] = vf; da[2 * K + v] = vg; da[3 * K + v] = vo;                              \\
            dc[v] = d_c * f;                                                                                 \\
        }                                                                                                    \\
    }

    #if FNN_LSTM_VEC && (defined(__AVX512F__) || FNN_DISPATCH)
    #if defined(__AVX512F__)
    #  define FNN_LSTM_I512
    #else
    #  define FNN_LSTM_I512 FNN_TARGET_AVX512
    #endif
    /* float32 rows with AVX-512 intrinsics: the auto-vectorised loop above spends most of a tile's time in its
     * five divisions per unit; here 1/x is rcp14 plus one Newton step (~1 ulp), exp is fnn_expf's polynomial with
     * vscalefps, and a mask covers the last partial vector.  NaN propagates as in fnn_math.h.  Compiled for the
     * native AVX-512 build (path 0) or, with target attributes, as path 2 of a portable build. */
    #include <immintrin.h>
    FNN_LSTM_I512 static inline __m512 fnn_lstm_rcp16(__m512 d) {
        __m512 y = _mm512_rcp14_ps(d);
        return _mm512_mul_ps(y, _mm512_fnmadd_ps(d, y, _mm512_set1_ps(2.0f)));
    }
    FNN_LSTM_I512 static inline __m512 fnn_lstm_exp16(__m512 x) {
        x = _mm512_max_ps(_mm512_set1_ps(-87.3f), x);      /* max/min return the second operand for NaN */
        x = _mm512_min_ps(_mm512_set1_ps(88.7f), x);
        __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
        r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
        __m512 p = _mm512_set1_ps(1.9875691500e-4f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
        p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
        return _mm512_scalef_ps(p, n);
    }
    FNN_LSTM_I512 static inline __m512 fnn_lstm_sigmoid16(__m512 x) {
        return fnn_lstm_rcp16(_mm512_add_ps(_mm512_set1_ps(1.0f), fnn_lstm_exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
    }
    FNN_LSTM_I512 static inline __m512 fnn_lstm_tanh16(__m512 x) {
        const __m512 one = _mm512_set1_ps(1.0f);
        __m512 a = _mm512_abs_ps(x);
        __m512 t = fnn_lstm_exp16(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)));
        __m512 big = _mm512_mul_ps(_mm512_sub_ps(one, t), fnn_lstm_rcp16(_mm512_add_ps(one, t)));
        __m512 x2 = _mm512_mul_ps(x, x);
        __m512 q = _mm512_fmadd_ps(x2, _mm512_set1_ps(-0.0539682540f), _mm512_set1_ps(0.133333333f));
        q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(-0.333333333f));
        __m512 small = _mm512_mul_ps(a, _mm512_fmadd_ps(x2, q, one));
        __m512 y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.0625f), _CMP_LT_OQ), big, small);
        return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), _mm512_and_si512(
            _mm512_castps_si512(x), _mm512_set1_epi32((int) 0x80000000u))));
    }
    FNN_LSTM_I512 static inline __mmask16 fnn_lstm_mask16(ptrdiff_t n) {
        return n >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << n) - 1u);
    }
    FNN_LSTM_I512 static inline void fnn_lstm_fwd_row16_f(const float *restrict s, const float *restrict x,
                                                            const float *restrict b, const float *restrict cp, float *restrict a, float *restrict c,
                                          float *restrict h, ptrdiff_t K, ptrdiff_t n) {
        __mmask16 m = fnn_lstm_mask16(n);
        __m512 z[4];
        for (int q = 0; q < 4; q++)
            z[q] = _mm512_add_ps(_mm512_loadu_ps(s + 16 * q), _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + q * K),
                                                                            _mm512_maskz_loadu_ps(m, b + q * K)));
        __m512 i = fnn_lstm_sigmoid16(z[0]), f = fnn_lstm_sigmoid16(z[1]), g = fnn_lstm_tanh16(z[2]);
        __m512 o = fnn_lstm_sigmoid16(z[3]);
        __m512 cj = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, cp), _mm512_mul_ps(i, g));
        _mm512_mask_storeu_ps(a, m, i);
        _mm512_mask_storeu_ps(a + K, m, f);
        _mm512_mask_storeu_ps(a + 2 * K, m, g);
        _mm512_mask_storeu_ps(a + 3 * K, m, o);
        _mm512_mask_storeu_ps(c, m, cj);
        _mm512_mask_storeu_ps(h, m, _mm512_mul_ps(o, fnn_lstm_tanh16(cj)));
    }
    FNN_LSTM_I512 static inline void fnn_lstm_bwd_row16_f(const float *restrict s, const float *restrict a, const float *restrict cp,
                                          const float *restrict cc, const float *restrict gh, float *restrict dc,
                                          float *restrict da, ptrdiff_t K, ptrdiff_t n, float clip) {
        const __m512 one = _mm512_set1_ps(1.0f), hi = _mm512_set1_ps(clip), lo = _mm512_set1_ps(-clip);
        for (ptrdiff_t v = 0; v < n; v += 16) {
            __mmask16 m = fnn_lstm_mask16(n - v);
            __m512 i = _mm512_maskz_loadu_ps(m, a + v), f = _mm512_maskz_loadu_ps(m, a + K + v);
            __m512 g = _mm512_maskz_loadu_ps(m, a + 2 * K + v), o = _mm512_maskz_loadu_ps(m, a + 3 * K + v);
            __m512 tc = fnn_lstm_tanh16(_mm512_maskz_loadu_ps(m, cc + v));
            __m512 d_h = _mm512_add_ps(_mm512_maskz_loadu_ps(m, gh + v), _mm512_loadu_ps(s + v));
            __m512 d_c = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dc + v),
                                       _mm512_mul_ps(_mm512_mul_ps(d_h, o), _mm512_fnmadd_ps(tc, tc, one)));
            __m512 vi = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d_c, g), i), _mm512_sub_ps(one, i));
            __m512 vf = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d_c, _mm512_maskz_loadu_ps(m, cp + v)), f),
                                      _mm512_sub_ps(one, f));
            __m512 vg = _mm512_mul_ps(_mm512_mul_ps(d_c, i), _mm512_fnmadd_ps(g, g, one));
            __m512 vo = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d_h, tc), o), _mm512_sub_ps(one, o));
            if (clip > 0.0f) {
                vi = _mm512_min_ps(hi, _mm512_max_ps(lo, vi));
                vf = _mm512_min_ps(hi, _mm512_max_ps(lo, vf));
                vg = _mm512_min_ps(hi, _mm512_max_ps(lo, vg));
                vo = _mm512_min_ps(hi, _mm512_max_ps(lo, vo));
            }
            _mm512_mask_storeu_ps(da + v, m, vi);
            _mm512_mask_storeu_ps(da + K + v, m, vf);
            _mm512_mask_storeu_ps(da + 2 * K + v, m, vg);
            _mm512_mask_storeu_ps(da + 3 * K + v, m, vo);
            _mm512_mask_storeu_ps(dc + v, m, _mm512_mul_ps(d_c, f));
        }
    }
    #endif

    /* A forward tile of step t: rows i0 .. i0+mr, units u0 .. u0+nu (nu <= VW).  hp = &H[t, i0, 0] (rows of K);
     * cp = &C[t, i0, u0]; x = &X[t, i0, u0], b = &b[u0] (gate g at + g K); panel: forward panel of u0;
     * a = &A[t, i0, u0] OUT (the activations, gate g at + g K); c = &C[t+1, i0, u0], h = &H[t+1, i0, u0] OUT. */
    #define FNN_LSTM_FWD_TILE(SFX, T, VW, TGT)                                                             \\
    TGT static inline void fnn_lstm_fwd_tile##SFX(const T *restrict hp, const T *restrict cp, const T *restrict x,   \\
                                              const T *restrict b, const T *restrict panel, T *restrict a,   \\
                                              T *restrict c, T *restrict h, ptrdiff_t K, int mr, ptrdiff_t nu) { \\
        T acc[FNN_LSTM_MRMAX * 4 * VW];                                                                      \\
        for (int r = 0; r < mr; r++)                                                                         \\
            for (int g = 0; g < 4; g++) fnn_lstm_prefetch(x + r * 4 * K + g * K, nu * sizeof(T), 0);        \\
        fnn_lstm_mk##SFX(mr, hp, K, panel, K, acc);                                                          \\
        for (int r = 0; r < mr; r++)                                                                         \\
            fnn_lstm_fwd_row##SFX(acc + r * 4 * VW, x + r * 4 * K, b, cp + r * K, a + r * 4 * K, c + r * K,  \\
                                  h + r * K, K, nu);                                                         \\
    }

    /* A backward tile: rows i0 .. i0+mr, units q0 .. q0+nq (nq <= 4VW).  The carry d loss / d h_t =
     * dA[t+1] @ W (dan = &dA[t+1, i0, 0], rows of 4K; NULL at t = T-1: zero) is computed first.  Then, when
     * da != NULL, the cell's backward step t: a = &A[t, i0, q0], cp = &C[t, i0, q0], cc = &C[t+1, i0, q0],
     * gh = &dH[t, i0, q0] IN; dc = &dc[i0, q0] INOUT; da = &dA[t, i0, q0] OUT (see the rows above).  When
     * da == NULL (after step 0) the carry goes to dh0 = &dh0[i0, q0] instead. */
    #define FNN_LSTM_BWD_TILE(SFX, T, VW, TGT)                                                             \\
    TGT static inline void fnn_lstm_bwd_tile##SFX(const T *restrict dan, const T *restrict panel, ptrdiff_t K,   \\
                                              int mr, ptrdiff_t nq, const T *restrict a, const T *restrict cp, \\
                                              const T *restrict cc, const T *restrict gh, T *restrict dc,      \\
                                              T *restrict da, T *restrict dh0, T clip) {                      \\
        T acc[FNN_LSTM_MRMAX * 4 * VW];                                                                      \\
        if (da != NULL)                                                                                      \\
            for (int r = 0; r < mr; r++) {                                                                   \\
                for (int g = 0; g < 4; g++) fnn_lstm_prefetch(a + r * 4 * K + g * K, nq * sizeof(T), 0);    \\
                fnn_lstm_prefetch(gh + r * K, nq * sizeof(T), 0);                                            \\
            }                                                                                                \\
        if (dan != NULL)                                                                                     \\
            fnn_lstm_mk##SFX(mr, dan, 4 * K, panel, 4 * K, acc);                                             \\
        else                                                                                                 \\
            memset(acc, 0, sizeof acc);                                                                      \\
        for (int r = 0; r < mr; r++) {                                                                       \\
            if (da == NULL)                                                                                  \\
                memcpy(dh0 + r * K, acc + r * 4 * VW, nq * sizeof(T));                                       \\
            else                                                                                             \\
                fnn_lstm_bwd_row##SFX(acc + r * 4 * VW, a + r * 4 * K, cp + r * K, cc + r * K, gh + r * K,   \\
                                      dc + r * K, da + r * 4 * K, K, nq, clip);                              \\
        }                                                                                                    \\
    }

    /* One path's functions: micro-kernels, packing, rows (ROWF: the float rows' suffix, _f<p> for the generic loop
     * or 16_f for the AVX-512 intrinsics) and tiles. */
    #define FNN_LSTM_PATH(P, VB, TGT, ROWTGT)                                                                 \\
    FNN_LSTM_MK_ALL(_f##P, float, ((VB) / 4), TGT)                                                            \\
    FNN_LSTM_MK_ALL(_d##P, double, ((VB) / 8), TGT)                                                           \\
    FNN_LSTM_PACK(_f##P, float, ((VB) / 4))                                                                   \\
    FNN_LSTM_PACK(_d##P, double, ((VB) / 8))                                                                  \\
    FNN_LSTM_FWD_ROW(_d##P, double, ((VB) / 8), fnn_sigmoid, tanh, , ROWTGT)                                  \\
    FNN_LSTM_BWD_ROW(_d##P, double, tanh, , ROWTGT)                                                           \\
    FNN_LSTM_FWD_TILE(_f##P, float, ((VB) / 4), TGT)                                                          \\
    FNN_LSTM_FWD_TILE(_d##P, double, ((VB) / 8), TGT)                                                         \\
    FNN_LSTM_BWD_TILE(_f##P, float, ((VB) / 4), TGT)                                                          \\
    FNN_LSTM_BWD_TILE(_d##P, double, ((VB) / 8), TGT)

    #if FNN_LSTM_VEC && defined(__AVX512F__)
    #  define fnn_lstm_fwd_row_f0 fnn_lstm_fwd_row16_f
    #  define fnn_lstm_bwd_row_f0 fnn_lstm_bwd_row16_f
    #else
    FNN_LSTM_FWD_ROW(_f0, float, (FNN_LSTM_VB0 / 4), fnn_sigmoidf, fnn_tanhf, FNN_SIMD, FNN_LSTM_ROWTGT0)
    FNN_LSTM_BWD_ROW(_f0, float, fnn_tanhf, FNN_SIMD, FNN_LSTM_ROWTGT0)
    #endif
    FNN_LSTM_PATH(0, FNN_LSTM_VB0, FNN_LSTM_TGT0, FNN_LSTM_ROWTGT0)
    #if FNN_DISPATCH
    FNN_LSTM_FWD_ROW(_f1, float, (FNN_LSTM_VB1 / 4), fnn_sigmoidf, fnn_tanhf, FNN_SIMD, FNN_LSTM_ROWTGT1)
    FNN_LSTM_BWD_ROW(_f1, float, fnn_tanhf, FNN_SIMD, FNN_LSTM_ROWTGT1)
    FNN_LSTM_PATH(1, FNN_LSTM_VB1, FNN_LSTM_TGT1, FNN_LSTM_ROWTGT1)
    #  define fnn_lstm_fwd_row_f2 fnn_lstm_fwd_row16_f
    #  define fnn_lstm_bwd_row_f2 fnn_lstm_bwd_row16_f
    FNN_LSTM_PATH(2, FNN_LSTM_VB2, FNN_LSTM_TGT2, FNN_LSTM_ROWTGT2)
    /* path p's NAME##SFX##p(ARGS) */
    #  define FNN_LSTM_CALL(path, NAME, SFX, ARGS)                                                                \\
        switch (path) {                                                                                          \\
            case FNN_PATH_AVX512: NAME##SFX##2 ARGS; break;                                                      \\
            case FNN_PATH_AVX2: NAME##SFX##1 ARGS; break;                                                        \\
            default: NAME##SFX##0 ARGS; break;                                                                   \\
        }
    #  define FNN_LSTM_PICK(path, V0, V1, V2) ((path) == FNN_PATH_AVX512 ? (V2) : (path) == FNN_PATH_AVX2 ? (V1) : (V0))
    #else
    #  define FNN_LSTM_CALL(path, NAME, SFX, ARGS) { (void) (path); NAME##SFX##0 ARGS; }
    #  define FNN_LSTM_PICK(path, V0, V1, V2) ((void) (path), (V0))
    #  define FNN_LSTM_VB1 FNN_LSTM_VB0
    #  define FNN_LSTM_VB2 FNN_LSTM_VB0
    #  define FNN_LSTM_MR1 FNN_LSTM_MR0
    #  define FNN_LSTM_MR2 FNN_LSTM_MR0
    #endif

    /* What the Cython side calls: path (FNN_PATH_*, one of fnn_cpu_paths()) picks the code, the rest as above. */
    static inline int fnn_lstm_mr(int path) { return FNN_LSTM_PICK(path, FNN_LSTM_MR0, FNN_LSTM_MR1, FNN_LSTM_MR2); }
    static inline int fnn_lstm_vw_f(int path) {
        return FNN_LSTM_PICK(path, FNN_LSTM_VB0, FNN_LSTM_VB1, FNN_LSTM_VB2) / 4;
    }
    static inline int fnn_lstm_vw_d(int path) {
        return FNN_LSTM_PICK(path, FNN_LSTM_VB0, FNN_LSTM_VB1, FNN_LSTM_VB2) / 8;
    }
    #define FNN_LSTM_ENTRY(T, SFX)                                                                              \\
    static void fnn_lstm_pack_fwd##SFX(int path, const T *W, ptrdiff_t K, T *out, ptrdiff_t p) {               \\
        FNN_LSTM_CALL(path, fnn_lstm_pack_fwd, SFX, (W, K, out, p))                                             \\
    }                                                                                                          \\
    static void fnn_lstm_pack_bwd##SFX(int path, const T *W, ptrdiff_t K, T *out, ptrdiff_t q) {               \\
        FNN_LSTM_CALL(path, fnn_lstm_pack_bwd, SFX, (W, K, out, q))                                             \\
    }                                                                                                          \\
    static void fnn_lstm_fwd_tile##SFX(int path, const T *hp, const T *cp, const T *x, const T *b,             \\
                                       const T *panel, T *a, T *c, T *h, ptrdiff_t K, int mr, ptrdiff_t nu) {  \\
        FNN_LSTM_CALL(path, fnn_lstm_fwd_tile, SFX, (hp, cp, x, b, panel, a, c, h, K, mr, nu))                  \\
    }                                                                                                          \\
    static void fnn_lstm_bwd_tile##SFX(int path, const T *dan, const T *panel, ptrdiff_t K, int mr,            \\
                                       ptrdiff_t nq, const T *a, const T *cp, const T *cc, const T *gh, T *dc, \\
                                       T *da, T *dh0, T clip) {                                                \\
        FNN_LSTM_CALL(path, fnn_lstm_bwd_tile, SFX, (dan, panel, K, mr, nq, a, cp, cc, gh, dc, da, dh0, clip))  \\
    }
    FNN_LSTM_ENTRY(float, _f)
    FNN_LSTM_ENTRY(double, _d)
    """
    int fnn_lstm_mr(int path) noexcept nogil
    int fnn_lstm_vw_f(int path) noexcept nogil
    int fnn_lstm_vw_d(int path) noexcept nogil
    void *fnn_lstm_align(void *raw) noexcept nogil
    void fnn_lstm_pack_fwd_f(int path, const float *W, Py_ssize_t K, float *out, Py_ssize_t p) noexcept nogil
    void fnn_lstm_pack_fwd_d(int path, const double *W, Py_ssize_t K, double *out, Py_ssize_t p) noexcept nogil
    void fnn_lstm_pack_bwd_f(int path, const float *W, Py_ssize_t K, float *out, Py_ssize_t q) noexcept nogil
    void fnn_lstm_pack_bwd_d(int path, const double *W, Py_ssize_t K, double *out, Py_ssize_t q) noexcept nogil
    void fnn_lstm_fwd_tile_f(int path, const float *hp, const float *cp, const float *x, const float *b,
                             const float *panel, float *a, float *c, float *h, Py_ssize_t K, int mr,
                             Py_ssize_t nu) noexcept nogil
    void fnn_lstm_fwd_tile_d(int path, const double *hp, const double *cp, const double *x, const double *b,
                             const double *panel, double *a, double *c, double *h, Py_ssize_t K, int mr,
                             Py_ssize_t nu) noexcept nogil
    void fnn_lstm_bwd_tile_f(int path, const float *dan, const float *panel, Py_ssize_t K, int mr, Py_ssize_t nq,
                             const float *a, const float *cp, const float *cc, const float *gh, float *dc, float *da,
                             float *dh0, float clip) noexcept nogil
    void fnn_lstm_bwd_tile_d(int path, const double *dan, const double *panel, Py_ssize_t K, int mr, Py_ssize_t nq,
                             const double *a, const double *cp, const double *cc, const double *gh, double *dc,
                             double *da, double *dh0, double clip) noexcept nogil


# ---- which compiled code runs (fnn_math.h: path 0 = the build's flags, 1 = AVX2 + FMA, 2 = AVX-512) -----------------

cdef int _path = 0    # the path the kernels use (fastnn._ext._info.path_number); read once per call


def _vector_paths():
    """Names of the vector paths this build has and this CPU can run, the fastest first (_info.vector_paths)."""
    return _info.vector_paths()


def _vector_path():
    """The name of the vector path the LSTM kernels use now."""
    return _info.path_name(_path)


def _set_vector_path(name):
    """Make the LSTM kernels use the path called `name` (one of _vector_paths()); None: the default (the fastest).
    For tests and benchmarks: each path's results are fixed, the paths differ from each other by rounding."""
    global _path
    _path = _info.path_number(name)


_set_vector_path(_info.vector_path())


cdef inline void pack_fwd(int path, const floating *W, Py_ssize_t K, floating *out, Py_ssize_t p) noexcept nogil:
    if floating is float:
        fnn_lstm_pack_fwd_f(path, W, K, out, p)
    else:
        fnn_lstm_pack_fwd_d(path, W, K, out, p)


cdef inline void pack_bwd(int path, const floating *W, Py_ssize_t K, floating *out, Py_ssize_t q) noexcept nogil:
    if floating is float:
        fnn_lstm_pack_bwd_f(path, W, K, out, q)
    else:
        fnn_lstm_pack_bwd_d(path, W, K, out, q)


cdef inline void fwd_tile(int path, const floating *hp, const floating *cp, const floating *x, const floating *b,
                          const floating *panel, floating *a, floating *c, floating *h, Py_ssize_t K, int mr,
                          Py_ssize_t nu) noexcept nogil:
    if floating is float:
        fnn_lstm_fwd_tile_f(path, hp, cp, x, b, panel, a, c, h, K, mr, nu)
    else:
        fnn_lstm_fwd_tile_d(path, hp, cp, x, b, panel, a, c, h, K, mr, nu)


cdef inline void bwd_tile(int path, const floating *dan, const floating *panel, Py_ssize_t K, int mr, Py_ssize_t nq,
                          const floating *a, const floating *cp, const floating *cc, const floating *gh,
                          floating *dc, floating *da, floating *dh0, floating clip) noexcept nogil:
    if floating is float:
        fnn_lstm_bwd_tile_f(path, dan, panel, K, mr, nq, a, cp, cc, gh, dc, da, dh0, clip)
    else:
        fnn_lstm_bwd_tile_d(path, dan, panel, K, mr, nq, a, cp, cc, gh, dc, da, dh0, clip)


cdef inline int row_threads(Py_ssize_t B, Py_ssize_t K, Py_ssize_t mr, int n_threads) noexcept nogil:
    """Threads for a sweep over B rows whose steps each cost B x 4K x K multiply-adds: one per ~1M of them per step
    and at most one per block of mr rows (the tasks)."""
    cdef int nt = threads_for(B * 4 * K * K // 32, n_threads)
    cdef Py_ssize_t most = (B + mr - 1) // mr
    return nt if nt < most else <int> most


def _lstm_forward(const floating[:, :, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  floating[:, :, ::1] A, floating[:, :, ::1] H, floating[:, :, ::1] C, int n_threads):
    """X (T, B, 4K) IN projected inputs; W (4K, K) IN; b (4K,) IN; A (T, B, 4K) OUT: the gates' activations;
    H, C (T + 1, B, K) INOUT: H[0], C[0] = the starting state on entry, H[t + 1] = h_t, C[t + 1] = c_t on exit."""
    cdef Py_ssize_t T = X.shape[0], B = X.shape[1], K4 = X.shape[2], K = K4 // 4, t, p, r, i0, u0
    cdef int path = _path
    cdef Py_ssize_t vw, mr = fnn_lstm_mr(path), n_pan, n_rb
    cdef int nt, m
    cdef void *raw
    cdef floating *wp
    if floating is float:
        vw = fnn_lstm_vw_f(path)
    else:
        vw = fnn_lstm_vw_d(path)
    if T == 0 or B == 0 or K == 0:
        return
    n_pan = (K + vw - 1) // vw
    n_rb = (B + mr - 1) // mr
    nt = row_threads(B, K, mr, n_threads)
    raw = malloc(n_pan * vw * K4 * sizeof(floating) + 64)
    if raw == NULL:
        raise MemoryError()
    wp = <floating *> fnn_lstm_align(raw)
    with nogil:
        # packing is a copy of W (a small part of a sweep): done here, not in a parallel region of its own, whose
        # start would wait for a second thread to wake once more per call
        for p in range(n_pan):
            pack_fwd(path, &W[0, 0], K, wp, p)
        # a block of rows is one task for the whole sequence: no barrier between steps.  Blocks are handed out as
        # threads come free, so a thread that shares its core (a BLAS thread still spinning after its call, another
        # process) takes fewer of them instead of holding the others back
        for r in prange(n_rb, schedule="dynamic", num_threads=nt):
            i0 = r * mr
            m = <int> min(mr, B - i0)
            for t in range(T):
                for p in range(n_pan):
                    u0 = p * vw
                    fwd_tile(path, &H[t, i0, 0], &C[t, i0, u0], &X[t, i0, u0], &b[u0], wp + u0 * K4, &A[t, i0, u0],
                             &C[t + 1, i0, u0], &H[t + 1, i0, u0], K, m, min(vw, K - u0))
    free(raw)


def _lstm_backward(const floating[:, :, ::1] dH, const floating[:, :, ::1] A, const floating[:, :, ::1] H,
                   const floating[:, :, ::1] C, const floating[:, ::1] W, floating[:, :, ::1] dA,
                   floating[:, ::1] dW, floating[::1] db, floating[:, ::1] dh0, floating[:, ::1] dc0, double clip,
                   int n_threads):
    """BPTT from step T-1 back to step 0.

    dH (T, B, K) IN: d loss / d h_t from outside the recurrence (the gradient into the final h included in dH[T-1]);
    A (T, B, 4K), H, C (T + 1, B, K) IN from _lstm_forward; W (4K, K) IN;
    dA (T, B, 4K) OUT: d loss / d a_t (= d loss / d x_t), clipped to [-clip, clip] when clip > 0;
    dW (4K, K) OUT; db (4K,) OUT; dh0 (B, K) OUT: d loss / d h_0;
    dc0 (B, K) INOUT: d loss / d c_T from outside on entry (zeros if none), d loss / d c_0 on exit.
    """
    cdef Py_ssize_t T = dH.shape[0], B = dH.shape[1], K = dH.shape[2], K4 = 4 * K, t, s, q, r, i0, u0
    cdef int path = _path
    cdef Py_ssize_t i, j, blk, bhi, vw4, mr = fnn_lstm_mr(path), n_pan, n_rb, n_blocks = (K4 + 255) // 256
    cdef int nt, m
    cdef floating c = <floating> clip
    cdef void *raw
    cdef floating *wp
    if floating is float:
        vw4 = 4 * fnn_lstm_vw_f(path)
    else:
        vw4 = 4 * fnn_lstm_vw_d(path)
    if B == 0 or K == 0:
        return
    n_pan = (K + vw4 - 1) // vw4
    n_rb = (B + mr - 1) // mr
    nt = row_threads(B, K, mr, n_threads)
    if T == 0:
        memset(&dh0[0, 0], 0, B * K * sizeof(floating))
    else:
        raw = malloc(n_pan * vw4 * K4 * sizeof(floating) + 64)
        if raw == NULL:
            raise MemoryError()
        wp = <floating *> fnn_lstm_align(raw)
        with nogil:
            for q in range(n_pan):
                pack_bwd(path, &W[0, 0], K, wp, q)
            # a block of rows is one task for the whole sweep (as in the forward); pass s: the carry
            # d loss / d h_t = dA[t+1] @ W, then the cell's backward step t = T-1-s; the last pass (t = -1) only
            # sends the carry to dh0
            for r in prange(n_rb, schedule="dynamic", num_threads=nt):
                i0 = r * mr
                m = <int> min(mr, B - i0)
                for s in range(T + 1):
                    t = T - 1 - s
                    for q in range(n_pan):
                        u0 = q * vw4
                        if t < 0:
                            bwd_tile(path, &dA[0, i0, 0], wp + u0 * K4, K, m, min(vw4, K - u0), NULL, NULL, NULL, NULL,
                                     NULL, NULL, &dh0[i0, u0], c)
                        else:
                            bwd_tile(path, &dA[t + 1, i0, 0] if t < T - 1 else NULL, wp + u0 * K4, K, m,
                                     min(vw4, K - u0), &A[t, i0, u0], &C[t, i0, u0], &C[t + 1, i0, u0],
                                     &dH[t, i0, u0], &dc0[i0, u0], &dA[t, i0, u0], NULL, c)
        free(raw)
    with nogil:
        # dW = sum_t da_t^T h_{t-1}: one product over all T*B rows
        if T > 0:
            gemm_rm(True, False, <int> K4, <int> K, <int> (T * B), <floating> 1.0, &dA[0, 0, 0], <int> K4,
                    &H[0, 0, 0], <int> K, <floating> 0.0, &dW[0, 0], <int> K)
        # db: rows added in order, threads own column blocks (the same bits for any thread count)
        for blk in prange(n_blocks, schedule="static", num_threads=threads_for(T * B * K4, n_threads)):
            bhi = blk * 256 + 256
            if bhi > K4:
                bhi = K4
            for j in range(blk * 256, bhi):
                db[j] = 0
            for t in range(T):
                for i in range(B):
                    for j in range(blk * 256, bhi):
                        db[j] = db[j] + dA[t, i, j]
