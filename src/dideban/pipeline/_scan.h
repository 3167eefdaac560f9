/* Sixteen bytes of JSON text classified at once, for `_native.pyx`'s string scans.

   Most of a measurement's text is strings, and a string scan looks for the first byte that
   ends a plain run: a quote, a backslash, a control character or a non-ASCII byte. With SSE2
   (every x86-64) that is four vector instructions for 16 bytes; elsewhere the same answer
   comes from two 8-byte words (bit tricks, `dideban_special64`).

   The masks' contract: bit k stands for p[k]; the LOWEST set bit is the first such byte (0 if
   there is none). Bits above the lowest may be set for bytes that are not such bytes (the
   portable version sets only the lowest): callers use only the lowest (`__builtin_ctz`).
   p must have 16 readable bytes. */

#ifndef DIDEBAN_SCAN_H
#define DIDEBAN_SCAN_H

#include <stdint.h>
#include <string.h>

/* The same tests on one 8-byte word (little-endian, as all of _native's word scans): the
   high bit of each flagged byte, possibly also of bytes above the first (never below it).
   Both builds use them: `_native` for the last 8 to 15 bytes of a text, the portable 16-byte
   scans for both halves. */
static inline uint64_t dideban_has_zero64(uint64_t v) {
    return (v - 0x0101010101010101ULL) & ~v;
}

static inline uint64_t dideban_special64(uint64_t w) {
    return (dideban_has_zero64(w ^ 0x2222222222222222ULL)
            | dideban_has_zero64(w ^ 0x5C5C5C5C5C5C5C5CULL)
            | ((w - 0x2020202020202020ULL) & ~w)
            | w) & 0x8080808080808080ULL;
}

static inline uint64_t dideban_backslash64(uint64_t w) {
    return dideban_has_zero64(w ^ 0x5C5C5C5C5C5C5C5CULL) & 0x8080808080808080ULL;
}

#if defined(__SSE2__) && !defined(DIDEBAN_NO_SIMD)
#include <emmintrin.h>

#define DIDEBAN_SCAN_SIMD 1

/* A quote, a backslash, a control character (< 0x20) or a non-ASCII byte (>= 0x80). */
static inline unsigned int dideban_special16(const unsigned char *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    /* Signed bytes: those >= 0x80 are negative, so below 0x20 with the controls. */
    __m128i low = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
    return (unsigned int)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), low));
}

/* A backslash. */
static inline unsigned int dideban_backslash16(const unsigned char *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    return (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

#else

#define DIDEBAN_SCAN_SIMD 0

/* The mask with only the bit of the first flagged byte, one word at a time. */
static inline unsigned int dideban_first16(const unsigned char *p, uint64_t (*flag)(uint64_t)) {
    uint64_t w, f;
    int k;
    for (k = 0; k < 2; k++) {
        memcpy(&w, p + 8 * k, 8);
        f = flag(w);
        if (f)
            return 1u << (8 * k + (__builtin_ctzll(f) >> 3));
    }
    return 0;
}

static inline unsigned int dideban_special16(const unsigned char *p) {
    return dideban_first16(p, dideban_special64);
}

static inline unsigned int dideban_backslash16(const unsigned char *p) {
    return dideban_first16(p, dideban_backslash64);
}

#endif

#endif
