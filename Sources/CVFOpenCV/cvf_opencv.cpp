// The C++ side of the OpenCV shim. Every exported function catches every exception: a C++
// exception unwinding into Swift frames is undefined behaviour, so failures become return codes
// plus a message kept in the handle.
#include "cvf_opencv.h"
#include "decoder_tap.hpp"
#include "sparse_lk.hpp"
#include "vector_filter.hpp"

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>
#include <opencv2/videoio.hpp>

extern "C" {
#include <libavutil/frame.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace {

// The Lucas-Kanade parameters of the reference implementation: a 15x15 window and maxLevel 2,
// i.e. three pyramid levels (full, 1/2, 1/4 size); at most 30 iterations or a step under 0.01 px.
const cv::Size kWindow(15, 15);
const int kMaxLevel = 2;
const cv::TermCriteria kCriteria(cv::TermCriteria::COUNT | cv::TermCriteria::EPS, 30, 0.01);

// FFmpeg's capture options come from one process-wide environment variable read during open;
// the lock keeps two handles opening at once from seeing each other's value.
std::mutex gOptionsLock;

bool hasPrefix(const std::string &s, const char *prefix) {
    return s.compare(0, std::strlen(prefix), prefix) == 0;
}

// The motion gate of the fast path (see cvf_set_exact_flow). A grid point goes to Lucas-Kanade
// when its cell, or a cell within kGateReachPx of it, changed by more than kChangeLevel grey levels
// between two frames (compression noise stays below it), or when its own cell changed by at least
// 1/kFlatRatio of the cell's contrast: in flat texture LK turns even noise-sized changes into
// vectors, and the exact path reports those, so the fast one must compute them too. Every other
// point gets a zero vector. Tuned on vtest.avi, its 720p H.264 copy, Megamind.avi and tree.avi
// against the exact path (see docs/notes/speed.md): on vtest ~28% of the points run LK, and
// 98.9-99.2% of the exact vectors are reproduced on all four (with the shim's own tracker).
const int kChangeLevel = 25;
const int kFlatRatio = 10;
const int kGateReachPx = 16;
const int kOwnDerivativeSpacing = 12;

// Per-cell statistics of one frame pair, computed in a single pass over both grey images.
// Cell (cx, cy) holds the pixels nearest to grid point (cx, cy); the last row/column take the
// remainder of the frame. Each band of cell rows is first folded column by column (a loop the
// compiler turns into whole-register byte max/min), then each cell reduces its columns.
// With `source`, the current grey image is converted from it band by band, just before the band
// is folded (so the fold reads it from the cache).
// Compiled twice: for the baseline CPU and, chosen at run time, with AVX2 (32 bytes per step).
__attribute__((always_inline)) inline void cellStatisticsBody(const cv::Mat &prev, cv::Mat &cur, int g, int gw,
                                                              int gh, std::vector<unsigned char> &diff,
                                                              std::vector<unsigned char> &lo,
                                                              std::vector<unsigned char> &hi,
                                                              std::vector<unsigned char> &columns,
                                                              const cvf::GreySource *source) {
    const size_t n = size_t(gw) * size_t(gh);
    diff.resize(n);
    lo.resize(n);
    hi.resize(n);
    const int w = cur.cols;
    columns.resize(size_t(3 * w));
    unsigned char *__restrict cd = columns.data(), *__restrict cl = cd + w, *__restrict ch = cl + w;
    for (int cy = 0; cy < gh; cy++) {
        const int y0 = cy * g, y1 = cy == gh - 1 ? cur.rows : std::min(cur.rows, y0 + g);
        if (source) source->rows(cur, y0, y1);
        std::memset(cd, 0, size_t(w));
        std::memset(cl, 255, size_t(w));
        std::memset(ch, 0, size_t(w));
        for (int y = y0; y < y1; y++) {
            const unsigned char *__restrict a = prev.ptr<unsigned char>(y);
            const unsigned char *__restrict b = cur.ptr<unsigned char>(y);
            for (int x = 0; x < w; x++) {
                const unsigned char va = a[x], vb = b[x];
                const unsigned char ad = (unsigned char)(std::max(va, vb) - std::min(va, vb));
                cd[x] = std::max(cd[x], ad);
                cl[x] = std::min(cl[x], vb);
                ch[x] = std::max(ch[x], vb);
            }
        }
        for (int cx = 0; cx < gw; cx++) {
            const int x0 = cx * g, x1 = cx == gw - 1 ? w : std::min(w, x0 + g);
            unsigned char d = 0, mn = 255, mx = 0;
            for (int x = x0; x < x1; x++) {
                d = std::max(d, cd[x]);
                mn = std::min(mn, cl[x]);
                mx = std::max(mx, ch[x]);
            }
            const size_t i = size_t(cy) * size_t(gw) + size_t(cx);
            diff[i] = d;
            lo[i] = mn;
            hi[i] = mx;
        }
    }
}

__attribute__((target("avx2"))) void cellStatisticsAVX2(const cv::Mat &prev, cv::Mat &cur, int g, int gw, int gh,
                                                        std::vector<unsigned char> &diff,
                                                        std::vector<unsigned char> &lo,
                                                        std::vector<unsigned char> &hi,
                                                        std::vector<unsigned char> &columns,
                                                        const cvf::GreySource *source) {
    cellStatisticsBody(prev, cur, g, gw, gh, diff, lo, hi, columns, source);
}

void cellStatistics(const cv::Mat &prev, cv::Mat &cur, int g, int gw, int gh, std::vector<unsigned char> &diff,
                    std::vector<unsigned char> &lo, std::vector<unsigned char> &hi, std::vector<unsigned char> &columns,
                    const cvf::GreySource *source) {
    if (cvf::useAVX2()) {  // VECTORFLOW_PORTABLE_LK=1 chooses the portable loops here too
        cellStatisticsAVX2(prev, cur, g, gw, gh, diff, lo, hi, columns, source);
    } else {
        cellStatisticsBody(prev, cur, g, gw, gh, diff, lo, hi, columns, source);
    }
}

}  // namespace

struct cvf_stream {
    // The source and its announced rate and length.
    struct Source {
        cv::VideoCapture capture;
        double fps = 0;
        double frameCount = 0;
        // Whether the fast path's reads take the decoder's own picture (decoder_tap.hpp): off for
        // a source OpenCV would rotate (its orientation metadata), which this path does not.
        bool decoderPicture = false;
    } source;
    // The current frame. `frame` is it in BGR, unless `decoded.picture` is set: then the frame
    // is the decoder's picture, and `frame` holds it in BGR only once ensureBGR converted it.
    cv::Mat frame;
    cv::Size frameSize;
    struct Decoded {
        const AVFrame *picture = nullptr;  // the capture's, valid until its next grab or release
        bool fullRange = false;            // its luma's range (see lumaFormat)
        bool bgrReady = false;             // `frame` holds its BGR conversion
        SwsContext *sws = nullptr;         // the conversion OpenCV's retrieve() would make
        Decoded() = default;
        Decoded(const Decoded &) = delete;
        Decoded &operator=(const Decoded &) = delete;
        ~Decoded() { sws_freeContext(sws); }
    } decoded;
    // A snapshot slot shares `frame`'s buffer (cvf_snapshot_hold): the next read must decode into
    // a new one, and drawing on `frame` in place must not reach the held picture.
    bool frameHeld = false;
    bool exact = false;
    bool greyFromBGR = false;  // cvf_set_grey_from_bgr
    bool havePrevious = false;
    cv::Size previousSize;
    // The sample points: set once per stream (cvf_set_grid_size), rebuilt when the frame size changes.
    struct Grid {
        int step = 0;       // the spacing asked for; 0 until set
        int builtStep = 0;  // the spacing `points` holds
        cv::Size builtFor;
        int cols = 0, rows = 0;
        std::vector<cv::Point2f> points;
    } grid;
    // The fast path: per-cell statistics of the frame difference, the points sent to Lucas-Kanade
    // and the tracker's own pyramids (sparse_lk.hpp), whose derivatives are computed only where a
    // window needs them. Whether the last frame's grey image is in prevPyramid (the last call took
    // the fast path) rather than in the exact path's `grey`: `greyInPyramid`. A pyramid's levels
    // are built only once LK needs them (a frame with no moving cell needs none).
    struct Fast {
        bool greyInPyramid = false;
        int activePoints = 0;
        std::vector<unsigned char> cellDiff, cellLo, cellHi, changed, active, columnStats;
        std::vector<cv::Point2f> subset, subsetTracked;
        std::vector<float> minEig;  // per subset point, for the filter's texture check
        std::vector<int> subsetIndex;
        cvf::LKPyramid prevPyramid, pyramid;
    } fast;
    // The exact path: OpenCV's own conversion, pyramids (with Scharr derivatives) and tracker.
    // Reusing the current pyramid as the next call's previous one halves the pyramid work per
    // frame; the result is the same as calcOpticalFlowPyrLK on two plain images.
    struct Exact {
        cv::Mat grey;
        std::vector<cv::Mat> prevPyramid, pyramid;
        std::vector<cv::Point2f> tracked;
        std::vector<float> error;
    } exactPath;
    std::vector<unsigned char> status;  // per tracked point, either path: whether Lucas-Kanade converged
    std::vector<float> vectors;         // x, y, dx, dy per tracked point
    // The fast path's reliability filter (cvf_set_vector_filter): off until set.
    struct Filter {
        int checks = 0;
        float minMagnitude = 0;
        cvf::VectorFilter filter;
        int rejected[CVF_REJECT_REASONS] = {};
        double seconds = 0;
    } filter;
    // The annotated preview and its JPEG.
    struct Preview {
        cv::Mat image;
        std::vector<unsigned char> jpeg;
        std::vector<int> params;
    } preview;
    // Motion-event snapshots: per zone, the frame of its peak and that frame's vectors
    // (cvf_snapshot_hold); the last encoded one's image and JPEG (cvf_snapshot_encode).
    struct FreePicture {
        void operator()(AVFrame *f) const { av_frame_free(&f); }
    };
    struct Snapshot {
        cv::Mat frame;  // the held frame in BGR, or empty when `picture` holds it
        // A reference to the decoder's picture (its buffers are reference-counted and never written
        // again): converted to BGR only when an entry needs the JPEG.
        std::unique_ptr<AVFrame, FreePicture> picture;
        std::vector<float> vectors;
        int maxWidth = 0;
        float arrowScale = 0, colourMax = 0;
    };
    struct Snapshots {
        std::vector<Snapshot> held;
        cv::Mat bgr;                 // a held picture's BGR conversion
        SwsContext *sws = nullptr;  // its conversion
        Snapshots() = default;
        Snapshots(const Snapshots &) = delete;
        Snapshots &operator=(const Snapshots &) = delete;
        ~Snapshots() { sws_freeContext(sws); }
        cv::Mat image;
        std::vector<unsigned char> jpeg;
        std::vector<int> params;
    } snapshots;
    std::string lastError;

    int fail(const std::string &message) {
        lastError = message;
        return CVF_ERROR;
    }
};

// Runs body, turning any exception into CVF_ERROR and a message in the handle.
template <typename Body>
int guard(cvf_stream *s, Body body) {
    try {
        return body();
    } catch (const std::exception &e) {
        return s->fail(e.what());
    } catch (...) {
        return s->fail("unknown C++ exception");
    }
}

namespace {

// Pixel formats whose first plane is the frame's 8-bit luma at full size (the formats software
// decoders give for H.264, HEVC, MPEG-4, VP8/9, MJPEG, ...); `fullRange` as libswscale reads them
// (the JPEG-style formats and grey are full range, the rest 16-235). Any other format (more bits,
// packed, a hardware surface) takes OpenCV's own conversion.
bool lumaFormat(int format, bool *fullRange) {
    switch (format) {
        case AV_PIX_FMT_YUV420P:
        case AV_PIX_FMT_YUV422P:
        case AV_PIX_FMT_YUV444P:
        case AV_PIX_FMT_YUV440P:
        case AV_PIX_FMT_YUV411P:
        case AV_PIX_FMT_YUV410P:
        case AV_PIX_FMT_NV12:
        case AV_PIX_FMT_NV21:
            *fullRange = false;
            return true;
        case AV_PIX_FMT_YUVJ420P:
        case AV_PIX_FMT_YUVJ422P:
        case AV_PIX_FMT_YUVJ444P:
        case AV_PIX_FMT_YUVJ440P:
        case AV_PIX_FMT_GRAY8:
            *fullRange = true;
            return true;
        default:
            return false;
    }
}

// A decoder's picture in BGR, converted the way OpenCV's retrieve() does (libswscale to BGR24,
// SWS_BICUBIC, which at the same size is a plain colour conversion; the tests compare every frame
// with OpenCV's), into `bgr` (reallocated only when its size changes or another holder shares it).
void convertPicture(SwsContext *&sws, const AVFrame *f, cv::Mat &bgr) {
    sws = sws_getCachedContext(sws, f->width, f->height, AVPixelFormat(f->format), f->width, f->height,
                               AV_PIX_FMT_BGR24, SWS_BICUBIC, nullptr, nullptr, nullptr);
    if (!sws) throw std::runtime_error("no conversion from the decoder's pixel format to BGR");
    bgr.create(f->height, f->width, CV_8UC3);
    uint8_t *dst[4] = {bgr.data, nullptr, nullptr, nullptr};
    const int dstStride[4] = {int(bgr.step[0]), 0, 0, 0};
    sws_scale(sws, f->data, f->linesize, 0, f->height, dst, dstStride);
}

// Makes `frame` the current frame in BGR, once per frame: into a new buffer when a snapshot slot
// shares the old one (cvf_read released it then).
void ensureBGR(cvf_stream *s) {
    cvf_stream::Decoded &d = s->decoded;
    if (!d.picture || d.bgrReady) return;
    convertPicture(d.sws, d.picture, s->frame);
    d.bgrReady = true;
}

// Where the current frame's grey image comes from: the decoder's luma plane, or the BGR frame.
cvf::GreySource greySource(const cvf_stream *s) {
    cvf::GreySource source;
    if (s->decoded.picture) {
        source.luma = s->decoded.picture->data[0];
        source.lumaStride = size_t(s->decoded.picture->linesize[0]);
        source.lumaFullRange = s->decoded.fullRange;
    } else {
        source.bgr = &s->frame;
    }
    return source;
}

// Forgets the decoder's picture (before the capture that owns it is released or reopened).
void dropPicture(cvf_stream *s) {
    s->decoded.picture = nullptr;
    s->decoded.bgrReady = false;
}

// Rebuilds the grid points when the grid size or the frame size changed.
void ensureGrid(cvf_stream *s, int grid_size, cv::Size size) {
    if (s->grid.builtStep == grid_size && s->grid.builtFor == size) return;
    s->grid.points.clear();
    s->grid.rows = 0;
    s->grid.cols = 0;
    for (int y = grid_size / 2; y < size.height; y += grid_size) {
        s->grid.rows++;
        s->grid.cols = 0;
        for (int x = grid_size / 2; x < size.width; x += grid_size) {
            s->grid.points.emplace_back(float(x), float(y));
            s->grid.cols++;
        }
    }
    s->grid.builtStep = grid_size;
    s->grid.builtFor = size;
}

// The pyramid levels whose windows compute their own derivatives (cvf::trackPoints): those where
// grid points are at least kOwnDerivativeSpacing px apart (level 0 for the default 16 px grid).
// Measured at 720p, grid 16 (docs/notes/speed.md).
int ownDerivativeLevels(int grid_size) {
    int levels = 0;
    while (levels <= kMaxLevel && (grid_size >> levels) >= kOwnDerivativeSpacing) levels++;
    return levels;
}

// Appends (x, y, dx, dy) of every tracked point in grid order; `moved` points come from LK.
void appendVector(cvf_stream *s, cv::Point2f p, cv::Point2f q) {
    s->vectors.push_back(p.x);
    s->vectors.push_back(p.y);
    s->vectors.push_back(q.x - p.x);
    s->vectors.push_back(q.y - p.y);
}

// The gated path: only points whose neighbourhood changed go to LK (see kChangeLevel).
// The current frame's grey image goes into level 0 of fastPyramid: converted along with the
// gate's statistics when there is a previous frame to compare with, on its own otherwise.
int fastFlow(cvf_stream *s, int grid_size, bool prevInFastPyramid) {
    cv::Mat grey = s->fast.pyramid.greyTarget(s->frameSize);
    const cvf::GreySource source = greySource(s);
    const cv::Mat &prevGrey = prevInFastPyramid ? s->fast.prevPyramid.grey() : s->exactPath.grey;
    const cv::Size size = grey.size();
    const bool comparable = s->havePrevious && s->previousSize == size;
    s->havePrevious = true;
    s->previousSize = size;
    s->vectors.clear();
    s->fast.activePoints = 0;
    std::fill(std::begin(s->filter.rejected), std::end(s->filter.rejected), 0);
    s->filter.seconds = 0;
    if (comparable) ensureGrid(s, grid_size, size);
    if (!comparable || s->grid.points.empty()) {
        source.rows(grey, 0, grey.rows);
        return 0;
    }
    const int gw = s->grid.cols, gh = s->grid.rows;
    cellStatistics(prevGrey, grey, grid_size, gw, gh, s->fast.cellDiff, s->fast.cellLo, s->fast.cellHi, s->fast.columnStats, &source);
    const size_t n = size_t(gw) * size_t(gh);
    s->fast.changed.assign(n, 0);
    s->fast.active.assign(n, 0);
    for (size_t i = 0; i < n; i++) s->fast.changed[i] = s->fast.cellDiff[i] > kChangeLevel;
    const int reach = std::max(1, (kGateReachPx + grid_size - 1) / grid_size);
    for (int cy = 0; cy < gh; cy++) {
        for (int cx = 0; cx < gw; cx++) {
            const size_t i = size_t(cy) * gw + cx;
            bool on = int(s->fast.cellDiff[i]) * kFlatRatio >= int(s->fast.cellHi[i]) - int(s->fast.cellLo[i]);
            for (int y = std::max(0, cy - reach); !on && y <= std::min(gh - 1, cy + reach); y++)
                for (int x = std::max(0, cx - reach); !on && x <= std::min(gw - 1, cx + reach); x++)
                    on = s->fast.changed[size_t(y) * gw + x];
            s->fast.active[i] = on;
        }
    }
    s->fast.subset.clear();
    s->fast.subsetIndex.clear();
    for (size_t i = 0; i < n; i++) {
        if (!s->fast.active[i]) continue;
        s->fast.subset.push_back(s->grid.points[i]);
        s->fast.subsetIndex.push_back(int(i));
    }
    s->fast.activePoints = int(s->fast.subset.size());
    if (!s->fast.subset.empty()) {
        if (!prevInFastPyramid) {
            s->fast.prevPyramid.build(prevGrey, kMaxLevel);
        } else if (!s->fast.prevPyramid.built()) {
            s->fast.prevPyramid.build(kMaxLevel);
        }
        s->fast.pyramid.build(kMaxLevel);
        // The reference criteria: looser ones (10/0.03, 20/0.05, 5/0.05) saved under 15% of the
        // flow time but moved 16-35% of the vectors by more than 0.5 px (docs/notes/speed.md).
        s->fast.subsetTracked.resize(s->fast.subset.size());
        s->status.resize(s->fast.subset.size());
        s->fast.minEig.resize(s->fast.subset.size());
        const int ownLevels = ownDerivativeLevels(grid_size);
        cvf::trackPoints(s->fast.prevPyramid, s->fast.pyramid, kMaxLevel, s->fast.subset.data(), int(s->fast.subset.size()),
                         s->fast.subsetTracked.data(), s->status.data(), kCriteria.maxCount, kCriteria.epsilon, ownLevels,
                         s->filter.checks ? s->fast.minEig.data() : nullptr);
        if (s->filter.checks) {
            const auto t0 = std::chrono::steady_clock::now();
            s->filter.filter.run(s->filter.checks, s->filter.minMagnitude, s->fast.prevPyramid, s->fast.pyramid, kMaxLevel,
                          kCriteria.maxCount, kCriteria.epsilon, ownLevels, s->fast.subset.data(), s->fast.subsetIndex.data(),
                          s->fast.subsetTracked.data(), s->status.data(), s->fast.minEig.data(), int(s->fast.subset.size()),
                          grid_size, gw, gh, s->fast.active.data());
            for (int r = 0; r < CVF_REJECT_REASONS; r++) s->filter.rejected[r] = s->filter.filter.rejectedCount(r);
            s->filter.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
    }
    // Every grid point in grid order: zero where the gate kept it from LK, LK's vector where it
    // tracked (none where LK lost it). Written in place, the buffer sized once.
    s->vectors.resize(n * 4);
    float *out = s->vectors.data();
    size_t next = 0;  // index into subset, which is in grid order
    for (size_t i = 0; i < n; i++) {
        const cv::Point2f p = s->grid.points[i];
        cv::Point2f q = p;
        if (next < s->fast.subsetIndex.size() && size_t(s->fast.subsetIndex[next]) == i) {
            const bool tracked = s->status[next] && !(s->filter.checks && s->filter.filter.rejected(int(next)));
            q = s->fast.subsetTracked[next++];
            if (!tracked) continue;
        }
        out[0] = p.x;
        out[1] = p.y;
        out[2] = q.x - p.x;
        out[3] = q.y - p.y;
        out += 4;
    }
    s->vectors.resize(size_t(out - s->vectors.data()));
    return int(s->vectors.size() / 4);
}

}  // namespace

extern "C" const char *cvf_opencv_version(void) { return CV_VERSION; }

extern "C" void cvf_set_num_threads(int threads) {
    try {
        cv::setNumThreads(threads);
    } catch (...) {
    }
}

extern "C" cvf_stream *cvf_stream_new(void) {
    try {
        return new cvf_stream();
    } catch (...) {
        return nullptr;
    }
}

extern "C" void cvf_stream_free(cvf_stream *s) {
    try {
        delete s;
    } catch (...) {
    }
}

extern "C" const char *cvf_last_error(const cvf_stream *s) { return s->lastError.c_str(); }

extern "C" int cvf_open(cvf_stream *s, const char *source, int open_timeout_ms, int read_timeout_ms,
                        const char *http_proxy) {
    return guard(s, [&]() -> int {
        dropPicture(s);
        s->source.capture.release();
        s->havePrevious = false;
        s->lastError.clear();
        std::string url(source);
        if (hasPrefix(url, "file://")) {
            // file:///absolute/path only: what follows "file://" is never handed to FFmpeg as a URL.
            if (!hasPrefix(url, "file:///")) return s->fail("file URLs need an absolute path (file:///...)");
            url = url.substr(7);
        }
        const std::vector<int> params = {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_timeout_ms,
                                         cv::CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms};
        bool ok;
        {
            std::lock_guard<std::mutex> lock(gOptionsLock);
            // TCP interleaving survives lossy links and NAT; small probing makes opening an
            // RTSP stream take ~0.2 s instead of ~3 s. Every scheme gets FFmpeg's protocols fixed
            // to its own (no "file:" URL that opens http, no RTSP that falls back to files), and
            // files and HTTP sources only video containers (FFmpeg renders a text file as video).
            static const char *videoFormats =
                "format_whitelist;mov,mp4,m4a,3gp,3g2,mj2,avi,matroska,webm,mpegts,mpeg,mjpeg,mpjpeg,flv,asf,h264,"
                "hevc,m4v,mpegvideo";
            std::string options;
            if (hasPrefix(url, "rtsp://") || hasPrefix(url, "rtsps://")) {
                options = "rtsp_transport;tcp|analyzeduration;200000|probesize;65536"
                          "|protocol_whitelist;rtsp,rtsps,rtp,srtp,udp,tcp,tls";
            } else if (hasPrefix(url, "http://") || hasPrefix(url, "https://")) {
                // Through the worker's source proxy when given: it checks every connection FFmpeg
                // makes (redirects too) against the source policy; https reaches it by CONNECT.
                options = std::string("protocol_whitelist;http,https,tcp,tls,httpproxy|") + videoFormats;
                if (http_proxy != nullptr && *http_proxy != 0) options += std::string("|http_proxy;") + http_proxy;
            } else {
                options = std::string("protocol_whitelist;file|") + videoFormats;
            }
            setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", options.c_str(), 1);
            ok = s->source.capture.open(url, cv::CAP_FFMPEG, params);
        }
        if (!ok || !s->source.capture.isOpened()) {
            s->source.capture.release();
            return s->fail("cannot open " + std::string(source));
        }
        s->source.fps = s->source.capture.get(cv::CAP_PROP_FPS);
        if (!std::isfinite(s->source.fps) || s->source.fps < 0) s->source.fps = 0;
        s->source.frameCount = s->source.capture.get(cv::CAP_PROP_FRAME_COUNT);
        if (!std::isfinite(s->source.frameCount)) s->source.frameCount = 0;
        const double rotation = s->source.capture.get(cv::CAP_PROP_ORIENTATION_META);
        s->source.decoderPicture = !std::isfinite(rotation) || std::fmod(rotation, 360.0) == 0;
        return 0;
    });
}

extern "C" void cvf_close(cvf_stream *s) {
    try {
        dropPicture(s);
        s->source.capture.release();
        s->havePrevious = false;
    } catch (...) {
    }
}

extern "C" double cvf_source_fps(const cvf_stream *s) { return s->source.fps; }
extern "C" double cvf_source_frame_count(const cvf_stream *s) { return s->source.frameCount; }

extern "C" int cvf_read(cvf_stream *s) {
    return guard(s, [&]() -> int {
        if (!s->source.capture.isOpened()) return s->fail("source is not open");
        if (s->frameHeld) {  // the held snapshot keeps the buffer; decode into a fresh one
            s->frame.release();
            s->frameHeld = false;
        }
        dropPicture(s);
        s->frameSize = cv::Size();
        if (!s->exact && !s->greyFromBGR && s->source.decoderPicture) {
            // The fast path: grab() decodes, and the decoder's picture is the frame (no BGR yet).
            const AVFrame *picture;
            {
                cvf::DecoderTap tap;
                if (!s->source.capture.grab()) return CVF_READ_END;
                picture = static_cast<const AVFrame *>(tap.frame());
            }
            bool fullRange = false;
            if (picture && lumaFormat(picture->format, &fullRange) && picture->data[0] &&
                picture->linesize[0] >= picture->width) {
                if (picture->width < 2 || picture->height < 2) return CVF_READ_CORRUPT;
                s->decoded.picture = picture;
                s->decoded.fullRange = fullRange;
                s->frameSize = cv::Size(picture->width, picture->height);
                return CVF_READ_FRAME;
            }
            // Another pixel format: OpenCV's own conversion of the frame grab() decoded.
            if (!s->source.capture.retrieve(s->frame)) return CVF_READ_END;
        } else if (!s->source.capture.read(s->frame)) {
            return CVF_READ_END;
        }
        if (s->frame.empty() || s->frame.type() != CV_8UC3 || s->frame.cols < 2 || s->frame.rows < 2) {
            return CVF_READ_CORRUPT;
        }
        s->frameSize = s->frame.size();
        return CVF_READ_FRAME;
    });
}

extern "C" int cvf_load_image(cvf_stream *s, const char *path) {
    return guard(s, [&]() -> int {
        cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
        if (image.empty()) return s->fail("cannot read image " + std::string(path));
        dropPicture(s);
        s->frame = image;
        s->frameSize = image.size();
        s->frameHeld = false;  // a new buffer: a held snapshot keeps the old one
        return 0;
    });
}

extern "C" int cvf_frame_width(const cvf_stream *s) { return s->frameSize.width; }
extern "C" int cvf_frame_height(const cvf_stream *s) { return s->frameSize.height; }

extern "C" int cvf_frame_from_decoder(const cvf_stream *s) { return s->decoded.picture != nullptr; }

extern "C" int cvf_frame_bgr(cvf_stream *s, const unsigned char **data, size_t *step) {
    return guard(s, [&]() -> int {
        if (s->frameSize.empty()) return s->fail("no frame");
        ensureBGR(s);
        *data = s->frame.data;
        *step = s->frame.step[0];
        return 0;
    });
}

extern "C" int cvf_set_grid_size(cvf_stream *s, int grid_size) {
    if (grid_size < 1) return s->fail("grid size must be positive");
    s->grid.step = grid_size;
    return 0;
}

extern "C" int cvf_flow(cvf_stream *s) {
    return guard(s, [&]() -> int {
        if (s->frameSize.empty()) return s->fail("no frame");
        const int grid_size = s->grid.step;
        if (grid_size < 1) return s->fail("no grid size set (cvf_set_grid_size)");
        if (!s->exact) {
            // Two pyramids swap roles each frame, the grey image is written straight into level 0
            // of the new one (the same pixels as cvtColor): no per-frame allocation, no copy.
            std::swap(s->fast.prevPyramid, s->fast.pyramid);
            const bool prevInFastPyramid = s->fast.greyInPyramid;
            s->fast.greyInPyramid = true;
            return fastFlow(s, grid_size, prevInFastPyramid);
        }
        // The exact path: OpenCV's own conversion, pyramids and tracker, on every grid point.
        const bool lastWasFast = s->fast.greyInPyramid;
        s->fast.greyInPyramid = false;
        ensureBGR(s);
        cv::cvtColor(s->frame, s->exactPath.grey, cv::COLOR_BGR2GRAY);
        std::swap(s->exactPath.prevPyramid, s->exactPath.pyramid);
        s->fast.activePoints = 0;
        // After a fast frame the last grey image is in the fast pyramid, and this path's own
        // "previous" pyramid is older: rebuild it from that image.
        if (lastWasFast && s->havePrevious) {
            cv::buildOpticalFlowPyramid(s->fast.pyramid.grey(), s->exactPath.prevPyramid, kWindow, kMaxLevel, true);
        }
        cv::buildOpticalFlowPyramid(s->exactPath.grey, s->exactPath.pyramid, kWindow, kMaxLevel, true);
        const cv::Size size = s->exactPath.grey.size();
        const bool comparable = s->havePrevious && s->previousSize == size;
        s->havePrevious = true;
        s->previousSize = size;
        s->vectors.clear();
        std::fill(std::begin(s->filter.rejected), std::end(s->filter.rejected), 0);
        s->filter.seconds = 0;
        if (!comparable) return 0;
        ensureGrid(s, grid_size, size);
        s->fast.activePoints = int(s->grid.points.size());
        if (s->grid.points.empty()) return 0;
        cv::calcOpticalFlowPyrLK(s->exactPath.prevPyramid, s->exactPath.pyramid, s->grid.points, s->exactPath.tracked, s->status, s->exactPath.error, kWindow,
                                 kMaxLevel, kCriteria);
        s->vectors.reserve(s->grid.points.size() * 4);
        for (size_t i = 0; i < s->grid.points.size(); i++) {
            if (s->status[i]) appendVector(s, s->grid.points[i], s->exactPath.tracked[i]);
        }
        return int(s->vectors.size() / 4);
    });
}

extern "C" const float *cvf_vectors(const cvf_stream *s) { return s->vectors.data(); }

extern "C" void cvf_reset_flow(cvf_stream *s) { s->havePrevious = false; }

extern "C" void cvf_set_exact_flow(cvf_stream *s, int exact) { s->exact = exact != 0; }

extern "C" void cvf_set_grey_from_bgr(cvf_stream *s, int on) { s->greyFromBGR = on != 0; }

extern "C" int cvf_flow_active_points(const cvf_stream *s) { return s->fast.activePoints; }

extern "C" void cvf_set_vector_filter(cvf_stream *s, int checks, float min_magnitude) {
    s->filter.checks = checks & 31;
    s->filter.minMagnitude = std::isfinite(min_magnitude) ? std::max(0.f, min_magnitude) : 0.f;
}

extern "C" int cvf_flow_rejected(const cvf_stream *s, int reason) {
    return reason >= 0 && reason < CVF_REJECT_REASONS ? s->filter.rejected[reason] : 0;
}

extern "C" const char *cvf_reject_reason_name(int reason) {
    static const char *const names[CVF_REJECT_REASONS] = {"texture", "convergence", "residual", "forward_backward",
                                                          "isolated"};
    return reason >= 0 && reason < CVF_REJECT_REASONS ? names[reason] : "";
}

extern "C" double cvf_flow_filter_seconds(const cvf_stream *s) { return s->filter.seconds; }

namespace {
// The preview's arrows on `image`, a copy of the frame scaled by `scale`.
void drawVectors(cv::Mat &image, double scale, const float *vectors, int count, float arrow_scale, float colour_max) {
    const float cmax = colour_max > 0 ? colour_max : 1.0f;
    for (int i = 0; i < count; i++) {
        const float x = vectors[4 * i], y = vectors[4 * i + 1];
        const float dx = vectors[4 * i + 2], dy = vectors[4 * i + 3];
        const float t = std::min(1.0f, std::sqrt(dx * dx + dy * dy) / cmax);
        // Green (slow) → yellow → red (fast), in BGR.
        const cv::Scalar colour = t < 0.5f ? cv::Scalar(0, 255, 510 * t) : cv::Scalar(0, 510 * (1 - t), 255);
        const cv::Point2f from(float(x * scale), float(y * scale));
        const cv::Point2f to(float((x + dx * arrow_scale) * scale), float((y + dy * arrow_scale) * scale));
        cv::arrowedLine(image, from, to, colour, 1, cv::LINE_AA, 0, 0.3);
    }
}
}  // namespace

extern "C" int cvf_annotate(cvf_stream *s, const float *vectors, int count, int max_width, float arrow_scale,
                            float colour_max, int *width, int *height) {
    return guard(s, [&]() -> int {
        if (s->frameSize.empty()) return s->fail("no frame");
        ensureBGR(s);
        double scale = 1.0;
        if (max_width > 0 && s->frame.cols > max_width) {
            scale = double(max_width) / s->frame.cols;
            const int h = std::max(1, int(std::lround(s->frame.rows * scale)));
            cv::resize(s->frame, s->preview.image, cv::Size(max_width, h), 0, 0, cv::INTER_LINEAR);
        } else {
            // Drawn in place: the grey image and pyramid are already taken from this frame, and
            // the next read overwrites it, so a copy would only cost time (unless a snapshot
            // slot shares it: then the held picture must stay as decoded).
            if (s->frameHeld) {
                s->frame.copyTo(s->preview.image);
            } else {
                s->preview.image = s->frame;
            }
        }
        drawVectors(s->preview.image, scale, vectors, count, arrow_scale, colour_max);
        *width = s->preview.image.cols;
        *height = s->preview.image.rows;
        return 0;
    });
}

extern "C" int cvf_snapshot_hold(cvf_stream *s, int slot, const float *vectors, int count, int max_width,
                                 float arrow_scale, float colour_max) {
    return guard(s, [&]() -> int {
        if (slot < 0 || slot >= CVF_SNAPSHOT_SLOTS) return s->fail("no such snapshot slot");
        if (s->frameSize.empty()) return s->fail("no frame");
        if (int(s->snapshots.held.size()) <= slot) s->snapshots.held.resize(size_t(slot) + 1);
        // No copy of the frame. The decoder's picture is held by reference, undrawn and not yet
        // converted (most held frames are replaced by a higher peak before any entry needs them,
        // so the BGR conversion waits for cvf_snapshot_encode); a BGR frame shares its buffer, and
        // the next read decodes into a new one (cvf_read): an allocation instead of a 1.3 MB copy
        // per hold. The vectors are copied. Scaling and drawing wait for cvf_snapshot_encode too.
        cvf_stream::Snapshot &held = s->snapshots.held[size_t(slot)];
        if (s->decoded.picture) {
            held.picture.reset(av_frame_clone(s->decoded.picture));
            if (!held.picture) return s->fail("out of memory holding a snapshot");
            held.frame.release();
        } else {
            held.picture.reset();
            held.frame = s->frame;
            s->frameHeld = true;
        }
        held.vectors.assign(vectors, vectors + size_t(std::max(count, 0)) * 4);
        held.maxWidth = max_width;
        held.arrowScale = arrow_scale;
        held.colourMax = colour_max;
        return 0;
    });
}

extern "C" int cvf_snapshot_encode(cvf_stream *s, int slot, int quality, const unsigned char **data, size_t *length) {
    return guard(s, [&]() -> int {
        if (slot < 0 || slot >= int(s->snapshots.held.size()) ||
            (s->snapshots.held[size_t(slot)].frame.empty() && !s->snapshots.held[size_t(slot)].picture))
            return s->fail("no snapshot held in this slot");
        const cvf_stream::Snapshot &held = s->snapshots.held[size_t(slot)];
        const cv::Mat *frame = &held.frame;
        if (held.picture) {
            convertPicture(s->snapshots.sws, held.picture.get(), s->snapshots.bgr);
            frame = &s->snapshots.bgr;
        }
        double scale = 1.0;
        if (held.maxWidth > 0 && frame->cols > held.maxWidth) {
            scale = double(held.maxWidth) / frame->cols;
            const int h = std::max(1, int(std::lround(frame->rows * scale)));
            cv::resize(*frame, s->snapshots.image, cv::Size(held.maxWidth, h), 0, 0, cv::INTER_LINEAR);
        } else {
            frame->copyTo(s->snapshots.image);
        }
        drawVectors(s->snapshots.image, scale, held.vectors.data(), int(held.vectors.size() / 4), held.arrowScale,
                    held.colourMax);
        s->snapshots.params = {cv::IMWRITE_JPEG_QUALITY, std::clamp(quality, 1, 100)};
        if (!cv::imencode(".jpg", s->snapshots.image, s->snapshots.jpeg, s->snapshots.params))
            return s->fail("JPEG encoding failed");
        *data = s->snapshots.jpeg.data();
        *length = s->snapshots.jpeg.size();
        return 0;
    });
}

extern "C" int cvf_encode_jpeg(cvf_stream *s, int quality, const unsigned char **data, size_t *length) {
    return guard(s, [&]() -> int {
        if (s->preview.image.empty()) return s->fail("nothing to encode");
        s->preview.params = {cv::IMWRITE_JPEG_QUALITY, std::clamp(quality, 1, 100)};
        if (!cv::imencode(".jpg", s->preview.image, s->preview.jpeg, s->preview.params)) return s->fail("JPEG encoding failed");
        *data = s->preview.jpeg.data();
        *length = s->preview.jpeg.size();
        return 0;
    });
}
