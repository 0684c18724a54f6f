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
`--threads 1` that way).
Called only from fastnn/kernels.py (rnnlm_segment), which validates every argument and allocates every buffer.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport log
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memset
from _common cimport threads_for, omp_get_thread_num, act, dact, row_max, row_exp, dot, axpy, adagrad_row

cdef extern from *:
    """
    /* C[r, j] (+)= sum_k A[r*sar + k*sak] * B[k*ldb + j] for r < m, j < n, k < K: A row-major (sar = its row
       length, sak = 1) or transposed (sar = 1, sak = its row length).  Every load of B stays inside columns
       [0, n) of its row; C is written only for j < n.  float: GCC/clang vector types; with AVX-512 whole rows of C
       (up to 144 columns) in registers, else 4 rows x 32 columns of accumulators (8 independent FMA chains); each
       element is summed over k in order with one rounding per step whatever the block it falls in, so the rows of a
       chunk do not depend on the chunk, and both kernels give the same bits. */
    /* the plain triple loop: float64, float32 without vector extensions, and rows too narrow for a vector */
    #define FNN_MM_PLAIN(T)                                                                                       \
        for (ptrdiff_t r_ = 0; r_ < m; r_++)                                                                      \
            for (ptrdiff_t j_ = 0; j_ < n; j_++) {                                                                \
                T s_ = acc ? C[r_ * ldc + j_] : (T)0;                                                             \
                for (ptrdiff_t k_ = 0; k_ < K; k_++) s_ += A[r_ * sar + k_ * sak] * B[k_ * ldb + j_];             \
                C[r_ * ldc + j_] = s_;                                                                            \
            }
    #if defined(__GNUC__) || defined(__clang__)
    typedef float fnn_v16 __attribute__((vector_size(64), aligned(4), may_alias));
    #define FNN_LD(p) (*(const fnn_v16 *)(p))
    /* keeps two B vectors in registers: left alone, GCC folds them into every FMA as memory operands (8 vector
       loads per 8 FMAs instead of 2, from L2 when B outgrows L1).  Only where one register holds 16 floats: a
       portable build splits the vector over several and the constraint cannot be met */
    #if defined(__AVX512F__)
    #define FNN_IN_REGS(x, y) __asm__("" : "+v"(x), "+v"(y))
    #else
    #define FNN_IN_REGS(x, y) ((void)0)
    #endif
    #define FNN_ST(p, v) (*(fnn_v16 *)(p) = (v))
    /* a fixed tree (halves added lane-wise down to one value), so the bits do not depend on the caller */
    #if defined(__has_builtin)
    #if __has_builtin(__builtin_shufflevector)
    #define FNN_HAVE_SHUFFLE 1
    #endif
    #endif
    #ifdef FNN_HAVE_SHUFFLE
    typedef float fnn_v8 __attribute__((vector_size(32)));
    typedef float fnn_v4 __attribute__((vector_size(16)));
    static inline float fnn_hsum(fnn_v16 v) {
        fnn_v8 h = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7)
                   + __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
        fnn_v4 q = __builtin_shufflevector(h, h, 0, 1, 2, 3) + __builtin_shufflevector(h, h, 4, 5, 6, 7);
        return (q[0] + q[2]) + (q[1] + q[3]);
    }
    /* out[l] = fnn_hsum(a[l]) for 16 vectors at once, the same tree level by level (a transpose as it adds) */
    static inline fnn_v16 fnn_hsum16(const fnn_v16 *a) {
        fnn_v16 t[8], u[4], v[2];
        for (int p = 0; p < 8; p++)
            t[p] = __builtin_shufflevector(a[2 * p], a[2 * p + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21,
                                           22, 23)
                   + __builtin_shufflevector(a[2 * p], a[2 * p + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27,
                                             28, 29, 30, 31);
        for (int p = 0; p < 4; p++)
            u[p] = __builtin_shufflevector(t[2 * p], t[2 * p + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25,
                                           26, 27)
                   + __builtin_shufflevector(t[2 * p], t[2 * p + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28,
                                             29, 30, 31);
        for (int p = 0; p < 2; p++)
            v[p] = __builtin_shufflevector(u[2 * p], u[2 * p + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25,
                                           28, 29)
                   + __builtin_shufflevector(u[2 * p], u[2 * p + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26,
                                             27, 30, 31);
        return __builtin_shufflevector(v[0], v[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
               + __builtin_shufflevector(v[0], v[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    }
    #else
    static inline float fnn_hsum(fnn_v16 v) {
        float t[16];
        memcpy(t, &v, 64);
        for (int l = 0; l < 8; l++) t[l] += t[l + 8];
        for (int l = 0; l < 4; l++) t[l] += t[l + 4];
        return (t[0] + t[2]) + (t[1] + t[3]);
    }
    #endif
    /* 4 rows (or 1) of C times 16 columns starting at j; lanes [from, 16) stored (the tail block overlaps the one
       before it, so every load stays inside its row and the overlapped columns are not written twice) */
    #define FNN_AK(p) ((p)[k * sak])
    #define FNN_MM_BLOCK4(J, FROM)                                                                              \
        {                                                                                                       \
            fnn_v16 x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0};                                                     \
            if (acc) { x0 = FNN_LD(c0 + (J)); x1 = FNN_LD(c1 + (J)); x2 = FNN_LD(c2 + (J)); x3 = FNN_LD(c3 + (J)); } \
            for (k = 0; k < K; k++) {                                                                           \
                fnn_v16 b0 = FNN_LD(B + k * ldb + (J));                                                         \
                x0 += FNN_AK(a0) * b0; x1 += FNN_AK(a1) * b0; x2 += FNN_AK(a2) * b0; x3 += FNN_AK(a3) * b0;         \
            }                                                                                                   \
            if ((FROM) == 0) { FNN_ST(c0 + (J), x0); FNN_ST(c1 + (J), x1); FNN_ST(c2 + (J), x2);                \
                               FNN_ST(c3 + (J), x3); }                                                          \
            else for (int l = (FROM); l < 16; l++) { c0[(J) + l] = x0[l]; c1[(J) + l] = x1[l]; c2[(J) + l] = x2[l];  \
                                                      c3[(J) + l] = x3[l]; }                                    \
        }
    #if !defined(__AVX512F__)
    static void fnn_mm_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const float *A, ptrdiff_t sar, ptrdiff_t sak,
                         const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc) {
        ptrdiff_t r = 0, j, k, nf = n & ~(ptrdiff_t)15;
        if (n < 16) {                                   /* too narrow for a vector: plain loops */
            FNN_MM_PLAIN(float)
            return;
        }
        for (; r + 4 <= m; r += 4) {
            const float *a0 = A + r * sar, *a1 = a0 + sar, *a2 = a1 + sar, *a3 = a2 + sar;
            float *c0 = C + r * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            for (j = 0; j + 32 <= nf; j += 32) {
                fnn_v16 x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0}, y0 = {0}, y1 = {0}, y2 = {0}, y3 = {0};
                if (acc) {
                    x0 = FNN_LD(c0 + j); x1 = FNN_LD(c1 + j); x2 = FNN_LD(c2 + j); x3 = FNN_LD(c3 + j);
                    y0 = FNN_LD(c0 + j + 16); y1 = FNN_LD(c1 + j + 16); y2 = FNN_LD(c2 + j + 16);
                    y3 = FNN_LD(c3 + j + 16);
                }
                for (k = 0; k < K; k++) {
                    fnn_v16 b0 = FNN_LD(B + k * ldb + j), b1 = FNN_LD(B + k * ldb + j + 16);
                    FNN_IN_REGS(b0, b1);
                    x0 += FNN_AK(a0) * b0; y0 += FNN_AK(a0) * b1; x1 += FNN_AK(a1) * b0; y1 += FNN_AK(a1) * b1;
                    x2 += FNN_AK(a2) * b0; y2 += FNN_AK(a2) * b1; x3 += FNN_AK(a3) * b0; y3 += FNN_AK(a3) * b1;
                }
                FNN_ST(c0 + j, x0); FNN_ST(c1 + j, x1); FNN_ST(c2 + j, x2); FNN_ST(c3 + j, x3);
                FNN_ST(c0 + j + 16, y0); FNN_ST(c1 + j + 16, y1); FNN_ST(c2 + j + 16, y2); FNN_ST(c3 + j + 16, y3);
            }
            if (n > nf) {      /* the tail first: it reads C columns the block before it may already have written */
                float t[4][16];
                fnn_v16 x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0};
                ptrdiff_t jt = n - 16;
                if (acc) { x0 = FNN_LD(c0 + jt); x1 = FNN_LD(c1 + jt); x2 = FNN_LD(c2 + jt); x3 = FNN_LD(c3 + jt); }
                for (k = 0; k < K; k++) {
                    fnn_v16 b0 = FNN_LD(B + k * ldb + jt);
                    x0 += FNN_AK(a0) * b0; x1 += FNN_AK(a1) * b0; x2 += FNN_AK(a2) * b0; x3 += FNN_AK(a3) * b0;
                }
                memcpy(t[0], &x0, 64); memcpy(t[1], &x1, 64); memcpy(t[2], &x2, 64); memcpy(t[3], &x3, 64);
                if (j < nf) FNN_MM_BLOCK4(j, 0)
                for (ptrdiff_t l = nf - jt; l < 16; l++) {
                    c0[jt + l] = t[0][l]; c1[jt + l] = t[1][l]; c2[jt + l] = t[2][l]; c3[jt + l] = t[3][l];
                }
            } else if (j < nf) FNN_MM_BLOCK4(j, 0)
        }
        for (; r < m; r++) {
            const float *a0 = A + r * sar;
            float *c0 = C + r * ldc;
            float t[16];
            ptrdiff_t jt = n - 16;
            if (n > nf) {
                fnn_v16 x0 = {0};
                if (acc) x0 = FNN_LD(c0 + jt);
                for (k = 0; k < K; k++) x0 += FNN_AK(a0) * FNN_LD(B + k * ldb + jt);
                memcpy(t, &x0, 64);
            }
            for (j = 0; j + 64 <= nf; j += 64) {        /* 4 independent FMA chains */
                fnn_v16 x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0};
                if (acc) { x0 = FNN_LD(c0 + j); x1 = FNN_LD(c0 + j + 16); x2 = FNN_LD(c0 + j + 32);
                           x3 = FNN_LD(c0 + j + 48); }
                for (k = 0; k < K; k++) {
                    const float *bk = B + k * ldb + j;
                    const float ak = FNN_AK(a0);
                    x0 += ak * FNN_LD(bk); x1 += ak * FNN_LD(bk + 16); x2 += ak * FNN_LD(bk + 32);
                    x3 += ak * FNN_LD(bk + 48);
                }
                FNN_ST(c0 + j, x0); FNN_ST(c0 + j + 16, x1); FNN_ST(c0 + j + 32, x2); FNN_ST(c0 + j + 48, x3);
            }
            for (; j + 32 <= nf; j += 32) {
                fnn_v16 x0 = {0}, x1 = {0};
                if (acc) { x0 = FNN_LD(c0 + j); x1 = FNN_LD(c0 + j + 16); }
                for (k = 0; k < K; k++) {
                    x0 += FNN_AK(a0) * FNN_LD(B + k * ldb + j); x1 += FNN_AK(a0) * FNN_LD(B + k * ldb + j + 16);
                }
                FNN_ST(c0 + j, x0); FNN_ST(c0 + j + 16, x1);
            }
            for (; j < nf; j += 16) {
                fnn_v16 x0 = {0};
                if (acc) x0 = FNN_LD(c0 + j);
                for (k = 0; k < K; k++) x0 += FNN_AK(a0) * FNN_LD(B + k * ldb + j);
                FNN_ST(c0 + j, x0);
            }
            if (n > nf)
                for (ptrdiff_t l = nf - jt; l < 16; l++) c0[jt + l] = t[l];
        }
    }
    #else
    /* AVX-512: R rows x NV vectors of C held in registers through the whole k loop (the last vector of a panel at
       column w - 16, overlapping the one before it: every C vector is loaded before any is stored, and the overlapped
       lanes hold the same sums, so storing both is harmless).  Each element is still one FMA chain over k in order, so
       the bits are those of the 4 x 32 kernel above (the build without AVX-512): 1.1-1.4x its speed on the RNN LM's
       shapes (a chunk's 16 x 100 x 100 step 113 -> 128 GFLOP/s, the weight gradients' 8 x 100 x 1,280 86 -> 112 on
       one Xeon core). */
    #define FNN_RB_COL(V, NV) ((V) == (NV) - 1 ? w - 16 : 16 * (V))
    #define FNN_RB_BODY(R, NV)                                                                                    \
        {                                                                                                         \
            fnn_v16 x[R][NV];                                                                                     \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (R); r_++)                                             \
            _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++)                                            \
                x[r_][v_] = acc ? FNN_LD(C + (r + r_) * ldc + FNN_RB_COL(v_, NV)) : (fnn_v16){0};                  \
            for (ptrdiff_t k = 0; k < K; k++) {                                                                   \
                const float *bk = B + k * ldb;                                                                    \
                fnn_v16 b[NV];                                                                                    \
                _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++) b[v_] = FNN_LD(bk + FNN_RB_COL(v_, NV)); \
                _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (R); r_++) {                                       \
                    const float a_ = A[(r + r_) * sar + k * sak];                                                 \
                    _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++) x[r_][v_] += a_ * b[v_];           \
                }                                                                                                 \
            }                                                                                                     \
            _Pragma("GCC unroll 16") for (int r_ = 0; r_ < (R); r_++)                                             \
            _Pragma("GCC unroll 16") for (int v_ = 0; v_ < (NV); v_++)                                            \
                FNN_ST(C + (r + r_) * ldc + FNN_RB_COL(v_, NV), x[r_][v_]);                                       \
        }
    /* R rows at a time (R*NV + NV accumulators and B vectors within the 32 registers), then 4, 2, 1 */
    #define FNN_RB_CASE(NV, R)                                                                                     \
        case NV:                                                                                                  \
            for (; r + (R) <= m; r += (R)) FNN_RB_BODY(R, NV)                                                     \
            if ((R) > 4) for (; r + 4 <= m; r += 4) FNN_RB_BODY(4, NV)                                            \
            if ((R) > 2) for (; r + 2 <= m; r += 2) FNN_RB_BODY(2, NV)                                            \
            for (; r < m; r++) FNN_RB_BODY(1, NV)                                                                 \
            return;
    /* one panel of C: w (16 <= w <= 144) columns */
    static void fnn_mm_panel_f(ptrdiff_t m, ptrdiff_t w, ptrdiff_t K, const float *A, ptrdiff_t sar, ptrdiff_t sak,
                               const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc) {
        ptrdiff_t r = 0;
        switch ((w + 15) / 16) {
            FNN_RB_CASE(1, 8)
            FNN_RB_CASE(2, 8)
            FNN_RB_CASE(3, 8)
            FNN_RB_CASE(4, 6)
            FNN_RB_CASE(5, 4)
            FNN_RB_CASE(6, 4)
            FNN_RB_CASE(7, 3)
            FNN_RB_CASE(8, 3)
            FNN_RB_CASE(9, 2)
        }
    }
    static void fnn_mm_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const float *A, ptrdiff_t sar, ptrdiff_t sak,
                         const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc) {
        if (n < 16) {
            FNN_MM_PLAIN(float)
            return;
        }
        /* k in slices whose rows of B stay in L1 (a long k: the weight gradients' sums over all the segment's steps) */
        ptrdiff_t kb = K;
        if (K * (n < 128 ? n : 128) > 24576) kb = 6144 / (n < 128 ? n : 128);
        for (ptrdiff_t k0 = 0; k0 < K; k0 += kb) {
            ptrdiff_t kk = K - k0 < kb ? K - k0 : kb, j0 = 0;
            int a = acc || k0 > 0;
            for (; n - j0 >= 144; j0 += 128)
                fnn_mm_panel_f(m, 128, kk, A + k0 * sak, sar, sak, B + k0 * ldb + j0, ldb, C + j0, ldc, a);
            fnn_mm_panel_f(m, n - j0, kk, A + k0 * sak, sar, sak, B + k0 * ldb + j0, ldb, C + j0, ldc, a);
        }
    }
    #endif
    /* Z[i, w] = H[i] . W[w] + b[w] (i < m, w < s, rows of length n >= 16): 4 rows of H against one row of W at a
       time; the last partial 16-lane chunk is read from n - 16 with the lanes already counted masked off */
    static void fnn_dots_f(ptrdiff_t m, ptrdiff_t s, ptrdiff_t n, const float *Hm, const float *W, const float *b,
                           float *Z) {
        ptrdiff_t nf = n & ~(ptrdiff_t)15, i = 0, w, j;
        fnn_v16 mask;
        for (int l = 0; l < 16; l++) mask[l] = (l >= 16 - (n - nf)) ? 1.0f : 0.0f;
        for (; i + 4 <= m; i += 4) {
            const float *h0 = Hm + i * n, *h1 = h0 + n, *h2 = h1 + n, *h3 = h2 + n;
            w = 0;
    #ifdef FNN_HAVE_SHUFFLE
            /* 4 states x 4 rows of W: each loaded vector feeds 4 products, and the 16 sums are reduced together */
            for (; w + 4 <= s; w += 4) {
                const float *w0 = W + w * n, *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
                fnn_v16 x[16], r;
                for (int l = 0; l < 16; l++) x[l] = (fnn_v16){0};
                for (j = 0; j < nf + 16; j += 16) {
                    fnn_v16 v0, v1, v2, v3, g0, g1, g2, g3;
                    ptrdiff_t jj = j;
                    if (j < nf) {
                        v0 = FNN_LD(w0 + j); v1 = FNN_LD(w1 + j); v2 = FNN_LD(w2 + j); v3 = FNN_LD(w3 + j);
                    } else if (n > nf) {
                        jj = n - 16;
                        v0 = FNN_LD(w0 + jj) * mask; v1 = FNN_LD(w1 + jj) * mask; v2 = FNN_LD(w2 + jj) * mask;
                        v3 = FNN_LD(w3 + jj) * mask;
                    } else break;
                    g0 = FNN_LD(h0 + jj); g1 = FNN_LD(h1 + jj); g2 = FNN_LD(h2 + jj); g3 = FNN_LD(h3 + jj);
                    x[0] += g0 * v0; x[1] += g0 * v1; x[2] += g0 * v2; x[3] += g0 * v3;
                    x[4] += g1 * v0; x[5] += g1 * v1; x[6] += g1 * v2; x[7] += g1 * v3;
                    x[8] += g2 * v0; x[9] += g2 * v1; x[10] += g2 * v2; x[11] += g2 * v3;
                    x[12] += g3 * v0; x[13] += g3 * v1; x[14] += g3 * v2; x[15] += g3 * v3;
                }
                r = fnn_hsum16(x);
                for (int q = 0; q < 4; q++)
                    for (int l = 0; l < 4; l++) Z[(i + q) * s + w + l] = r[q * 4 + l] + b[w + l];
            }
    #endif
            for (; w < s; w++) {
                const float *wr = W + w * n;
                fnn_v16 x0 = {0}, x1 = {0}, x2 = {0}, x3 = {0};
                for (j = 0; j < nf; j += 16) {
                    fnn_v16 v = FNN_LD(wr + j);
                    x0 += FNN_LD(h0 + j) * v; x1 += FNN_LD(h1 + j) * v; x2 += FNN_LD(h2 + j) * v;
                    x3 += FNN_LD(h3 + j) * v;
                }
                if (n > nf) {
                    fnn_v16 v = FNN_LD(wr + n - 16) * mask;
                    x0 += FNN_LD(h0 + n - 16) * v; x1 += FNN_LD(h1 + n - 16) * v; x2 += FNN_LD(h2 + n - 16) * v;
                    x3 += FNN_LD(h3 + n - 16) * v;
                }
                Z[i * s + w] = fnn_hsum(x0) + b[w]; Z[(i + 1) * s + w] = fnn_hsum(x1) + b[w];
                Z[(i + 2) * s + w] = fnn_hsum(x2) + b[w]; Z[(i + 3) * s + w] = fnn_hsum(x3) + b[w];
            }
        }
        for (; i < m; i++) {
            const float *h0 = Hm + i * n;
            w = 0;
    #ifdef FNN_HAVE_SHUFFLE
            /* one state x 16 rows of W, the 16 sums reduced together (classes with few tokens: a third of the
               logits of a Brown batch land here); each sum as in the loop below, so the same bits */
            for (; w + 16 <= s; w += 16) {
                const float *w0 = W + w * n;
                fnn_v16 x[16], r;
                for (int l = 0; l < 16; l++) x[l] = (fnn_v16){0};
                for (j = 0; j < nf; j += 16) {
                    fnn_v16 g0 = FNN_LD(h0 + j);
                    for (int l = 0; l < 16; l++) x[l] += g0 * FNN_LD(w0 + l * n + j);
                }
                if (n > nf) {
                    fnn_v16 g0 = FNN_LD(h0 + n - 16);
                    for (int l = 0; l < 16; l++) x[l] += g0 * (FNN_LD(w0 + l * n + n - 16) * mask);
                }
                r = fnn_hsum16(x);
                for (int l = 0; l < 16; l++) Z[i * s + w + l] = r[l] + b[w + l];
            }
    #endif
            for (; w < s; w++) {
                const float *wr = W + w * n;
                fnn_v16 x0 = {0};
                for (j = 0; j < nf; j += 16) x0 += FNN_LD(h0 + j) * FNN_LD(wr + j);
                if (n > nf) x0 += FNN_LD(h0 + n - 16) * (FNN_LD(wr + n - 16) * mask);
                Z[i * s + w] = fnn_hsum(x0) + b[w];
            }
        }
    }
    #define FNN_HAVE_DOTS 1
    #else
    static void fnn_mm_f(ptrdiff_t m, ptrdiff_t n, ptrdiff_t K, const float *A, ptrdiff_t sar, ptrdiff_t sak,
                         const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc) {
        FNN_MM_PLAIN(float)
    }
    #define FNN_HAVE_DOTS 0
    static void fnn_dots_f(ptrdiff_t m, ptrdiff_t s, ptrdiff_t n, const float *Hm, const float *W, const float *b,
                           float *Z) {
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
    """
    void fnn_mm_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const float *A, Py_ssize_t sar, Py_ssize_t sak,
                  const float *B, Py_ssize_t ldb, float *C, Py_ssize_t ldc, int acc) noexcept nogil
    bint FNN_HAVE_DOTS
    void fnn_dots_f(Py_ssize_t m, Py_ssize_t s, Py_ssize_t n, const float *Hm, const float *W, const float *b,
                    float *Z) noexcept nogil
    void fnn_mm_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const double *A, Py_ssize_t sar, Py_ssize_t sak,
                  const double *B, Py_ssize_t ldb, double *C, Py_ssize_t ldc, int acc) noexcept nogil

# whether float32 runs the class blocks as vector products (_rnnlm_word_xent's `defer` needs it)
HAVE_BLOCKS = bool(FNN_HAVE_DOTS)

# stream rows per chunk of the recurrence: fixed, so the thread count only decides which thread runs a chunk
cdef enum:
    CHUNK = 16
# rows per task of the other products (row-major A: ROWS; A^T, whose rows are few and long: TROWS)
cdef enum:
    ROWS = 16
    TROWS = 8
# token rows per step of the output rows' norm through Gram matrices (block_sq_norm)
cdef enum:
    GRAM_ROWS = 16


cdef inline void mm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                    const floating *B, Py_ssize_t ldb, floating *C, Py_ssize_t ldc, int acc) noexcept nogil:
    """C (+)= A B, A (m, K) row-major with rows lda apart."""
    if floating is float:
        fnn_mm_f(m, n, K, A, lda, 1, B, ldb, C, ldc, acc)
    else:
        fnn_mm_d(m, n, K, A, lda, 1, B, ldb, C, ldc, acc)


cdef inline void mtm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                     const floating *B, Py_ssize_t ldb, floating *C, Py_ssize_t ldc, int acc) noexcept nogil:
    """C (+)= A^T B: A (K, m) row-major with rows lda apart (C's row r is column r of A)."""
    if floating is float:
        fnn_mm_f(m, n, K, A, 1, lda, B, ldb, C, ldc, acc)
    else:
        fnn_mm_d(m, n, K, A, 1, lda, B, ldb, C, ldc, acc)


cdef inline void bias_mm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t K, const floating *A, Py_ssize_t lda,
                         const floating *B, const floating *bias, floating *C) noexcept nogil:
    """C[r] = bias + A[r] B for r < m; B (K, n) and C (m, n) with rows n apart."""
    cdef Py_ssize_t r
    for r in range(m):
        memcpy(C + r * n, bias, n * sizeof(floating))
    if K > 0:
        mm(m, n, K, A, lda, B, n, C, n, 1)


def _rnnlm_forward(const floating[:, ::1] Eu, const floating[:, ::1] WihT, const floating[::1] b,
                   const Py_ssize_t[:, ::1] xi, const floating[:, ::1] WhhT, floating[:, ::1] P,
                   floating[:, :, ::1] Hs, int kind, int n_threads):
    """The input projection P = Eu W_ih^T + b, then the recurrence Hs[t + 1, s] = f(P[xi[t, s]] + Hs[t, s] W_hh^T).

    Eu (U, E) IN: the distinct input words' embeddings; WihT (E, H) IN: W_ih^T; b (H,) IN; xi (L, B) IN: row of P
    of each input; WhhT (H, Hp) IN: W_hh^T (Hp >= H columns); P (U, H) OUT; Hs (L + 1, B, H) INOUT: Hs[0] = h_0.
    """
    cdef Py_ssize_t L = xi.shape[0], B = xi.shape[1], H = P.shape[1], Hp = WhhT.shape[1], U = Eu.shape[0]
    cdef Py_ssize_t E = Eu.shape[1], n_chunks = (B + CHUNK - 1) // CHUNK, c, r0, m, t, s
    cdef int nt = threads_for(L * B * H * H // 64, n_threads)
    cdef int ntp = threads_for(U * E * H // 64, n_threads)
    if L == 0 or B == 0 or H == 0:
        return
    for c in prange((U + ROWS - 1) // ROWS, schedule="static", num_threads=ntp, nogil=True):
        r0 = c * ROWS
        m = min(ROWS, U - r0)
        bias_mm(m, H, E, &Eu[r0, 0], E, &WihT[0, 0], &b[0], &P[r0, 0])
    if nt > n_chunks:
        nt = <int> n_chunks
    for c in prange(n_chunks, schedule="static", num_threads=nt, nogil=True):
        r0 = c * CHUNK
        m = min(CHUNK, B - r0)
        for t in range(L):
            for s in range(r0, r0 + m):
                memcpy(&Hs[t + 1, s, 0], &P[xi[t, s], 0], H * sizeof(floating))
            mm(m, H, H, &Hs[t, r0, 0], H, &WhhT[0, 0], Hp, &Hs[t + 1, r0, 0], H, 1)
            act(&Hs[t + 1, r0, 0], m * H, kind)


def _rnnlm_class_xent(const floating[:, ::1] Ho, const floating[:, ::1] WcT, const floating[::1] bc,
                      const floating[:, ::1] Wc, const Py_ssize_t[::1] tc, double scale, floating[:, ::1] Z,
                      double[::1] loss, floating[:, ::1] dHo, int want, int n_threads):
    """The class softmax, ROWS tokens per task: logits, loss, gradient and its product back to h in one pass.

    Ho (N, H) IN; WcT (H, C) IN: Wc^T; bc (C,) IN; Wc (C, H) IN; tc (N,) IN: the target classes;
    Z (N, C) OUT: scale * (softmax - onehot) when want, else the softmax's exps; loss (N,) OUT: -log P(class);
    dHo (N, H) OUT (when want): Z Wc."""
    cdef Py_ssize_t N = Z.shape[0], C = Z.shape[1], H = Ho.shape[1], blk, i0, m, i, j
    cdef int nt = threads_for(N * C * H // 32, n_threads)
    cdef floating mx, zt, sc = <floating> scale
    cdef double s
    if N == 0 or C == 0:
        return
    for blk in prange((N + ROWS - 1) // ROWS, schedule="static", num_threads=nt, nogil=True):
        i0 = blk * ROWS
        m = min(ROWS, N - i0)
        bias_mm(m, C, H, &Ho[i0, 0], H, &WcT[0, 0], &bc[0], &Z[i0, 0])
        for i in range(i0, i0 + m):
            zt = Z[i, tc[i]]
            mx = row_max(&Z[i, 0], C)
            s = row_exp(&Z[i, 0], &Z[i, 0], C, mx)
            loss[i] = (mx - zt) + log(s)
            if want:
                for j in range(C):
                    Z[i, j] = <floating> (sc * Z[i, j] / s)
                Z[i, tc[i]] = Z[i, tc[i]] - sc
        if want and H > 0:
            mm(m, H, C, &Z[i0, 0], C, &Wc[0, 0], H, &dHo[i0, 0], H, 0)


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
    cdef Py_ssize_t t1 = (H + TROWS - 1) // TROWS
    cdef Py_ssize_t t2 = t1 + (C + TROWS - 1) // TROWS
    cdef Py_ssize_t t3 = t2 + (H + TROWS - 1) // TROWS
    cdef Py_ssize_t t4 = t3 + (U + ROWS - 1) // ROWS
    cdef int nt = threads_for((M * H + N * C + U * E) * H // 64, n_threads)
    if H == 0 or M == 0:
        return
    for t in prange(t4 + 2, schedule="dynamic", num_threads=nt, nogil=True):
        if t < t1:
            r0 = t * TROWS
            mtm(min(TROWS, H - r0), H, M, &dZ[0, r0], H, &X[0, 0], H, &gWhh[r0, 0], H, 0)
        elif t < t2:
            r0 = (t - t1) * TROWS
            mtm(min(TROWS, C - r0), H, N, &Z[0, r0], C, &Ho[0, 0], H, &gWc[r0, 0], H, 0)
        elif t < t3:
            r0 = (t - t2) * TROWS
            if E > 0:
                mtm(min(TROWS, H - r0), E, U, &S[0, r0], H, &Eu[0, 0], E, &gWih[r0, 0], E, 0)
        elif t < t4:
            r0 = (t - t3) * ROWS
            if E > 0:
                mm(min(ROWS, U - r0), E, H, &S[r0, 0], H, &W_ih[0, 0], E, &dE[r0, 0], E, 0)
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
                fnn_dots_f(mk, S, H, hc, &W[a, 0], &b[a], z)
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
                mm(mk, H, S, z, S, &W[a, 0], H, dhc, H, 0)
                for q in range(mk):
                    axpy(<floating> 1.0, dhc + q * H, &dh[order[seg[k] + q], 0], H)
                    axpy(<floating> 1.0, z + q * S, &db[off], S)
                if defer:
                    sq[k] = block_sq_norm(mk, S, H, z, hc, scratch + tid * per, zeros)
                else:
                    mtm(S, H, mk, z, S, hc, H, &dW[off, 0], H, 0)
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


cdef double block_sq_norm(Py_ssize_t mk, Py_ssize_t S, Py_ssize_t H, const floating *z, const floating *hc,
                          floating *tile, const floating *zeros) noexcept nogil:
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
            fnn_dots_f(r, w, S, z + q0 * S, z, zeros, gz)
            fnn_dots_f(r, w, H, hc + q0 * H, hc, zeros, gh)
            for q in range(r):
                d = 0.0
                for p in range(q0 + q):
                    d += (<double> gz[q * w + p]) * gh[q * w + p]
                s += 2.0 * d + (<double> gz[q * w + q0 + q]) * gh[q * w + q0 + q]
            q0 += r
        return s
    mtm(S, H, mk, z, S, hc, H, tile, H, 0)
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
        mtm(S, H, mk, &zkeep[cell_off[k]], S, hc, H, tile, H, 0)
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
                mm(m, H, H, &dZ[t, r0, 0], H, &Whh[0, 0], Hp, carry + r0 * H, H, 0)
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


def _segment_ids(const Py_ssize_t[::1] order, const Py_ssize_t[::1] seg, Py_ssize_t[::1] out):
    """out[order[q]] = u for q in seg[u]:seg[u + 1]: the group of each element (the inverse of a grouping)."""
    cdef Py_ssize_t u, q
    with nogil:
        for u in range(seg.shape[0] - 1):
            for q in range(seg[u], seg[u + 1]):
                out[order[q]] = u
