// The fast path's pyramidal Lucas-Kanade tracker for a 15x15 window (internal to the shim).
//
// It follows cv::calcOpticalFlowPyrLK step for step (OpenCV 4.6: the same 14-bit bilinear
// weights, 5 fraction bits on intensities, the same stopping rules and bounds checks), so on the
// same pyramids it lands on the same points (within 0.01 px, but where the iteration does not
// converge). It differs in two ways that cost nothing in accuracy: the window sums are exact
// integers (OpenCV adds them up in float, which rounds differently in the last bits), and a
// whole 15-pixel window row is one AVX2 step (OpenCV does 8 pixels in SSE and 7 one by one).
// With AVX2, sixteen points are tracked at once, their scalar steps in the lanes of two
// registers. Derivatives are kept as two planes (Ix, Iy) rather than interleaved, so they are
// interpolated with the same instructions as the pixels, and computed only in the bands of rows
// that windows read (full-resolution windows compute their own).
#pragma once

#include <opencv2/core.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cvf {

// The window is fixed: 15x15, i.e. a half-window of 7 px.
constexpr int kLKWindow = 15;
// Every level keeps this many pixels of border on each side; the tracker reads up to one row of
// 16 lanes (plus one pixel) from a window's left edge, so it needs one more than the window.
constexpr int kLKBorder = 16;
// trackPoints' status of a point that did not converge (see there).
constexpr unsigned char kCapped = 2;

// One pyramid level: the 8-bit image and, for a "previous" frame, its Scharr derivatives.
// All three planes carry kLKBorder px of border (image: reflected; derivatives: zero).
struct LKLevel {
    cv::Mat image;     // ROI of the bordered buffer, CV_8UC1
    cv::Mat dx, dy;    // ROI of bordered buffers, CV_16SC1; empty until derivativesAround() runs
};

class LKPyramid {
public:
    // Where the next frame's grey image goes: level 0 of this pyramid, inside its bordered buffer
    // (reallocated only when the size changes). Forgets the levels built from the previous one.
    cv::Mat greyTarget(cv::Size size);
    // The grey image last written to greyTarget (or copied in by build(grey, ...)).
    const cv::Mat &grey() const { return grey_; }
    // Builds the levels 0..maxLevel (fewer when the frame is tiny) from grey(): level 0 is grey()
    // itself with its border filled, no copy. Drops any derivatives of the previous contents.
    void build(int maxLevel);
    // The same from another grey image (copied into level 0 first).
    void build(const cv::Mat &grey, int maxLevel);
    bool built() const { return built_; }
    // Computes the Scharr derivatives that tracking `points` from this pyramid reads, at levels
    // 0..maxLevel (`ownLevels`: see trackPoints): in bands of kBand whole rows (whole rows keep
    // the filter's loops long), each band once per build.
    void derivativesAround(const cv::Point2f *points, int count, int maxLevel, int ownLevels);
    // The same in two steps: set up levels 0..maxLevel, then compute the bands that a window
    // whose top row is `py` at `level` reads (each band once per build).
    void startDerivatives(int maxLevel);
    void ensureRows(int level, int py);
    int levels() const { return int(levels_.size()); }
    const LKLevel &level(int i) const { return levels_[size_t(i)]; }

private:
    cv::Mat greyBuffer_, grey_;    // bordered level-0 buffer and its interior
    bool built_ = false;
    std::vector<cv::Mat> images_;  // the levels' images: grey_, then ROIs of levelBuffers_
    std::vector<cv::Mat> levelBuffers_;  // bordered buffers of levels 1, 2, ...
    std::vector<LKLevel> levels_;
    std::vector<cv::Mat> dxBuf_, dyBuf_;
    std::vector<std::vector<unsigned char>> bands_;  // per level and band of rows: 1 = computed
    std::vector<int16_t> rowBuf_;
    static constexpr int kBand = 16;
};

// Tracks `count` points (x, y pairs in level-0 pixels) from `prev` to `next`, computing the
// derivatives of `prev` it needs.
// Writes the tracked positions and a status byte per point: 0 lost (as OpenCV reports it), 1
// tracked, kCapped tracked but stopped by the iteration cap at the finest level rather than on
// epsilon (OpenCV reports it as 1; the position is the same either way).
// `maxCount`/`epsilon` are the termination criteria (epsilon in px, not squared).
// At levels below `ownLevels`, windows compute their own derivatives from the
// image instead (the same values): worth it where the points' windows overlap little, i.e.
// where the points are at least about a window apart (0: never).
// With `minEig`, also writes each point's minimum eigenvalue of its level-0 window's structure
// tensor, as OpenCV computes it (OPTFLOW_LK_GET_MIN_EIGENVALS), for points that reach level 0.
void trackPoints(LKPyramid &prev, const LKPyramid &next, int maxLevel, const cv::Point2f *points, int count,
                 cv::Point2f *tracked, unsigned char *status, int maxCount, double epsilon, int ownLevels,
                 float *minEig = nullptr);

// BGR to grey exactly as cv::cvtColor(COLOR_BGR2GRAY) computes it for 8-bit images
// ((3735 B + 19235 G + 9798 R + 2^14) >> 15), into `grey` (same size, CV_8UC1, allocated).
void bgrToGrey(const cv::Mat &bgr, cv::Mat &grey);
// The same for rows [y0, y1) only, into a grey image already allocated.
void bgrToGrey(const cv::Mat &bgr, cv::Mat &grey, int y0, int y1);
// Rows [y0, y1) of a decoder's 8-bit luma plane (`stride` bytes a row) as grey, into `grey`
// (allocated, the plane's size): copied when the plane is full range (JPEG-style formats, grey),
// else expanded from the limited range 16-235 to 0-255 as a BGR conversion would (cvtColor of
// that BGR frame gives the same grey within a level or two: the chroma's rounding).
void lumaToGrey(const uint8_t *luma, size_t stride, bool fullRange, cv::Mat &grey, int y0, int y1);

// Where a frame's grey image comes from: the decoder's luma plane when set, else the BGR frame.
struct GreySource {
    const cv::Mat *bgr = nullptr;
    const uint8_t *luma = nullptr;
    size_t lumaStride = 0;
    bool lumaFullRange = false;
    void rows(cv::Mat &grey, int y0, int y1) const;
};

// Whether the AVX2 kernels run (here and in the shim's per-cell statistics): the CPU has AVX2
// and VECTORFLOW_PORTABLE_LK is not 1. The portable loops give the very same numbers; the tests
// compare both on one machine.
bool useAVX2();

}  // namespace cvf
