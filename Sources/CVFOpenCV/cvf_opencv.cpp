// The C++ side of the OpenCV shim. Every exported function catches every exception: a C++
// exception unwinding into Swift frames is undefined behaviour, so failures become return codes
// plus a message kept in the handle.
#include "cvf_opencv.h"

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
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

}  // namespace

struct cvf_stream {
    cv::VideoCapture capture;
    cv::Mat frame;      // BGR, as decoded
    cv::Mat grey;
    // The previous frame's pyramid (with Scharr derivatives) and the current one. Reusing the
    // current pyramid as the next call's previous one halves the pyramid work per frame; the
    // result is the same as calcOpticalFlowPyrLK on two plain images, which builds both.
    std::vector<cv::Mat> prevPyramid, pyramid;
    bool havePrevious = false;
    cv::Size previousSize;
    int gridSize = 0;
    cv::Size gridFor;
    std::vector<cv::Point2f> grid, tracked;
    std::vector<unsigned char> status;
    std::vector<float> error;
    std::vector<float> vectors;  // x, y, dx, dy per tracked point
    cv::Mat preview;
    std::vector<unsigned char> jpeg;
    std::vector<int> jpegParams;
    std::string lastError;
    double fps = 0;
    double frameCount = 0;

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

extern "C" int cvf_open(cvf_stream *s, const char *source, int open_timeout_ms, int read_timeout_ms) {
    return guard(s, [&]() -> int {
        s->capture.release();
        s->havePrevious = false;
        s->lastError.clear();
        std::string url(source);
        if (hasPrefix(url, "file://")) url = url.substr(7);
        const std::vector<int> params = {cv::CAP_PROP_OPEN_TIMEOUT_MSEC, open_timeout_ms,
                                         cv::CAP_PROP_READ_TIMEOUT_MSEC, read_timeout_ms};
        bool ok;
        {
            std::lock_guard<std::mutex> lock(gOptionsLock);
            // TCP interleaving survives lossy links and NAT; small probing makes opening an
            // RTSP stream take ~0.2 s instead of ~3 s. Other schemes keep FFmpeg's defaults.
            if (hasPrefix(url, "rtsp://") || hasPrefix(url, "rtsps://")) {
                setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|analyzeduration;200000|probesize;65536", 1);
            } else {
                setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp", 1);
            }
            ok = s->capture.open(url, cv::CAP_FFMPEG, params);
        }
        if (!ok || !s->capture.isOpened()) {
            s->capture.release();
            return s->fail("cannot open " + std::string(source));
        }
        s->fps = s->capture.get(cv::CAP_PROP_FPS);
        if (!std::isfinite(s->fps) || s->fps < 0) s->fps = 0;
        s->frameCount = s->capture.get(cv::CAP_PROP_FRAME_COUNT);
        if (!std::isfinite(s->frameCount)) s->frameCount = 0;
        return 0;
    });
}

extern "C" void cvf_close(cvf_stream *s) {
    try {
        s->capture.release();
        s->havePrevious = false;
    } catch (...) {
    }
}

extern "C" double cvf_source_fps(const cvf_stream *s) { return s->fps; }
extern "C" double cvf_source_frame_count(const cvf_stream *s) { return s->frameCount; }

extern "C" int cvf_read(cvf_stream *s) {
    return guard(s, [&]() -> int {
        if (!s->capture.isOpened()) return s->fail("source is not open");
        if (!s->capture.read(s->frame)) return CVF_READ_END;
        if (s->frame.empty() || s->frame.type() != CV_8UC3 || s->frame.cols < 2 || s->frame.rows < 2) {
            return CVF_READ_CORRUPT;
        }
        return CVF_READ_FRAME;
    });
}

extern "C" int cvf_load_image(cvf_stream *s, const char *path) {
    return guard(s, [&]() -> int {
        cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
        if (image.empty()) return s->fail("cannot read image " + std::string(path));
        s->frame = image;
        return 0;
    });
}

extern "C" int cvf_frame_width(const cvf_stream *s) { return s->frame.cols; }
extern "C" int cvf_frame_height(const cvf_stream *s) { return s->frame.rows; }

extern "C" int cvf_flow(cvf_stream *s, int grid_size) {
    return guard(s, [&]() -> int {
        if (s->frame.empty()) return s->fail("no frame");
        if (grid_size < 1) return s->fail("grid size must be positive");
        cv::cvtColor(s->frame, s->grey, cv::COLOR_BGR2GRAY);
        std::swap(s->prevPyramid, s->pyramid);
        cv::buildOpticalFlowPyramid(s->grey, s->pyramid, kWindow, kMaxLevel, true);
        const cv::Size size = s->grey.size();
        const bool comparable = s->havePrevious && s->previousSize == size;
        s->havePrevious = true;
        s->previousSize = size;
        s->vectors.clear();
        if (!comparable) return 0;
        if (s->gridSize != grid_size || s->gridFor != size) {
            s->grid.clear();
            for (int y = grid_size / 2; y < size.height; y += grid_size)
                for (int x = grid_size / 2; x < size.width; x += grid_size)
                    s->grid.emplace_back(float(x), float(y));
            s->gridSize = grid_size;
            s->gridFor = size;
        }
        if (s->grid.empty()) return 0;
        cv::calcOpticalFlowPyrLK(s->prevPyramid, s->pyramid, s->grid, s->tracked, s->status, s->error, kWindow,
                                 kMaxLevel, kCriteria);
        s->vectors.reserve(s->grid.size() * 4);
        for (size_t i = 0; i < s->grid.size(); i++) {
            if (!s->status[i]) continue;
            const cv::Point2f p = s->grid[i], q = s->tracked[i];
            s->vectors.push_back(p.x);
            s->vectors.push_back(p.y);
            s->vectors.push_back(q.x - p.x);
            s->vectors.push_back(q.y - p.y);
        }
        return int(s->vectors.size() / 4);
    });
}

extern "C" const float *cvf_vectors(const cvf_stream *s) { return s->vectors.data(); }

extern "C" void cvf_reset_flow(cvf_stream *s) { s->havePrevious = false; }

extern "C" int cvf_annotate(cvf_stream *s, const float *vectors, int count, int max_width, float arrow_scale,
                            float colour_max, int *width, int *height) {
    return guard(s, [&]() -> int {
        if (s->frame.empty()) return s->fail("no frame");
        double scale = 1.0;
        if (max_width > 0 && s->frame.cols > max_width) {
            scale = double(max_width) / s->frame.cols;
            const int h = std::max(1, int(std::lround(s->frame.rows * scale)));
            cv::resize(s->frame, s->preview, cv::Size(max_width, h), 0, 0, cv::INTER_LINEAR);
        } else {
            // Drawn in place: the grey image and pyramid are already taken from this frame, and
            // the next read overwrites it, so a copy would only cost time.
            s->preview = s->frame;
        }
        const float cmax = colour_max > 0 ? colour_max : 1.0f;
        for (int i = 0; i < count; i++) {
            const float x = vectors[4 * i], y = vectors[4 * i + 1];
            const float dx = vectors[4 * i + 2], dy = vectors[4 * i + 3];
            const float t = std::min(1.0f, std::sqrt(dx * dx + dy * dy) / cmax);
            // Green (slow) → yellow → red (fast), in BGR.
            const cv::Scalar colour = t < 0.5f ? cv::Scalar(0, 255, 510 * t) : cv::Scalar(0, 510 * (1 - t), 255);
            const cv::Point2f from(float(x * scale), float(y * scale));
            const cv::Point2f to(float((x + dx * arrow_scale) * scale), float((y + dy * arrow_scale) * scale));
            cv::arrowedLine(s->preview, from, to, colour, 1, cv::LINE_AA, 0, 0.3);
        }
        *width = s->preview.cols;
        *height = s->preview.rows;
        return 0;
    });
}

extern "C" int cvf_encode_jpeg(cvf_stream *s, int quality, const unsigned char **data, size_t *length) {
    return guard(s, [&]() -> int {
        if (s->preview.empty()) return s->fail("nothing to encode");
        s->jpegParams = {cv::IMWRITE_JPEG_QUALITY, std::clamp(quality, 1, 100)};
        if (!cv::imencode(".jpg", s->preview, s->jpeg, s->jpegParams)) return s->fail("JPEG encoding failed");
        *data = s->jpeg.data();
        *length = s->jpeg.size();
        return 0;
    });
}
