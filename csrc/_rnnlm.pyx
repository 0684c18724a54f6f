# cython: language_level=3
"""One truncated-BPTT segment of the Elman RNN LM with a class-factorized output, forward and backward in one call.

    z_t = P[u_t] + W_hh h_{t-1},  P = E[uniq] W_ih^T + b,  h_t = f(z_t)
    log P(w | h) = log softmax(Wc h + bc)[c(w)] + log softmax(W_c(w) h + b_c(w))[w]

Phases (each a list of fixed tasks, so results are bitwise the same for any number of threads):
  1. the input projection (one row per distinct input word), then the recurrence, streams in fixed chunks of CHUNK
     rows, each chunk stepping through all L steps on its own (no barrier per time step);
  2. the class softmax, ROWS tokens per task: logits, softmax, gradient and its product back to h;
  3. the within-class softmaxes, one class per task (its block rows of dW and its tokens' rows of dh);
  4. BPTT, chunks as in 1; then dW_hh, dWc, dW_ih, the input rows' gradients and the bias sums as one list of
     row-block tasks, the input gradient summed per distinct input word first (one product per word, not per token).
_rnnlm_segment runs them all in ONE OpenMP parallel region, the phases separated by the barrier of fnn_barrier.h
(spin, then sleep) instead of each being a region of its own: with OMP_WAIT_POLICY=PASSIVE every region start wakes
the sleeping threads (~72 us each on the 2-vCPU Xeon VM, seven per segment until 2026-12-07).  A task writes only
its own outputs and reads only what earlier phases wrote, so which thread runs it (static runs of tasks per thread,
or an atomic counter) never changes a bit.
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
from cython.parallel cimport parallel, prange
from libc.math cimport log
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memset
from fastnn._ext import _info
from _common cimport (threads_for, omp_get_thread_num, omp_get_num_threads, act, dact, row_max, row_exp, dot, axpy,
                     adagrad_row)

cdef extern from "fnn_barrier.h" nogil:
    ctypedef struct fnn_barrier:
        int count
        int gen
        int sleepers
    void fnn_barrier_init(fnn_barrier *b)
    void fnn_barrier_wait(fnn_barrier *b, int n)
    Py_ssize_t fnn_task_next(Py_ssize_t *counter)

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
       AVX-512 give the same bits; the gradient's division in double, as path 0's code in class_task, which
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
# at most TROWS, a matrix's rows split evenly and rounded up to 4, task_rows: H = 100 is one task).  Each slice of k
# rows of B, loaded into L1 once, serves all of a task's rows.  Tasks of 32 rows cut 100 as 32 + 32 + 32 + 4, the
# last streaming all of B for 4 rows: a 100 x 100 x 2560 product took 377 us that way against 358 as 52 + 48 (one
# thread, Xeon model 167, zmm panels).  (8 rows took 9 % longer than 32 on Zen 4's ymm layout.)  On two threads,
# 52 + 48 (TROWS = 64) had both threads stream all of B (the 2,560 states, 1 MB, half of them in the other core's
# cache after BPTT) for each of dW_hh, dWc and dW_ih at once: the phase took 0.97 ms per thread, against ~0.63
# with whole matrices as tasks (one thread streams each B once while the other runs another product; 2-thread
# --preset fast step, 2026-12-07).  Rows split into tasks do not change a bit (each element's sum over k is the
# same FMA chain in any block).
cdef enum:
    ROWS = 16
    TROWS = 128


cdef inline Py_ssize_t task_rows(Py_ssize_t D) noexcept nogil:
    """Rows per weight-gradient task of a matrix of D rows (D split evenly into tasks of at most TROWS, rounded up to
    4; at least 4)."""
    cdef Py_ssize_t n = max((D + TROWS - 1) // TROWS, 1)
    return max((((D + n - 1) // n) + 3) // 4 * 4, 4)
# token rows per step of the output rows' norm through Gram matrices (block_sq_norm)
cdef enum:
    GRAM_ROWS = 16
# distinct input words per task of their gradient sums (each word's rows added in order: any grouping, the same bits)
cdef enum:
    SUM_ROWS = 32


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


# ---- the phases' tasks: each writes only its own outputs, so which thread runs it never changes a bit ---------------

cdef inline void proj_task(int path, Py_ssize_t c, Py_ssize_t U, Py_ssize_t E, Py_ssize_t H, const floating *emb,
                           const Py_ssize_t *uniq, floating *Eu, const floating *WihT, const floating *b,
                           floating *P) noexcept nogil:
    """Rows c*ROWS.. of Eu = emb[uniq] (gathered just before their product) and P = Eu W_ih^T + b."""
    cdef Py_ssize_t r0 = c * ROWS, m = min(<Py_ssize_t> ROWS, U - c * ROWS), r
    if E > 0:
        for r in range(r0, r0 + m):
            memcpy(Eu + r * E, emb + uniq[r] * E, E * sizeof(floating))
    bias_mm(path, m, H, E, Eu + r0 * E, E, WihT, b, P + r0 * H)


cdef inline void rec_task(int path, Py_ssize_t c, Py_ssize_t L, Py_ssize_t B, Py_ssize_t H, Py_ssize_t Hp,
                          const Py_ssize_t *xi, const floating *P, const floating *WhhT, floating *Hs,
                          int kind) noexcept nogil:
    """Stream rows c*CHUNK.. of the recurrence through all L steps: Hs[t + 1, s] = f(P[xi[t, s]] + Hs[t, s] W_hh^T)."""
    cdef Py_ssize_t r0 = c * CHUNK, m = min(<Py_ssize_t> CHUNK, B - c * CHUNK), t, s
    for t in range(L):
        for s in range(r0, r0 + m):
            memcpy(Hs + ((t + 1) * B + s) * H, P + xi[t * B + s] * H, H * sizeof(floating))
        mm(path, m, H, H, Hs + (t * B + r0) * H, H, WhhT, Hp, Hs + ((t + 1) * B + r0) * H, H, 1)
        act_on(path, Hs + ((t + 1) * B + r0) * H, m * H, kind)


cdef inline void class_task(int path, Py_ssize_t blk, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, const floating *Ho,
                            const floating *WcT, const floating *bc, const floating *Wc, const Py_ssize_t *tc,
                            floating sc, floating *Z, double *loss, floating *dHo, int want) noexcept nogil:
    """The class softmax of tokens blk*ROWS..: logits, loss, gradient and its product back to h."""
    cdef Py_ssize_t i0 = blk * ROWS, m = min(<Py_ssize_t> ROWS, N - blk * ROWS), i, j
    cdef floating mx, zt
    cdef floating *z
    cdef double s
    bias_mm(path, m, C, H, Ho + i0 * H, H, WcT, bc, Z + i0 * C)
    for i in range(i0, i0 + m):
        z = Z + i * C
        if floating is float:
            if path != 0:               # the wider paths' own row code (a portable build's baseline: 4 floats)
                loss[i] = fnn_class_row_f_path(path, z, C, tc[i], sc, want)
                continue
        zt = z[tc[i]]
        mx = row_max(z, C)
        s = row_exp(z, z, C, mx)
        loss[i] = (mx - zt) + log(s)
        if want:
            for j in range(C):
                z[j] = <floating> (sc * z[j] / s)
            z[tc[i]] = z[tc[i]] - sc
    if want and H > 0:
        mm(path, m, H, C, Z + i0 * C, C, Wc, H, dHo + i0 * H, H, 0)


cdef inline void word_task(int path, bint blocks, Py_ssize_t k, Py_ssize_t H, const floating *h, const floating *W,
                           const floating *b, const Py_ssize_t *start, const Py_ssize_t *order,
                           const Py_ssize_t *seg, const Py_ssize_t *present, const Py_ssize_t *rows,
                           const Py_ssize_t *row_off, floating sc, double *loss, floating *dh, floating *dW,
                           floating *db, floating *zkeep, const Py_ssize_t *cell_off, double *sq,
                           Py_ssize_t max_size, Py_ssize_t max_tokens, Py_ssize_t max_cells, int want, int defer,
                           floating *z, const floating *zeros) noexcept nogil:
    """The within-class softmax of the k-th class present (_rnnlm_word_xent's task): its block rows of dW and db, its
    tokens' loss and rows of dh.  z: this thread's scratch (see word_scratch)."""
    cdef Py_ssize_t a = start[present[k]], S = start[present[k] + 1] - start[present[k]], off = row_off[k]
    cdef Py_ssize_t q, i, j, t, mk
    cdef floating *tile = z
    cdef floating *hc
    cdef floating *dhc
    cdef floating m, g, ztarget
    cdef double s
    if want:
        memset(db + off, 0, S * sizeof(floating))
    if blocks:
        mk = seg[k + 1] - seg[k]
        hc = z + max_cells
        if defer:
            hc = z + max_size * H        # z: the tile scratch of block_sq_norm
            z = zkeep + cell_off[k]
        dhc = hc + max_tokens * H
        for q in range(mk):
            memcpy(hc + q * H, h + order[seg[k] + q] * H, H * sizeof(floating))
        if floating is float:
            fnn_dots_f(path, mk, S, H, hc, W + a * H, b + a, z)
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
            mm(path, mk, H, S, z, S, W + a * H, H, dhc, H, 0)
            for q in range(mk):
                axpy(<floating> 1.0, dhc + q * H, dh + order[seg[k] + q] * H, H)
                axpy(<floating> 1.0, z + q * S, db + off, S)
            if defer:
                sq[k] = block_sq_norm(path, mk, S, H, z, hc, tile, zeros)
            else:
                mtm(path, S, H, mk, z, S, hc, H, dW + off * H, H, 0)
        return
    if want:
        memset(dW + off * H, 0, S * H * sizeof(floating))
    for q in range(seg[k], seg[k + 1]):
        i = order[q]
        t = rows[i] - a
        for j in range(S):
            z[j] = dot(W + (a + j) * H, h + i * H, H) + b[a + j]
        ztarget = z[t]
        m = row_max(z, S)
        s = row_exp(z, z, S, m)
        loss[i] = loss[i] + ((m - ztarget) + log(s))
        if want:
            for j in range(S):
                g = <floating> (sc * z[j] / s)
                if j == t:
                    g = g - sc
                axpy(g, W + (a + j) * H, dh + i * H, H)
                axpy(g, h + i * H, dW + (off + j) * H, H)
                db[off + j] = db[off + j] + g


cdef inline Py_ssize_t word_scratch(bint blocks, int defer, Py_ssize_t H, Py_ssize_t max_size, Py_ssize_t max_tokens,
                                    Py_ssize_t max_cells) noexcept nogil:
    """Elements of one thread's scratch for word_task: the logits of one token (float64 path); the class's logits,
    states and their dh (blocks); with defer the states, dh and a block's tile for its norm, or its Gram row
    blocks (the logits then go to zkeep)."""
    if not blocks:
        return max(max_size, 1)
    if defer:
        return 2 * max_tokens * H + max(max(max_size, 1) * H, 2 * GRAM_ROWS * max_tokens)
    return 2 * max_tokens * H + max(max_cells, 1)


cdef inline void back_task(int path, Py_ssize_t c, Py_ssize_t L, Py_ssize_t B, Py_ssize_t H, Py_ssize_t Hp,
                           Py_ssize_t k, const floating *dHo, const floating *Hs, const floating *Whh, floating *dZ,
                           floating *carry, const floating *zero, int kind, floating cl) noexcept nogil:
    """BPTT of stream rows c*CHUNK.. through all L steps (carry (B, H): their d loss / d h_t from step t + 1)."""
    cdef Py_ssize_t r0 = c * CHUNK, m = min(<Py_ssize_t> CHUNK, B - c * CHUNK), t
    for t in range(L - 1, -1, -1):
        if t >= L - k:
            dact(dHo + ((t - (L - k)) * B + r0) * H, carry + r0 * H, Hs + ((t + 1) * B + r0) * H,
                 dZ + (t * B + r0) * H, m * H, kind, cl)
        else:
            dact(zero + r0 * H, carry + r0 * H, Hs + ((t + 1) * B + r0) * H, dZ + (t * B + r0) * H, m * H, kind, cl)
        if t > 0:
            mm(path, m, H, H, dZ + (t * B + r0) * H, H, Whh, Hp, carry + r0 * H, H, 0)


cdef inline void sum_task(Py_ssize_t u, Py_ssize_t D, const floating *G, const Py_ssize_t *order,
                          const Py_ssize_t *seg, floating *out) noexcept nogil:
    """out[u] = the rows G[order[q]] for q in seg[u]:seg[u + 1], added in that order."""
    cdef Py_ssize_t q
    memcpy(out + u * D, G + order[seg[u]] * D, D * sizeof(floating))
    for q in range(seg[u] + 1, seg[u + 1]):
        axpy(<floating> 1.0, G + order[q] * D, out + u * D, D)


cdef inline void grad_task(int path, Py_ssize_t t, Py_ssize_t M, Py_ssize_t H, Py_ssize_t N, Py_ssize_t C,
                           Py_ssize_t U, Py_ssize_t E, const floating *dZ, const floating *X, const floating *Z,
                           const floating *Ho, const floating *S, const floating *Eu, const floating *W_ih,
                           floating *gWhh, floating *gWc, floating *gWih, floating *dE, floating *gb,
                           floating *gbc) noexcept nogil:
    """Task t of the weight gradients (grad_tasks of them): row blocks of gWhh = dZ^T X, gWc = Z^T Ho,
    gWih = S^T Eu, dE = S W_ih; then gb = dZ and gbc = Z summed over rows (rows added in order, each sum one task)."""
    cdef Py_ssize_t rh = task_rows(H), rc = task_rows(C), r0, i
    cdef Py_ssize_t t1 = (H + rh - 1) // rh
    cdef Py_ssize_t t2 = t1 + (C + rc - 1) // rc
    cdef Py_ssize_t t3 = t2 + (H + rh - 1) // rh
    cdef Py_ssize_t t4 = t3 + (U + ROWS - 1) // ROWS
    if t < t1:
        r0 = t * rh
        mtm(path, min(rh, H - r0), H, M, dZ + r0, H, X, H, gWhh + r0 * H, H, 0)
    elif t < t2:
        r0 = (t - t1) * rc
        mtm(path, min(rc, C - r0), H, N, Z + r0, C, Ho, H, gWc + r0 * H, H, 0)
    elif t < t3:
        r0 = (t - t2) * rh
        if E > 0:
            mtm(path, min(rh, H - r0), E, U, S + r0, H, Eu, E, gWih + r0 * E, E, 0)
    elif t < t4:
        r0 = (t - t3) * ROWS
        if E > 0:
            mm(path, min(<Py_ssize_t> ROWS, U - r0), E, H, S + r0 * H, H, W_ih, E, dE + r0 * E, E, 0)
    elif t == t4:
        memcpy(gb, dZ, H * sizeof(floating))
        for i in range(1, M):
            axpy(<floating> 1.0, dZ + i * H, gb, H)
    elif N > 0:
        memcpy(gbc, Z, C * sizeof(floating))
        for i in range(1, N):
            axpy(<floating> 1.0, Z + i * C, gbc, C)


cdef inline Py_ssize_t grad_tasks(Py_ssize_t H, Py_ssize_t C, Py_ssize_t U) noexcept nogil:
    cdef Py_ssize_t rh = task_rows(H), rc = task_rows(C)
    return 2 * ((H + rh - 1) // rh) + (C + rc - 1) // rc + (U + ROWS - 1) // ROWS + 2


cdef inline floating *ptr1(floating[::1] a) noexcept:
    """a's first element, NULL when it has none."""
    return &a[0] if a.shape[0] else NULL


cdef inline floating *ptr2(floating[:, ::1] a) noexcept:
    return &a[0, 0] if a.shape[0] and a.shape[1] else NULL


cdef inline const floating *cptr2(const floating[:, ::1] a) noexcept:
    return &a[0, 0] if a.shape[0] and a.shape[1] else NULL


# ---- the whole segment in one parallel region ----------------------------------------------------------------------

def _rnnlm_segment(const floating[:, ::1] emb, const Py_ssize_t[::1] uniq, floating[:, ::1] Eu,
                   const floating[:, ::1] WihT, const floating[::1] b, const Py_ssize_t[:, ::1] xi,
                   const floating[:, ::1] WhhT, floating[:, ::1] P, floating[:, :, ::1] Hs,
                   const floating[:, ::1] WcT, const floating[::1] bc, const floating[:, ::1] Wc,
                   const Py_ssize_t[::1] tc, floating[:, ::1] Z, double[::1] loss, floating[:, ::1] dHo,
                   const floating[:, ::1] W, const floating[::1] bo, const Py_ssize_t[::1] start,
                   const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg, const Py_ssize_t[::1] present,
                   const Py_ssize_t[::1] rows, const Py_ssize_t[::1] row_off, floating[:, ::1] dWo,
                   floating[::1] dbo, floating[::1] zkeep, const Py_ssize_t[::1] cell_off, double[::1] sq,
                   Py_ssize_t max_size, Py_ssize_t max_tokens, Py_ssize_t max_cells,
                   const floating[:, ::1] Whh, floating[:, :, ::1] dZ, const Py_ssize_t[::1] order_u,
                   const Py_ssize_t[::1] seg_u, floating[:, ::1] S, const floating[:, ::1] W_ih,
                   floating[:, ::1] gWhh, floating[:, ::1] gWc, floating[:, ::1] gWih, floating[:, ::1] dE,
                   floating[::1] gb, floating[::1] gbc, int kind, double scale, double clip, int want, int defer,
                   int n_threads):
    """The segment, forward and backward (the module docstring's phases), in ONE parallel region: the phases are
    separated by fnn_barrier.h's spinning barrier instead of being regions of their own, whose starts (waking the
    sleeping threads, OMP_WAIT_POLICY=PASSIVE) cost ~72 us each on the 2-vCPU Xeon VM, 7 times per segment.  Each
    phase's tasks are fixed (static phases: contiguous runs of them per thread; dynamic ones: an atomic counter), so
    the bits do not depend on the thread count or on which thread runs a task.

    The input projection: emb (V_in, E), uniq (U,), WihT (E, H) = W_ih^T, b (H,) IN; Eu (U, E) = emb[uniq] and
    P (U, H) = Eu W_ih^T + b OUT.  The recurrence: xi (L, B) IN (the row of P of each input), WhhT (H, Hp) IN (W_hh^T,
    Hp >= H columns); Hs (L + 1, B, H) INOUT (Hs[0] = h_0 IN).  The class softmax over the last k = N / B steps
    (Ho = Hs[L - k + 1:]): WcT (H, C), bc (C,), Wc (C, H), tc (N,) IN; Z (N, C), loss (N,), dHo (N, H) OUT as
    _rnnlm_word_xent's class phase.  The within-class softmaxes: W (V, H), bo (V,), start and the class plan
    (_class_plan: order, seg, present, row_off, cell_off, the maxima) IN, rows (N,) IN the targets' rows of W;
    dWo, dbo, zkeep, sq OUT and loss, dHo INOUT as _rnnlm_word_xent.  With want: BPTT (Whh (H, Hp) IN: W_hh; dZ
    (L, B, H) OUT: d loss / d z_t, clipped to [-clip, clip] when clip > 0), S (U, H) OUT: dZ summed per distinct
    input word (order_u, seg_u: the inputs grouped by word), and the weight gradients gWhh (H, H), gWc (C, H),
    gWih (H, E), dE (U, E), gb (H,), gbc (C,) OUT (_rnnlm grad_task); W_ih (H, E) IN."""
    cdef Py_ssize_t L = xi.shape[0], B = xi.shape[1], H = P.shape[1], Hp = WhhT.shape[1], U = Eu.shape[0]
    cdef Py_ssize_t E = Eu.shape[1], N = Z.shape[0], C = Z.shape[1], n_present = present.shape[0]
    cdef Py_ssize_t k = N // B if B > 0 else 0, M = L * B
    cdef Py_ssize_t n_proj = (U + ROWS - 1) // ROWS, n_chunks = (B + CHUNK - 1) // CHUNK
    cdef Py_ssize_t n_class = (N + ROWS - 1) // ROWS, n_grad = grad_tasks(H, C, U)
    cdef Py_ssize_t c, t, per
    cdef Py_ssize_t next_task[4]                # the dynamic phases' counters: projection, word softmaxes, sums,
                                                # weight gradients
    cdef Py_ssize_t n_sums = (U + SUM_ROWS - 1) // SUM_ROWS
    cdef int path = _path, tid, nth
    cdef bint blocks = floating is float and FNN_HAVE_DOTS and H >= 16
    cdef floating sc = <floating> scale, cl = <floating> clip
    cdef fnn_barrier bar
    cdef floating *scratch = NULL
    cdef floating *zeros = NULL
    cdef floating *carry = NULL
    cdef floating *zero
    # as many threads as the biggest phase is worth (threads_for); a phase with fewer tasks leaves some idle
    cdef int nt = threads_for(max(max(M * H * H // 64, N * C * H // 32), N * H * 16), n_threads)
    if L == 0 or B == 0 or H == 0 or N == 0:
        return
    per = word_scratch(blocks, defer, H, max_size, max_tokens, max_cells)
    scratch = <floating *> malloc(nt * per * sizeof(floating))
    if blocks and defer:
        zeros = <floating *> calloc(max(max_tokens, 1), sizeof(floating))
    if want:
        carry = <floating *> calloc(2 * B * H, sizeof(floating))
    if scratch == NULL or (blocks and defer and zeros == NULL) or (want and carry == NULL):
        free(scratch)
        free(zeros)
        free(carry)
        raise MemoryError()
    zero = carry + B * H if carry != NULL else NULL
    # every array as a pointer (those of the phases want = 0 skips, and dWo, zkeep, sq of the other output path,
    # may be empty: NULL, never read)
    cdef floating *pEu = ptr2(Eu)
    cdef floating *pP = ptr2(P)
    cdef floating *pHs = &Hs[0, 0, 0]
    cdef floating *pHo = &Hs[L - k + 1, 0, 0]
    cdef floating *pZ = ptr2(Z)
    cdef floating *pdHo = ptr2(dHo)
    cdef floating *pdWo = ptr2(dWo)
    cdef floating *pdbo = ptr1(dbo)
    cdef floating *pzkeep = ptr1(zkeep)
    cdef double *psq = &sq[0] if sq.shape[0] else NULL
    cdef floating *pdZ = &dZ[0, 0, 0] if dZ.shape[0] else NULL
    cdef floating *pS = ptr2(S)
    cdef floating *pgWhh = ptr2(gWhh)
    cdef floating *pgWc = ptr2(gWc)
    cdef floating *pgWih = ptr2(gWih)
    cdef floating *pdE = ptr2(dE)
    cdef floating *pgb = ptr1(gb)
    cdef floating *pgbc = ptr1(gbc)
    cdef const floating *pemb = cptr2(emb)
    cdef const floating *pWihT = cptr2(WihT)
    cdef const floating *pW_ih = cptr2(W_ih)
    cdef const Py_ssize_t *porder_u = &order_u[0] if order_u.shape[0] else NULL
    cdef const Py_ssize_t *pseg_u = &seg_u[0]
    fnn_barrier_init(&bar)
    memset(next_task, 0, sizeof(next_task))
    tid, nth, c, t = 0, 1, 0, 0                 # (each thread's own copies are set in the region)
    with nogil, parallel(num_threads=nt):
        tid = omp_get_thread_num()
        nth = omp_get_num_threads()         # the team's real size (it may be below nt): every barrier counts it
        # dynamic: the first thread starts it while the others wake up
        c = fnn_task_next(&next_task[0])
        while c < n_proj:
            proj_task(path, c, U, E, H, pemb, &uniq[0], pEu, pWihT, &b[0], pP)
            c = fnn_task_next(&next_task[0])
        fnn_barrier_wait(&bar, nth)
        for c in range(n_chunks * tid // nth, n_chunks * (tid + 1) // nth):
            rec_task(path, c, L, B, H, Hp, &xi[0, 0], pP, &WhhT[0, 0], pHs, kind)
        fnn_barrier_wait(&bar, nth)
        for c in range(n_class * tid // nth, n_class * (tid + 1) // nth):
            class_task(path, c, N, C, H, pHo, &WcT[0, 0], &bc[0], &Wc[0, 0], &tc[0], sc, pZ, &loss[0], pdHo, want)
        fnn_barrier_wait(&bar, nth)
        t = fnn_task_next(&next_task[1])
        while t < n_present:
            word_task(path, blocks, t, H, pHo, &W[0, 0], &bo[0], &start[0], &order[0], &seg[0], &present[0],
                      &rows[0], &row_off[0], sc, &loss[0], pdHo, pdWo, pdbo, pzkeep, &cell_off[0], psq, max_size,
                      max_tokens, max_cells, want, defer, scratch + tid * per, zeros)
            t = fnn_task_next(&next_task[1])
        if want:
            fnn_barrier_wait(&bar, nth)
            for c in range(n_chunks * tid // nth, n_chunks * (tid + 1) // nth):
                back_task(path, c, L, B, H, Whh.shape[1], k, pdHo, pHs, &Whh[0, 0], pdZ, carry, zero, kind, cl)
            fnn_barrier_wait(&bar, nth)
            c = fnn_task_next(&next_task[2])       # dynamic: a frequent word (</s>, "the") is a long sum
            while c < n_sums:
                for t in range(c * SUM_ROWS, min(c * SUM_ROWS + SUM_ROWS, U)):
                    sum_task(t, H, pdZ, porder_u, pseg_u, pS)
                c = fnn_task_next(&next_task[2])
            fnn_barrier_wait(&bar, nth)
            t = fnn_task_next(&next_task[3])
            while t < n_grad:
                grad_task(path, t, M, H, N, C, U, E, pdZ, pHs, pZ, pHo, pS, pEu, pW_ih, pgWhh, pgWc, pgWih, pdE,
                          pgb, pgbc)
                t = fnn_task_next(&next_task[3])
    free(scratch)
    free(zeros)
    free(carry)


def _rnnlm_word_xent(const floating[:, ::1] h, const floating[:, ::1] W, const floating[::1] b,
                     const Py_ssize_t[::1] start, const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg,
                     const Py_ssize_t[::1] present, const Py_ssize_t[::1] rows, const Py_ssize_t[::1] row_off,
                     double scale, double[::1] loss, floating[:, ::1] dh, floating[:, ::1] dW, floating[::1] db,
                     floating[::1] zkeep, const Py_ssize_t[::1] cell_off, double[::1] sq,
                     Py_ssize_t max_size, Py_ssize_t max_tokens, Py_ssize_t max_cells, int want, int defer,
                     int n_threads):
    """The within-class softmaxes (the layout of kernels.class_softmax_xent): loss (N,) INOUT (+= -log P(w | class));
    dh (N, H) INOUT (+=); dW (R, H), db (R,) OUT.  One task per class present (word_task), owning its block rows of
    dW and its tokens' rows of dh.  max_size: the largest block; max_tokens: the most tokens of one class; max_cells:
    the largest tokens x block size of one class.

    float32 with H >= 16 treats a class as small matrix products (its tokens' states against its block: logits,
    dh = dZ W_blk, dW_blk = dZ^T H_c) through the vector kernels above; float64 (the gradient-check path) goes token
    by token.

    defer (float32 with H >= 16 only, with want): dW is left alone; instead class k's gradient of its logits dZ_k
    (tokens x block, in order) goes to zkeep[cell_off[k]:cell_off[k + 1]] (OUT) and the squared norm of its dW block
    dZ_k^T H_k to sq[k] (OUT), so that _rnnlm_out_rows can rebuild each block later, one block at a time."""
    cdef Py_ssize_t P = present.shape[0], H = h.shape[1], k, tid
    cdef int nt = threads_for(h.shape[0] * H * 16, n_threads)
    cdef int path = _path
    cdef bint blocks = floating is float and FNN_HAVE_DOTS and H >= 16
    cdef Py_ssize_t per = word_scratch(blocks, defer, H, max_size, max_tokens, max_cells)
    cdef floating *scratch
    cdef floating *zeros = NULL
    if P == 0:
        return
    if blocks and defer:
        zeros = <floating *> calloc(max(max_tokens, 1), sizeof(floating))
        if zeros == NULL:
            raise MemoryError()
    scratch = <floating *> malloc(nt * per * sizeof(floating))
    if scratch == NULL:
        free(zeros)
        raise MemoryError()
    for k in prange(P, schedule="dynamic", num_threads=nt, nogil=True):
        tid = omp_get_thread_num()
        word_task(path, blocks, k, H, &h[0, 0], &W[0, 0], &b[0], &start[0], &order[0], &seg[0], &present[0],
                  &rows[0], &row_off[0], <floating> scale, &loss[0], &dh[0, 0], &dW[0, 0], &db[0], &zkeep[0],
                  &cell_off[0], &sq[0], max_size, max_tokens, max_cells, want, defer, scratch + tid * per, zeros)
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
