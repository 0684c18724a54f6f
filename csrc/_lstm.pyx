# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""LSTM recurrence over T steps and its truncated back-propagation through time.

Four gates of K units each, stored side by side in one row of 4K per batch row, in torch's order (i, f, g, o):

    a_t = x_t + h_{t-1} W^T + b                          x_t: the input already projected (one big product by the
    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),   caller), W (4K, K), b (4K,)
    o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

Steps are sequential; within a step the recurrent product and the cell update are fused into tiles.  A forward tile
is MR batch rows x one vector of VW units of each of the four gates: its 4 x MR accumulator vectors stay in registers
while it runs over the K inputs of W (packed once per call so that the four gate vectors of a unit block and input k
are contiguous), and the cell update is applied to them before anything is written.  A backward tile is MR rows x 4
vectors of units of d loss / d h_{t} = d loss / d a_{t+1} W, the cell's backward step following in the same tile.
Threads split a step's tiles (one OpenMP region for the whole sequence, one barrier per step: no BLAS call per
step, whose packing of W every step cost as much as the product at these sizes).  Every output element is one
fixed-order sum computed by one thread, so the result does not depend on the thread count.  dW is one matrix
product over all steps after the sweep; db is summed in row order.
Called only from fastnn/kernels.py, which validates every argument first.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel
from libc.stdlib cimport malloc, free
from libc.string cimport memset
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

    /* Register blocking: vectors of FNN_LSTM_VB bytes, FNN_LSTM_MR batch rows per tile (4 x MR accumulators plus
     * the 4 vectors of W and a broadcast must fit the register file: 32 with AVX-512, 16 otherwise). */
    #if defined(__GNUC__) || defined(__clang__)
    #  define FNN_LSTM_VEC 1
    #  if defined(__AVX512F__)
    #    define FNN_LSTM_VB 64
    #    define FNN_LSTM_MR 6
    #  elif defined(__AVX__)
    #    define FNN_LSTM_VB 32
    #    define FNN_LSTM_MR 2
    #  else
    #    define FNN_LSTM_VB 16
    #    define FNN_LSTM_MR 2
    #  endif
    #else
    #  define FNN_LSTM_VEC 0
    #  define FNN_LSTM_VB 16
    #  define FNN_LSTM_MR 2
    #endif
    #define FNN_LSTM_VW_F (FNN_LSTM_VB / 4)
    #define FNN_LSTM_VW_D (FNN_LSTM_VB / 8)
    #define FNN_LSTM_MRMAX 6

    static inline void *fnn_lstm_align(void *raw) { return (void *) (((uintptr_t) raw + 63) & ~(uintptr_t) 63); }

    /* The micro-kernel: out (MR x 4VW, row-major) = a (MR rows of kd, row stride lda) @ p (kd x 4VW, row-major,
     * 64-byte aligned).  Each output element is one sum over k in order. */
    #if FNN_LSTM_VEC
    #define FNN_LSTM_MK(NAME, T, VW, MR)                                                                   \\
    static inline void NAME(const T *restrict a, ptrdiff_t lda, const T *restrict p, ptrdiff_t kd,           \\
                            T *restrict out) {                                                               \\
        typedef T vt __attribute__((vector_size(FNN_LSTM_VB)));                                              \\
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
    #define FNN_LSTM_MK(NAME, T, VW, MR)                                                                   \\
    static inline void NAME(const T *restrict a, ptrdiff_t lda, const T *restrict p, ptrdiff_t kd,           \\
                            T *restrict out) {                                                               \\
        for (int q = 0; q < MR * 4 * VW; q++) out[q] = (T) 0;                                                \\
        for (ptrdiff_t k = 0; k < kd; k++)                                                                   \\
            for (int r = 0; r < MR; r++) {                                                                   \\
                T s = a[r * lda + k];                                                                        \\
                for (int q = 0; q < 4 * VW; q++) out[r * 4 * VW + q] += s * p[k * 4 * VW + q];              \\
            }                                                                                                \\
    }
    #endif

    #define FNN_LSTM_MK_ALL(SFX, T, VW)                                                                    \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##1, T, VW, 1)                                                              \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##2, T, VW, 2)                                                              \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##3, T, VW, 3)                                                              \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##4, T, VW, 4)                                                              \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##5, T, VW, 5)                                                              \\
    FNN_LSTM_MK(fnn_lstm_mk##SFX##6, T, VW, 6)                                                              \\
    static inline void fnn_lstm_mk##SFX(int mr, const T *a, ptrdiff_t lda, const T *p, ptrdiff_t kd, T *out) { \\
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

    /* A forward tile of step t: rows i0 .. i0+mr, units u0 .. u0+nu (nu <= VW).  hp = &H[t, i0, 0] (rows of K);
     * cp = &C[t, i0, u0]; x = &X[t, i0, u0], b = &b[u0] (gate g at + g K); panel: forward panel of u0;
     * a = &A[t, i0, u0] OUT (the activations, gate g at + g K); c = &C[t+1, i0, u0], h = &H[t+1, i0, u0] OUT. */
    #define FNN_LSTM_FWD_TILE(SFX, T, VW, SIGMOID, TANH, SIMD)                                            \\
    static inline void fnn_lstm_fwd_tile##SFX(const T *restrict hp, const T *restrict cp, const T *restrict x,   \\
                                              const T *restrict b, const T *restrict panel, T *restrict a,   \\
                                              T *restrict c, T *restrict h, ptrdiff_t K, int mr, ptrdiff_t nu) { \\
        T acc[FNN_LSTM_MRMAX * 4 * VW];                                                                      \\
        fnn_lstm_mk##SFX(mr, hp, K, panel, K, acc);                                                          \\
        for (int r = 0; r < mr; r++) {                                                                       \\
            const T *restrict s = acc + r * 4 * VW, *restrict xr = x + r * 4 * K, *restrict cpr = cp + r * K; \\
            T *restrict ar = a + r * 4 * K, *restrict cr = c + r * K, *restrict hr = h + r * K;              \\
            SIMD                                                                                             \\
            for (ptrdiff_t v = 0; v < nu; v++) {                                                             \\
                T i = SIGMOID(s[v] + (xr[v] + b[v]));                                                        \\
                T f = SIGMOID(s[VW + v] + (xr[K + v] + b[K + v]));                                           \\
                T g = TANH(s[2 * VW + v] + (xr[2 * K + v] + b[2 * K + v]));                                  \\
                T o = SIGMOID(s[3 * VW + v] + (xr[3 * K + v] + b[3 * K + v]));                               \\
                T cj = f * cpr[v] + i * g;                                                                   \\
                ar[v] = i; ar[K + v] = f; ar[2 * K + v] = g; ar[3 * K + v] = o;                              \\
                cr[v] = cj;                                                                                  \\
                hr[v] = o * TANH(cj);                                                                        \\
            }                                                                                                \\
        }                                                                                                    \\
    }

    /* A backward tile: rows i0 .. i0+mr, units q0 .. q0+nq (nq <= 4VW).  The carry d loss / d h_t =
     * dA[t+1] @ W (dan = &dA[t+1, i0, 0], rows of 4K; NULL at t = T-1: zero) is computed first.  Then, when
     * da != NULL, the cell's backward step t: a = &A[t, i0, q0], cp = &C[t, i0, q0], cc = &C[t+1, i0, q0],
     * gh = &dH[t, i0, q0] IN; dc = &dc[i0, q0] INOUT (d loss / d c_t in, d loss / d c_{t-1} out); da = &dA[t, i0, q0]
     * OUT, clipped to [-clip, clip] when clip > 0.  When da == NULL (after step 0) the carry goes to dh0 (&dh0[i0, q0]). */
    #define FNN_LSTM_BWD_TILE(SFX, T, VW, TANH, SIMD)                                                     \\
    static inline void fnn_lstm_bwd_tile##SFX(const T *restrict dan, const T *restrict panel, ptrdiff_t K,   \\
                                              int mr, ptrdiff_t nq, const T *restrict a, const T *restrict cp, \\
                                              const T *restrict cc, const T *restrict gh, T *restrict dc,      \\
                                              T *restrict da, T *restrict dh0, T clip) {                      \\
        T acc[FNN_LSTM_MRMAX * 4 * VW];                                                                      \\
        if (dan != NULL)                                                                                     \\
            fnn_lstm_mk##SFX(mr, dan, 4 * K, panel, 4 * K, acc);                                             \\
        else                                                                                                 \\
            memset(acc, 0, sizeof acc);                                                                      \\
        for (int r = 0; r < mr; r++) {                                                                       \\
            const T *restrict s = acc + r * 4 * VW;                                                          \\
            if (da == NULL) {                                                                                \\
                memcpy(dh0 + r * K, s, nq * sizeof(T));                                                      \\
                continue;                                                                                    \\
            }                                                                                                \\
            const T *restrict ar = a + r * 4 * K, *restrict cpr = cp + r * K, *restrict ccr = cc + r * K;    \\
            const T *restrict ghr = gh + r * K;                                                              \\
            T *restrict dcr = dc + r * K, *restrict dar = da + r * 4 * K;                                    \\
            SIMD                                                                                             \\
            for (ptrdiff_t v = 0; v < nq; v++) {                                                             \\
                T i = ar[v], f = ar[K + v], g = ar[2 * K + v], o = ar[3 * K + v];                            \\
                T tc = TANH(ccr[v]);                                                                         \\
                T d_h = ghr[v] + s[v];                                                                       \\
                T d_c = dcr[v] + d_h * o * ((T) 1 - tc * tc);                                                \\
                T vi = d_c * g * i * ((T) 1 - i);                                                            \\
                T vf = d_c * cpr[v] * f * ((T) 1 - f);                                                       \\
                T vg = d_c * i * ((T) 1 - g * g);                                                            \\
                T vo = d_h * tc * o * ((T) 1 - o);                                                           \\
                if (clip > (T) 0) {                                                                          \\
                    vi = vi > clip ? clip : (vi < -clip ? -clip : vi);                                       \\
                    vf = vf > clip ? clip : (vf < -clip ? -clip : vf);                                       \\
                    vg = vg > clip ? clip : (vg < -clip ? -clip : vg);                                       \\
                    vo = vo > clip ? clip : (vo < -clip ? -clip : vo);                                       \\
                }                                                                                            \\
                dar[v] = vi; dar[K + v] = vf; dar[2 * K + v] = vg; dar[3 * K + v] = vo;                      \\
                dcr[v] = d_c * f;                                                                            \\
            }                                                                                                \\
        }                                                                                                    \\
    }

    FNN_LSTM_MK_ALL(_f, float, FNN_LSTM_VW_F)
    FNN_LSTM_MK_ALL(_d, double, FNN_LSTM_VW_D)
    FNN_LSTM_PACK(_f, float, FNN_LSTM_VW_F)
    FNN_LSTM_PACK(_d, double, FNN_LSTM_VW_D)
    FNN_LSTM_FWD_TILE(_f, float, FNN_LSTM_VW_F, fnn_sigmoidf, fnn_tanhf, FNN_SIMD)
    FNN_LSTM_FWD_TILE(_d, double, FNN_LSTM_VW_D, fnn_sigmoid, tanh, )
    FNN_LSTM_BWD_TILE(_f, float, FNN_LSTM_VW_F, fnn_tanhf, FNN_SIMD)
    FNN_LSTM_BWD_TILE(_d, double, FNN_LSTM_VW_D, tanh, )
    """
    int FNN_LSTM_MR, FNN_LSTM_VW_F, FNN_LSTM_VW_D
    void *fnn_lstm_align(void *raw) noexcept nogil
    void fnn_lstm_pack_fwd_f(const float *W, Py_ssize_t K, float *out, Py_ssize_t p) noexcept nogil
    void fnn_lstm_pack_fwd_d(const double *W, Py_ssize_t K, double *out, Py_ssize_t p) noexcept nogil
    void fnn_lstm_pack_bwd_f(const float *W, Py_ssize_t K, float *out, Py_ssize_t q) noexcept nogil
    void fnn_lstm_pack_bwd_d(const double *W, Py_ssize_t K, double *out, Py_ssize_t q) noexcept nogil
    void fnn_lstm_fwd_tile_f(const float *hp, const float *cp, const float *x, const float *b, const float *panel,
                             float *a, float *c, float *h, Py_ssize_t K, int mr, Py_ssize_t nu) noexcept nogil
    void fnn_lstm_fwd_tile_d(const double *hp, const double *cp, const double *x, const double *b,
                             const double *panel, double *a, double *c, double *h, Py_ssize_t K, int mr,
                             Py_ssize_t nu) noexcept nogil
    void fnn_lstm_bwd_tile_f(const float *dan, const float *panel, Py_ssize_t K, int mr, Py_ssize_t nq,
                             const float *a, const float *cp, const float *cc, const float *gh, float *dc, float *da,
                             float *dh0, float clip) noexcept nogil
    void fnn_lstm_bwd_tile_d(const double *dan, const double *panel, Py_ssize_t K, int mr, Py_ssize_t nq,
                             const double *a, const double *cp, const double *cc, const double *gh, double *dc,
                             double *da, double *dh0, double clip) noexcept nogil


cdef inline void pack_fwd(const floating *W, Py_ssize_t K, floating *out, Py_ssize_t p) noexcept nogil:
    if floating is float:
        fnn_lstm_pack_fwd_f(W, K, out, p)
    else:
        fnn_lstm_pack_fwd_d(W, K, out, p)


cdef inline void pack_bwd(const floating *W, Py_ssize_t K, floating *out, Py_ssize_t q) noexcept nogil:
    if floating is float:
        fnn_lstm_pack_bwd_f(W, K, out, q)
    else:
        fnn_lstm_pack_bwd_d(W, K, out, q)


cdef inline void fwd_tile(const floating *hp, const floating *cp, const floating *x, const floating *b,
                          const floating *panel, floating *a, floating *c, floating *h, Py_ssize_t K, int mr,
                          Py_ssize_t nu) noexcept nogil:
    if floating is float:
        fnn_lstm_fwd_tile_f(hp, cp, x, b, panel, a, c, h, K, mr, nu)
    else:
        fnn_lstm_fwd_tile_d(hp, cp, x, b, panel, a, c, h, K, mr, nu)


cdef inline void bwd_tile(const floating *dan, const floating *panel, Py_ssize_t K, int mr, Py_ssize_t nq,
                          const floating *a, const floating *cp, const floating *cc, const floating *gh,
                          floating *dc, floating *da, floating *dh0, floating clip) noexcept nogil:
    if floating is float:
        fnn_lstm_bwd_tile_f(dan, panel, K, mr, nq, a, cp, cc, gh, dc, da, dh0, clip)
    else:
        fnn_lstm_bwd_tile_d(dan, panel, K, mr, nq, a, cp, cc, gh, dc, da, dh0, clip)


cdef inline int tile_threads(Py_ssize_t B, Py_ssize_t K, Py_ssize_t n_tiles, int n_threads) noexcept nogil:
    """Threads for a sweep whose steps each cost B x 4K x K multiply-adds: one per ~1M of them (below that a
    step's barrier costs more than the split saves), at most one per tile."""
    cdef int nt = threads_for(B * 4 * K * K // 32, n_threads)
    return nt if nt < n_tiles else <int> n_tiles


def _lstm_forward(const floating[:, :, ::1] X, const floating[:, ::1] W, const floating[::1] b,
                  floating[:, :, ::1] A, floating[:, :, ::1] H, floating[:, :, ::1] C, int n_threads):
    """X (T, B, 4K) IN projected inputs; W (4K, K) IN; b (4K,) IN; A (T, B, 4K) OUT: the gates' activations;
    H, C (T + 1, B, K) INOUT: H[0], C[0] = the starting state on entry, H[t + 1] = h_t, C[t + 1] = c_t on exit."""
    cdef Py_ssize_t T = X.shape[0], B = X.shape[1], K4 = X.shape[2], K = K4 // 4, t, p, tile, i0, u0
    cdef Py_ssize_t vw, mr = FNN_LSTM_MR, n_pan, n_rb, n_tiles
    cdef int nt
    cdef void *raw
    cdef floating *wp
    if floating is float:
        vw = FNN_LSTM_VW_F
    else:
        vw = FNN_LSTM_VW_D
    if T == 0 or B == 0 or K == 0:
        return
    n_pan = (K + vw - 1) // vw
    n_rb = (B + mr - 1) // mr
    n_tiles = n_pan * n_rb
    nt = tile_threads(B, K, n_tiles, n_threads)
    raw = malloc(n_pan * vw * K4 * sizeof(floating) + 64)
    if raw == NULL:
        raise MemoryError()
    wp = <floating *> fnn_lstm_align(raw)
    t = 0
    with nogil, parallel(num_threads=nt):
        for p in prange(n_pan, schedule="static"):
            pack_fwd(&W[0, 0], K, wp, p)
        for t in range(T):
            # tiles ordered panel-major, so that a thread's consecutive tiles share their panel of W
            for tile in prange(n_tiles, schedule="static"):
                u0 = (tile // n_rb) * vw
                i0 = (tile % n_rb) * mr
                fwd_tile(&H[t, i0, 0], &C[t, i0, u0], &X[t, i0, u0], &b[u0], wp + u0 * K4, &A[t, i0, u0],
                         &C[t + 1, i0, u0], &H[t + 1, i0, u0], K, <int> min(mr, B - i0), min(vw, K - u0))
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
    cdef Py_ssize_t T = dH.shape[0], B = dH.shape[1], K = dH.shape[2], K4 = 4 * K, t, s, q, tile, i0, u0
    cdef Py_ssize_t i, j, blk, lo, hi, vw4, mr = FNN_LSTM_MR, n_pan, n_rb, n_tiles, n_blocks = (K4 + 255) // 256
    cdef int nt, m
    cdef floating c = <floating> clip
    cdef void *raw
    cdef floating *wp
    if floating is float:
        vw4 = 4 * FNN_LSTM_VW_F
    else:
        vw4 = 4 * FNN_LSTM_VW_D
    if B == 0 or K == 0:
        return
    n_pan = (K + vw4 - 1) // vw4
    n_rb = (B + mr - 1) // mr
    n_tiles = n_pan * n_rb
    nt = tile_threads(B, K, n_tiles, n_threads)
    if T == 0:
        memset(&dh0[0, 0], 0, B * K * sizeof(floating))
    else:
        raw = malloc(n_pan * vw4 * K4 * sizeof(floating) + 64)
        if raw == NULL:
            raise MemoryError()
        wp = <floating *> fnn_lstm_align(raw)
        s = t = 0
        with nogil, parallel(num_threads=nt):
            for q in prange(n_pan, schedule="static"):
                pack_bwd(&W[0, 0], K, wp, q)
            # pass s: the carry d loss / d h_t = dA[t+1] @ W, then the cell's backward step t = T-1-s; the last
            # pass (t = -1) only sends the carry to dh0
            for s in range(T + 1):
                t = T - 1 - s
                for tile in prange(n_tiles, schedule="static"):
                    u0 = (tile // n_rb) * vw4
                    i0 = (tile % n_rb) * mr
                    m = <int> min(mr, B - i0)
                    if t < 0:
                        bwd_tile(&dA[0, i0, 0], wp + u0 * K4, K, m, min(vw4, K - u0), NULL, NULL, NULL, NULL,
                                 NULL, NULL, &dh0[i0, u0], c)
                    else:
                        bwd_tile(&dA[t + 1, i0, 0] if t < T - 1 else NULL, wp + u0 * K4, K, m, min(vw4, K - u0),
                                 &A[t, i0, u0], &C[t, i0, u0], &C[t + 1, i0, u0], &dH[t, i0, u0], &dc0[i0, u0],
                                 &dA[t, i0, u0], NULL, c)
        free(raw)
    with nogil:
        # dW = sum_t da_t^T h_{t-1}: one product over all T*B rows
        if T > 0:
            gemm_rm(True, False, <int> K4, <int> K, <int> (T * B), <floating> 1.0, &dA[0, 0, 0], <int> K4,
                    &H[0, 0, 0], <int> K, <floating> 0.0, &dW[0, 0], <int> K)
        # db: rows added in order, threads own column blocks (the same bits for any thread count)
        for blk in prange(n_blocks, schedule="static", num_threads=threads_for(T * B * K4, n_threads)):
            lo = blk * 256
            hi = lo + 256
            if hi > K4:
                hi = K4
            for j in range(lo, hi):
                db[j] = 0
            for t in range(T):
                for i in range(B):
                    for j in range(lo, hi):
                        db[j] = db[j] + dA[t, i, j]
