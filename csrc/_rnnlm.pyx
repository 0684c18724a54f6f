# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""One truncated-BPTT segment of the Elman RNN LM with a class-factorized output, forward and backward in one call.

    z_t = P[u_t] + W_hh h_{t-1},  P = E[uniq] W_ih^T + b,  h_t = f(z_t)
    log P(w | h) = log softmax(Wc h + bc)[c(w)] + log softmax(W_c(w) h + b_c(w))[w]

Phases (each a parallel loop over fixed tasks, so results are bitwise the same for any number of threads):
  1. the input projection (one row per distinct input word), then the recurrence, streams in fixed chunks of CHUNK
     rows, each chunk stepping through all L steps on its own (no barrier per time step);
  2. the class softmax, ROWS tokens per task: logits, softmax, gradient and its product back to h;
  3. the within-class softmaxes, one class per task (its block rows of dW and its tokens' rows of dh);
  4. BPTT, chunks as in 1; then dW_hh, dWc, dW_ih, the input rows' gradients and the bias sums as one list of
     row-block tasks, the input gradient summed per distinct input word first (one product per word, not per token).
Every matrix product is the register-blocked `fnn_mm_f` below, run inside these loops; none goes through BLAS,
whose own threads would fight the kernels' threads for the cores (`--threads 2` once trained at half the speed of
`--threads 1` that way).  float32 products come in one version per vector width (AVX-512, AVX2 + FMA, SSE2), each
blocked for its own registers; a portable build has all three and picks one per call (_set_vector_path, read once
per call), a native build its own.  The AVX-512 products have two register layouts with the same bits: zmm
(16-float vectors) and ymm (8-float vectors in AVX-512VL's 32 registers), the default on AMD family 19h (Zen 4),
where a 512-bit instruction runs as two 256-bit halves (_set_mm_layout).  The recurrence's activation (float32)
follows the same path; the other element-wise and softmax code runs the build's own instructions.  (Until
2026-12-06 only the AVX-512 blocking was written for its width: a build without AVX-512 ran 16-float generic vectors
split over narrower registers and trained ~12x slower.)
Called only from fastnn/kernels.py (rnnlm_segment), which validates every argument and allocates every buffer.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport log
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memset
from fastnn._ext import _info
from _common cimport threads_for, omp_get_thread_num, act, dact, row_max, row_exp, dot, axpy, adagrad_row

cdef extern from *:
    """
    /* C[r, j] (+)= sum_k A[r*sar + k*sak] * B[k*ldb + j] for r < m, j < n, k < K: A row-major (sar = its row
       length, sak = 1) or transposed (sar = 1, sak = its row length).  Every load of B stays inside columns
       [0, n) of its row; C is written only for j < n.
       float: GCC/clang vector types of the path's own width (fnn_math.h's paths: 0 = the build's flags, 1 = AVX2 +
       FMA, 2 = AVX-512, the last two compiled with target attributes in a portable build and chosen at run time):
       16 floats on AVX-512, 8 on AVX, 4 below (SSE2).  R rows x NV vectors of C stay in registers through the whole
       k loop, R and NV chosen per width so that R * NV accumulators, NV vectors of B and a broadcast fit the
       register file (32 registers on AVX-512, 16 otherwise).  Each element is summed over k in order with one
       rounding per step (one FMA where the path has FMA) whatever the block it falls in, so the rows of a chunk do
       not depend on the chunk, and every path with FMA (AVX2 and AVX-512) gives the same bits; SSE2 rounds the
       product and the sum apart (tests/test_rnnlm.py states and checks the bound). */
    #include "fnn_math.h"
    /* the plain triple loop: float64, float32 without vector extensions, and rows too narrow for a vector;
       MADD(s, a, b) = s + a * b (FNN_MADD1_* below for float32 in the vector paths) */
    #define FNN_MM_PLAIN_BY(T, MADD)                                                                              \
        for (ptrdiff_t r_ = 0; r_ < m; r_++)                                                                      \
            for (ptrdiff_t j_ = 0; j_ < n; j_++) {                                                                \
                T s_ = acc ? C[r_ * ldc + j_] : (T)0;                                                             \
                for (ptrdiff_t k_ = 0; k_ < K; k_++) s_ = MADD(s_, A[r_ * sar + k_ * sak], B[k_ * ldb + j_]);     \
                C[r_ * ldc + j_] = s_;                                                                            \
            }
    #define FNN_MADD_PLAIN(s, a, b) ((s) + (a) * (b))
    #define FNN_MM_PLAIN(T) FNN_MM_PLAIN_BY(T, FNN_MADD_PLAIN)
    /* 16 floats summed by a fixed tree (halves added lane-wise down to one value): the dot products' lanes and the
       class softmax rows' exps */
    static inline float fnn_tree16(const float *t) {
        float h[8], q[4];
        for (int l = 0; l < 8; l++) h[l] = t[l] + t[l + 8];
        for (int l = 0; l < 4; l++) q[l] = h[l] + h[l + 4];
        return (q[0] + q[2]) + (q[1] + q[3]);
    }
    /* 1: the AVX-512 path's products take the ymm layout (FNN_RB_CASES_8Y below).  Set by _set_mm_layout between
       calls (at import: on AMD family 19h), read by every product */
    static int fnn_mm_ymm = 0;
    static void fnn_mm_set_ymm(int on) { fnn_mm_ymm = on; }
    static int fnn_mm_get_ymm(void) { return fnn_mm_ymm; }
    /* AMD family 19h (Zen 3 and Zen 4; only Zen 4 has AVX-512): 512-bit instructions run as two 256-bit halves.
       Zen 5 (1Ah) has whole 512-bit units and keeps the zmm layout, as do Intel's AVX-512 CPUs: on a Xeon of model
       167 (2 cores under KVM, AMX, 2026-12-06) a --preset fast segment took 6.18 ms in zmm against 6.96 in ymm (one
       thread, thread CPU time, min of 30), whole 2-epoch runs 390-435k against 397-420k tokens/s (4 each,
       alternated) */
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #include <cpuid.h>
    static int fnn_cpu_amd_19h(void) {
        unsigned a, b, c, d;
        if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u) return 0;   /* "Auth"(enticAMD) */
        if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
        unsigned family = (a >> 8) & 0xf;
        if (family == 0xf) family += (a >> 20) & 0xff;
        return family == 0x19;
    }
    #else
    static int fnn_cpu_amd_19h(void) { return 0; }
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define FNN_HAVE_DOTS 1
    #if defined(__has_builtin)
    #if __has_builtin(__builtin_shufflevector)
    #define FNN_HAVE_SHUFFLE 1
    #endif
    #endif
    /* path 0's vector width in floats: the widest the build's flags allow */
    #if defined(__AVX512F__)
    #define FNN_MM_VW0 16
    #elif defined(__AVX__)
    #define FNN_MM_VW0 8
    #else
    #define FNN_MM_VW0 4
    #endif
    /* x + a * b per width, for vectors (FNN_MADD_*), a float a times a vector b (FNN_MADDS_*) and floats
       (FNN_MADD1_*): one rounding (an FMA, written out: gcc's Zen tuning declines to contract an accumulation chain
       in a loop, and its in-order vectorisation of a plain reduction multiplies apart) where the path has FMA (paths
       with 16 floats, and 8 with FMA: all but a native AVX build without it), two otherwise */
    #define FNN_MADD_16(VT, x, a, b) _mm512_fmadd_ps((a), (b), (x))
    #define FNN_MADDS_16(VT, x, a, b) _mm512_fmadd_ps(_mm512_set1_ps(a), (b), (x))
    #define FNN_MADD1_16(x, a, b) __builtin_fmaf((a), (b), (x))
    #if defined(__FMA__) || FNN_DISPATCH
    #define FNN_MADD_8(VT, x, a, b) _mm256_fmadd_ps((a), (b), (x))
    #define FNN_MADDS_8(VT, x, a, b) _mm256_fmadd_ps(_mm256_set1_ps(a), (b), (x))
    #define FNN_MADD1_8(x, a, b) __builtin_fmaf((a), (b), (x))
    #else
    #define FNN_MADD_8(VT, x, a, b) ((x) + (a) * (b))
    #define FNN_MADDS_8(VT, x, a, b) ((x) + (a) * (b))
    #define FNN_MADD1_8(x, a, b) ((x) + (a) * (b))
    #endif
    #define FNN_MADD_4(VT, x, a, b) ((x) + (a) * (b))
    #define FNN_MADDS_4(VT, x, a, b) ((x) + (a) * (b))
    #define FNN_MADD1_4(x, a, b) ((x) + (a) * (b))
    /* keeps a loaded vector in a register: left alone, gcc's Zen tuning folds it into every FMA as a memory operand
       (the dot products' 4 x 4 block ran at half speed with 2 loads per FMA) */
    #if defined(__x86_64__) || defined(__i386__)
    #define FNN_KEEP(x) __asm__("" : "+v"(x))
    #else
    #define FNN_KEEP(x) ((void)0)
    #endif
    #define FNN_LD(VT, p) (*(const VT *)(p))
    #define FNN_ST(VT, p, v) (*(VT *)(p) = (v))

    /* ---- products: R rows x NV vectors of C in registers (the last vector of a panel at column w - VW, overlapping
       the one before it: every C vector is loaded before any is stored, and the overlapped lanes hold the same sums,
       so storing both is harmless) */
    #define FNN_RB_COL(V, NV, VW) ((V) == (NV) - 1 ? w - (VW) : (VW) * (V))
    #define FNN_RB_BODY(VT, VW, R, NV)                                                                           \
        {                                                                                                         \
            vr x[R][NV];                                                                                          \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (R); r_++)                                             \
            _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++)                                            \
                x[r_][v_] = acc ? FNN_LD(VT, C + (r + r_) * ldc + FNN_RB_COL(v_, NV, VW)) : (VT){0};               \
            for (ptrdiff_t k = 0; k < K; k++) {                                                                   \
                const float *bk = B + k * ldb;                                                                    \
                vr b[NV];                                                                                         \
                _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++)                                        \
                    b[v_] = FNN_LD(VT, bk + FNN_RB_COL(v_, NV, VW));                                              \
                _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (R); r_++) {                                       \
                    const float a_ = A[(r + r_) * sar + k * sak];                                                 \
                    _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++)                                    \
                        x[r_][v_] = FNN_MADDS_##VW(VT, x[r_][v_], a_, b[v_]);                                     \
                }                                                                                                 \
            }                                                                                                     \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (R); r_++)                                             \
            _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++)                                            \
                FNN_ST(VT, C + (r + r_) * ldc + FNN_RB_COL(v_, NV, VW), x[r_][v_]);                               \
        }
    /* R rows at a time, then 4, 2, 1 */
    #define FNN_RB_CASE(VT, VW, NV, R)                                                                           \
        case NV:                                                                                                  \
            for (; r + (R) <= m; r += (R)) FNN_RB_BODY(VT, VW, R, NV)                                             \
            if ((R) > 4) for (; r + 4 <= m; r += 4) FNN_RB_BODY(VT, VW, 4, NV)                                    \
            if ((R) > 2) for (; r + 2 <= m; r += 2) FNN_RB_BODY(VT, VW, 2, NV)                                    \
            for (; r < m; r++) FNN_RB_BODY(VT, VW, 1, NV)                                                         \
            return;
    /* NV -> R per width (R * NV + NV + 1 registers at most, of 32 or 16); panels of NVMAX - 1 vectors, the last of up
       to NVMAX.  AVX-512: up to 144 columns (3 rows x 7 vectors at H = 100); AVX2: BLIS's 6 x 16; SSE2: 6 x 8 */
    #define FNN_RB_NVMAX_16 9
    #define FNN_RB_CASES_16(VT)                                                                                   \
        FNN_RB_CASE(VT, 16, 1, 8) FNN_RB_CASE(VT, 16, 2, 8) FNN_RB_CASE(VT, 16, 3, 8) FNN_RB_CASE(VT, 16, 4, 6)   \
        FNN_RB_CASE(VT, 16, 5, 4) FNN_RB_CASE(VT, 16, 6, 4) FNN_RB_CASE(VT, 16, 7, 3) FNN_RB_CASE(VT, 16, 8, 3)   \
        FNN_RB_CASE(VT, 16, 9, 2)
    #define FNN_RB_NVMAX_8 3
    #define FNN_RB_CASES_8(VT) FNN_RB_CASE(VT, 8, 1, 8) FNN_RB_CASE(VT, 8, 2, 6) FNN_RB_CASE(VT, 8, 3, 4)
    #define FNN_RB_NVMAX_4 3
    #define FNN_RB_CASES_4(VT) FNN_RB_CASE(VT, 4, 1, 8) FNN_RB_CASE(VT, 4, 2, 6) FNN_RB_CASE(VT, 4, 3, 4)
    /* the ymm layout of an AVX-512 path (AVX-512VL: 8-float vectors in 32 registers): panels of 3 vectors, 8 rows
       (8 x 3 accumulators); the last panel up to 4 vectors, 6 rows.  On AMD Zen 4 (family 19h), which runs a
       512-bit instruction as two 256-bit halves, it keeps more of the FMA units busy than the zmm layout: the
       16-row chunks and 32-row weight-gradient tasks fill whole 8-row blocks (zmm: 3 rows, with single rows
       left), and 100 columns take 13 vectors of 8 (zmm: 7 of 16, the last overlapping) */
    #define FNN_RB_NVMAX_8Y 4
    #define FNN_RB_CASES_8Y(VT) FNN_RB_CASE(VT, 8, 1, 12) FNN_RB_CASE(VT, 8, 2, 8) FNN_RB_CASE(VT, 8, 3, 8)    \
                                FNN_RB_CASE(VT, 8, 4, 6)
    /* path P's fnn_mm_f<P>, vectors of VW floats blocked by table TAB (FNN_RB_CASES_<TAB>); TGT its target attribute
       (empty for path 0) */
    #define FNN_MM_DEF(P, VW, TGT) FNN_MM_DEF_(P, VW, VW, TGT)
    #define FNN_MM_DEF_(P, VW, TAB, TGT) FNN_MM_DEF__(P, VW, TAB, TGT)
    #define FNN_MM_DEF__(P, VW, TAB, TGT)                                                                        \
        TGT static void fnn_mm_panel_f##P(ptrdiff_t m, ptrdiff_t w, ptrdiff_t K, const float *A, ptrdiff_t sar,   \
                                          ptrdiff_t sak, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc,  \
                                          int acc) {                                                              \
            typedef float vt __attribute__((vector_size(4 * VW), aligned(4), may_alias));                         \
            typedef float vr __attribute__((vector_size(4 * VW)));                                                \
            ptrdiff_t r = 0;                                                                                      \
            switch ((w + (VW) - 1) / (VW)) { FNN_RB_CASES_##TAB(vt) }                                              \
        }                                                                                                         \
        TGT static void fnn_mm_f##P(ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const float *A, ptrdiff_t sar,         \
                                    ptrdiff_t sak, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc,        \
                                    int acc) {                                                                    \
            if (n < (VW)) {                                                                                       \
                FNN_MM_PLAIN_BY(float, FNN_MADD1_##VW)                                                            \
                return;                                                                                           \
            }                                                                                                     \
            /* k in slices whose rows of B stay in L1 (a long k: the weight gradients' sums over all steps) */    \
            ptrdiff_t kb = K;                                                                                     \
            if (K * (n < 128 ? n : 128) > 24576) kb = 6144 / (n < 128 ? n : 128);                                 \
            for (ptrdiff_t k0 = 0; k0 < K; k0 += kb) {                                                            \
                ptrdiff_t kk = K - k0 < kb ? K - k0 : kb, j0 = 0;                                                 \
                int a = acc || k0 > 0;                                                                            \
                for (; n - j0 >= FNN_RB_NVMAX_##TAB * (VW); j0 += (FNN_RB_NVMAX_##TAB - 1) * (VW))                \
                    fnn_mm_panel_f##P(m, (FNN_RB_NVMAX_##TAB - 1) * (VW), kk, A + k0 * sak, sar, sak,             \
                                      B + k0 * ldb + j0, ldb, C + j0, ldc, a);                                    \
                fnn_mm_panel_f##P(m, n - j0, kk, A + k0 * sak, sar, sak, B + k0 * ldb + j0, ldb, C + j0, ldc, a); \
            }                                                                                                     \
        }

    /* ---- dot products: Z[i, w] = H[i] . W[w] + b[w] (i < m, w < s, rows of length n >= 16).  Whatever the width,
       every dot is summed the same way: row lane l (l < 16) of each 16-float chunk into accumulator lane l, chunk by
       chunk (the last partial chunk read from n - 16 with the lanes already counted masked off), then the 16 lanes
       by a fixed tree (halves added lane-wise down to one value).  A width below 16 holds the 16 lanes as 16 / VW
       parts and runs the chunks once per part; NS states x NW rows of W per block (each loaded vector feeds several
       products), one state x NW1 rows for the states left over. */
    /* one 16-float chunk's part p_ at column j: the block's states and rows of W loaded once each (WM: the mask
       applied to W's part, or nothing) */
    #define FNN_DOTS_STEP(VT, VW, NS, NW, WM)                                                                    \
        {                                                                                                         \
            vr g_[NS];                                                                                            \
            _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++) {                                          \
                g_[q_] = FNN_LD(VT, Hm + (i + q_) * n + j);                                                       \
                FNN_KEEP(g_[q_]);                                                                                 \
            }                                                                                                     \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) {                                          \
                vr v_ = FNN_LD(VT, W + (w + r_) * n + j) WM;                                                      \
                FNN_KEEP(v_);                                                                                     \
                _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                        \
                    x_[p_][q_][r_] = FNN_MADD_##VW(VT, x_[p_][q_][r_], g_[q_], v_);                               \
            }                                                                                                     \
        }
    #define FNN_DOTS_BLOCK(VT, VW, NS, NW)                                                                       \
        {                                                                                                         \
            vr x_[16 / (VW)][NS][NW];                                                                             \
            _Pragma("GCC unroll 4") for (int p_ = 0; p_ < 16 / (VW); p_++) {                                       \
                _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                        \
                _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) x_[p_][q_][r_] = (vr){0};              \
                for (ptrdiff_t j = p_ * (VW); j < nf; j += 16) FNN_DOTS_STEP(VT, VW, NS, NW, )                    \
                if (n > nf) {                                                                                     \
                    ptrdiff_t j = n - 16 + p_ * (VW);                                                             \
                    FNN_DOTS_STEP(VT, VW, NS, NW, * mask[p_])                                                     \
                }                                                                                                 \
            }                                                                                                     \
            FNN_DOTS_OUT_##VW(VT, NS, NW)                                                                         \
        }
    /* the tree, per width (the same additions in the same order; from the parts' registers where the compiler has
       __builtin_shufflevector, through memory otherwise) */
    #define FNN_DOTS_OUT_MEM(VT, VW, NS, NW)                                                                     \
        _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                                \
        _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) {                                              \
            float t_[16];                                                                                         \
            for (int p_ = 0; p_ < 16 / (VW); p_++) memcpy(t_ + p_ * (VW), &x_[p_][q_][r_], sizeof(VT));           \
            Z[(i + q_) * s + w + r_] = fnn_tree16(t_) + b[w + r_];                                                \
        }
    #ifdef FNN_HAVE_SHUFFLE
    typedef float fnn_v8 __attribute__((vector_size(32)));
    typedef float fnn_v4 __attribute__((vector_size(16)));
    /* 16 lanes: NS * NW = 16 sums reduced together, the same tree level by level (a transpose as it adds) */
    #define FNN_HSUM16_ALL(VT, a, out)                                                                           \
        {                                                                                                         \
            VT t_[8], u_[4], v_[2];                                                                               \
            for (int p = 0; p < 8; p++)                                                                           \
                t_[p] = __builtin_shufflevector(a[2 * p], a[2 * p + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19,   \
                                                20, 21, 22, 23)                                                   \
                        + __builtin_shufflevector(a[2 * p], a[2 * p + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25,   \
                                                  26, 27, 28, 29, 30, 31);                                        \
            for (int p = 0; p < 4; p++)                                                                           \
                u_[p] = __builtin_shufflevector(t_[2 * p], t_[2 * p + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18,   \
                                                19, 24, 25, 26, 27)                                               \
                        + __builtin_shufflevector(t_[2 * p], t_[2 * p + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21,   \
                                                  22, 23, 28, 29, 30, 31);                                        \
            for (int p = 0; p < 2; p++)                                                                           \
                v_[p] = __builtin_shufflevector(u_[2 * p], u_[2 * p + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20,   \
                                                21, 24, 25, 28, 29)                                               \
                        + __builtin_shufflevector(u_[2 * p], u_[2 * p + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19,   \
                                                  22, 23, 26, 27, 30, 31);                                        \
            out = __builtin_shufflevector(v_[0], v_[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,    \
                                          30)                                                                     \
                  + __builtin_shufflevector(v_[0], v_[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29,  \
                                            31);                                                                  \
        }
    #define FNN_DOTS_OUT_16(VT, NS, NW)                                                                          \
        if ((NS) * (NW) == 16) {                                                                                  \
            vr a_[16], o_;                                                                                        \
            _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                            \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) a_[q_ * (NW) + r_] = x_[0][q_][r_];        \
            FNN_HSUM16_ALL(vr, a_, o_)                                                                            \
            _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                            \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++)                                            \
                Z[(i + q_) * s + w + r_] = o_[q_ * (NW) + r_] + b[w + r_];                                        \
        } else {                                                                                                  \
            _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                            \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) {                                          \
                vr v_ = x_[0][q_][r_];                                                                            \
                fnn_v8 h_ = __builtin_shufflevector(v_, v_, 0, 1, 2, 3, 4, 5, 6, 7)                               \
                            + __builtin_shufflevector(v_, v_, 8, 9, 10, 11, 12, 13, 14, 15);                      \
                fnn_v4 e_ = __builtin_shufflevector(h_, h_, 0, 1, 2, 3)                                           \
                            + __builtin_shufflevector(h_, h_, 4, 5, 6, 7);                                        \
                Z[(i + q_) * s + w + r_] = ((e_[0] + e_[2]) + (e_[1] + e_[3])) + b[w + r_];                       \
            }                                                                                                     \
        }
    #define FNN_DOTS_OUT_8(VT, NS, NW)                                                                           \
        _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                                \
        _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) {                                              \
            vr h_ = x_[0][q_][r_] + x_[1][q_][r_];                                                                \
            fnn_v4 e_ = __builtin_shufflevector(h_, h_, 0, 1, 2, 3) + __builtin_shufflevector(h_, h_, 4, 5, 6, 7);\
            Z[(i + q_) * s + w + r_] = ((e_[0] + e_[2]) + (e_[1] + e_[3])) + b[w + r_];                           \
        }
    #else
    #define FNN_DOTS_OUT_16(VT, NS, NW) FNN_DOTS_OUT_MEM(VT, 16, NS, NW)
    #define FNN_DOTS_OUT_8(VT, NS, NW) FNN_DOTS_OUT_MEM(VT, 8, NS, NW)
    #endif
    /* 4 lanes: halves (parts 0 + 2, 1 + 3) then quarters are whole vectors */
    #define FNN_DOTS_OUT_4(VT, NS, NW)                                                                           \
        _Pragma("GCC unroll 16") for (int q_ = 0; q_ < (NS); q_++)                                                \
        _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (NW); r_++) {                                              \
            vr e_ = (x_[0][q_][r_] + x_[2][q_][r_]) + (x_[1][q_][r_] + x_[3][q_][r_]);                            \
            Z[(i + q_) * s + w + r_] = ((e_[0] + e_[2]) + (e_[1] + e_[3])) + b[w + r_];                           \
        }
    /* NS states x NW rows per block (NS * NW accumulators, NS state vectors and a row of W in the registers), one
       state x NW1 rows for the states left over (classes with few tokens: a third of the logits of a Brown batch) */
    #define FNN_DOTS_NS_16 4
    #define FNN_DOTS_NW_16 4
    #define FNN_DOTS_NW1_16 16
    #define FNN_DOTS_NS_8 3
    #define FNN_DOTS_NW_8 3
    #define FNN_DOTS_NW1_8 8
    #define FNN_DOTS_NS_4 3
    #define FNN_DOTS_NW_4 3
    #define FNN_DOTS_NW1_4 8
    #define FNN_DOTS_DEF(P, VW, TGT) FNN_DOTS_DEF_(P, VW, TGT, FNN_DOTS_NS_##VW, FNN_DOTS_NW_##VW, FNN_DOTS_NW1_##VW)
    #define FNN_DOTS_DEF_(P, VW, TGT, NS, NW, NW1) FNN_DOTS_DEF__(P, VW, TGT, NS, NW, NW1)
    #define FNN_DOTS_DEF__(P, VW, TGT, NS, NW, NW1)                                                              \
        TGT static void fnn_dots_f##P(ptrdiff_t m, ptrdiff_t s, ptrdiff_t n, const float *Hm, const float *W,     \
                                      const float *b, float *Z) {                                                 \
            typedef float vt __attribute__((vector_size(4 * VW), aligned(4), may_alias));                         \
            typedef float vr __attribute__((vector_size(4 * VW)));                                                \
            ptrdiff_t nf = n & ~(ptrdiff_t)15, i = 0, w;                                                          \
            float ml_[16];                                                                                        \
            vr mask[16 / (VW)];                                                                                   \
            for (int l = 0; l < 16; l++) ml_[l] = (l >= 16 - (n - nf)) ? 1.0f : 0.0f;                             \
            memcpy(mask, ml_, sizeof ml_);                                                                        \
            for (; i + (NS) <= m; i += (NS)) {                                                                    \
                for (w = 0; w + (NW) <= s; w += (NW)) FNN_DOTS_BLOCK(vt, VW, NS, NW)                               \
                for (; w < s; w++) FNN_DOTS_BLOCK(vt, VW, NS, 1)                                                   \
            }                                                                                                     \
            for (; i < m; i++) {                                                                                  \
                for (w = 0; w + (NW1) <= s; w += (NW1)) FNN_DOTS_BLOCK(vt, VW, 1, NW1)                             \
                for (; w < s; w++) FNN_DOTS_BLOCK(vt, VW, 1, 1)                                                    \
            }                                                                                                     \
        }
    #define FNN_MM_PATH(P, VW, TGT) FNN_MM_DEF(P, VW, TGT) FNN_DOTS_DEF(P, VW, TGT)
    FNN_MM_PATH(0, FNN_MM_VW0, )
    #if FNN_DISPATCH
    FNN_MM_PATH(1, 8, FNN_TARGET_AVX2)
    FNN_MM_PATH(2, 16, FNN_TARGET_AVX512)
    #endif
    /* the zmm layout's products of depth k >= FNN_MM_PANEL_K: column panels of 3 vectors (48 floats) x 8 rows, the
       last panel up to 4 vectors x 6 rows (24 accumulators), so that a panel's slice of B (k x 48 floats: 19 KB at
       k = 100) stays in L1 while every row block of the call reuses it; the whole-row blocks above (3 rows x 7
       vectors at 100 columns) stream all of B (40 KB at 100 x 100, with A and C past a 48 KB L1) once per 3 rows.
       One thread, hot caches (Xeon model 167): 16 x 100 x 100 134 -> 159 GFLOP/s, 25 x 100 x 141 (a class's dh)
       103 -> 147, A^T 32 x 100 x 2560 (weight gradients) 121 -> 131; k = 5 (a rare class's few tokens against
       its many rows) 80 -> 69, hence the threshold.  The same FMA chain per element, so the same bits */
    #define FNN_MM_PANEL_K 16
    #define FNN_RB_NVMAX_16P 4
    #define FNN_RB_CASES_16P(VT) FNN_RB_CASE(VT, 16, 1, 12) FNN_RB_CASE(VT, 16, 2, 8) FNN_RB_CASE(VT, 16, 3, 8)   \
                                 FNN_RB_CASE(VT, 16, 4, 6)
    #if FNN_MM_VW0 == 16
    #define FNN_HAVE_PANEL0 1
    FNN_MM_DEF_(0p, 16, 16P, )
    #else
    #define FNN_HAVE_PANEL0 0
    #endif
    #if FNN_DISPATCH
    FNN_MM_DEF_(2p, 16, 16P, FNN_TARGET_AVX512)
    #endif
    /* the AVX-512 path's products in the ymm layout (FNN_RB_CASES_8Y): path 0 of a native AVX-512VL build
       (fnn_mm_f0y), path 2 of a portable one (fnn_mm_f2y, run only where the CPU has AVX-512VL).  Every element
       is the same FMA chain over k as in the zmm layout, so both give the same bits */
    #if defined(__AVX512F__) && defined(__AVX512VL__)
    #define FNN_HAVE_YMM0 1
    FNN_MM_DEF_(0y, 8, 8Y, )
    #else
    #define FNN_HAVE_YMM0 0
    #endif
    #if FNN_DISPATCH
    FNN_MM_DEF_(2y, 8, 8Y, __attribute__((target("avx512f,avx512vl,avx2,fma"))))
    #endif
    /* 1 when this build's AVX-512 path has the ymm layout and this CPU can run it */
    static int fnn_mm_have_ymm(void) {
    #if FNN_HAVE_YMM0
        return 1;
    #elif FNN_DISPATCH
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
               && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    /* What the Cython side calls: path (FNN_PATH_*, one of fnn_cpu_paths()) picks the code */
    static void fnn_mm_f(int path, ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const float *A, ptrdiff_t sar,
                         ptrdiff_t sak, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc) {
    #if FNN_DISPATCH
        if (path == FNN_PATH_AVX512) {
            if (fnn_mm_ymm) fnn_mm_f2y(m, n, K, A, sar, sak, B, ldb, C, ldc, acc);
            else if (K >= FNN_MM_PANEL_K) fnn_mm_f2p(m, n, K, A, sar, sak, B, ldb, C, ldc, acc);
            else fnn_mm_f2(m, n, K, A, sar, sak, B, ldb, C, ldc, acc);
            return;
        }
        if (path == FNN_PATH_AVX2) { fnn_mm_f1(m, n, K, A, sar, sak, B, ldb, C, ldc, acc); return; }
    #endif
        (void)path;
    #if FNN_HAVE_YMM0
        if (fnn_mm_ymm) { fnn_mm_f0y(m, n, K, A, sar, sak, B, ldb, C, ldc, acc); return; }
    #endif
    #if FNN_HAVE_PANEL0
        if (K >= FNN_MM_PANEL_K) { fnn_mm_f0p(m, n, K, A, sar, sak, B, ldb, C, ldc, acc); return; }
    #endif
        fnn_mm_f0(m, n, K, A, sar, sak, B, ldb, C, ldc, acc);
    }
    static void fnn_dots_f(int path, ptrdiff_t m, ptrdiff_t s, ptrdiff_t n, const float *Hm, const float *W,
                           const float *b, float *Z) {
    #if FNN_DISPATCH
        if (path == FNN_PATH_AVX512) { fnn_dots_f2(m, s, n, Hm, W, b, Z); return; }
        if (path == FNN_PATH_AVX2) { fnn_dots_f1(m, s, n, Hm, W, b, Z); return; }
    #endif
        (void)path;
        fnn_dots_f0(m, s, n, Hm, W, b, Z);
    }
    #else
    static void fnn_mm_f(int path, ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const float *A, ptrdiff_t sar,
                         ptrdiff_t sak, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc) {
        (void)path;
        FNN_MM_PLAIN(float)
    }
    static int fnn_mm_have_ymm(void) { return 0; }
    #define FNN_HAVE_DOTS 0
    static void fnn_dots_f(int path, ptrdiff_t m, ptrdiff_t s, ptrdiff_t n, const float *Hm, const float *W,
                           const float *b, float *Z) {
        (void)path;
        for (ptrdiff_t i = 0; i < m; i++)
            for (ptrdiff_t w = 0; w < s; w++) {
                float t = 0.0f;
                for (ptrdiff_t j = 0; j < n; j++) t += Hm[i * n + j] * W[w * n + j];
                Z[i * s + w] = t + b[w];
            }
    }
    #endif
    static void fnn_mm_d(ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const double *A, ptrdiff_t sar, ptrdiff_t sak,
                         const double *B, ptrdiff_t ldb, double *C, ptrdiff_t ldc, int acc) {
        FNN_MM_PLAIN(double)
    }
    /* the recurrence's activation (tanh of every state) per path: fnn_math.h's fnn_act_f inlined whole into AVX2 +
       FMA and AVX-512 functions (a portable build's own code runs it 4 floats at a time: the forward phase took 1.9
       against 1.3 ms per --preset fast segment).  Element by element, no sum: both paths give the same bits (the
       exp polynomial's FMAs round apart from the baseline's multiply-adds) */
    #if FNN_DISPATCH
    FNN_TARGET_AVX2 __attribute__((flatten)) static void fnn_act_f1(float *h, ptrdiff_t n, int act) {
        fnn_act_f(h, n, act);
    }
    FNN_TARGET_AVX512 __attribute__((flatten)) static void fnn_act_f2(float *h, ptrdiff_t n, int act) {
        fnn_act_f(h, n, act);
    }
    #endif
    static void fnn_act_f_path(int path, float *h, ptrdiff_t n, int act) {
    #if FNN_DISPATCH
        if (path == FNN_PATH_AVX512) { fnn_act_f2(h, n, act); return; }
        if (path == FNN_PATH_AVX2) { fnn_act_f1(h, n, act); return; }
    #endif
        (void)path;
        fnn_act_f(h, n, act);
    }
    /* one row of the class softmax (float32) on paths 1 and 2: z (n) the logits; returns -log softmax(z)[t] and, with
       want, leaves z = sc * (softmax(z) - onehot(t)).  The exps are summed in an order the code fixes (element j into
       lane j % 16, the lanes by fnn_tree16; pieces of FNN_BLOCK added in double, as fnn_row_exp_f), so that AVX2 and
       AVX-512 give the same bits; the gradient's division in double, as path 0's code in _rnnlm_class_xent, which
       keeps its own bits (its sum's order is the compiler's) */
    static inline double fnn_class_row_f(float *z, ptrdiff_t n, ptrdiff_t t, float sc, int want) {
        float zt = z[t], m = fnn_row_max_f(z, n);
        double total = 0.0;
        for (ptrdiff_t lo = 0; lo < n; lo += FNN_BLOCK) {
            ptrdiff_t hi = lo + FNN_BLOCK < n ? lo + FNN_BLOCK : n, j = lo;
            float acc[16] = {0.0f};
            for (; j + 16 <= hi; j += 16) {
                FNN_SIMD
                for (int k = 0; k < 16; k++) { float e = fnn_expf(z[j + k] - m); z[j + k] = e; acc[k] += e; }
            }
            for (int k = 0; j + k < hi; k++) { float e = fnn_expf(z[j + k] - m); z[j + k] = e; acc[k] += e; }
            total += fnn_tree16(acc);
        }
        double loss = (double)(m - zt) + log(total);
        if (want) {
            FNN_SIMD
            for (ptrdiff_t j = 0; j < n; j++) z[j] = (float)(sc * z[j] / total);
            z[t] = z[t] - sc;
        }
        return loss;
    }
    #if FNN_DISPATCH
    FNN_TARGET_AVX2 __attribute__((flatten)) static double fnn_class_row_f1(float *z, ptrdiff_t n, ptrdiff_t t,
                                                                            float sc, int want) {
        return fnn_class_row_f(z, n, t, sc, want);
    }
    FNN_TARGET_AVX512 __attribute__((flatten)) static double fnn_class_row_f2(float *z, ptrdiff_t n, ptrdiff_t t,
                                                                              float sc, int want) {
        return fnn_class_row_f(z, n, t, sc, want);
    }
    #endif
    static double fnn_class_row_f_path(int path, float *z, ptrdiff_t n, ptrdiff_t t, float sc, int want) {
    #if FNN_DISPATCH
        if (path == FNN_PATH_AVX512) return fnn_class_row_f2(z, n, t, sc, want);
        if (path == FNN_PATH_AVX2) return fnn_class_row_f1(z, n, t, sc, want);
    #endif
        (void)path;
        return fnn_class_row_f(z, n, t, sc, want);
    }
    """
    void fnn_mm_f(int path, Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const float *A, Py_ssize_t sar,
                  Py_ssize_t sak, const float *B, Py_ssize_t ldb, float *C, Py_ssize_t ldc, int acc) noexcept nogil
    bint FNN_HAVE_DOTS
    int fnn_mm_have_ymm() noexcept nogil
    void fnn_mm_set_ymm(int on) noexcept nogil
    int fnn_mm_get_ymm() noexcept nogil
    int fnn_cpu_amd_19h() noexcept nogil
    void fnn_dots_f(int path, Py_ssize_t m, Py_ssize_t s, Py_ssize_t n, const float *Hm, const float *W,
                    const float *b, float *Z) noexcept nogil
    void fnn_mm_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const double *A, Py_ssize_t sar, Py_ssize_t sak,
                  const double *B, Py_ssize_t ldb, double *C, Py_ssize_t ldc, int acc) noexcept nogil
    void fnn_act_f_path(int path, float *h, Py_ssize_t n, int act) noexcept nogil
    double fnn_class_row_f_path(int path, float *z, Py_ssize_t n, Py_ssize_t t, float sc, int want) noexcept nogil

# whether float32 runs the class blocks as vector products (_rnnlm_word_xent's `defer` needs it)
HAVE_BLOCKS = bool(FNN_HAVE_DOTS)


# ---- which compiled code runs (fnn_math.h: path 0 = the build's flags, 1 = AVX2 + FMA, 2 = AVX-512) -----------------

cdef int _path = 0    # the path the float32 products use (fastnn._ext._info.path_number); read once per call


def _vector_paths():
    """Names of the vector paths this build has and this CPU can run, the fastest first (_info.vector_paths)."""
    return _info.vector_paths()


def _vector_path():
    """The name of the vector path the float32 products of the RNN LM segment use now."""
    return _info.path_name(_path)


def _set_vector_path(name):
    """Make the float32 products use the path called `name` (one of _vector_paths()); None: the default (the
    fastest).  For tests and benchmarks: AVX2 and AVX-512 give the same bits, the baseline (SSE2: no FMA) differs
    from them by rounding."""
    global _path
    _path = _info.path_number(name)


_set_vector_path(_info.vector_path())


def _mm_layouts():
    """The register layouts the AVX-512 path's float32 products can take here: "zmm" (16-float vectors) and, where
    the CPU has AVX-512VL, "ymm" (8-float vectors in the 32 registers); one (the build's own) without AVX-512."""
    return ["zmm", "ymm"] if fnn_mm_have_ymm() else ["zmm"]


def _mm_layout():
    """The layout the AVX-512 path's products take now (no effect on the other paths)."""
    return "ymm" if fnn_mm_get_ymm() else "zmm"


_LAYOUT_WARNED = set()      # FASTNN_MM_LAYOUT values already warned about


def _set_mm_layout(name):
    """Make the AVX-512 path's float32 products take the layout called `name` (one of _mm_layouts()); None: the
    default, FASTNN_MM_LAYOUT if it names one of _mm_layouts() (a RuntimeWarning, once per value, when it names
    another), else "ymm" on AMD family 19h (Zen 4), "zmm" elsewhere.  For tests and benchmarks: both give the same
    bits."""
    import os
    avail = _mm_layouts()
    if name is None:
        want = os.environ.get("FASTNN_MM_LAYOUT", "")
        name = "ymm" if "ymm" in avail and fnn_cpu_amd_19h() else "zmm"
        if want in avail:
            name = want
        elif want and want not in _LAYOUT_WARNED:
            _LAYOUT_WARNED.add(want)
            import warnings
            warnings.warn(f"FASTNN_MM_LAYOUT={want!r} ignored: it must be one of {avail} (the layouts this build has "
                          f"and this CPU runs); using {name}.", RuntimeWarning)
    if name not in avail:
        raise ValueError(f"_set_mm_layout: 'name' must be one of {avail}; got {name!r}")
    fnn_mm_set_ymm(name == "ymm")


_set_mm_layout(None)

# stream rows per chunk of the recurrence: fixed, so the thread count only decides which thread runs a chunk
cdef enum:
    CHUNK = 16
# rows per task of the other products (row-major A: ROWS; A^T, whose rows are few and long, the weight gradients:
# at most TROWS, a matrix's rows split evenly and rounded up to 4, task_rows: 100 -> 52 + 48).  Each slice of k rows
# of B, loaded into L1 once, serves all of a task's rows.  Tasks of 32 rows cut 100 as 32 + 32 + 32 + 4, the last
# streaming all of B for 4 rows: a 100 x 100 x 2560 product took 377 us that way against 358 as 52 + 48 (one thread,
# Xeon model 167, zmm panels).  (8 rows took 9 % longer than 32 on Zen 4's ymm layout.)
cdef enum:
    ROWS = 16
    TROWS = 64


cdef inline Py_ssize_t task_rows(Py_ssize_t D) noexcept nogil:
    """Rows per weight-gradient task of a matrix of D rows (D split evenly into tasks of at most TROWS, rounded up to
    4; at least 4)."""
    cdef Py_ssize_t n = max((D + TROWS - 1) // TROWS, 1)
    return max((((D + n - 1) // n) + 3) // 4 * 4, 4)
# token rows per step of the output rows' norm through Gram matrices (block_sq_norm)
cdef enum:
    GRAM_ROWS = 16


cdef inline void mm(int path, Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                    const floating *B, Py_ssize_t ldb, floating *C, Py_ssize_t ldc, int acc) noexcept nogil:
    """C (+)= A B, A (m, K) row-major with rows lda apart."""
    if floating is float:
        fnn_mm_f(path, m, n, K, A, lda, 1, B, ldb, C, ldc, acc)
    else:
        fnn_mm_d(m, n, K, A, lda, 1, B, ldb, C, ldc, acc)


cdef inline void mtm(int path, Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                     const floating *B, Py_ssize_t ldb, floating *C, Py_ssize_t ldc, int acc) noexcept nogil:
    """C (+)= A^T B: A (K, m) row-major with rows lda apart (C's row r is column r of A)."""
    if floating is float:
        fnn_mm_f(path, m, n, K, A, 1, lda, B, ldb, C, ldc, acc)
    else:
        fnn_mm_d(m, n, K, A, 1, lda, B, ldb, C, ldc, acc)


cdef inline void act_on(int path, floating *h, Py_ssize_t n, int kind) noexcept nogil:
    """h = f(h) in place, float32 on the vector path `path`."""
    if floating is float:
        fnn_act_f_path(path, h, n, kind)
    else:
        act(h, n, kind)


cdef inline void bias_mm(int path, Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                         const floating *B, const floating *bias, floating *C) noexcept nogil:
    """C[r] = bias + A[r] B for r < m; B (K, n) and C (m, n) with rows n apart."""
    cdef Py_ssize_t r
    for r in range(m):
        memcpy(C + r * n, bias, n * sizeof(floating))
    if K > 0:
        mm(path, m, n, K, A, lda, B, n, C, n, 1)


def _rnnlm_forward(const floating[:, ::1] emb, const Py_ssize_t[::1] uniq, floating[:, ::1] Eu,
                   const floating[:, ::1] WihT, const floating[::1] b, const Py_ssize_t[:, ::1] xi,
                   const floating[:, ::1] WhhT, floating[:, ::1] P, floating[:, :, ::1] Hs, int kind, int n_threads):
    """The distinct input words' embeddings Eu = emb[uniq], their projection P = Eu W_ih^T + b, then the recurrence
    Hs[t + 1, s] = f(P[xi[t, s]] + Hs[t, s] W_hh^T).

    emb (V_in, E) IN; uniq (U,) IN: the distinct input words; Eu (U, E) OUT (gathered by the projection's tasks, in
    their threads, each block just before its product); WihT (E, H) IN: W_ih^T; b (H,) IN; xi (L, B) IN: row of P of
    each input; WhhT (H, Hp) IN: W_hh^T (Hp >= H columns); P (U, H) OUT; Hs (L + 1, B, H) INOUT: Hs[0] = h_0.
    """
    cdef Py_ssize_t L = xi.shape[0], B = xi.shape[1], H = P.shape[1], Hp = WhhT.shape[1], U = Eu.shape[0]
    cdef Py_ssize_t E = Eu.shape[1], n_chunks = (B + CHUNK - 1) // CHUNK, c, r0, m, t, s, r
    cdef int nt = threads_for(L * B * H * H // 64, n_threads)
    cdef int path = _path
    cdef int ntp = threads_for(U * E * H // 64, n_threads)
    if L == 0 or B == 0 or H == 0:
        return
    for c in prange((U + ROWS - 1) // ROWS, schedule="static", num_threads=ntp, nogil=True):
        r0 = c * ROWS
        m = min(ROWS, U - r0)
        if E > 0:
            for r in range(r0, r0 + m):
                memcpy(&Eu[r, 0], &emb[uniq[r], 0], E * sizeof(floating))
        bias_mm(path, m, H, E, &Eu[r0, 0], E, &WihT[0, 0], &b[0], &P[r0, 0])
    if nt > n_chunks:
        nt = <int> n_chunks
    for c in prange(n_chunks, schedule="static", num_threads=nt, nogil=True):
        r0 = c * CHUNK
        m = min(CHUNK, B - r0)
        for t in range(L):
            for s in range(r0, r0 + m):
                memcpy(&Hs[t + 1, s, 0], &P[xi[t, s], 0], H * sizeof(floating))
            mm(path, m, H, H, &Hs[t, r0, 0], H, &WhhT[0, 0], Hp, &Hs[t + 1, r0, 0], H, 1)
            act_on(path, &Hs[t + 1, r0, 0], m * H, kind)


def _rnnlm_class_xent(const floating[:, ::1] Ho, const floating[:, ::1] WcT, const floating[::1] bc,
                      const floating[:, ::1] Wc, const Py_ssize_t[::1] tc, double scale, floating[:, ::1] Z,
                      double[::1] loss, floating[:, ::1] dHo, int want, int n_threads):
    """The class softmax, ROWS tokens per task: logits, loss, gradient and its product back to h in one pass.

    Ho (N, H) IN; WcT (H, C) IN: Wc^T; bc (C,) IN; Wc (C, H) IN; tc (N,) IN: the target classes;
    Z (N, C) OUT: scale * (softmax - onehot) when want, else the softmax's exps; loss (N,) OUT: -log P(class);
    dHo (N, H) OUT (when want): Z Wc."""
    cdef Py_ssize_t N = Z.shape[0], C = Z.shape[1], H = Ho.shape[1], blk, i0, m, i, j
    cdef int nt = threads_for(N * C * H // 32, n_threads)
    cdef int path = _path
    cdef floating mx, zt, sc = <floating> scale
    cdef double s
    if N == 0 or C == 0:
        return
    for blk in prange((N + ROWS - 1) // ROWS, schedule="static", num_threads=nt, nogil=True):
        i0 = blk * ROWS
        m = min(ROWS, N - i0)
        bias_mm(path, m, C, H, &Ho[i0, 0], H, &WcT[0, 0], &bc[0], &Z[i0, 0])
        for i in range(i0, i0 + m):
            if floating is float:
                if path != 0:               # the wider paths' own row code (a portable build's baseline: 4 floats)
                    loss[i] = fnn_class_row_f_path(path, &Z[i, 0], C, tc[i], sc, want)
                    continue
            zt = Z[i, tc[i]]
            mx = row_max(&Z[i, 0], C)
            s = row_exp(&Z[i, 0], &Z[i, 0], C, mx)
            loss[i] = (mx - zt) + log(s)
            if want:
                for j in range(C):
                    Z[i, j] = <floating> (sc * Z[i, j] / s)
                Z[i, tc[i]] = Z[i, tc[i]] - sc
        if want and H > 0:
            mm(path, m, H, C, &Z[i0, 0], C, &Wc[0, 0], H, &dHo[i0, 0], H, 0)


def _rnnlm_weight_grads(const floating[:, ::1] dZ, const floating[:, ::1] X, const floating[:, ::1] Z,
                        const floating[:, ::1] Ho, const floating[:, ::1] S, const floating[:, ::1] Eu,
                        const floating[:, ::1] W_ih, floating[:, ::1] gWhh, floating[:, ::1] gWc,
                        floating[:, ::1] gWih, floating[:, ::1] dE, floating[::1] gb, floating[::1] gbc,
                        int n_threads):
    """The weight gradients as one list of fixed tasks (row blocks of each product, each column sum whole):
    gWhh = dZ^T X, gWc = Z^T Ho, gWih = S^T Eu, dE = S W_ih (all OUT), gb = dZ summed over rows, gbc = Z summed
    over rows (rows added in order).

    dZ (M, H), X (M, H): d loss / d z_t and h_{t-1} of the M = L*B steps; Z (N, C), Ho (N, H): the class
    softmax's gradient and the states it saw; S (U, H): dZ summed per distinct input word; Eu (U, E); W_ih (H, E)."""
    cdef Py_ssize_t M = dZ.shape[0], H = dZ.shape[1], N = Z.shape[0], C = Z.shape[1], U = S.shape[0]
    cdef Py_ssize_t E = Eu.shape[1], t, r0, i
    cdef Py_ssize_t rh = task_rows(H), rc = task_rows(C)
    cdef Py_ssize_t t1 = (H + rh - 1) // rh
    cdef Py_ssize_t t2 = t1 + (C + rc - 1) // rc
    cdef Py_ssize_t t3 = t2 + (H + rh - 1) // rh
    cdef Py_ssize_t t4 = t3 + (U + ROWS - 1) // ROWS
    cdef int nt = threads_for((M * H + N * C + U * E) * H // 64, n_threads)
    cdef int path = _path
    if H == 0 or M == 0:
        return
    for t in prange(t4 + 2, schedule="dynamic", num_threads=nt, nogil=True):
        if t < t1:
            r0 = t * rh
            mtm(path, min(rh, H - r0), H, M, &dZ[0, r0], H, &X[0, 0], H, &gWhh[r0, 0], H, 0)
        elif t < t2:
            r0 = (t - t1) * rc
            mtm(path, min(rc, C - r0), H, N, &Z[0, r0], C, &Ho[0, 0], H, &gWc[r0, 0], H, 0)
        elif t < t3:
            r0 = (t - t2) * rh
            if E > 0:
                mtm(path, min(rh, H - r0), E, U, &S[0, r0], H, &Eu[0, 0], E, &gWih[r0, 0], E, 0)
        elif t < t4:
            r0 = (t - t3) * ROWS
            if E > 0:
                mm(path, min(ROWS, U - r0), E, H, &S[r0, 0], H, &W_ih[0, 0], E, &dE[r0, 0], E, 0)
        elif t == t4:
            memcpy(&gb[0], &dZ[0, 0], H * sizeof(floating))
            for i in range(1, M):
                axpy(<floating> 1.0, &dZ[i, 0], &gb[0], H)
        elif N > 0:
            memcpy(&gbc[0], &Z[0, 0], C * sizeof(floating))
            for i in range(1, N):
                axpy(<floating> 1.0, &Z[i, 0], &gbc[0], C)


def _rnnlm_word_xent(const floating[:, ::1] h, const floating[:, ::1] W, const floating[::1] b,
                     const Py_ssize_t[::1] start, const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg,
                     const Py_ssize_t[::1] present, const Py_ssize_t[::1] rows, const Py_ssize_t[::1] row_off,
                     double scale, double[::1] loss, floating[:, ::1] dh, floating[:, ::1] dW, floating[::1] db,
                     floating[::1] zkeep, const Py_ssize_t[::1] cell_off, double[::1] sq,
                     Py_ssize_t max_size, Py_ssize_t max_tokens, Py_ssize_t max_cells, int want, int defer,
                     int n_threads):
    """The within-class softmaxes (the layout of kernels.class_softmax_xent): loss (N,) INOUT (+= -log P(w | class));
    dh (N, H) INOUT (+=); dW (R, H), db (R,) OUT.  One task per class present, owning its block rows of dW and its
    tokens' rows of dh.  max_size: the largest block; max_tokens: the most tokens of one class; max_cells: the
    largest tokens x block size of one class.

    float32 with H >= 16 treats a class as small matrix products (its tokens' states against its block: logits,
    dh = dZ W_blk, dW_blk = dZ^T H_c) through the vector kernels above; float64 (the gradient-check path) goes token
    by token.

    defer (float32 with H >= 16 only, with want): dW is left alone; instead class k's gradient of its logits dZ_k
    (tokens x block, in order) goes to zkeep[cell_off[k]:cell_off[k + 1]] (OUT) and the squared norm of its dW block
    dZ_k^T H_k to sq[k] (OUT), so that _rnnlm_out_rows can rebuild each block later, one block at a time."""
    cdef Py_ssize_t P = present.shape[0], H = h.shape[1], k, q, i, j, a, S, t, off, mk, tid
    cdef floating *scratch
    cdef floating *z
    cdef floating *hc
    cdef floating *dhc
    cdef floating m, g, ztarget, sc = <floating> scale
    cdef double s
    cdef int nt = threads_for(h.shape[0] * H * 16, n_threads)
    cdef int path = _path
    cdef bint blocks = floating is float and FNN_HAVE_DOTS and H >= 16
    cdef Py_ssize_t per = max(max_size, 1) if not blocks else 2 * max_tokens * H + max(max_cells, 1)
    if P == 0:
        return
    cdef floating *zeros = NULL
    if blocks and defer:                     # no logits scratch (zkeep holds them); a block's tile for its norm, or
        per = 2 * max_tokens * H + max(max(max_size, 1) * H, 2 * GRAM_ROWS * max_tokens)   # its Gram row blocks
        zeros = <floating *> calloc(max(max_tokens, 1), sizeof(floating))
        if zeros == NULL:
            raise MemoryError()
    scratch = <floating *> malloc(nt * per * sizeof(floating))
    if scratch == NULL:
        free(zeros)
        raise MemoryError()
    for k in prange(P, schedule="dynamic", num_threads=nt, nogil=True):
        tid = omp_get_thread_num()
        z = scratch + tid * per
        a = start[present[k]]
        S = start[present[k] + 1] - a
        off = row_off[k]
        if want:
            memset(&db[off], 0, S * sizeof(floating))
        if blocks:
            mk = seg[k + 1] - seg[k]
            hc = z + max_cells
            if defer:
                hc = z + max_size * H        # z: the tile scratch of block_sq_norm
                z = &zkeep[cell_off[k]]
            dhc = hc + max_tokens * H
            for q in range(mk):
                memcpy(hc + q * H, &h[order[seg[k] + q], 0], H * sizeof(floating))
            if floating is float:
                fnn_dots_f(path, mk, S, H, hc, &W[a, 0], &b[a], z)
            for q in range(mk):
                i = order[seg[k] + q]
                t = rows[i] - a
                ztarget = z[q * S + t]
                m = row_max(z + q * S, S)
                s = row_exp(z + q * S, z + q * S, S, m)
                loss[i] = loss[i] + ((m - ztarget) + log(s))
                if want:
                    for j in range(S):
                        z[q * S + j] = <floating> (sc * z[q * S + j] / s)
                    z[q * S + t] = z[q * S + t] - sc
            if want:
                mm(path, mk, H, S, z, S, &W[a, 0], H, dhc, H, 0)
                for q in range(mk):
                    axpy(<floating> 1.0, dhc + q * H, &dh[order[seg[k] + q], 0], H)
                    axpy(<floating> 1.0, z + q * S, &db[off], S)
                if defer:
                    sq[k] = block_sq_norm(path, mk, S, H, z, hc, scratch + tid * per, zeros)
                else:
                    mtm(path, S, H, mk, z, S, hc, H, &dW[off, 0], H, 0)
            continue
        if want:
            memset(&dW[off, 0], 0, S * H * sizeof(floating))
        for q in range(seg[k], seg[k + 1]):
            i = order[q]
            t = rows[i] - a
            for j in range(S):
                z[j] = dot(&W[a + j, 0], &h[i, 0], H) + b[a + j]
            ztarget = z[t]
            m = row_max(z, S)
            s = row_exp(z, z, S, m)
            loss[i] = loss[i] + ((m - ztarget) + log(s))
            if want:
                for j in range(S):
                    g = <floating> (sc * z[j] / s)
                    if j == t:
                        g = g - sc
                    axpy(g, &W[a + j, 0], &dh[i, 0], H)
                    axpy(g, &h[i, 0], &dW[off + j, 0], H)
                    db[off + j] = db[off + j] + g
    free(scratch)
    free(zeros)


cdef double block_sq_norm(int path, Py_ssize_t mk, Py_ssize_t S, Py_ssize_t H, const floating *z,
                          const floating *hc, floating *tile, const floating *zeros) noexcept nogil:
    """The squared Frobenius norm of z^T hc (z (mk, S), hc (mk, H)) summed in double: through the tile itself
    (tile (S, H) scratch) or, when cheaper (few tokens against a big block, S and H >= 16), through the two Gram
    matrices, ||z^T hc||^2 = sum over token pairs (q, p) of (z_q . z_p)(hc_q . hc_p): GRAM_ROWS rows of each at a
    time against the rows up to them (the lower triangle, each pair below the diagonal counted twice), as two
    fnn_dots_f products (tile: 2 GRAM_ROWS mk scratch; zeros: mk zeros, their bias).  Only clipping reads it, so
    its rounding (not the tile's) is what changes against the sum over the stored gradient."""
    cdef Py_ssize_t q, p, j, q0, r, w
    cdef double s = 0.0, v, d
    cdef floating *gz
    cdef floating *gh
    if floating is float and (mk + GRAM_ROWS) * (S + H) < 2 * S * H and S >= 16:
        gz = tile
        q0 = 0
        while q0 < mk:
            r = min(<Py_ssize_t> GRAM_ROWS, mk - q0)
            w = q0 + r
            gh = tile + r * w
            fnn_dots_f(path, r, w, S, z + q0 * S, z, zeros, gz)
            fnn_dots_f(path, r, w, H, hc + q0 * H, hc, zeros, gh)
            for q in range(r):
                d = 0.0
                for p in range(q0 + q):
                    d += (<double> gz[q * w + p]) * gh[q * w + p]
                s += 2.0 * d + (<double> gz[q * w + q0 + q]) * gh[q * w + q0 + q]
            q0 += r
        return s
    mtm(path, S, H, mk, z, S, hc, H, tile, H, 0)
    for j in range(S * H):
        v = tile[j]
        s += v * v
    return s


def _rnnlm_out_rows(const floating[::1] zkeep, const Py_ssize_t[::1] cell_off, const floating[:, ::1] h,
                    const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg, const Py_ssize_t[::1] present,
                    const Py_ssize_t[::1] start, const Py_ssize_t[::1] row_off, floating[:, ::1] W,
                    floating[:, ::1] A, floating[:, ::1] dW, double scale, int has_scale, double lr, double eps,
                    double l2, int update, Py_ssize_t max_size, Py_ssize_t max_tokens, int n_threads):
    """The output rows' gradient from what _rnnlm_word_xent(defer=1) kept, one class block per task:
    dW_k = scale * (dZ_k^T H_k) (the same product, so the same bits, as the direct path).

    update = 0: dW (R, H) OUT, block k at rows row_off[k]: (W, A unused).
    update = 1: lazy AdaGrad on the block's rows of W and A (V, H) INOUT, with the block's gradient in a per-thread
    tile (dW unused): g' = g + l2 w; A += g'^2; W -= lr g' / (sqrt(A) + eps), exactly as kernels.sparse_adagrad_.
    zkeep, cell_off, order, seg, present: as _rnnlm_word_xent; h (N, H): the states the output saw; start: blocks."""
    cdef Py_ssize_t P = present.shape[0], H = h.shape[1], k, q, j, a, S, mk, tid, r
    cdef Py_ssize_t per = max_tokens * H + (max_size * H if update else 0)
    cdef floating *scratch
    cdef floating *hc
    cdef floating *tile
    cdef floating sc = <floating> scale
    cdef int nt = threads_for(cell_off[P] * H // 4, n_threads)
    cdef int path = _path
    if P == 0 or H == 0:
        return
    scratch = <floating *> malloc(nt * per * sizeof(floating))
    if scratch == NULL:
        raise MemoryError()
    for k in prange(P, schedule="dynamic", num_threads=nt, nogil=True):
        tid = omp_get_thread_num()
        hc = scratch + tid * per
        a = start[present[k]]
        S = start[present[k] + 1] - a
        mk = seg[k + 1] - seg[k]
        for q in range(mk):
            memcpy(hc + q * H, &h[order[seg[k] + q], 0], H * sizeof(floating))
        if update:
            tile = hc + max_tokens * H
        else:
            tile = &dW[row_off[k], 0]
        mtm(path, S, H, mk, &zkeep[cell_off[k]], S, hc, H, tile, H, 0)
        if has_scale:
            for j in range(S * H):
                tile[j] = tile[j] * sc
        if update:                      # the block's rows of W, A and the tile are contiguous: one long row
            adagrad_row(&W[a, 0], &A[a, 0], tile, S * H, <floating> lr, <floating> eps, <floating> l2)
    free(scratch)


def _rnnlm_backward(const floating[:, :, ::1] dHo, const floating[:, :, ::1] Hs, const floating[:, ::1] Whh,
                    floating[:, :, ::1] dZ, int kind, double clip, int n_threads):
    """BPTT through the segment.  dHo (k, B, H) IN: d loss / d h_t of the last k steps (zero before them);
    Hs (L + 1, B, H) IN; Whh (H, Hp) IN: W_hh zero-padded to Hp columns; dZ (L, B, H) OUT: d loss / d z_t (clipped
    to [-clip, clip] when clip > 0)."""
    cdef Py_ssize_t L = Hs.shape[0] - 1, B = Hs.shape[1], H = Hs.shape[2], k = dHo.shape[0], Hp = Whh.shape[1]
    cdef Py_ssize_t n_chunks = (B + CHUNK - 1) // CHUNK, c, r0, m, t
    cdef int nt = threads_for(L * B * H * H // 64, n_threads)
    cdef int path = _path
    cdef floating cl = <floating> clip
    cdef floating *carry
    cdef floating *zero
    if L == 0 or B == 0 or H == 0:
        return
    if nt > n_chunks:
        nt = <int> n_chunks
    carry = <floating *> malloc(2 * B * H * sizeof(floating))
    if carry == NULL:
        raise MemoryError()
    zero = carry + B * H
    memset(carry, 0, 2 * B * H * sizeof(floating))
    for c in prange(n_chunks, schedule="static", num_threads=nt, nogil=True):
        r0 = c * CHUNK
        m = min(CHUNK, B - r0)
        for t in range(L - 1, -1, -1):
            if t >= L - k:
                dact(&dHo[t - (L - k), r0, 0], carry + r0 * H, &Hs[t + 1, r0, 0], &dZ[t, r0, 0], m * H, kind, cl)
            else:
                dact(zero + r0 * H, carry + r0 * H, &Hs[t + 1, r0, 0], &dZ[t, r0, 0], m * H, kind, cl)
            if t > 0:
                mm(path, m, H, H, &dZ[t, r0, 0], H, &Whh[0, 0], Hp, carry + r0 * H, H, 0)
    free(carry)


def _segment_sums(const floating[:, ::1] G, const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg,
                  floating[:, ::1] out, int n_threads):
    """out[u] = sum of G[order[q]] for q in seg[u]:seg[u + 1], in that order (one task per row of out)."""
    cdef Py_ssize_t U = out.shape[0], D = out.shape[1], u, q
    cdef int nt = threads_for(G.shape[0] * D // 8, n_threads)   # copies and adds: ~30 us at 1,280 x 100, not worth a thread
    for u in prange(U, schedule="static", num_threads=nt, nogil=True):
        memcpy(&out[u, 0], &G[order[seg[u]], 0], D * sizeof(floating))
        for q in range(seg[u] + 1, seg[u + 1]):
            axpy(<floating> 1.0, &G[order[q], 0], &out[u, 0], D)


def _class_plan(const Py_ssize_t[::1] tc, const Py_ssize_t[::1] start, Py_ssize_t[::1] order,
                Py_ssize_t[::1] present, Py_ssize_t[::1] seg, Py_ssize_t[::1] row_off, Py_ssize_t[::1] cell_off,
                int cells):
    """The within-class softmaxes' plan (one pass, was eight NumPy calls): the N tokens grouped by target class,
    stably (the order of kernels.group_rows), and the offsets of their classes' blocks.

    tc (N,) IN: the target classes, in [0, C) (C = start.shape[0] - 1); start (C + 1,) IN: class c's block is rows
    start[c]:start[c + 1].  OUT, P the classes present: order (N,): the tokens, class by class, ties in token order;
    present[:P]: the classes present, ascending; seg[:P + 1]: class present[r]'s tokens are order[seg[r]:seg[r + 1]];
    row_off[:P + 1]: the blocks' cumulative sizes; cell_off[:P + 1]: cumulative tokens x block size (cells = 1) or
    zeros.  present, seg, row_off, cell_off need C (+ 1) entries.  Returns (P, the largest block, the most tokens of
    a class, the largest tokens x block size), each 1 when P = 0."""
    cdef Py_ssize_t N = tc.shape[0], C = start.shape[0] - 1, i, c, P = 0, size, cnt
    cdef Py_ssize_t max_size = 1, max_tokens = 1, max_cells = 1
    cdef Py_ssize_t *pos = <Py_ssize_t *> calloc(max(C, 1), sizeof(Py_ssize_t))
    if pos == NULL:
        raise MemoryError()
    with nogil:
        for i in range(N):
            pos[tc[i]] += 1
        seg[0] = 0
        row_off[0] = 0
        cell_off[0] = 0
        for c in range(C):
            cnt = pos[c]
            if cnt == 0:
                continue
            size = start[c + 1] - start[c]
            present[P] = c
            pos[c] = seg[P]                          # where class c's tokens start in order
            seg[P + 1] = seg[P] + cnt
            row_off[P + 1] = row_off[P] + size
            cell_off[P + 1] = cell_off[P] + (cnt * size if cells else 0)
            if P == 0 or size > max_size:
                max_size = size
            if P == 0 or cnt > max_tokens:
                max_tokens = cnt
            if P == 0 or cnt * size > max_cells:
                max_cells = cnt * size
            P = P + 1
        for i in range(N):
            order[pos[tc[i]]] = i
            pos[tc[i]] += 1
    free(pos)
    return P, max_size, max_tokens, max_cells


def _segment_ids(const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg, Py_ssize_t[::1] out):
    """out[order[q]] = u for q in seg[u]:seg[u + 1]: the group of each element (the inverse of a grouping)."""
    cdef Py_ssize_t u, q
    with nogil:
        for u in range(seg.shape[0] - 1):
            for q in range(seg[u], seg[u + 1]):
                out[order[q]] = u
