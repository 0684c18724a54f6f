/* The float32 output layer's products as AVX-512 register tiles (csrc/_softmax.pyx's _output_layer, tile path).
 *
 * Why not BLAS: the layer runs three products per block of output rows (logits, the share of dh, dW), each of
 * (B x H x block) ~ (128 x 256 x 256), and single-threaded OpenBLAS spent a third of its time outside its FMA loop on
 * them (packing both operands for every call, h again and again, and zeroing dW before writing it; 2-vCPU AVX-512
 * Xeon, V = 10^4, one thread: 57 % of the samples in sgemm_kernel, 17 % in its copy routines, 5 % in memset), which
 * held the layer at 70 % of one large GEMM's rate.  Here every operand is read in place: the layer keeps its logits
 * transposed, a tile Z (block x Bp) per block of rows (Bp = B rounded up to 16, the extra columns zero inputs whose
 * results are never used), h once transposed (hT, H x Bp) and once with rows padded to Hp (hp), so that each product
 * is "broadcast one value of a row-major matrix, multiply a row of another":
 *   logits   Z[v, i]   = b[v] + sum_k W[v, k] hT[k, i]      (a = W rows,            p = hT)
 *   dh share D[k, i]  += sum_v W[v, k] E[v, i]               (a = W columns,         p = E, the exps tile)
 *   dW       dW[v, k]  = sum_i G[v, i] hp[i, k]              (a = G rows (gradient), p = hp)
 * The micro-kernel keeps MR x NV vectors of 16 sums in registers (6 x 4: 24 of the 32 zmm registers) and adds over
 * k in order, so each result is one sum in a fixed order: the same bits for any thread count.  The p rows must start
 * on 64-byte boundaries (kernels.py allocates the work so): a vector load that straddles two cache lines made the
 * tiles 1.3x slower, as NumPy's 16-byte aligned buffers did at first.
 *
 * Compiled where AVX-512 code can run: the native build on an AVX-512 CPU (path 0), or path 2 of a portable build
 * (target attributes, fnn_math.h).  fnn_ol_tiles(path) says whether `path` has it; the other paths keep the BLAS code.
 */
#ifndef FNN_OUTLAYER_H
#define FNN_OUTLAYER_H
#include "fnn_math.h"

#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#  define FNN_OL 1
#  define FNN_OL_TGT
#elif FNN_DISPATCH
#  define FNN_OL 1
#  define FNN_OL_TGT FNN_TARGET_AVX512
#else
#  define FNN_OL 0
#endif

/* 1 when path `path` (FNN_PATH_*) runs the tile code. */
static inline int fnn_ol_tiles(int path) {
#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
    (void) path;
    return 1;
#elif FNN_OL
    return path == FNN_PATH_AVX512;
#else
    (void) path;
    return 0;
#endif
}

#define FNN_OL_MR 6
#define FNN_OL_NV 4
/* Steps of a product's sum per sweep over its tiles (logits and dh): the rows of the multiplied panel (FNN_OL_KC x
 * 16 NV floats, 16 KiB) then stay in L1 for every tile of the sweep, where a panel of all 256 rows (64 KiB) came from
 * L2 at each tile.  64 and 128 ran the same on the Xeon (48 KiB L1); 64 leaves room in Zen 4's 32 KiB. */
#ifndef FNN_OL_KC
#define FNN_OL_KC 64
#endif

#if FNN_OL
#include <immintrin.h>

/* c (mr x 16 nv, row stride ldc) = [bias per row +] [c +] sum over k < kd of a[r sar + k sak] * p[k ldp + col]:
 * p's rows hold 16 nv floats (padded), c's last vector only the lanes of `last` (its loads and stores masked).
 * stream: c's whole, 64-byte aligned vectors are written with streaming stores.  pf, pf_n: lines to prefetch. */
FNN_OL_TGT static inline __attribute__((always_inline)) void fnn_ol_mk_body(
        const int mr, const int nv, ptrdiff_t kd, const float *a, ptrdiff_t sar, ptrdiff_t sak, const float *p,
        ptrdiff_t ldp, float *c, ptrdiff_t ldc, int add, const float *bias, __mmask16 last, const float *pf,
        ptrdiff_t pf_n, int stream) {
    __m512 acc[FNN_OL_MR][FNN_OL_NV];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int q = 0; q < nv; q++) {
            __mmask16 m = q == nv - 1 ? last : (__mmask16) 0xFFFF;
            if (add) acc[r][q] = _mm512_maskz_loadu_ps(m, c + r * ldc + 16 * q);
            else if (bias) acc[r][q] = _mm512_set1_ps(bias[r]);
            else acc[r][q] = _mm512_setzero_ps();
        }
    }
    ptrdiff_t pf_acc = 0;
    for (ptrdiff_t k = 0; k < kd; k++) {
        const float *pk = p + k * ldp;
        __m512 b[FNN_OL_NV];
#pragma GCC unroll 4
        for (int q = 0; q < nv; q++)
            b[q] = _mm512_loadu_ps(pk + 16 * q);
        /* ask for the lines of the next tile's rows of a (pf_n of them, spread over the kd steps) while the FMAs run */
        if (pf) {
            for (pf_acc += pf_n; pf_acc >= kd; pf_acc -= kd, pf += 16) __builtin_prefetch(pf, 0, 3);
        }
        const float *ak = a + k * sak;
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m512 s = _mm512_set1_ps(ak[r * sar]);
#pragma GCC unroll 4
            for (int q = 0; q < nv; q++) acc[r][q] = _mm512_fmadd_ps(s, b[q], acc[r][q]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++) {
#pragma GCC unroll 4
        for (int q = 0; q < nv; q++) {
            float *cq = c + r * ldc + 16 * q;
            if (q == nv - 1 && last != (__mmask16) 0xFFFF) _mm512_mask_storeu_ps(cq, last, acc[r][q]);
            else if (stream && !((uintptr_t) cq & 63)) _mm512_stream_ps(cq, acc[r][q]);
            else _mm512_storeu_ps(cq, acc[r][q]);
        }
    }
}

#define FNN_OL_MK_CASE(MR, NV) \
    case (MR) * 8 + (NV): fnn_ol_mk_body(MR, NV, kd, a, sar, sak, p, ldp, c, ldc, add, bias, last, pf, pf_n, stream); \
        break;
#define FNN_OL_MK_ROW(MR) FNN_OL_MK_CASE(MR, 1) FNN_OL_MK_CASE(MR, 2) FNN_OL_MK_CASE(MR, 3) FNN_OL_MK_CASE(MR, 4)

FNN_OL_TGT static inline __attribute__((always_inline)) void fnn_ol_mk(int mr, int nv, ptrdiff_t kd, const float *a, ptrdiff_t sar, ptrdiff_t sak,
                                 const float *p, ptrdiff_t ldp, float *c, ptrdiff_t ldc, int add, const float *bias,
                                 __mmask16 last, const float *pf, ptrdiff_t pf_n, int stream) {
    switch (mr * 8 + nv) {
        FNN_OL_MK_ROW(1) FNN_OL_MK_ROW(2) FNN_OL_MK_ROW(3) FNN_OL_MK_ROW(4) FNN_OL_MK_ROW(5) FNN_OL_MK_ROW(6)
        default: break;
    }
}
#undef FNN_OL_MK_ROW
#undef FNN_OL_MK_CASE

/* Lines of 16 floats in the next tile of up to MR rows of H (n rows left after this tile) */
#define FNN_OL_PF_LINES(n, H) ((((n) < FNN_OL_MR ? (n) : FNN_OL_MR) * (H) + 15) / 16)

/* Z (w x Bp) = b[v] + W (w rows of H) hT (H x Bp). */
FNN_OL_TGT static __attribute__((noinline)) void fnn_ol_logits_f(const float *W, const float *b, ptrdiff_t w, ptrdiff_t H, const float *hT,
                                       ptrdiff_t Bp, float *Z) {
    for (ptrdiff_t i0 = 0; i0 < Bp; i0 += 16 * FNN_OL_NV) {
        ptrdiff_t nv = (Bp - i0) / 16 < FNN_OL_NV ? (Bp - i0) / 16 : FNN_OL_NV;
        for (ptrdiff_t k0 = 0; k0 < H; k0 += FNN_OL_KC) {
            ptrdiff_t kd = H - k0 < FNN_OL_KC ? H - k0 : FNN_OL_KC;
            int first = i0 == 0 && k0 == 0;
            for (ptrdiff_t v0 = 0; v0 < w; v0 += FNN_OL_MR) {
                int mr = w - v0 < FNN_OL_MR ? (int) (w - v0) : FNN_OL_MR;
                /* W's rows come from memory: the first sweep over the block asks for the next tile's rows */
                fnn_ol_mk(mr, (int) nv, kd, W + v0 * H + k0, H, 1, hT + k0 * Bp + i0, Bp, Z + v0 * Bp + i0, Bp,
                          k0 > 0, k0 == 0 ? b + v0 : NULL, 0xFFFF, first ? W + (v0 + mr) * H : NULL,
                          first ? FNN_OL_PF_LINES(w - v0 - mr, H) : 0, 0);
            }
        }
    }
}

/* D (H x Bp) (+)= W^T (H x w) E (w x Bp): D's rows are W's columns. add 0 writes D, 1 adds to it. */
FNN_OL_TGT static __attribute__((noinline)) void fnn_ol_dh_f(const float *W, ptrdiff_t w, ptrdiff_t H, const float *E, ptrdiff_t Bp, float *D,
                                   int add) {
    for (ptrdiff_t i0 = 0; i0 < Bp; i0 += 16 * FNN_OL_NV) {
        ptrdiff_t nv = (Bp - i0) / 16 < FNN_OL_NV ? (Bp - i0) / 16 : FNN_OL_NV;
        for (ptrdiff_t v0 = 0; v0 < w; v0 += FNN_OL_KC) {
            ptrdiff_t kd = w - v0 < FNN_OL_KC ? w - v0 : FNN_OL_KC;
            for (ptrdiff_t k0 = 0; k0 < H; k0 += FNN_OL_MR) {
                int mr = H - k0 < FNN_OL_MR ? (int) (H - k0) : FNN_OL_MR;
                fnn_ol_mk(mr, (int) nv, kd, W + v0 * H + k0, 1, H, E + v0 * Bp + i0, Bp, D + k0 * Bp + i0, Bp,
                          add || v0 > 0, NULL, 0xFFFF, NULL, 0, 0);
            }
        }
    }
}

/* dW (w x H, row stride H) = G (w x Bp, first B columns) h (B x H, as hp: rows padded to Hp). */
FNN_OL_TGT static __attribute__((noinline)) void fnn_ol_dw_f(const float *G, ptrdiff_t w, ptrdiff_t Bp, ptrdiff_t B,
                                                             const float *hp, ptrdiff_t Hp, ptrdiff_t H, float *dW,
                                                             int stream) {
    for (ptrdiff_t c0 = 0; c0 < H; c0 += 16 * FNN_OL_NV) {
        ptrdiff_t n = H - c0 < 16 * FNN_OL_NV ? H - c0 : 16 * FNN_OL_NV;
        int nv = (int) ((n + 15) / 16);
        __mmask16 last = (__mmask16) (n % 16 ? (1u << (n % 16)) - 1 : 0xFFFF);
        for (ptrdiff_t v0 = 0; v0 < w; v0 += FNN_OL_MR) {
            int mr = w - v0 < FNN_OL_MR ? (int) (w - v0) : FNN_OL_MR;
            fnn_ol_mk(mr, nv, B, G + v0 * Bp, Bp, 1, hp + c0, Hp, dW + v0 * H + c0, H, 0, NULL, last, NULL, 0, stream);
        }
    }
    if (stream) _mm_sfence();   /* the streaming stores are seen before any later store (e.g. the end of the loop) */
}

/* m[i] = max over v < w of Z[v, i] (NaN when any is NaN), i < Bp. */
FNN_OL_TGT static void fnn_ol_colmax_f(const float *Z, ptrdiff_t w, ptrdiff_t Bp, float *m) {
    for (ptrdiff_t i0 = 0; i0 < Bp; i0 += 16) {
        __m512 mx = _mm512_set1_ps(-INFINITY);
        __mmask16 nan = 0;
        for (ptrdiff_t v = 0; v < w; v++) {
            __m512 x = _mm512_loadu_ps(Z + v * Bp + i0);
            nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
            mx = _mm512_max_ps(mx, x);
        }
        _mm512_storeu_ps(m + i0, _mm512_mask_mov_ps(mx, nan, _mm512_set1_ps(NAN)));
    }
}

/* Z[v, i] = exp(Z[v, i] - R[i]) (Z <= R), in place; s[i] = the sum over v of the exps, in v order. */
FNN_OL_TGT static void fnn_ol_exp_f(float *Z, ptrdiff_t w, ptrdiff_t Bp, const float *R, float *s) {
    for (ptrdiff_t i0 = 0; i0 < Bp; i0 += 16) {
        float acc[16] = {0.0f}, r[16];
        memcpy(r, R + i0, sizeof r);
        for (ptrdiff_t v = 0; v < w; v++) {
            float *z = Z + v * Bp + i0;
            FNN_SIMD
            for (int l = 0; l < 16; l++) {
                float e = fnn_expf_nonpos(z[l] - r[l]);
                z[l] = e;
                acc[l] += e;
            }
        }
        memcpy(s + i0, acc, sizeof acc);
    }
}

/* D[k, i] *= f[i] for k < n (a dh share's columns brought to a larger running maximum). */
FNN_OL_TGT static void fnn_ol_scale_cols_f(float *D, ptrdiff_t n, ptrdiff_t Bp, const float *f) {
    for (ptrdiff_t k = 0; k < n; k++) {
        float *d = D + k * Bp;
        FNN_SIMD
        for (ptrdiff_t i = 0; i < Bp; i++) d[i] *= f[i];
    }
}

/* The gradient tile G[v, i] = E[v, i] c[i] - (v == t[i] ? sc : 0) (c[i] = 0 past B), and db[v] = its sum over the
 * first B columns (16 lanes of running sums, then the lanes in order). */
FNN_OL_TGT static void fnn_ol_grad_f(const float *E, ptrdiff_t w, ptrdiff_t Bp, ptrdiff_t B, const float *c,
                                     const int *t, float sc, float *G, float *db) {
    for (ptrdiff_t v = 0; v < w; v++) {
        const float *e = E + v * Bp;
        float *g = G + v * Bp;
        int vv = (int) v;
        FNN_SIMD
        for (ptrdiff_t i = 0; i < Bp; i++) g[i] = e[i] * c[i] - (t[i] == vv ? sc : 0.0f);
        float acc[16] = {0.0f};
        ptrdiff_t i = 0;
        for (; i + 16 <= B; i += 16) {
            FNN_SIMD
            for (int l = 0; l < 16; l++) acc[l] += g[i + l];
        }
        for (int l = 0; i + l < B; l++) acc[l] += g[i + l];
        float s = 0.0f;
        for (int l = 0; l < 16; l++) s += acc[l];
        db[v] = s;
    }
}
#endif  /* FNN_OL */

/* What the Cython side calls (no-ops where FNN_OL is 0: fnn_ol_tiles() is then 0 and they are never reached). */
#if FNN_OL
#  define FNN_OL_CALL(X) X
#else
#  define FNN_OL_CALL(X)
#endif
static inline void fnn_ol_logits(const float *W, const float *b, ptrdiff_t w, ptrdiff_t H, const float *hT,
                                 ptrdiff_t Bp, float *Z) { FNN_OL_CALL(fnn_ol_logits_f(W, b, w, H, hT, Bp, Z)); }
static inline void fnn_ol_dh(const float *W, ptrdiff_t w, ptrdiff_t H, const float *E, ptrdiff_t Bp, float *D,
                             int add) { FNN_OL_CALL(fnn_ol_dh_f(W, w, H, E, Bp, D, add)); }
static inline void fnn_ol_dw(const float *G, ptrdiff_t w, ptrdiff_t Bp, ptrdiff_t B, const float *hp, ptrdiff_t Hp,
                             ptrdiff_t H, float *dW, int stream) {
    FNN_OL_CALL(fnn_ol_dw_f(G, w, Bp, B, hp, Hp, H, dW, stream));
}
static inline void fnn_ol_colmax(const float *Z, ptrdiff_t w, ptrdiff_t Bp, float *m) {
    FNN_OL_CALL(fnn_ol_colmax_f(Z, w, Bp, m));
}
static inline void fnn_ol_exp(float *Z, ptrdiff_t w, ptrdiff_t Bp, const float *R, float *s) {
    FNN_OL_CALL(fnn_ol_exp_f(Z, w, Bp, R, s));
}
static inline void fnn_ol_scale_cols(float *D, ptrdiff_t n, ptrdiff_t Bp, const float *f) {
    FNN_OL_CALL(fnn_ol_scale_cols_f(D, n, Bp, f));
}
static inline void fnn_ol_grad(const float *E, ptrdiff_t w, ptrdiff_t Bp, ptrdiff_t B, const float *c,
                               const int *t, float sc, float *G, float *db) {
    FNN_OL_CALL(fnn_ol_grad_f(E, w, Bp, B, c, t, sc, G, db));
}
#undef FNN_OL_CALL
#endif
