/*
 * C helpers of the Bloom filter kernel (ext/bloom.pyx): XXH64, the splitmix64
 * step, multiply-high and popcount, each with a portable path so that 32-bit
 * ARM/MIPS routers (no __int128, maybe no popcount builtin, maybe big-endian)
 * compute exactly the same bits as x86-64 and the pure-Python twin.
 *
 * XXH64 follows the xxHash specification (Y. Collet,
 * https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md): input words
 * are read little-endian whatever the CPU.
 */
#ifndef MESHCORE_BLOOM_HASH_H
#define MESHCORE_BLOOM_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define MC_INLINE static inline __attribute__((always_inline))
#define MC_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#define MC_PREFETCH_R(p) __builtin_prefetch((p), 0, 3)
#else
#define MC_INLINE static inline
#define MC_PREFETCH_W(p) ((void)(p))
#define MC_PREFETCH_R(p) ((void)(p))
#endif

#define MC_P1 0x9E3779B185EBCA87ULL
#define MC_P2 0xC2B2AE3D27D4EB4FULL
#define MC_P3 0x165667B19E3779F9ULL
#define MC_P4 0x85EBCA77C2B2AE63ULL
#define MC_P5 0x27D4EB2F165667C5ULL

MC_INLINE uint64_t mc_rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* Unaligned little-endian loads: memcpy compiles to one mov on x86/ARMv7+. */
MC_INLINE uint64_t mc_read64le(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#elif !defined(__BYTE_ORDER__)
    v = (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) |
        ((uint64_t)p[3] << 24) | ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) |
        ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
#endif
    return v;
}

MC_INLINE uint32_t mc_read32le(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#elif !defined(__BYTE_ORDER__)
    v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
        ((uint32_t)p[3] << 24);
#endif
    return v;
}

MC_INLINE uint64_t mc_xxh64_round(uint64_t acc, uint64_t input) {
    acc += input * MC_P2;
    acc = mc_rotl64(acc, 31);
    return acc * MC_P1;
}

MC_INLINE uint64_t mc_xxh64_merge(uint64_t acc, uint64_t val) {
    acc ^= mc_xxh64_round(0, val);
    return acc * MC_P1 + MC_P4;
}

/* XXH64(data[0:len], seed); equals xxhash.xxh64_intdigest(data, seed). */
MC_INLINE uint64_t mc_xxh64(const uint8_t *p, size_t len, uint64_t seed) {
    const uint8_t *end = p + len;
    uint64_t h;
    if (len >= 32) {
        const uint8_t *limit = end - 32;
        uint64_t v1 = seed + MC_P1 + MC_P2;
        uint64_t v2 = seed + MC_P2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - MC_P1;
        do {
            v1 = mc_xxh64_round(v1, mc_read64le(p));
            v2 = mc_xxh64_round(v2, mc_read64le(p + 8));
            v3 = mc_xxh64_round(v3, mc_read64le(p + 16));
            v4 = mc_xxh64_round(v4, mc_read64le(p + 24));
            p += 32;
        } while (p <= limit);
        h = mc_rotl64(v1, 1) + mc_rotl64(v2, 7) + mc_rotl64(v3, 12) + mc_rotl64(v4, 18);
        h = mc_xxh64_merge(h, v1);
        h = mc_xxh64_merge(h, v2);
        h = mc_xxh64_merge(h, v3);
        h = mc_xxh64_merge(h, v4);
    } else {
        h = seed + MC_P5;
    }
    h += (uint64_t)len;
    while (p + 8 <= end) {
        h ^= mc_xxh64_round(0, mc_read64le(p));
        h = mc_rotl64(h, 27) * MC_P1 + MC_P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)mc_read32le(p) * MC_P1;
        h = mc_rotl64(h, 23) * MC_P2 + MC_P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * MC_P5;
        h = mc_rotl64(h, 11) * MC_P1;
        p++;
    }
    h ^= h >> 33;
    h *= MC_P2;
    h ^= h >> 29;
    h *= MC_P3;
    h ^= h >> 32;
    return h;
}

/* The probe step h2: splitmix64's finaliser of h, forced odd. */
MC_INLINE uint64_t mc_step(uint64_t h) {
    uint64_t z = h + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) | 1;
}

/* High half of a 64x64 -> 128-bit product from four 32x32 -> 64 products:
 * what 32-bit CPUs compute; exact, so it always equals the __int128 path. */
MC_INLINE uint64_t mc_mulhi64_portable(uint64_t a, uint64_t b) {
    uint64_t a_lo = (uint32_t)a, a_hi = a >> 32;
    uint64_t b_lo = (uint32_t)b, b_hi = b >> 32;
    uint64_t lo_lo = a_lo * b_lo;
    uint64_t hi_lo = a_hi * b_lo;
    uint64_t lo_hi = a_lo * b_hi;
    uint64_t hi_hi = a_hi * b_hi;
    uint64_t cross = (lo_lo >> 32) + (uint32_t)hi_lo + lo_hi;  /* < 2**64: no carry lost */
    return hi_hi + (hi_lo >> 32) + (cross >> 32);
}

MC_INLINE uint64_t mc_mulhi64(uint64_t a, uint64_t b) {
#ifdef __SIZEOF_INT128__
    return (uint64_t)(((__uint128_t)a * b) >> 64);
#else
    return mc_mulhi64_portable(a, b);
#endif
}

MC_INLINE int mc_popcount64_portable(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (int)((x * 0x0101010101010101ULL) >> 56);
}

MC_INLINE int mc_popcount64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcountll(x);
#else
    return mc_popcount64_portable(x);
#endif
}

/* ---- Eight keys at once ------------------------------------------------------------
 *
 * XXH64 of a short key is a chain of ~35 dependent multiplies and as many
 * other instructions: on a modern core that, not memory, bounds a Bloom batch.
 * With AVX-512 (x86-64 servers and desktops) eight keys are hashed in the
 * eight 64-bit lanes of one register: lanes of different lengths run the same
 * instructions under masks, and masked gathers read each key's own bytes and
 * nothing beyond them. The result is bit for bit the scalar XXH64 above (the
 * differential tests compare both with the xxhash package). Everywhere else,
 * and for keys shorter than 4 bytes, the scalar loop runs.
 */
#define MC_LANES 8

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(MESHCORE_NO_SIMD)
#define MC_HAVE_AVX512 1
#include <immintrin.h>

static int mc_avx512_enabled = 0;

#define MC_AVX512 __attribute__((target("avx512f,avx512dq")))

MC_AVX512 static inline __m512i mc_x8_round(__m512i acc, __m512i input) {
    acc = _mm512_add_epi64(acc, _mm512_mullo_epi64(input, _mm512_set1_epi64((long long)MC_P2)));
    acc = _mm512_rol_epi64(acc, 31);
    return _mm512_mullo_epi64(acc, _mm512_set1_epi64((long long)MC_P1));
}

MC_AVX512 static inline __m512i mc_x8_merge(__m512i acc, __m512i val) {
    acc = _mm512_xor_si512(acc, mc_x8_round(_mm512_setzero_si512(), val));
    return _mm512_add_epi64(_mm512_mullo_epi64(acc, _mm512_set1_epi64((long long)MC_P1)),
                            _mm512_set1_epi64((long long)MC_P4));
}

/* out[i] = XXH64(ptr[i][0:len[i]], seed) for each lane i in `lanes`; every
 * such key must be at least 4 bytes long (the last bytes are read as one
 * 32-bit word ending at the key's end). */
MC_AVX512 static void mc_xxh64_x8_avx512(const uint8_t *const *ptr, const size_t *len,
                                         __mmask8 lanes, uint64_t seed, uint64_t *out) {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i P1 = _mm512_set1_epi64((long long)MC_P1);
    const __m512i P2 = _mm512_set1_epi64((long long)MC_P2);
    const __m512i P3 = _mm512_set1_epi64((long long)MC_P3);
    const __m512i P4 = _mm512_set1_epi64((long long)MC_P4);
    const __m512i P5 = _mm512_set1_epi64((long long)MC_P5);
    const __m512i s = _mm512_set1_epi64((long long)seed);
    const __m512i L = _mm512_maskz_loadu_epi64(lanes, len);
    __m512i p = _mm512_maskz_loadu_epi64(lanes, (const void *)ptr);
    __m512i stripes = _mm512_srli_epi64(L, 5);
    __m512i h, rest, word;
    __mmask8 m;
    uint64_t most = 0, t;
    int i;
    for (i = 0; i < MC_LANES; i++)
        if ((lanes >> i) & 1 && (len[i] >> 5) > most) most = len[i] >> 5;
    if (most) {
        __m512i v1 = _mm512_add_epi64(s, _mm512_add_epi64(P1, P2));
        __m512i v2 = _mm512_add_epi64(s, P2);
        __m512i v3 = s;
        __m512i v4 = _mm512_sub_epi64(s, P1);
        for (t = 0; t < most; t++) {
            m = lanes & _mm512_cmpgt_epu64_mask(stripes, _mm512_set1_epi64((long long)t));
            v1 = _mm512_mask_mov_epi64(v1, m, mc_x8_round(v1,
                    _mm512_mask_i64gather_epi64(zero, m, p, (const void *)0, 1)));
            v2 = _mm512_mask_mov_epi64(v2, m, mc_x8_round(v2,
                    _mm512_mask_i64gather_epi64(zero, m, p, (const void *)8, 1)));
            v3 = _mm512_mask_mov_epi64(v3, m, mc_x8_round(v3,
                    _mm512_mask_i64gather_epi64(zero, m, p, (const void *)16, 1)));
            v4 = _mm512_mask_mov_epi64(v4, m, mc_x8_round(v4,
                    _mm512_mask_i64gather_epi64(zero, m, p, (const void *)24, 1)));
            p = _mm512_mask_add_epi64(p, m, p, _mm512_set1_epi64(32));
        }
        h = _mm512_add_epi64(_mm512_add_epi64(_mm512_rol_epi64(v1, 1), _mm512_rol_epi64(v2, 7)),
                             _mm512_add_epi64(_mm512_rol_epi64(v3, 12), _mm512_rol_epi64(v4, 18)));
        h = mc_x8_merge(h, v1);
        h = mc_x8_merge(h, v2);
        h = mc_x8_merge(h, v3);
        h = mc_x8_merge(h, v4);
        h = _mm512_mask_blend_epi64(_mm512_cmpgt_epu64_mask(stripes, zero),
                                    _mm512_add_epi64(s, P5), h);
    } else {
        h = _mm512_add_epi64(s, P5);
    }
    h = _mm512_add_epi64(h, L);
    rest = _mm512_and_si512(L, _mm512_set1_epi64(31));
    /* up to three 8-byte words */
    for (t = 0; t < 3; t++) {
        m = lanes & _mm512_cmpgt_epu64_mask(_mm512_srli_epi64(rest, 3),
                                            _mm512_set1_epi64((long long)t));
        if (!m) break;
        word = mc_x8_round(zero, _mm512_mask_i64gather_epi64(zero, m, p, (const void *)0, 1));
        word = _mm512_add_epi64(
            _mm512_mullo_epi64(_mm512_rol_epi64(_mm512_xor_si512(h, word), 27), P1), P4);
        h = _mm512_mask_mov_epi64(h, m, word);
        p = _mm512_mask_add_epi64(p, m, p, _mm512_set1_epi64(8));
    }
    /* one 4-byte word */
    m = lanes & _mm512_test_epi64_mask(rest, _mm512_set1_epi64(4));
    if (m) {
        word = _mm512_cvtepu32_epi64(
            _mm512_mask_i64gather_epi32(_mm256_setzero_si256(), m, p, (const void *)0, 1));
        word = _mm512_xor_si512(h, _mm512_mullo_epi64(word, P1));
        word = _mm512_add_epi64(_mm512_mullo_epi64(_mm512_rol_epi64(word, 23), P2), P3);
        h = _mm512_mask_mov_epi64(h, m, word);
    }
    /* up to three single bytes, taken from the 32-bit word that ends the key */
    rest = _mm512_and_si512(L, _mm512_set1_epi64(3));
    m = lanes & _mm512_test_epi64_mask(rest, rest);
    if (m) {
        __m512i last = _mm512_cvtepu32_epi64(_mm512_mask_i64gather_epi32(
            _mm256_setzero_si256(), m, _mm512_sub_epi64(_mm512_add_epi64(
                _mm512_maskz_loadu_epi64(lanes, (const void *)ptr), L), _mm512_set1_epi64(4)),
            (const void *)0, 1));
        /* the first tail byte is byte (4 - rest) of that word */
        __m512i shift = _mm512_slli_epi64(_mm512_sub_epi64(_mm512_set1_epi64(4), rest), 3);
        for (t = 0; t < 3; t++) {
            m = lanes & _mm512_cmpgt_epu64_mask(rest, _mm512_set1_epi64((long long)t));
            if (!m) break;
            word = _mm512_and_si512(_mm512_srlv_epi64(last, shift), _mm512_set1_epi64(0xFF));
            word = _mm512_xor_si512(h, _mm512_mullo_epi64(word, P5));
            word = _mm512_mullo_epi64(_mm512_rol_epi64(word, 11), P1);
            h = _mm512_mask_mov_epi64(h, m, word);
            shift = _mm512_add_epi64(shift, _mm512_set1_epi64(8));
        }
    }
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 33));
    h = _mm512_mullo_epi64(h, P2);
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 29));
    h = _mm512_mullo_epi64(h, P3);
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 32));
    _mm512_mask_storeu_epi64(out, lanes, h);
}
#endif /* MC_HAVE_AVX512 */

/* Turn the eight-lane path on where the CPU and OS support it (and `allow`
 * is true); return whether it is on. Called once at import, and by tests. */
static int mc_simd_init(int allow) {
#ifdef MC_HAVE_AVX512
    __builtin_cpu_init();
    mc_avx512_enabled = allow && __builtin_cpu_supports("avx512f") &&
                        __builtin_cpu_supports("avx512dq");
    return mc_avx512_enabled;
#else
    (void)allow;
    return 0;
#endif
}

/* out[i] = XXH64(ptr[i][0:len[i]], seed) for each i < MC_LANES whose bit is
 * set in `lanes`; other out[i] are left alone. */
static inline void mc_xxh64_lanes(const uint8_t *const *ptr, const size_t *len,
                                  unsigned lanes, uint64_t seed, uint64_t *out) {
    int i;
#ifdef MC_HAVE_AVX512
    if (mc_avx512_enabled) {
        unsigned wide = 0;
        for (i = 0; i < MC_LANES; i++)
            if (((lanes >> i) & 1) && len[i] >= 4) wide |= 1u << i;
        if (wide) mc_xxh64_x8_avx512(ptr, len, (__mmask8)wide, seed, out);
        lanes &= ~wide;
    }
#endif
    for (i = 0; i < MC_LANES; i++)
        if ((lanes >> i) & 1) out[i] = mc_xxh64(ptr[i], len[i], seed);
}

#endif /* MESHCORE_BLOOM_HASH_H */
