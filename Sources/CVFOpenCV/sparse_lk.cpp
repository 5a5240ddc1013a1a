// The fast path's Lucas-Kanade tracker; see sparse_lk.hpp for what it promises.
#include "sparse_lk.hpp"

#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

#include <immintrin.h>

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>

// The float steps must round exactly like OpenCV's (built without FMA): no contraction.
#pragma clang fp contract(off)

namespace cvf {
namespace {

constexpr int kHalfWin = (kLKWindow - 1) / 2;
constexpr int kLanes = 16;  // one window row, padded to 16 lanes (lane 15 has zero derivatives)
constexpr int kWBits = 14;  // bilinear weights in 1/16384
constexpr int kIBits = 5;   // intensities carry 5 fraction bits after interpolation
constexpr float kFltScale = 1.f / (1 << 20);
constexpr float kMinEigThreshold = 1e-4f;

// One point's window at one level: the interpolated previous-frame intensities and derivatives.
struct Window {
    alignas(32) int16_t image[kLKWindow][kLanes];
    alignas(32) int16_t dx[kLKWindow][kLanes];
    alignas(32) int16_t dy[kLKWindow][kLanes];
};

struct Weights {
    int w00, w01, w10, w11;
};

// cvRound and cvFloor: round half to even, and floor by truncation. The rounding is the default
// mode's (to nearest, ties to even): lrintf, which compilers turn into the one conversion
// instruction where the CPU has it (cvtss2si on x86-64), with no x86 intrinsic in the portable path.
inline int roundEven(float v) { return int(__builtin_lrintf(v)); }
inline int floorInt(float v) {
    const int i = int(v);
    return i - (float(i) > v);
}

// OpenCV's bilinear weights for the fractional offsets (a, b), in 1/2^14, summing to 2^14.
inline Weights weightsFor(float a, float b) {
    Weights w;
    w.w00 = roundEven((1.f - a) * (1.f - b) * float(1 << kWBits));
    w.w01 = roundEven(a * (1.f - b) * float(1 << kWBits));
    w.w10 = roundEven((1.f - a) * b * float(1 << kWBits));
    w.w11 = (1 << kWBits) - w.w00 - w.w01 - w.w10;
    return w;
}

// Whether a window computes its own derivatives from the image rows around it rather than reading
// them from the level's derivative planes: at the levels below `ownLevels` (where the points'
// windows overlap little, so the planes' bands would be computed mostly for pixels no window
// reads), for a window on whole pixels inside the image. The filter then reads one pixel around
// the window; at the image's edge that is the level's border, which holds the reflection the
// planes' filter makes there, so the values are the planes' own. (Outside the image the planes
// hold zeros, which the filter would not give: such windows read the planes.)
inline bool ownDerivatives(int level, int ownLevels, Weights w, const cv::Mat &image, int ipx, int ipy) {
    return level < ownLevels && w.w00 == 1 << kWBits && ipx >= 0 && ipy >= 0 && ipx + kLKWindow <= image.cols &&
           ipy + kLKWindow <= image.rows;
}

// Whether a window off whole pixels at a level below `ownLevels` interpolates derivatives computed
// on the spot, for the 16x17 positions it reads, rather than read from the planes: the backward
// tracks of the filter's forward-backward check start at such windows, a few per frame, and a band
// of whole rows each would cost far more. (Grid points sit on whole pixels at those levels, so the
// forward tracking never comes here.) All the positions must be inside the image, where the values
// are the planes' own (see ownDerivatives).
inline bool patchDerivatives(int level, int ownLevels, Weights w, const cv::Mat &image, int ipx, int ipy) {
    return level < ownLevels && w.w00 != 1 << kWBits && ipx >= 0 && ipy >= 0 &&
           ipx + kLKWindow + 1 < image.cols && ipy + kLKWindow < image.rows;
}

// The Scharr derivatives at positions (ipx + c, ipy + r), r < 16, c < 17, of a level, as the planes
// hold them, into rows of kPatchStep values.
constexpr int kPatchStep = 32;
inline void derivativePatch(const uint8_t *img, ptrdiff_t istep, int16_t *dx, int16_t *dy) {
    for (int y = 0; y <= kLKWindow; y++) {
        const uint8_t *m = img + y * istep, *u = m - istep, *d = m + istep;
        for (int x = 0; x <= kLKWindow + 1; x++) {
            dx[y * kPatchStep + x] = int16_t((u[x + 1] + d[x + 1] - u[x - 1] - d[x - 1]) * 3 + (m[x + 1] - m[x - 1]) * 10);
            dy[y * kPatchStep + x] = int16_t((d[x - 1] - u[x - 1] + d[x + 1] - u[x + 1]) * 3 + (d[x] - u[x]) * 10);
        }
    }
}

// ---- portable kernels (the reference for the AVX2 ones, and the fallback) ----

struct PortableKernels {
    // Fills the window from at(y, x, intensity << 5, dx, dy) (lane 15 stays zero) and sums its
    // structure tensor.
    template <typename At>
    static void fill(Window &win, int64_t A[3], At at) {
        int64_t a11 = 0, a12 = 0, a22 = 0;
        for (int y = 0; y < kLKWindow; y++) {
            for (int x = 0; x < kLanes; x++) {
                int iv = 0, ix = 0, iy = 0;
                if (x < kLKWindow) at(y, x, iv, ix, iy);
                win.image[y][x] = int16_t(iv);
                win.dx[y][x] = int16_t(ix);
                win.dy[y][x] = int16_t(iy);
                a11 += ix * ix;
                a12 += ix * iy;
                a22 += iy * iy;
            }
        }
        A[0] = a11;
        A[1] = a12;
        A[2] = a22;
    }

    static void prepare(const uint8_t *img, ptrdiff_t istep, const int16_t *dx, const int16_t *dy, ptrdiff_t dstep,
                        Weights w, Window &win, int64_t A[3]) {
        fill(win, A, [&](int y, int x, int &iv, int &ix, int &iy) {
            const uint8_t *s = img + y * istep + x;
            const int16_t *gx = dx + y * dstep + x, *gy = dy + y * dstep + x;
            iv = (s[0] * w.w00 + s[1] * w.w01 + s[istep] * w.w10 + s[istep + 1] * w.w11 +
                  (1 << (kWBits - kIBits - 1))) >> (kWBits - kIBits);
            ix = (gx[0] * w.w00 + gx[1] * w.w01 + gx[dstep] * w.w10 + gx[dstep + 1] * w.w11 + (1 << (kWBits - 1))) >>
                 kWBits;
            iy = (gy[0] * w.w00 + gy[1] * w.w01 + gy[dstep] * w.w10 + gy[dstep + 1] * w.w11 + (1 << (kWBits - 1))) >>
                 kWBits;
        });
    }

    // A window on whole pixels inside the image (see ownDerivatives): the Scharr derivatives are
    // computed here from the image rows around it, as the bands would compute them.
    static void prepareOwn(const uint8_t *img, ptrdiff_t istep, Window &win, int64_t A[3]) {
        fill(win, A, [&](int y, int x, int &iv, int &ix, int &iy) {
            const uint8_t *u = img + (y - 1) * istep + x, *m = img + y * istep + x, *d = img + (y + 1) * istep + x;
            ix = (u[1] + d[1] - u[-1] - d[-1]) * 3 + (m[1] - m[-1]) * 10;
            iy = (d[-1] - u[-1] + d[1] - u[1]) * 3 + (d[0] - u[0]) * 10;
            iv = m[0] << kIBits;
        });
    }

    // mismatch() for a window on whole pixels: the interpolation is the pixel itself (<< 5).
    static void mismatchWhole(const uint8_t *img, ptrdiff_t jstep, const Window &win, int64_t b[2]) {
        int64_t b1 = 0, b2 = 0;
        for (int y = 0; y < kLKWindow; y++) {
            const uint8_t *s = img + y * jstep;
            for (int x = 0; x < kLKWindow; x++) {
                const int diff = (s[x] << kIBits) - win.image[y][x];
                b1 += diff * win.dx[y][x];
                b2 += diff * win.dy[y][x];
            }
        }
        b[0] = b1;
        b[1] = b2;
    }

    static void mismatch(const uint8_t *img, ptrdiff_t jstep, Weights w, const Window &win, int64_t b[2]) {
        int64_t b1 = 0, b2 = 0;
        for (int y = 0; y < kLKWindow; y++) {
            const uint8_t *s = img + y * jstep;
            for (int x = 0; x < kLKWindow; x++) {
                const int jv = (s[x] * w.w00 + s[x + 1] * w.w01 + s[x + jstep] * w.w10 + s[x + jstep + 1] * w.w11 +
                                (1 << (kWBits - kIBits - 1))) >> (kWBits - kIBits);
                const int diff = jv - win.image[y][x];
                b1 += diff * win.dx[y][x];
                b2 += diff * win.dy[y][x];
            }
        }
        b[0] = b1;
        b[1] = b2;
    }
};

// ---- AVX2 kernels: one window row per step ----
//
// A row of 16 samples is interpolated as OpenCV does it: the pairs (p[x], p[x+1]) of the upper
// and lower rows go through madd with (w00, w01) and (w10, w11). unpacklo/unpackhi split each
// 128-bit half, and packs puts the halves back in order, so the result is in pixel order.

// Two rows of 16 int16 samples and the same rows one pixel on (p00, p01 upper; p10, p11 lower).
template <int Shift>
__attribute__((target("avx2"), always_inline)) inline __m256i interpolate(__m256i p00, __m256i p01, __m256i p10,
                                                                         __m256i p11, __m256i wTop, __m256i wBottom) {
    const __m256i round = _mm256_set1_epi32(1 << (Shift - 1));
    __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi16(p00, p01), wTop),
                                  _mm256_madd_epi16(_mm256_unpacklo_epi16(p10, p11), wBottom));
    __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi16(p00, p01), wTop),
                                  _mm256_madd_epi16(_mm256_unpackhi_epi16(p10, p11), wBottom));
    lo = _mm256_srai_epi32(_mm256_add_epi32(lo, round), Shift);
    hi = _mm256_srai_epi32(_mm256_add_epi32(hi, round), Shift);
    return _mm256_packs_epi32(lo, hi);
}

// 16 pixels from s, widened to int16.
__attribute__((target("avx2"), always_inline)) inline __m256i loadU8(const uint8_t *s) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s)));
}

__attribute__((target("avx2"), always_inline)) inline __m256i loadS16(const int16_t *s) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i *>(s));
}

// The pairs (s[x], s[x+1]) of 16 pixels as int16 pairs, in the order interpolate() makes them
// (unpacklo/unpackhi of the rows s and s + 1): lo holds x = 0-3 | 8-11, hi x = 4-7 | 12-15. Two
// byte shuffles of the bytes s[0..15] | s[1..16] instead of two widenings and two unpacks.
__attribute__((target("avx2"), always_inline)) inline void pixelPairs(const uint8_t *s, __m256i &lo, __m256i &hi) {
    const __m256i bytes = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s))),
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + 1)), 1);
    const __m256i pickLo = _mm256_setr_epi8(0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1, 4, -1,
                                            7, -1, 8, -1, 8, -1, 9, -1, 9, -1, 10, -1, 10, -1, 11, -1);
    const __m256i pickHi = _mm256_setr_epi8(4, -1, 5, -1, 5, -1, 6, -1, 6, -1, 7, -1, 7, -1, 8, -1,
                                            11, -1, 12, -1, 12, -1, 13, -1, 13, -1, 14, -1, 14, -1, 15, -1);
    lo = _mm256_shuffle_epi8(bytes, pickLo);
    hi = _mm256_shuffle_epi8(bytes, pickHi);
}

// Intensities keep 5 fraction bits; derivatives none.
__attribute__((target("avx2"), always_inline)) inline __m256i interpolateU8(const uint8_t *s, ptrdiff_t step,
                                                                           __m256i wTop, __m256i wBottom) {
    return interpolate<kWBits - kIBits>(loadU8(s), loadU8(s + 1), loadU8(s + step), loadU8(s + step + 1), wTop,
                                        wBottom);
}

__attribute__((target("avx2"), always_inline)) inline __m256i interpolateS16(const int16_t *s, ptrdiff_t step,
                                                                            __m256i wTop, __m256i wBottom) {
    return interpolate<kWBits>(loadS16(s), loadS16(s + 1), loadS16(s + step), loadS16(s + step + 1), wTop, wBottom);
}

// Sum of the eight int32 lanes, widened first (a lane stays below 2^31, the sum may not).
__attribute__((target("avx2"), always_inline)) inline int64_t sumLanes(__m256i v) {
    const __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
    const __m256i hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
    const __m256i s = _mm256_add_epi64(lo, hi);
    alignas(32) int64_t out[4];
    _mm256_store_si256(reinterpret_cast<__m256i *>(out), s);
    return out[0] + out[1] + out[2] + out[3];
}

inline int pairWeights(int a, int b) { return int((uint32_t(uint16_t(b)) << 16) | uint16_t(a)); }

// Per lane and row a product pair stays below 2 * 4080^2 (derivatives) or 2 * 8160 * 4080
// (mismatch), so fifteen rows fit an int32 lane.
struct AVX2Kernels {
    __attribute__((target("avx2"))) static inline void prepare(const uint8_t *img, ptrdiff_t istep,
                                                               const int16_t *dx, const int16_t *dy, ptrdiff_t dstep,
                                                               Weights w, Window &win, int64_t A[3]) {
        const __m256i wTop = _mm256_set1_epi32(pairWeights(w.w00, w.w01));
        const __m256i wBottom = _mm256_set1_epi32(pairWeights(w.w10, w.w11));
        const __m256i keep = _mm256_setr_epi16(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0);
        __m256i a11 = _mm256_setzero_si256(), a12 = _mm256_setzero_si256(), a22 = _mm256_setzero_si256();
        // A window on whole pixels (grid points are, at every level, for even grid steps) needs no
        // interpolation: intensities << 5, derivatives as they are.
        const bool whole = w.w00 == 1 << kWBits;
        for (int y = 0; y < kLKWindow; y++) {
            __m256i iv, ix, iy;
            if (whole) {
                iv = _mm256_slli_epi16(loadU8(img + y * istep), kIBits);
                ix = _mm256_and_si256(loadS16(dx + y * dstep), keep);
                iy = _mm256_and_si256(loadS16(dy + y * dstep), keep);
            } else {
                iv = interpolateU8(img + y * istep, istep, wTop, wBottom);
                ix = _mm256_and_si256(interpolateS16(dx + y * dstep, dstep, wTop, wBottom), keep);
                iy = _mm256_and_si256(interpolateS16(dy + y * dstep, dstep, wTop, wBottom), keep);
            }
            _mm256_store_si256(reinterpret_cast<__m256i *>(win.image[y]), iv);
            _mm256_store_si256(reinterpret_cast<__m256i *>(win.dx[y]), ix);
            _mm256_store_si256(reinterpret_cast<__m256i *>(win.dy[y]), iy);
            a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(ix, ix));
            a12 = _mm256_add_epi32(a12, _mm256_madd_epi16(ix, iy));
            a22 = _mm256_add_epi32(a22, _mm256_madd_epi16(iy, iy));
        }
        A[0] = sumLanes(a11);
        A[1] = sumLanes(a12);
        A[2] = sumLanes(a22);
    }

    // PortableKernels::prepareOwn, a window row per step; the three image rows around a window
    // row are each loaded at columns -1, 0 and +1, and each load serves three window rows.
    __attribute__((target("avx2"))) static inline void prepareOwn(const uint8_t *img, ptrdiff_t istep, Window &win,
                                                                  int64_t A[3]) {
        const __m256i keep = _mm256_setr_epi16(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0);
        const __m256i three = _mm256_set1_epi16(3), ten = _mm256_set1_epi16(10);
        __m256i a11 = _mm256_setzero_si256(), a12 = _mm256_setzero_si256(), a22 = _mm256_setzero_si256();
        __m256i um = loadU8(img - istep - 1), u0 = loadU8(img - istep), up = loadU8(img - istep + 1);
        __m256i mm = loadU8(img - 1), m0 = loadU8(img), mp = loadU8(img + 1);
        for (int y = 0; y < kLKWindow; y++) {
            const uint8_t *below = img + (y + 1) * istep;
            const __m256i dm = loadU8(below - 1), d0 = loadU8(below), dp = loadU8(below + 1);
            const __m256i sx = _mm256_sub_epi16(_mm256_add_epi16(up, dp), _mm256_add_epi16(um, dm));
            const __m256i sy = _mm256_sub_epi16(_mm256_add_epi16(dm, dp), _mm256_add_epi16(um, up));
            const __m256i cx = _mm256_mullo_epi16(_mm256_sub_epi16(mp, mm), ten);
            const __m256i cy = _mm256_mullo_epi16(_mm256_sub_epi16(d0, u0), ten);
            const __m256i ix = _mm256_and_si256(_mm256_add_epi16(_mm256_mullo_epi16(sx, three), cx), keep);
            const __m256i iy = _mm256_and_si256(_mm256_add_epi16(_mm256_mullo_epi16(sy, three), cy), keep);
            _mm256_store_si256(reinterpret_cast<__m256i *>(win.image[y]), _mm256_slli_epi16(m0, kIBits));
            _mm256_store_si256(reinterpret_cast<__m256i *>(win.dx[y]), ix);
            _mm256_store_si256(reinterpret_cast<__m256i *>(win.dy[y]), iy);
            a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(ix, ix));
            a12 = _mm256_add_epi32(a12, _mm256_madd_epi16(ix, iy));
            a22 = _mm256_add_epi32(a22, _mm256_madd_epi16(iy, iy));
            um = mm;
            u0 = m0;
            up = mp;
            mm = dm;
            m0 = d0;
            mp = dp;
        }
        A[0] = sumLanes(a11);
        A[1] = sumLanes(a12);
        A[2] = sumLanes(a22);
    }

    __attribute__((target("avx2"))) static inline void mismatchWhole(const uint8_t *img, ptrdiff_t jstep,
                                                                     const Window &win, int64_t b[2]) {
        __m256i b1 = _mm256_setzero_si256(), b2 = _mm256_setzero_si256();
        for (int y = 0; y < kLKWindow; y++) {
            const __m256i jv = _mm256_slli_epi16(loadU8(img + y * jstep), kIBits);
            const __m256i diff = _mm256_sub_epi16(jv, loadS16(win.image[y]));
            b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(diff, loadS16(win.dx[y])));
            b2 = _mm256_add_epi32(b2, _mm256_madd_epi16(diff, loadS16(win.dy[y])));
        }
        b[0] = sumLanes(b1);
        b[1] = sumLanes(b2);
    }

    __attribute__((target("avx2"))) static inline void mismatch(const uint8_t *img, ptrdiff_t jstep, Weights w,
                                                                const Window &win, int64_t b[2]) {
        const __m256i wTop = _mm256_set1_epi32(pairWeights(w.w00, w.w01));
        const __m256i wBottom = _mm256_set1_epi32(pairWeights(w.w10, w.w11));
        const __m256i round = _mm256_set1_epi32(1 << (kWBits - kIBits - 1));
        __m256i b1 = _mm256_setzero_si256(), b2 = _mm256_setzero_si256();
        // Each image row is the lower row of one window row and the upper row of the next: its
        // pixel pairs are made once.
        __m256i upLo, upHi;
        pixelPairs(img, upLo, upHi);
        for (int y = 0; y < kLKWindow; y++) {
            __m256i dnLo, dnHi;
            pixelPairs(img + (y + 1) * jstep, dnLo, dnHi);
            __m256i lo = _mm256_add_epi32(_mm256_madd_epi16(upLo, wTop), _mm256_madd_epi16(dnLo, wBottom));
            __m256i hi = _mm256_add_epi32(_mm256_madd_epi16(upHi, wTop), _mm256_madd_epi16(dnHi, wBottom));
            lo = _mm256_srai_epi32(_mm256_add_epi32(lo, round), kWBits - kIBits);
            hi = _mm256_srai_epi32(_mm256_add_epi32(hi, round), kWBits - kIBits);
            const __m256i diff = _mm256_sub_epi16(_mm256_packs_epi32(lo, hi), loadS16(win.image[y]));
            b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(diff, loadS16(win.dx[y])));
            b2 = _mm256_add_epi32(b2, _mm256_madd_epi16(diff, loadS16(win.dy[y])));
            upLo = dnLo;
            upHi = dnHi;
        }
        b[0] = sumLanes(b1);
        b[1] = sumLanes(b2);
    }
};

// Whether the AVX2 kernels run (see cvf::useAVX2). Set once, before main, and only read
// afterwards: safe to read from any thread.
const bool gHasAVX2 = __builtin_cpu_supports("avx2") && !(std::getenv("VECTORFLOW_PORTABLE_LK") &&
                                                    std::strcmp(std::getenv("VECTORFLOW_PORTABLE_LK"), "1") == 0);

// The two passes of the Scharr filter over a whole row, 16 columns per step; they return where
// the scalar tail starts. The horizontal pass runs only once the vertical one has finished the
// row, so its shifted loads never wait on the stores just made.
__attribute__((target("avx2"))) inline int scharrVerticalAVX2(const uint8_t *s0, const uint8_t *s1, const uint8_t *s2,
                                                             int16_t *smooth, int16_t *diff, int end) {
    const __m256i three = _mm256_set1_epi16(3), ten = _mm256_set1_epi16(10);
    int x = 0;
    for (; x + 16 <= end; x += 16) {
        const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s0 + x)));
        const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s1 + x)));
        const __m256i c = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s2 + x)));
        const __m256i sm =
            _mm256_add_epi16(_mm256_mullo_epi16(_mm256_add_epi16(a, c), three), _mm256_mullo_epi16(b, ten));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(smooth + x), sm);
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(diff + x), _mm256_sub_epi16(c, a));
    }
    return x;
}

__attribute__((target("avx2"))) inline int scharrHorizontalAVX2(const int16_t *smooth, const int16_t *diff, int16_t *ox,
                                                               int16_t *oy, int end) {
    const __m256i three = _mm256_set1_epi16(3), ten = _mm256_set1_epi16(10);
    int x = 0;
    for (; x + 16 <= end; x += 16) {
        const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(smooth + x - 1));
        const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(smooth + x + 1));
        const __m256i dl = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(diff + x - 1));
        const __m256i dc = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(diff + x));
        const __m256i dr = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(diff + x + 1));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(ox + x), _mm256_sub_epi16(r, l));
        const __m256i gy =
            _mm256_add_epi16(_mm256_mullo_epi16(_mm256_add_epi16(dl, dr), three), _mm256_mullo_epi16(dc, ten));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(oy + x), gy);
    }
    return x;
}

// Scharr derivatives of rows [y0, y1) of one level as OpenCV computes them (3/10/3 smoothing,
// reflected at the image edge), into two planes whose borders stay zero.
template <bool AVX2>
__attribute__((always_inline)) inline void scharrRows(const cv::Mat &src, cv::Mat &dx, cv::Mat &dy, int y0, int y1,
                                                      std::vector<int16_t> &rows) {
    const int w = src.cols, h = src.rows;
    rows.resize(size_t(2 * (w + 2)));
    int16_t *smooth = rows.data() + 1, *diff = rows.data() + (w + 2) + 1;
    for (int y = y0; y < y1; y++) {
        const uint8_t *s0 = src.ptr<uint8_t>(y > 0 ? y - 1 : (h > 1 ? 1 : 0));
        const uint8_t *s1 = src.ptr<uint8_t>(y);
        const uint8_t *s2 = src.ptr<uint8_t>(y < h - 1 ? y + 1 : (h > 1 ? h - 2 : 0));
        int x = 0;
        if constexpr (AVX2) x = scharrVerticalAVX2(s0, s1, s2, smooth, diff, w);
        for (; x < w; x++) {
            smooth[x] = int16_t((s0[x] + s2[x]) * 3 + s1[x] * 10);
            diff[x] = int16_t(s2[x] - s0[x]);
        }
        const int l = w > 1 ? 1 : 0, r = w > 1 ? w - 2 : 0;
        smooth[-1] = smooth[l];
        smooth[w] = smooth[r];
        diff[-1] = diff[l];
        diff[w] = diff[r];
        int16_t *ox = dx.ptr<int16_t>(y), *oy = dy.ptr<int16_t>(y);
        x = 0;
        if constexpr (AVX2) x = scharrHorizontalAVX2(smooth, diff, ox, oy, w);
        for (; x < w; x++) {
            ox[x] = int16_t(smooth[x + 1] - smooth[x - 1]);
            oy[x] = int16_t((diff[x - 1] + diff[x + 1]) * 3 + diff[x] * 10);
        }
    }
}

__attribute__((target("avx2"))) void scharrAVX2(const cv::Mat &src, cv::Mat &dx, cv::Mat &dy, int y0, int y1,
                                                std::vector<int16_t> &rows) {
    scharrRows<true>(src, dx, dy, y0, y1, rows);
}

void scharr(const cv::Mat &src, cv::Mat &dx, cv::Mat &dy, int y0, int y1, std::vector<int16_t> &rows) {
    if (gHasAVX2) {
        scharrAVX2(src, dx, dy, y0, y1, rows);
    } else {
        scharrRows<false>(src, dx, dy, y0, y1, rows);
    }
}

// A zero-filled bordered buffer for one derivative plane, reallocated only on a size change.
cv::Mat borderedPlane(cv::Mat &buffer, cv::Size size) {
    const cv::Size whole(size.width + 2 * kLKBorder, size.height + 2 * kLKBorder);
    if (buffer.size() != whole || buffer.type() != CV_16SC1) buffer = cv::Mat::zeros(whole, CV_16SC1);
    return buffer(cv::Rect(kLKBorder, kLKBorder, size.width, size.height));
}

// BGR to grey, 8 pixels (24 bytes) per half step: the pixels' bytes are spread to (B, G) and
// (R, 0) int16 pairs, and madd applies cvtColor's 15-bit weights. Reads 32 bytes from the first
// pixel, so the caller stops 11 pixels before the end of the image.
constexpr int kGreyB = 3735, kGreyG = 19235, kGreyR = 9798, kGreyShift = 15;

__attribute__((target("avx2"), always_inline)) inline __m256i grey8AVX2(const uint8_t *p) {
    const __m256i spread = _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6);  // pixels 0-3 | 4-7 (bytes 12-27)
    const __m256i bg = _mm256_setr_epi8(0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1,
                                        0, -1, 1, -1, 3, -1, 4, -1, 6, -1, 7, -1, 9, -1, 10, -1);
    const __m256i r = _mm256_setr_epi8(2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1,
                                       2, -1, -1, -1, 5, -1, -1, -1, 8, -1, -1, -1, 11, -1, -1, -1);
    const __m256i wBG = _mm256_set1_epi32(int((uint32_t(kGreyG) << 16) | uint32_t(kGreyB)));
    const __m256i wR = _mm256_set1_epi32(kGreyR);
    const __m256i v = _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)), spread);
    const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(_mm256_shuffle_epi8(v, bg), wBG),
                                         _mm256_madd_epi16(_mm256_shuffle_epi8(v, r), wR));
    return _mm256_srai_epi32(_mm256_add_epi32(sum, _mm256_set1_epi32(1 << (kGreyShift - 1))), kGreyShift);
}

// One row, 16 pixels per step; returns where the scalar tail starts.
__attribute__((target("avx2"))) inline int greyRowAVX2(const uint8_t *p, uint8_t *g, int w) {
    int x = 0;
    for (; x + 16 + 11 <= w; x += 16) {
        const __m256i a = grey8AVX2(p + 3 * x), b = grey8AVX2(p + 3 * x + 24);
        // packs works per 128-bit half: [a0-3 b0-3 | a4-7 b4-7]; put the quarters in order.
        const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
        const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(g + x), bytes);
    }
    return x;
}

template <bool AVX2>
__attribute__((always_inline)) inline void bgrToGreyRows(const cv::Mat &bgr, cv::Mat &grey, int y0, int y1) {
    const int w = bgr.cols;
    for (int y = y0; y < y1; y++) {
        const uint8_t *p = bgr.ptr<uint8_t>(y);
        uint8_t *g = grey.ptr<uint8_t>(y);
        int x = 0;
        if constexpr (AVX2) x = greyRowAVX2(p, g, w);
        for (; x < w; x++) {
            const uint8_t *q = p + 3 * x;
            g[x] = uint8_t((q[0] * kGreyB + q[1] * kGreyG + q[2] * kGreyR + (1 << (kGreyShift - 1))) >> kGreyShift);
        }
    }
}

__attribute__((target("avx2"))) void bgrToGreyAVX2(const cv::Mat &bgr, cv::Mat &grey, int y0, int y1) {
    bgrToGreyRows<true>(bgr, grey, y0, y1);
}

// Limited-range luma (16-235) to full-range grey: (Y - 16) * 255 / 219, in 16-bit steps
// ((Y - 16) * 149 + 64) >> 7, 1.1641 for 1.1644: within one level of the exact ratio), clamped.
// The AVX2 loop takes 32 pixels a step (saturating subtract, widen, multiply, pack with
// saturation); both give the same bytes.
inline uint8_t lumaToGreyPixel(uint8_t v) {
    const int g = ((v > 16 ? v - 16 : 0) * 149 + 64) >> 7;
    return uint8_t(g > 255 ? 255 : g);
}

// The AVX2 part of a row: 32 pixels a step; returns where the scalar loop goes on.
__attribute__((target("avx2"))) int lumaRowAVX2(const uint8_t *p, uint8_t *g, int w) {
    const __m256i sixteen = _mm256_set1_epi8(16), zero = _mm256_setzero_si256();
    const __m256i gain = _mm256_set1_epi16(149), half = _mm256_set1_epi16(64);
    int x = 0;
    for (; x + 32 <= w; x += 32) {
        const __m256i v = _mm256_subs_epu8(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + x)), sixteen);
        // unpack and packus both work per 128-bit half, so the bytes come back in order.
        const __m256i lo =
            _mm256_srli_epi16(_mm256_add_epi16(_mm256_mullo_epi16(_mm256_unpacklo_epi8(v, zero), gain), half), 7);
        const __m256i hi =
            _mm256_srli_epi16(_mm256_add_epi16(_mm256_mullo_epi16(_mm256_unpackhi_epi8(v, zero), gain), half), 7);
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(g + x), _mm256_packus_epi16(lo, hi));
    }
    return x;
}

template <bool AVX2>
__attribute__((always_inline)) inline void lumaRows(const uint8_t *luma, size_t stride, bool fullRange,
                                                    cv::Mat &grey, int y0, int y1) {
    const int w = grey.cols;
    for (int y = y0; y < y1; y++) {
        const uint8_t *p = luma + size_t(y) * stride;
        uint8_t *g = grey.ptr<uint8_t>(y);
        if (fullRange) {
            std::memcpy(g, p, size_t(w));
            continue;
        }
        int x = 0;
        if constexpr (AVX2) x = lumaRowAVX2(p, g, w);
        for (; x < w; x++) g[x] = lumaToGreyPixel(p[x]);
    }
}

__attribute__((target("avx2"))) void lumaRowsAVX2(const uint8_t *luma, size_t stride, bool fullRange, cv::Mat &grey,
                                                  int y0, int y1) {
    lumaRows<true>(luma, stride, fullRange, grey, y0, y1);
}

// Fills the kLKBorder-pixel frame around the size-sized interior of a bordered buffer with the
// interior's reflection (BORDER_REFLECT_101, as copyMakeBorder makes it).
// With w > kLKBorder each side is the 16 pixels next to the edge pixel, reversed: one shuffle.
__attribute__((target("avx2"))) void reflectColumnsAVX2(cv::Mat &buffer, int w, int h) {
    const __m128i reverse = _mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    for (int y = 0; y < h; y++) {
        uint8_t *row = buffer.ptr<uint8_t>(kLKBorder + y) + kLKBorder;
        const __m128i l = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + 1));
        const __m128i r = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + w - 1 - kLKBorder));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(row - kLKBorder), _mm_shuffle_epi8(l, reverse));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(row + w), _mm_shuffle_epi8(r, reverse));
    }
}

void fillBorder(cv::Mat &buffer, cv::Size size) {
    static_assert(kLKBorder == 16, "one 16-byte shuffle per side");
    const int w = size.width, h = size.height, b = kLKBorder;
    if (gHasAVX2 && w > b) {
        reflectColumnsAVX2(buffer, w, h);
    } else {
        int left[kLKBorder], right[kLKBorder];
        for (int k = 0; k < b; k++) {
            left[k] = cv::borderInterpolate(k - b, w, cv::BORDER_REFLECT_101);
            right[k] = cv::borderInterpolate(w + k, w, cv::BORDER_REFLECT_101);
        }
        for (int y = 0; y < h; y++) {
            uint8_t *row = buffer.ptr<uint8_t>(b + y) + b;
            for (int k = 0; k < b; k++) {
                row[k - b] = row[left[k]];
                row[w + k] = row[right[k]];
            }
        }
    }
    const size_t width = size_t(w + 2 * b);
    for (int k = 0; k < b; k++) {
        const int above = cv::borderInterpolate(k - b, h, cv::BORDER_REFLECT_101);
        const int below = cv::borderInterpolate(h + k, h, cv::BORDER_REFLECT_101);
        std::memcpy(buffer.ptr<uint8_t>(k), buffer.ptr<uint8_t>(b + above), width);
        std::memcpy(buffer.ptr<uint8_t>(b + h + k), buffer.ptr<uint8_t>(b + below), width);
    }
}

// pyrDown's 5-tap (1 4 6 4 1) filter along a row, at every other pixel: out[x] is centred on
// src[2x], for x in [x, end). Returns where the caller's scalar loop goes on.
__attribute__((target("avx2"))) inline int pyrRowAVX2(const uint8_t *src, uint16_t *out, int x, int end) {
    // Pairs of bytes (src[2x+k], src[2x+k+1]) for k = -2, 0, 2, weighted (1, 4), (6, 4), (1, 0).
    const __m256i w14 = _mm256_set1_epi16(int16_t(4 << 8 | 1)), w64 = _mm256_set1_epi16(int16_t(4 << 8 | 6)),
                  w10 = _mm256_set1_epi16(1);
    for (; x + 16 <= end; x += 16) {
        const uint8_t *p = src + 2 * x;
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p - 2));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p));
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + 2));
        const __m256i ab = _mm256_add_epi16(_mm256_maddubs_epi16(a, w14), _mm256_maddubs_epi16(b, w64));
        const __m256i sum = _mm256_add_epi16(ab, _mm256_maddubs_epi16(c, w10));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + x), sum);
    }
    return x;
}

// The same down the columns of five filtered rows, rounded: (sum + 128) >> 8, all in 16 bits
// (the sum stays below 16 * 16 * 255 + 128 < 2^16).
__attribute__((target("avx2"))) inline int pyrColumnAVX2(const uint16_t *const r[5], uint8_t *dst, int x, int end) {
    const __m256i four = _mm256_set1_epi16(4), six = _mm256_set1_epi16(6), half = _mm256_set1_epi16(128);
    for (; x + 16 <= end; x += 16) {
        __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(r[0] + x));
        __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(r[1] + x));
        __m256i v2 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(r[2] + x));
        __m256i v3 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(r[3] + x));
        __m256i v4 = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(r[4] + x));
        __m256i sum = _mm256_add_epi16(_mm256_add_epi16(v0, v4), half);
        sum = _mm256_add_epi16(sum, _mm256_mullo_epi16(_mm256_add_epi16(v1, v3), four));
        sum = _mm256_add_epi16(sum, _mm256_mullo_epi16(v2, six));
        const __m256i v = _mm256_srli_epi16(sum, 8);
        const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + x), bytes);
    }
    return x;
}

template <bool AVX2>
__attribute__((always_inline)) inline void pyrDownRows(const cv::Mat &src, cv::Mat &dst, std::vector<int16_t> &buf) {
    const int dw = dst.cols, dh = dst.rows;
    const size_t stride = size_t(dw + 16) & ~size_t(15);
    buf.resize(5 * stride);
    uint16_t *rows = reinterpret_cast<uint16_t *>(buf.data());
    auto filterRow = [&](int sy, uint16_t *out) {
        const uint8_t *p = src.ptr<uint8_t>(0) + ptrdiff_t(sy) * ptrdiff_t(src.step);
        int x = 0;
        if constexpr (AVX2) x = pyrRowAVX2(p, out, 0, dw);
        for (; x < dw; x++) {
            const uint8_t *q = p + 2 * x;
            out[x] = uint16_t(q[-2] + (q[-1] + q[1]) * 4 + q[0] * 6 + q[2]);
        }
    };
    // Source rows 2y-2 .. 2y+2 for destination row y, kept in a ring of five filtered rows.
    auto slot = [&](int sy) { return rows + size_t((sy + 2) % 5) * stride; };
    for (int sy = -2; sy <= 0; sy++) filterRow(sy, slot(sy));
    for (int y = 0; y < dh; y++) {
        filterRow(2 * y + 1, slot(2 * y + 1));
        filterRow(2 * y + 2, slot(2 * y + 2));
        const uint16_t *r[5] = {slot(2 * y - 2), slot(2 * y - 1), slot(2 * y), slot(2 * y + 1), slot(2 * y + 2)};
        uint8_t *out = dst.ptr<uint8_t>(y);
        int x = 0;
        if constexpr (AVX2) x = pyrColumnAVX2(r, out, 0, dw);
        for (; x < dw; x++)
            out[x] = uint8_t((r[0][x] + (r[1][x] + r[3][x]) * 4 + r[2][x] * 6 + r[4][x] + 128) >> 8);
    }
}

__attribute__((target("avx2"))) void pyrDownAVX2(const cv::Mat &src, cv::Mat &dst, std::vector<int16_t> &buf) {
    pyrDownRows<true>(src, dst, buf);
}

// cv::pyrDown (BORDER_REFLECT_101) of an image whose kLKBorder-pixel border is already filled
// with that reflection, into dst of size ((w + 1) / 2, (h + 1) / 2): the filter reads the border
// instead of reflecting indices.
void pyrDown(const cv::Mat &src, cv::Mat &dst, std::vector<int16_t> &buf) {
    if (gHasAVX2) {
        pyrDownAVX2(src, dst, buf);
    } else {
        pyrDownRows<false>(src, dst, buf);
    }
}

}  // namespace

void bgrToGrey(const cv::Mat &bgr, cv::Mat &grey) {
    CV_Assert(bgr.type() == CV_8UC3);
    grey.create(bgr.size(), CV_8UC1);
    bgrToGrey(bgr, grey, 0, bgr.rows);
}

void bgrToGrey(const cv::Mat &bgr, cv::Mat &grey, int y0, int y1) {
    if (gHasAVX2) {
        bgrToGreyAVX2(bgr, grey, y0, y1);
    } else {
        bgrToGreyRows<false>(bgr, grey, y0, y1);
    }
}

void lumaToGrey(const uint8_t *luma, size_t stride, bool fullRange, cv::Mat &grey, int y0, int y1) {
    if (gHasAVX2) {
        lumaRowsAVX2(luma, stride, fullRange, grey, y0, y1);
    } else {
        lumaRows<false>(luma, stride, fullRange, grey, y0, y1);
    }
}

void GreySource::rows(cv::Mat &grey, int y0, int y1) const {
    if (luma) {
        lumaToGrey(luma, lumaStride, lumaFullRange, grey, y0, y1);
    } else {
        bgrToGrey(*bgr, grey, y0, y1);
    }
}

cv::Mat LKPyramid::greyTarget(cv::Size size) {
    const cv::Size whole(size.width + 2 * kLKBorder, size.height + 2 * kLKBorder);
    if (greyBuffer_.size() != whole || greyBuffer_.type() != CV_8UC1) greyBuffer_.create(whole, CV_8UC1);
    grey_ = greyBuffer_(cv::Rect(kLKBorder, kLKBorder, size.width, size.height));
    built_ = false;
    return grey_;
}

void LKPyramid::build(const cv::Mat &grey, int maxLevel) {
    grey.copyTo(greyTarget(grey.size()));
    build(maxLevel);
}

void LKPyramid::build(int maxLevel) {
    // Level 0 is grey_ in place, its border filled; each next level is pyrDown of the one before
    // (read with its border, which holds the reflection pyrDown would make), then bordered too:
    // the pixels cv::buildOpticalFlowPyramid makes for a 15x15 window, and the same number of
    // levels (it stops before a level no wider or taller than the window).
    fillBorder(greyBuffer_, grey_.size());
    images_.resize(1);
    images_[0] = grey_;
    cv::Size size = grey_.size();
    for (int i = 1; i <= maxLevel; i++) {
        size = cv::Size((size.width + 1) / 2, (size.height + 1) / 2);
        if (size.width <= kLKWindow || size.height <= kLKWindow) break;
        if (levelBuffers_.size() < size_t(i)) levelBuffers_.resize(size_t(i));
        cv::Mat &buffer = levelBuffers_[size_t(i - 1)];
        const cv::Size whole(size.width + 2 * kLKBorder, size.height + 2 * kLKBorder);
        if (buffer.size() != whole || buffer.type() != CV_8UC1) buffer.create(whole, CV_8UC1);
        cv::Mat level = buffer(cv::Rect(kLKBorder, kLKBorder, size.width, size.height));
        pyrDown(images_.back(), level, rowBuf_);
        fillBorder(buffer, size);
        images_.push_back(level);
    }
    levels_.resize(images_.size());
    for (size_t i = 0; i < images_.size(); i++) {
        levels_[i].image = images_[i];
        levels_[i].dx.release();
        levels_[i].dy.release();
    }
    built_ = true;
}

void LKPyramid::startDerivatives(int maxLevel) {
    maxLevel = std::min(maxLevel, levels() - 1);
    dxBuf_.resize(levels_.size());
    dyBuf_.resize(levels_.size());
    bands_.resize(levels_.size());
    for (int i = 0; i <= maxLevel; i++) {
        LKLevel &l = levels_[size_t(i)];
        if (!l.dx.empty()) continue;
        l.dx = borderedPlane(dxBuf_[size_t(i)], l.image.size());
        l.dy = borderedPlane(dyBuf_[size_t(i)], l.image.size());
        bands_[size_t(i)].assign(size_t((l.image.rows + kBand - 1) / kBand), 0);
    }
}

void LKPyramid::ensureRows(int level, int py) {
    LKLevel &l = levels_[size_t(level)];
    const int h = l.image.rows;
    // The rows of the window, plus the one below it that interpolation may read.
    if (py + kLKWindow < 0 || py >= h) return;
    std::vector<unsigned char> &done = bands_[size_t(level)];
    const int a = std::max(py, 0) / kBand, b = std::min(py + kLKWindow, h - 1) / kBand;
    for (int band = a; band <= b; band++) {
        if (done[size_t(band)]) continue;
        done[size_t(band)] = 1;
        scharr(l.image, l.dx, l.dy, band * kBand, std::min(h, (band + 1) * kBand), rowBuf_);
    }
}

void LKPyramid::derivativesAround(const cv::Point2f *points, int count, int maxLevel, int ownLevels) {
    maxLevel = std::min(maxLevel, levels() - 1);
    startDerivatives(maxLevel);
    const cv::Point2f halfWin{float(kHalfWin), float(kHalfWin)};
    for (int i = 0; i <= maxLevel; i++) {
        const float scale = float(1. / (1 << i));
        for (int k = 0; k < count; k++) {
            // The window's corner, as the tracker computes it.
            const cv::Point2f p = points[k] * scale - halfWin;
            const int ipx = floorInt(p.x), ipy = floorInt(p.y);
            const Weights w = weightsFor(p.x - float(ipx), p.y - float(ipy));
            const cv::Mat &image = levels_[size_t(i)].image;
            if (!ownDerivatives(i, ownLevels, w, image, ipx, ipy) && !patchDerivatives(i, ownLevels, w, image, ipx, ipy))
                ensureRows(i, ipy);
        }
    }
}

namespace {

// One point in flight: where it is, and its window and system at the current level.
struct Lane {
    int k = 0;                        // index of the point
    bool iterating = false;           // still refining at this level
    int j = 0;                        // iterations done at this level
    float A11 = 0, A12 = 0, A22 = 0;  // the window's structure tensor, and 1/det
    float D = 0;
    cv::Point2f nextPt, out, prevDelta;  // nextPt is the window's corner (out - half window)
    Window win;
};

// The tracker. Points are taken kLanes at a time and their iterations interleaved: each
// iteration of one point waits on its own reduction and float steps, and the other points'
// window rows fill that wait. Every point still goes through exactly OpenCV's steps.
// Inlined into one copy per kernel set, so the AVX2 copy is compiled for AVX2 whole.
template <typename Kernels>
struct Tracker {
    static constexpr int kInFlight = 2;
    const LKPyramid &prev;
    LKPyramid *lazy;  // derivatives to compute on the way (one thread), or null (computed before)
    const LKPyramid &next;
    const cv::Point2f *points;
    unsigned char *status;
    int maxLevel, maxCount;
    double eps2;
    int ownLevels;  // levels below this one compute their windows' derivatives (ownDerivatives)
    float *minEigOut = nullptr;  // per point, the level-0 window's minimum eigenvalue (or null)
    const cv::Point2f halfWin{float(kHalfWin), float(kHalfWin)};

    // Sets up one level for a point: its window in the previous frame and the system matrix.
    __attribute__((always_inline)) inline void startLevel(Lane &l, int level) {
        const LKLevel &I = prev.level(level);
        const cv::Point2f prevScaled = points[l.k] * float(1. / (1 << level));
        l.nextPt = level == maxLevel ? prevScaled : l.out * 2.f;
        l.out = l.nextPt;
        l.iterating = false;
        const cv::Point2f prevPt = prevScaled - halfWin;
        const int ipx = floorInt(prevPt.x), ipy = floorInt(prevPt.y);
        if (ipx < -kLKWindow || ipx >= I.image.cols || ipy < -kLKWindow || ipy >= I.image.rows) {
            if (level == 0) status[l.k] = 0;
            return;
        }
        const Weights wp = weightsFor(prevPt.x - float(ipx), prevPt.y - float(ipy));
        const uint8_t *src = I.image.ptr<uint8_t>(0) + ptrdiff_t(ipy) * ptrdiff_t(I.image.step) + ipx;
        int64_t A[3];
        if (ownDerivatives(level, ownLevels, wp, I.image, ipx, ipy)) {
            Kernels::prepareOwn(src, ptrdiff_t(I.image.step), l.win, A);
        } else if (patchDerivatives(level, ownLevels, wp, I.image, ipx, ipy)) {
            alignas(32) int16_t gx[(kLKWindow + 1) * kPatchStep], gy[(kLKWindow + 1) * kPatchStep];
            derivativePatch(src, ptrdiff_t(I.image.step), gx, gy);
            Kernels::prepare(src, ptrdiff_t(I.image.step), gx, gy, kPatchStep, wp, l.win, A);
        } else {
            // Computing derivatives just before the window needs them keeps them in cache.
            if (lazy) lazy->ensureRows(level, ipy);
            const ptrdiff_t dstep = ptrdiff_t(I.dx.step / sizeof(int16_t));
            const int16_t *gx = I.dx.ptr<int16_t>(0) + ptrdiff_t(ipy) * dstep + ipx;
            const int16_t *gy = I.dy.ptr<int16_t>(0) + ptrdiff_t(ipy) * dstep + ipx;
            Kernels::prepare(src, ptrdiff_t(I.image.step), gx, gy, dstep, wp, l.win, A);
        }
        l.A11 = float(A[0]) * kFltScale;
        l.A12 = float(A[1]) * kFltScale;
        l.A22 = float(A[2]) * kFltScale;
        const float D = l.A11 * l.A22 - l.A12 * l.A12;
        const float minEig = (l.A22 + l.A11 - std::sqrt((l.A11 - l.A22) * (l.A11 - l.A22) + 4.f * l.A12 * l.A12)) /
                             float(2 * kLKWindow * kLKWindow);
        if (level == 0 && minEigOut) minEigOut[l.k] = minEig;
        if (minEig < kMinEigThreshold || D < FLT_EPSILON) {
            if (level == 0) status[l.k] = 0;
            return;
        }
        l.D = 1.f / D;
        l.nextPt -= halfWin;
        l.prevDelta = cv::Point2f();
        l.j = 0;
        l.iterating = maxCount > 0;
    }

    // One Gauss-Newton step at this level, with OpenCV's stopping rules.
    __attribute__((always_inline)) inline void step(Lane &l, int level) {
        const LKLevel &J = next.level(level);
        const int inx = floorInt(l.nextPt.x), iny = floorInt(l.nextPt.y);
        if (inx < -kLKWindow || inx >= J.image.cols || iny < -kLKWindow || iny >= J.image.rows) {
            if (level == 0) status[l.k] = 0;
            l.iterating = false;
            return;
        }
        const Weights wn = weightsFor(l.nextPt.x - float(inx), l.nextPt.y - float(iny));
        const ptrdiff_t jstep = ptrdiff_t(J.image.step);
        const uint8_t *src = J.image.ptr<uint8_t>(0) + ptrdiff_t(iny) * jstep + inx;
        int64_t b[2];
        // The first step at the top level starts on whole pixels (the grid point's own window).
        if (wn.w00 == 1 << kWBits) {
            Kernels::mismatchWhole(src, jstep, l.win, b);
        } else {
            Kernels::mismatch(src, jstep, wn, l.win, b);
        }
        const float b1 = float(b[0]) * kFltScale, b2 = float(b[1]) * kFltScale;
        const cv::Point2f delta(float((l.A12 * b2 - l.A22 * b1) * l.D), float((l.A12 * b1 - l.A11 * b2) * l.D));
        l.nextPt += delta;
        l.out = l.nextPt + halfWin;
        if (delta.ddot(delta) <= eps2) {
            l.iterating = false;
        } else if (l.j > 0 && std::abs(delta.x + l.prevDelta.x) < 0.01 && std::abs(delta.y + l.prevDelta.y) < 0.01) {
            l.out -= delta * 0.5f;
            l.iterating = false;
        } else {
            l.prevDelta = delta;
            l.iterating = ++l.j < maxCount;
            // Stopped by the iteration cap, not on epsilon: tracked, but not converged (kCapped).
            if (!l.iterating && level == 0) status[l.k] = kCapped;
        }
    }

    // Level by level over all points (each level's rows then stream through the cache once, in
    // row order, rather than three levels' rows taking turns), kInFlight points at a time.
    // Between levels a point's state is its position, kept in `tracked`.
    __attribute__((always_inline)) inline void run(int count, cv::Point2f *tracked) {
        Lane lanes[kInFlight];
        for (int k = 0; k < count; k++) status[k] = 1;
        for (int level = maxLevel; level >= 0; level--) {
            for (int base = 0; base < count; base += kInFlight) {
                const int n = std::min(kInFlight, count - base);
                for (int i = 0; i < n; i++) {
                    lanes[i].k = base + i;
                    lanes[i].out = tracked[base + i];
                    startLevel(lanes[i], level);
                }
                for (bool any = true; any;) {
                    any = false;
                    for (int i = 0; i < n; i++) {
                        if (!lanes[i].iterating) continue;
                        step(lanes[i], level);
                        any = any || lanes[i].iterating;
                    }
                }
                for (int i = 0; i < n; i++) tracked[base + i] = lanes[i].out;
            }
        }
        lastCheck(count, tracked);
    }

    // OpenCV's last check (made while it measures the error): the final window must start inside
    // the image's bordered area.
    __attribute__((always_inline)) inline void lastCheck(int count, const cv::Point2f *tracked) {
        const LKLevel &J = next.level(0);
        for (int k = 0; k < count; k++) {
            if (!status[k]) continue;
            const cv::Point2f p = tracked[k] - halfWin;
            const int ix = floorInt(p.x), iy = floorInt(p.y);
            if (ix < -kLKWindow || ix >= J.image.cols || iy < -kLKWindow || iy >= J.image.rows) status[k] = 0;
        }
    }
};

// The AVX2 tracker: sixteen points at a time, their scalar steps in the float lanes of two
// registers. A step's own work is one window pass (mismatch), but between two passes each point
// waits on a chain of dependent scalar steps (floor, weights, reduction, the 2x2 solve, the
// stopping rules) that the vector work of one or two other points cannot hide. Here one chain
// serves sixteen points, and their sixteen window passes, independent of each other, run in
// between. A lane whose point stops takes the next point at once. The float and double
// operations are OpenCV's, lane by lane, in the same order: the answers are the scalar
// tracker's (Tracker, which the portable kernels run). Measured in docs/notes/speed.md.
struct BatchTracker {
    static constexpr int N = 16;  // two registers' lanes
    Tracker<AVX2Kernels> &t;  // its startLevel() sets a lane up
    cv::Point2f *tracked;
    Lane lanes[N];
    // Lane by lane; an idle lane keeps finite values (zeros, or its last point's), which the
    // register-wide steps compute on and nobody reads.
    alignas(32) float nx[N] = {}, ny[N] = {}, ox[N] = {}, oy[N] = {}, pdx[N] = {}, pdy[N] = {};
    alignas(32) float a11[N] = {}, a12[N] = {}, a22[N] = {}, dinv[N] = {}, b1[N] = {}, b2[N] = {};
    alignas(32) int jn[N] = {}, inx[N] = {}, iny[N] = {}, w[4][N] = {};
    int task[N] = {};  // the lane's point, or -1
    uint32_t capped = 0;  // lanes whose last step hit the iteration cap (set by finishAll)

    BatchTracker(Tracker<AVX2Kernels> &tracker, cv::Point2f *out) : t(tracker), tracked(out) {}

    // Gives lane i the next point (from nextPoint on) that needs iterating at this level; the
    // points passed over are done at once (window outside the image, or flat); false when no
    // point is left.
    __attribute__((target("avx2"), always_inline)) inline bool fill(int i, int level, int &nextPoint, int count) {
        while (nextPoint < count) {
            Lane &l = lanes[i];
            l.k = nextPoint++;
            l.out = tracked[l.k];
            t.startLevel(l, level);
            if (!l.iterating) {
                tracked[l.k] = l.out;
                continue;
            }
            task[i] = l.k;
            nx[i] = l.nextPt.x;
            ny[i] = l.nextPt.y;
            ox[i] = l.out.x;
            oy[i] = l.out.y;
            pdx[i] = pdy[i] = 0.f;
            a11[i] = l.A11;
            a12[i] = l.A12;
            a22[i] = l.A22;
            dinv[i] = l.D;
            jn[i] = 0;
            return true;
        }
        task[i] = -1;
        return false;
    }

    // floorInt and weightsFor of every lane's window corner.
    __attribute__((target("avx2"), always_inline)) inline void corners(int o) {
        const __m256 x = _mm256_load_ps(nx + o), y = _mm256_load_ps(ny + o);
        const __m256i tx = _mm256_cvttps_epi32(x), ty = _mm256_cvttps_epi32(y);
        // truncation, minus one where it went up (negative non-integers): floorInt
        const __m256 upX = _mm256_cmp_ps(_mm256_cvtepi32_ps(tx), x, _CMP_GT_OQ);
        const __m256 upY = _mm256_cmp_ps(_mm256_cvtepi32_ps(ty), y, _CMP_GT_OQ);
        const __m256i fx = _mm256_add_epi32(tx, _mm256_castps_si256(upX));
        const __m256i fy = _mm256_add_epi32(ty, _mm256_castps_si256(upY));
        _mm256_store_si256(reinterpret_cast<__m256i *>(inx + o), fx);
        _mm256_store_si256(reinterpret_cast<__m256i *>(iny + o), fy);
        const __m256 a = _mm256_sub_ps(x, _mm256_cvtepi32_ps(fx)), b = _mm256_sub_ps(y, _mm256_cvtepi32_ps(fy));
        const __m256 one = _mm256_set1_ps(1.f), scale = _mm256_set1_ps(float(1 << kWBits));
        const __m256 na = _mm256_sub_ps(one, a), nb = _mm256_sub_ps(one, b);
        const __m256i w00 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_mul_ps(na, nb), scale));
        const __m256i w01 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_mul_ps(a, nb), scale));
        const __m256i w10 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_mul_ps(na, b), scale));
        const __m256i w11 =
            _mm256_sub_epi32(_mm256_sub_epi32(_mm256_sub_epi32(_mm256_set1_epi32(1 << kWBits), w00), w01), w10);
        _mm256_store_si256(reinterpret_cast<__m256i *>(w[0] + o), w00);
        _mm256_store_si256(reinterpret_cast<__m256i *>(w[1] + o), w01);
        _mm256_store_si256(reinterpret_cast<__m256i *>(w[2] + o), w10);
        _mm256_store_si256(reinterpret_cast<__m256i *>(w[3] + o), w11);
    }

    // Tracker::step's move and stopping rules for every lane; returns the lanes that stop.
    __attribute__((target("avx2"), always_inline)) inline int finishAll(int o, int maxCount, double eps2) {
        const __m256 B1 = _mm256_load_ps(b1 + o), B2 = _mm256_load_ps(b2 + o);
        const __m256 A11 = _mm256_load_ps(a11 + o), A12 = _mm256_load_ps(a12 + o), A22 = _mm256_load_ps(a22 + o);
        const __m256 D = _mm256_load_ps(dinv + o);
        const __m256 dx = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(A12, B2), _mm256_mul_ps(A22, B1)), D);
        const __m256 dy = _mm256_mul_ps(_mm256_sub_ps(_mm256_mul_ps(A12, B1), _mm256_mul_ps(A11, B2)), D);
        const __m256 X = _mm256_add_ps(_mm256_load_ps(nx + o), dx), Y = _mm256_add_ps(_mm256_load_ps(ny + o), dy);
        const __m256 half = _mm256_set1_ps(float(kHalfWin));
        __m256 OX = _mm256_add_ps(X, half), OY = _mm256_add_ps(Y, half);
        // delta.ddot(delta) <= eps2, in double
        auto ddot = [](__m128 x, __m128 y) __attribute__((target("avx2"))) {
            const __m256d dx2 = _mm256_cvtps_pd(x), dy2 = _mm256_cvtps_pd(y);
            return _mm256_add_pd(_mm256_mul_pd(dx2, dx2), _mm256_mul_pd(dy2, dy2));
        };
        const __m256d e = _mm256_set1_pd(eps2);
        const __m256d smallLo =
            _mm256_cmp_pd(ddot(_mm256_castps256_ps128(dx), _mm256_castps256_ps128(dy)), e, _CMP_LE_OQ);
        const __m256d smallHi =
            _mm256_cmp_pd(ddot(_mm256_extractf128_ps(dx, 1), _mm256_extractf128_ps(dy, 1)), e, _CMP_LE_OQ);
        const int small = _mm256_movemask_pd(smallLo) | _mm256_movemask_pd(smallHi) << 4;
        // j > 0 && |delta + prevDelta| < 0.01 on both axes, the sums in float, compared in double
        const __m256 absMask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        const __m256 sx = _mm256_and_ps(_mm256_add_ps(dx, _mm256_load_ps(pdx + o)), absMask);
        const __m256 sy = _mm256_and_ps(_mm256_add_ps(dy, _mm256_load_ps(pdy + o)), absMask);
        const __m256d limit = _mm256_set1_pd(0.01);
        auto below = [limit](__m128 v) __attribute__((target("avx2"))) {
            return _mm256_movemask_pd(_mm256_cmp_pd(_mm256_cvtps_pd(v), limit, _CMP_LT_OQ));
        };
        const int backX = below(_mm256_castps256_ps128(sx)) | below(_mm256_extractf128_ps(sx, 1)) << 4;
        const int backY = below(_mm256_castps256_ps128(sy)) | below(_mm256_extractf128_ps(sy, 1)) << 4;
        const __m256i J = _mm256_load_si256(reinterpret_cast<const __m256i *>(jn + o));
        const int started = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(J, _mm256_setzero_si256())));
        const int back = started & backX & backY & ~small;
        // out -= delta * 0.5f where a point stops on a back-and-forth step
        const __m256 halfBack = _mm256_castsi256_ps(_mm256_setr_epi32(back & 1 ? -1 : 0, back & 2 ? -1 : 0,
            back & 4 ? -1 : 0, back & 8 ? -1 : 0, back & 16 ? -1 : 0, back & 32 ? -1 : 0, back & 64 ? -1 : 0,
            back & 128 ? -1 : 0));
        const __m256 halfStep = _mm256_set1_ps(0.5f);
        OX = _mm256_blendv_ps(OX, _mm256_sub_ps(OX, _mm256_mul_ps(dx, halfStep)), halfBack);
        OY = _mm256_blendv_ps(OY, _mm256_sub_ps(OY, _mm256_mul_ps(dy, halfStep)), halfBack);
        const __m256i J1 = _mm256_add_epi32(J, _mm256_set1_epi32(1));
        const int spent = _mm256_movemask_ps(
            _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(maxCount), J1))) ^ 0xff;
        _mm256_store_ps(nx + o, X);
        _mm256_store_ps(ny + o, Y);
        _mm256_store_ps(ox + o, OX);
        _mm256_store_ps(oy + o, OY);
        _mm256_store_ps(pdx + o, dx);
        _mm256_store_ps(pdy + o, dy);
        _mm256_store_si256(reinterpret_cast<__m256i *>(jn + o), J1);
        capped |= uint32_t(spent & ~small & ~back & 0xff) << o;
        return small | back | spent;
    }

    __attribute__((target("avx2"), always_inline)) inline void run(int count, int maxLevel, int maxCount,
                                                                   double eps2) {
        for (int level = maxLevel; level >= 0; level--) {
            const LKLevel &J = t.next.level(level);
            const ptrdiff_t jstep = ptrdiff_t(J.image.step);
            const uint8_t *origin = J.image.ptr<uint8_t>(0);
            int nextPoint = 0;
            uint32_t busy = 0;
            for (int i = 0; i < N; i++)
                if (fill(i, level, nextPoint, count)) busy |= 1u << i;
            while (busy) {
                for (int o = 0; o < N; o += 8) corners(o);
                uint32_t stepped = 0;
                for (int i = 0; i < N; i++) {
                    if (!(busy >> i & 1)) continue;
                    if (inx[i] < -kLKWindow || inx[i] >= J.image.cols || iny[i] < -kLKWindow ||
                        iny[i] >= J.image.rows) {
                        // The window left the image: the point stops where it was (lost at level 0).
                        if (level == 0) t.status[task[i]] = 0;
                        tracked[task[i]] = cv::Point2f(ox[i], oy[i]);
                        continue;
                    }
                    stepped |= 1u << i;
                    const uint8_t *src = origin + ptrdiff_t(iny[i]) * jstep + inx[i];
                    const Weights wi{w[0][i], w[1][i], w[2][i], w[3][i]};
                    int64_t b[2];
                    if (wi.w00 == 1 << kWBits) {
                        AVX2Kernels::mismatchWhole(src, jstep, lanes[i].win, b);
                    } else {
                        AVX2Kernels::mismatch(src, jstep, wi, lanes[i].win, b);
                    }
                    b1[i] = float(b[0]) * kFltScale;
                    b2[i] = float(b[1]) * kFltScale;
                }
                uint32_t stops = 0;
                capped = 0;
                for (int o = 0; o < N; o += 8) stops |= uint32_t(finishAll(o, maxCount, eps2)) << o;
                stops &= stepped;
                for (int i = 0; i < N; i++) {
                    if (!(busy >> i & 1)) continue;
                    const bool done = !(stepped >> i & 1) || (stops >> i & 1);
                    if (!done) continue;
                    if (stepped >> i & 1) tracked[task[i]] = cv::Point2f(ox[i], oy[i]);
                    if (level == 0 && (stepped & capped) >> i & 1) t.status[task[i]] = kCapped;
                    if (!fill(i, level, nextPoint, count)) busy &= ~(1u << i);
                }
            }
        }
    }
};

template <typename Kernels>
__attribute__((always_inline)) inline void track(const LKPyramid &prev, LKPyramid *lazy, const LKPyramid &next,
                                                 int maxLevel, const cv::Point2f *points, int count,
                                                 cv::Point2f *tracked, unsigned char *status, int maxCount,
                                                 double epsilon, int ownLevels, float *minEig) {
    maxLevel = std::min({maxLevel, prev.levels() - 1, next.levels() - 1});
    Tracker<Kernels> t{prev, lazy, next, points, status, maxLevel, maxCount, epsilon * epsilon, ownLevels};
    t.minEigOut = minEig;
    t.run(count, tracked);
}

__attribute__((target("avx2"))) void trackAVX2(const LKPyramid &prev, LKPyramid *lazy, const LKPyramid &next,
                                               int maxLevel, const cv::Point2f *points, int count,
                                               cv::Point2f *tracked, unsigned char *status, int maxCount,
                                               double epsilon, int ownLevels, float *minEig) {
    maxLevel = std::min({maxLevel, prev.levels() - 1, next.levels() - 1});
    Tracker<AVX2Kernels> t{prev, lazy, next, points, status, maxLevel, maxCount, epsilon * epsilon, ownLevels};
    t.minEigOut = minEig;
    for (int k = 0; k < count; k++) status[k] = 1;
    BatchTracker b(t, tracked);
    b.run(count, maxLevel, maxCount, epsilon * epsilon);
    t.lastCheck(count, tracked);
}

}  // namespace

void trackPoints(LKPyramid &prev, const LKPyramid &next, int maxLevel, const cv::Point2f *points, int count,
                 cv::Point2f *tracked, unsigned char *status, int maxCount, double epsilon, int ownLevels,
                 float *minEig) {
    auto run = [&](const cv::Range &r, LKPyramid *lazy) {
        const int n = r.end - r.start;
        float *eig = minEig ? minEig + r.start : nullptr;
        if (gHasAVX2) {
            trackAVX2(prev, lazy, next, maxLevel, points + r.start, n, tracked + r.start, status + r.start, maxCount,
                      epsilon, ownLevels, eig);
        } else {
            track<PortableKernels>(prev, lazy, next, maxLevel, points + r.start, n, tracked + r.start,
                                   status + r.start, maxCount, epsilon, ownLevels, eig);
        }
    };
    if (cv::getNumThreads() <= 1 || count < 128) {
        // One thread: derivatives are computed band by band as the points (in row order) reach them.
        prev.startDerivatives(maxLevel);
        run(cv::Range(0, count), &prev);
    } else {
        // Points are independent: split in stripes of ~64 over OpenCV's pool, derivatives first.
        prev.derivativesAround(points, count, maxLevel, ownLevels);
        cv::parallel_for_(cv::Range(0, count), [&](const cv::Range &r) { run(r, nullptr); }, double(count) / 64);
    }
}

bool useAVX2() { return gHasAVX2; }

}  // namespace cvf
