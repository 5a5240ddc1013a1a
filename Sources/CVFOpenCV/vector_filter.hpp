// The fast path's reliability filter (internal to the shim): which of the vectors that Lucas-Kanade
// tracked above the threshold can be trusted. It never changes a vector; it only says which ones
// to drop, and why.
#pragma once

#include "sparse_lk.hpp"

#include <opencv2/core.hpp>

#include <cstdint>
#include <vector>

namespace cvf {

// The checks, as bits of `checks` (the same values as CVF_CHECK_* in cvf_opencv.h), in the order
// they run; a rejected vector is counted under the first check it fails.
enum FilterCheck : int {
    kCheckTexture = 1,          // the window's smallest structure-tensor eigenvalue against the noise
    kCheckConvergence = 2,      // stopped on epsilon, not on the iteration cap
    kCheckResidual = 4,         // the final window's mismatch against the noise
    kCheckForwardBackward = 8,  // tracked back, it lands near its start
    kCheckNeighbours = 16,      // a neighbouring grid point moves the same way
};
constexpr int kFilterReasons = 5;  // reason i is the check 1 << i

class VectorFilter {
public:
    // Judges the `count` points that trackPoints tracked from `prev` to `next` (grid points
    // `points`, at grid positions `cells` of a gridCols-wide grid, tracked to `tracked` with
    // `status` and `minEig`; maxLevel .. ownLevels as that call had them): those with status != 0
    // and a motion above minMagnitude go through `checks`.
    // Afterwards rejected(k) says whether point k is to be dropped. `next` gets the derivatives
    // the forward-backward check needs (which the next frame's tracking then reuses). `active`
    // (per grid cell, the gate's verdict) says where the frame did not change: the noise is
    // measured there. A VectorFilter serves one stream: it keeps the last noise estimate.
    void run(int checks, float minMagnitude, const LKPyramid &prev, LKPyramid &next, int maxLevel, int maxCount,
             double epsilon, int ownLevels, const cv::Point2f *points, const int *cells, const cv::Point2f *tracked,
             const unsigned char *status, const float *minEig, int count, int gridSize, int gridCols, int gridRows,
             const unsigned char *active);
    bool rejected(int k) const { return verdict_[size_t(k)] != 0; }
    // Vectors rejected in the last run, by reason (0..kFilterReasons-1).
    int rejectedCount(int reason) const { return counts_[reason]; }
    // The temporal noise (std of the frame difference, grey levels) last measured, floored.
    float noise() const { return noise_; }

private:
    std::vector<unsigned char> verdict_;  // per point: 0 keep, 1 + reason
    std::vector<int> candidates_;         // points still in the running
    std::vector<int> owner_;              // per grid cell: 1 + candidate point, or 0
    std::vector<cv::Point2f> backFrom_, backTo_;
    std::vector<unsigned char> backStatus_;
    std::vector<int> histogram_;
    int counts_[kFilterReasons] = {};
    float noise_ = 0;
    int sinceNoise_ = 0;  // runs since the noise was last measured
};

}  // namespace cvf
