/* The float32 output layer's three products on AMX tiles, with bfloat16 operands and float32 sums
 * (csrc/_softmax.pyx's _output_layer_tiles_f when kernels.output_layer runs with precision="bfloat16").
 *
 * Why: at the NPLM's shapes (B 128-512, H 100, |V| 14,115) the products run at ~230 GFLOP/s in float32 on the
 * 2-core AVX-512 Xeon, two thirds of its GEMM roof; an AMX tile product (TDPBF16PS: 16 x 16 float32 sums += 16 x 32
 * bfloat16 times 32 x 16) does 16 times an AVX-512 FMA's work per instruction.  The operands lose precision (8 bits
 * of mantissa, round to nearest even); the sums do not.  Only the products move: the softmax and its exps stay float32.
 *
 * An AMX product C (M x N) += A (M x K) B (K x N) reads A row-major and B in pairs ("VNNI"): row r of the packed B
 * holds B[2r, c] and B[2r + 1, c] next to each other for every column c.  So:
 *   logits  Z (block x Bp)  += Wb (block x Hk) hV (Hk/2 x 2Bp)     Wb: the block's W rows;  hV: hT packed in pairs
 *   dh      D (Hp x Bp)     += WT (Hp x block) GV (block/2 x 2Bp)  WT: the block's W^T;     GV: G packed in pairs
 *   dW      T (block x Hp)   = Gb (block x Bp) hV2 (Bp/2 x 2Hp)    Gb: the gradient tile G; hV2: hp packed in pairs
 * (one routine, fnn_amx_mm, makes all three)
 * with Hk = H rounded up to 32, Bp = B rounded up to 32, Hp = H rounded up to 16, block a multiple of 32 (padding
 * rows and columns are zeros).  Each C tile sums over k in order: the same bits for any thread count.
 *
 * Compiled with target attributes where gcc >= 11 or clang >= 12 build for x86-64 Linux (the OS must grant the tile
 * state: arch_prctl ARCH_REQ_XCOMP_PERM, Linux >= 5.16); fnn_amx_ready() says whether this CPU and OS can run it.
 */
#ifndef FNN_AMX_H
#define FNN_AMX_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && !defined(FNN_NO_AMX) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#  define FNN_AMX 1
#  include <immintrin.h>
#  include <cpuid.h>
#  include <unistd.h>
#  include <sys/syscall.h>
#  define FNN_AMX_TGT __attribute__((target("avx512f,avx512bw,avx512bf16,amx-tile,amx-bf16")))
#else
#  define FNN_AMX 0
#endif

#if FNN_AMX
/* 1 when the CPU has AMX-BF16 and AVX512-BF16 and the OS lets this process use the tiles (asked once). */
static int fnn_amx_ready(void) {
    static int ready = -1;
    if (ready >= 0) return ready;
    unsigned a, b, c, d, a1 = 0, b1, c1, d1;
    ready = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return ready;
    if (a >= 1) __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    int amx = (d >> 24 & 1) && (d >> 22 & 1);           /* AMX-TILE, AMX-BF16 */
    int bf16 = (a1 >> 5 & 1) && (b >> 30 & 1);          /* AVX512-BF16, AVX512BW */
    if (amx && bf16 && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0)
        ready = 1;
    return ready;
}

/* Tiles 0-3: a 2 x 2 block of C (16 x 16 float32 each); 4, 5: two 16 x 32 pieces of A; 6, 7: two of B. */
FNN_AMX_TGT static inline void fnn_amx_config(void) {
    struct { uint8_t palette, start_row, reserved[14]; uint16_t colsb[16]; uint8_t rows[16]; } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
}

/* dst (rows_p x cols_p bfloat16, row-major) = src (rows x cols, row stride lds), zeros beyond; cols_p % 32 == 0. */
FNN_AMX_TGT static void fnn_amx_pack_rows_f(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds,
                                          uint16_t *dst, ptrdiff_t rows_p, ptrdiff_t cols_p) {
    for (ptrdiff_t r = 0; r < rows_p; r++) {
        uint16_t *d = dst + r * cols_p;
        for (ptrdiff_t c = 0; c < cols_p; c += 32) {
            __m512 x0 = _mm512_setzero_ps(), x1 = _mm512_setzero_ps();
            if (r < rows) {
                const float *s = src + r * lds + c;
                ptrdiff_t n0 = cols - c, n1 = cols - c - 16;
                x0 = _mm512_maskz_loadu_ps(n0 >= 16 ? 0xFFFF : n0 > 0 ? (__mmask16) ((1u << n0) - 1) : 0, s);
                x1 = _mm512_maskz_loadu_ps(n1 >= 16 ? 0xFFFF : n1 > 0 ? (__mmask16) ((1u << n1) - 1) : 0, s + 16);
            }
            _mm512_storeu_si512(d + c, (__m512i) _mm512_cvtne2ps_pbh(x1, x0));
        }
    }
}

/* dst ((rows_p / 2) x (2 cols_p) bfloat16) = src (rows x cols, row stride lds) in pairs of rows: dst[r, 2 c + j] =
 * src[2 r + j, c], zeros beyond; rows_p even, cols_p % 16 == 0. */
FNN_AMX_TGT static void fnn_amx_pack_pairs_f(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds,
                                           uint16_t *dst, ptrdiff_t rows_p, ptrdiff_t cols_p) {
    /* the two rows' 16 values side by side, then interleaved: out[2 j] = row 0's j, out[2 j + 1] = row 1's j */
    const __m512i mix = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (ptrdiff_t r = 0; r < rows_p; r += 2) {
        uint16_t *d = dst + (r / 2) * 2 * cols_p;
        for (ptrdiff_t c = 0; c < cols_p; c += 16) {
            ptrdiff_t n = cols - c;
            __mmask16 m = n >= 16 ? 0xFFFF : n > 0 ? (__mmask16) ((1u << n) - 1) : 0;
            __m512 x0 = r < rows ? _mm512_maskz_loadu_ps(m, src + r * lds + c) : _mm512_setzero_ps();
            __m512 x1 = r + 1 < rows ? _mm512_maskz_loadu_ps(m, src + (r + 1) * lds + c) : _mm512_setzero_ps();
            __m512i both = (__m512i) _mm512_cvtne2ps_pbh(x1, x0);
            _mm512_storeu_si512(d + 2 * c, _mm512_permutexvar_epi16(mix, both));
        }
    }
}

/* dst (cols_p x rows_p bfloat16, row-major) = src (rows x cols, row stride lds) transposed, zeros beyond;
 * rows_p % 16 == 0. */
FNN_AMX_TGT static void fnn_amx_pack_cols_f(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds,
                                          uint16_t *dst, ptrdiff_t rows_p, ptrdiff_t cols_p) {
    const __m512i step = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int) lds));
    for (ptrdiff_t c = 0; c < cols_p; c++) {
        uint16_t *d = dst + c * rows_p;
        for (ptrdiff_t r = 0; r < rows_p; r += 16) {
            ptrdiff_t n = c < cols ? rows - r : 0;
            __mmask16 m = n >= 16 ? 0xFFFF : n > 0 ? (__mmask16) ((1u << n) - 1) : 0;
            __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step, src + r * lds + c, 4);
            _mm256_storeu_si256((__m256i *) (d + r), (__m256i) _mm512_cvtneps_pbh(x));
        }
    }
}

/* C (M x N float32, row stride ldc) (+)= A (M x K bfloat16, row stride lda) B (K x N as K/2 x 2N bfloat16 pairs,
 * row stride ldb): add 1 adds to C, 0 writes it.  M and N multiples of 16, K of 32.  Blocks of 2 x 2 tiles of C
 * (one A and one B piece each serve two products), one tile high or wide at an odd edge. */
FNN_AMX_TGT static __attribute__((noinline)) void fnn_amx_mm_f(const uint16_t *A, ptrdiff_t lda, const uint16_t *B,
                                                               ptrdiff_t ldb, float *C, ptrdiff_t ldc, ptrdiff_t M,
                                                               ptrdiff_t N, ptrdiff_t K, int add) {
    fnn_amx_config();
    const ptrdiff_t sa = lda * 2, sb = ldb * 2, sc = ldc * 4;     /* strides in bytes */
    for (ptrdiff_t m0 = 0; m0 < M; m0 += 32) {
        int two_m = m0 + 32 <= M;
        for (ptrdiff_t n0 = 0; n0 < N; n0 += 32) {
            int two_n = n0 + 32 <= N;
            float *c = C + m0 * ldc + n0;
            if (add) {
                _tile_loadd(0, c, sc);
                if (two_n) _tile_loadd(1, c + 16, sc);
                if (two_m) _tile_loadd(2, c + 16 * ldc, sc);
                if (two_m && two_n) _tile_loadd(3, c + 16 * ldc + 16, sc);
            } else {
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
            }
            for (ptrdiff_t k0 = 0; k0 < K; k0 += 32) {
                const uint16_t *a = A + m0 * lda + k0, *b = B + (k0 / 2) * ldb + 2 * n0;
                _tile_loadd(4, a, sa);
                _tile_loadd(6, b, sb);
                _tile_dpbf16ps(0, 4, 6);
                if (two_n) {
                    _tile_loadd(7, b + 32, sb);
                    _tile_dpbf16ps(1, 4, 7);
                }
                if (two_m) {
                    _tile_loadd(5, a + 16 * lda, sa);
                    _tile_dpbf16ps(2, 5, 6);
                    if (two_n) _tile_dpbf16ps(3, 5, 7);
                }
            }
            _tile_stored(0, c, sc);
            if (two_n) _tile_stored(1, c + 16, sc);
            if (two_m) _tile_stored(2, c + 16 * ldc, sc);
            if (two_m && two_n) _tile_stored(3, c + 16 * ldc + 16, sc);
        }
    }
    _tile_release();
}
#endif  /* FNN_AMX */

/* What the Cython side calls (no-ops where FNN_AMX is 0: fnn_amx_ok() is then 0 and they are never reached). */
#if FNN_AMX
#  define FNN_AMX_CALL(X) X
#else
#  define FNN_AMX_CALL(X)
#endif
static inline int fnn_amx_ok(void) {
#if FNN_AMX
    return fnn_amx_ready();
#else
    return 0;
#endif
}
static inline void fnn_amx_pack_rows(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds, uint16_t *dst,
                                       ptrdiff_t rows_p, ptrdiff_t cols_p) {
    FNN_AMX_CALL(fnn_amx_pack_rows_f(src, rows, cols, lds, dst, rows_p, cols_p));
}
static inline void fnn_amx_pack_pairs(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds,
                                        uint16_t *dst, ptrdiff_t rows_p, ptrdiff_t cols_p) {
    FNN_AMX_CALL(fnn_amx_pack_pairs_f(src, rows, cols, lds, dst, rows_p, cols_p));
}
static inline void fnn_amx_pack_cols(const float *src, ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t lds,
                                       uint16_t *dst, ptrdiff_t rows_p, ptrdiff_t cols_p) {
    FNN_AMX_CALL(fnn_amx_pack_cols_f(src, rows, cols, lds, dst, rows_p, cols_p));
}
static inline void fnn_amx_mm(const uint16_t *A, ptrdiff_t lda, const uint16_t *B, ptrdiff_t ldb, float *C,
                              ptrdiff_t ldc, ptrdiff_t M, ptrdiff_t N, ptrdiff_t K, int add) {
    FNN_AMX_CALL(fnn_amx_mm_f(A, lda, B, ldb, C, ldc, M, N, K, add));
}
#undef FNN_AMX_CALL
#endif
