// The fast path's reliability filter; see vector_filter.hpp. The constants are measured on the
// ground-truth clips of tests/flowtruth.py and on vtest.avi / tree.avi (docs/notes/flow-quality.md).
#include "vector_filter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace cvf {
namespace {

constexpr int kHalf = kLKWindow / 2;
constexpr int kArea = kLKWindow * kLKWindow;

// Tuning knobs, measured (docs/notes/flow-quality.md). The noise is the std of the difference of two
// frames at the same pixel (twice the sensor variance), estimated robustly per frame.
struct Tuning {
    // Texture: the window's weakest mean squared gradient (grey levels² per px², along the
    // structure tensor's weaker axis) must be at least this many times the frame's noise variance
    // (sigma_t² / 2). Sensor noise alone gives a flat window about 0.23 of it (less after JPEG
    // smoothing): 0.22 drops the windows with no texture of their own. Measured on the clips:
    // 0.18 lets 0.7 false vectors per frame through, 0.25 costs 2.7% of the moving points.
    float texture = 0.22f;
    // Noise floor (sigma_t, grey levels): H.264 copies static blocks exactly, and a zero noise
    // would let any faint texture through.
    float minNoise = 1.5f;
    // Residual: the window's mean absolute mismatch after the move (its mean difference, a
    // brightness change, removed) at most this many times sigma_t. Not in the default checks: it
    // drops fast textured objects under compression (recall 0.87) and no false vector the other
    // checks keep.
    float residual = 2.0f;
    // Forward-backward: the endpoint tracked back lands at most this far from the grid point (px).
    float forwardBackward = 0.5f;
    // Neighbours: a neighbour agrees when its vector differs by at most max(abs, rel * |v|) px.
    float neighbourAbs = 1.0f;
    float neighbourRel = 0.35f;
    // The backward track's criteria (0: the forward ones, OpenCV's 30 / 0.01, so the check is the
    // one cv2 makes). 10 iterations / 0.03 px measured about 0.015 ms per frame less on vtest.mp4 and
    // dropped the same vectors on the clips, but then 0.8% (vtest.avi) and 2.8% (tree.avi) of the
    // vectors kept fail cv2's own check, against 0.01% and 0%.
    int fbIterations = 0;
    float fbEpsilon = 0;
    // Pyramid levels of the backward track (-1: the forward ones) and its own-derivative levels
    // (-1: the forward ones), for measuring.
    int fbLevels = -1;
    int fbOwn = -1;
};

Tuning readTuning() {
    Tuning t;
    // VECTORFLOW_FILTER_TUNING="texture=1,residual=2,fb=0.5,...": for measuring the knobs only.
    const char *env = std::getenv("VECTORFLOW_FILTER_TUNING");
    if (!env) return t;
    std::string s(env);
    size_t i = 0;
    while (i < s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        const std::string item = s.substr(i, j - i);
        const size_t eq = item.find('=');
        if (eq != std::string::npos) {
            const std::string k = item.substr(0, eq);
            const float v = std::strtof(item.c_str() + eq + 1, nullptr);
            if (k == "texture") t.texture = v;
            if (k == "noise") t.minNoise = v;
            if (k == "residual") t.residual = v;
            if (k == "fb") t.forwardBackward = v;
            if (k == "nabs") t.neighbourAbs = v;
            if (k == "nrel") t.neighbourRel = v;
            if (k == "fbiter") t.fbIterations = int(v);
            if (k == "fbeps") t.fbEpsilon = v;
            if (k == "fblevels") t.fbLevels = int(v);
            if (k == "fbown") t.fbOwn = int(v);
        }
        i = j + 1;
    }
    return t;
}

// Read once before main; only read afterwards, so safe from any thread.
const Tuning gTuning = readTuning();

// The std of the difference of two frames (grey levels), robustly: 1.4826 x the median absolute
// deviation of the pixel differences, on every 4th pixel of every 4th row of the cells the gate
// found unchanged (`active` 0; a global brightness change only moves the median). Where the camera
// moves no cell is unchanged, and the whole frame would measure motion, not noise: with fewer than
// kMinSamples pixels the estimate is -1 (the caller keeps its last one).
constexpr int kMinSamples = 1000;
constexpr int kNoiseInterval = 4;

float temporalNoise(const cv::Mat &a, const cv::Mat &b, const unsigned char *active, int g, int gw, int gh,
                    std::vector<int> &histogram) {
    histogram.assign(511, 0);
    int n = 0;
    for (int cy = 0; cy < gh; cy++) {
        const int y0 = cy * g, y1 = cy == gh - 1 ? a.rows : std::min(a.rows, y0 + g);
        for (int y = y0 + 2; y < y1; y += 4) {
            const uint8_t *p = a.ptr<uint8_t>(y), *q = b.ptr<uint8_t>(y);
            for (int cx = 0; cx < gw; cx++) {
                if (active[size_t(cy) * size_t(gw) + size_t(cx)]) continue;
                const int x0 = cx * g, x1 = cx == gw - 1 ? a.cols : std::min(a.cols, x0 + g);
                for (int x = x0 + 2; x < x1; x += 4) {
                    histogram[size_t(255 + int(q[x]) - int(p[x]))]++;
                    n++;
                }
            }
        }
    }
    if (n < kMinSamples) return -1;
    int median = 0;
    for (int v = 0, seen = 0; v < 511; v++) {
        seen += histogram[size_t(v)];
        if (2 * seen >= n) {
            median = v;
            break;
        }
    }
    // Median of |d - median|, interpolated inside its bin: the value v stands for [v - 0.5, v + 0.5]
    // (0 for [0, 0.5]), which a small noise needs (its median deviation is a grey level or two).
    int seen = 0;
    for (int v = 0; v < 511; v++) {
        const int count = (v == 0) ? histogram[size_t(median)]
                                   : (median - v >= 0 ? histogram[size_t(median - v)] : 0) +
                                         (median + v < 511 ? histogram[size_t(median + v)] : 0);
        if (2 * (seen + count) >= n) {
            const float lo = v == 0 ? 0.f : float(v) - 0.5f, width = v == 0 ? 0.5f : 1.f;
            const float frac = count > 0 ? (0.5f * float(n) - float(seen)) / float(count) : 0.f;
            return 1.4826f * (lo + width * frac);
        }
        seen += count;
    }
    return 0;
}

inline int at(const cv::Mat &m, int x, int y) {
    x = std::clamp(x, 0, m.cols - 1);
    y = std::clamp(y, 0, m.rows - 1);
    return m.ptr<uint8_t>(y)[x];
}

inline float bilinear(const cv::Mat &m, float x, float y) {
    const int ix = int(std::floor(x)), iy = int(std::floor(y));
    const float a = x - float(ix), b = y - float(iy);
    return (1 - b) * ((1 - a) * float(at(m, ix, iy)) + a * float(at(m, ix + 1, iy))) +
           b * ((1 - a) * float(at(m, ix, iy + 1)) + a * float(at(m, ix + 1, iy + 1)));
}

// Mean absolute mismatch between the window at (px, py) in `a` and at `q` in `b`, once the mean
// difference (a brightness change) is taken out.
float residual(const cv::Mat &a, const cv::Mat &b, int px, int py, cv::Point2f q) {
    float diff[kArea];
    float mean = 0;
    int k = 0;
    for (int y = -kHalf; y <= kHalf; y++) {
        for (int x = -kHalf; x <= kHalf; x++) {
            diff[k] = bilinear(b, q.x + float(x), q.y + float(y)) - float(at(a, px + x, py + y));
            mean += diff[k++];
        }
    }
    mean /= float(kArea);
    float sum = 0;
    for (int i = 0; i < kArea; i++) sum += std::abs(diff[i] - mean);
    return sum / float(kArea);
}

}  // namespace

void VectorFilter::run(int checks, float minMagnitude, const LKPyramid &prev, LKPyramid &next, int maxLevel,
                       int maxCount, double epsilon, int ownLevels, const cv::Point2f *points, const int *cells,
                       const cv::Point2f *tracked, const unsigned char *status, const float *minEig, int count,
                       int gridSize, int gridCols, int gridRows, const unsigned char *active) {
    verdict_.assign(size_t(count), 0);
    std::fill(std::begin(counts_), std::end(counts_), 0);
    candidates_.clear();
    const float min2 = minMagnitude * minMagnitude;
    for (int k = 0; k < count; k++) {
        if (!status[k]) continue;
        const cv::Point2f d = tracked[k] - points[k];
        if (d.x * d.x + d.y * d.y > min2) candidates_.push_back(k);
    }
    if (candidates_.empty() || checks == 0) return;
    const cv::Mat &a = prev.grey(), &b = next.grey();
    auto reject = [&](int k, int reason) {
        verdict_[size_t(k)] = static_cast<unsigned char>(1 + reason);
        counts_[reason]++;
    };
    // Texture, convergence and residual, point by point.
    // A camera's noise changes slowly: measured on the first run with candidates and then every
    // kNoiseInterval-th (a measurement costs about 0.05 ms on 768x576); the floor until one succeeds.
    if ((checks & (kCheckTexture | kCheckResidual)) && (noise_ <= 0 || ++sinceNoise_ >= kNoiseInterval)) {
        const float measured = temporalNoise(a, b, active, gridSize, gridCols, gridRows, histogram_);
        if (measured >= 0) {
            noise_ = std::max(gTuning.minNoise, measured);
            sinceNoise_ = 0;
        }
        if (noise_ <= 0) noise_ = gTuning.minNoise;
    }
    // The tracker's minimum eigenvalue is OpenCV's: of the Scharr structure tensor (Scharr is 32 x
    // the gradient), scaled by 2^-20, per window pixel. x 2^20 / 32² makes it the mean squared
    // gradient along the weaker axis, in grey levels² per px², comparable with the noise variance.
    const float noiseVar = 0.5f * noise_ * noise_;
    const float eigToGradient = float(1 << 20) / 1024.f;
    size_t kept = 0;
    for (const int k : candidates_) {
        const int px = int(std::lround(points[k].x)), py = int(std::lround(points[k].y));
        if ((checks & kCheckTexture) && minEig[k] * eigToGradient < gTuning.texture * noiseVar) {
            reject(k, 0);
        } else if ((checks & kCheckConvergence) && status[k] == kCapped) {
            reject(k, 1);
        } else if ((checks & kCheckResidual) && residual(a, b, px, py, tracked[k]) > gTuning.residual * noise_) {
            reject(k, 2);
        } else {
            candidates_[kept++] = k;
        }
    }
    candidates_.resize(kept);
    // Neighbours: a vector stays when one of its eight grid neighbours also passed so far and moves
    // alike. Judged against the neighbours as they stood before this pass, so the verdicts do not
    // depend on the order of the points. Run before the forward-backward check, which then tracks
    // fewer points back, and again after it, whose rejections can leave a vector alone.
    auto dropIsolated = [&]() {
        if (!(checks & kCheckNeighbours) || candidates_.empty()) return;
        owner_.assign(size_t(gridCols) * size_t(gridRows), 0);
        for (const int k : candidates_) owner_[size_t(cells[k])] = k + 1;
        size_t left = 0;
        for (const int k : candidates_) {
            const int cx = cells[k] % gridCols, cy = cells[k] / gridCols;
            const cv::Point2f v = tracked[k] - points[k];
            const float tol = std::max(gTuning.neighbourAbs, gTuning.neighbourRel * std::sqrt(v.dot(v)));
            bool agrees = false;
            for (int y = std::max(0, cy - 1); !agrees && y <= std::min(gridRows - 1, cy + 1); y++) {
                for (int x = std::max(0, cx - 1); !agrees && x <= std::min(gridCols - 1, cx + 1); x++) {
                    const int j = owner_[size_t(y) * size_t(gridCols) + size_t(x)] - 1;
                    if (j < 0 || j == k) continue;
                    const cv::Point2f w = tracked[j] - points[j] - v;
                    agrees = w.dot(w) <= tol * tol;
                }
            }
            if (agrees) {
                candidates_[left++] = k;
            } else {
                reject(k, 4);
            }
        }
        candidates_.resize(left);
    };
    dropIsolated();
    // Forward-backward, on the few points left: the endpoints tracked back with the same tracker.
    if ((checks & kCheckForwardBackward) && !candidates_.empty()) {
        backFrom_.resize(candidates_.size());
        backTo_.resize(candidates_.size());
        backStatus_.resize(candidates_.size());
        for (size_t i = 0; i < candidates_.size(); i++) backFrom_[i] = tracked[candidates_[i]];
        // The endpoints are off the grid: at the levels where the forward tracking computes its
        // own derivatives the backward windows do so too (patchDerivatives in sparse_lk.cpp); above
        // them they read the planes, whose bands the next frame's tracking then reuses.
        trackPoints(next, prev, gTuning.fbLevels >= 0 ? gTuning.fbLevels : maxLevel, backFrom_.data(),
                    int(backFrom_.size()), backTo_.data(), backStatus_.data(),
                    gTuning.fbIterations > 0 ? gTuning.fbIterations : maxCount,
                    gTuning.fbEpsilon > 0 ? gTuning.fbEpsilon : epsilon, gTuning.fbOwn >= 0 ? gTuning.fbOwn : ownLevels);
        const float limit2 = gTuning.forwardBackward * gTuning.forwardBackward;
        kept = 0;
        for (size_t i = 0; i < candidates_.size(); i++) {
            const int k = candidates_[i];
            const cv::Point2f e = backTo_[i] - points[k];
            if (!backStatus_[i] || e.x * e.x + e.y * e.y > limit2) {
                reject(k, 3);
            } else {
                candidates_[kept++] = k;
            }
        }
        candidates_.resize(kept);
        dropIsolated();
    }
}

}  // namespace cvf
