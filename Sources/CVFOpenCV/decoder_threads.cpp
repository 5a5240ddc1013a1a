// The video decoder's thread count.
//
// OpenCV 4.6's FFmpeg capture sets `AVCodecContext::thread_count` to the number of online CPUs
// of the machine (sysconf, blind to CPU affinity and container limits) and has no property to
// change it (`CAP_PROP_N_THREADS` came in a later release). A worker pinned to one core, or one
// of many workers sharing a machine, then runs that many frame-decoding threads on it: on one core
// they only add hand-offs (720p H.264, one core: 2.71 → 2.54 ms/frame with one thread).
//
// So the shim defines `avcodec_open2` itself. The executable's definition comes first in symbol
// lookup, so OpenCV's call lands here; it sets the codec context's "threads" option to the
// worker's thread setting and calls FFmpeg's own `avcodec_open2` (the next definition,
// `dlsym(RTLD_NEXT)`). Only codec contexts are touched, only when a count was set
// (`cvf_set_num_threads`), and the FFmpeg functions are looked up at run time, so no FFmpeg
// header or library is needed at build time.
#include <dlfcn.h>

#include <atomic>
#include <cstdint>

#include "cvf_opencv.h"
#include "decoder_tap.hpp"

namespace {

std::atomic<int> gDecoderThreads{0};  // 0: leave FFmpeg's context as OpenCV set it

using OpenFn = int (*)(void *, const void *, void **);
using SetIntFn = int (*)(void *, const char *, int64_t, int);

OpenFn realOpen() {
    static const OpenFn fn = reinterpret_cast<OpenFn>(dlsym(RTLD_NEXT, "avcodec_open2"));
    return fn;
}

SetIntFn optSetInt() {
    static const SetIntFn fn = reinterpret_cast<SetIntFn>(dlsym(RTLD_DEFAULT, "av_opt_set_int"));
    return fn;
}

}  // namespace

extern "C" void cvf_set_decoder_threads(int threads) { gDecoderThreads.store(threads > 0 ? threads : 0); }

extern "C" int cvf_decoder_threads(void) { return gDecoderThreads.load(); }

// FFmpeg's signature: int avcodec_open2(AVCodecContext *, const AVCodec *, AVDictionary **).
extern "C" __attribute__((visibility("default"))) int avcodec_open2(void *context, const void *codec,
                                                                     void **options) {
    const OpenFn open = realOpen();
    if (!open) return -38;  // AVERROR(ENOSYS): no FFmpeg in the process (cannot happen with OpenCV's)
    const int threads = gDecoderThreads.load();
    if (threads > 0 && context) {
        if (const SetIntFn setInt = optSetInt()) setInt(context, "threads", threads, 0);
    }
    return open(context, codec, options);
}

// The decoder's own picture of each frame, before OpenCV converts it to BGR (decoder_tap.hpp).
// OpenCV's grab() decodes through `avcodec_receive_frame` on the calling thread; this definition
// is the one OpenCV's call binds to (as for avcodec_open2 above), calls FFmpeg's, and, while a
// DecoderTap is open on that thread, records the frame each successful call filled in.
namespace {

thread_local bool tTapping = false;
thread_local const void *tTapped = nullptr;

using ReceiveFn = int (*)(void *, void *);

ReceiveFn realReceive() {
    static const ReceiveFn fn = reinterpret_cast<ReceiveFn>(dlsym(RTLD_NEXT, "avcodec_receive_frame"));
    return fn;
}

}  // namespace

namespace cvf {

DecoderTap::DecoderTap() {
    tTapped = nullptr;
    tTapping = true;
}

DecoderTap::~DecoderTap() {
    tTapping = false;
    tTapped = nullptr;
}

const void *DecoderTap::frame() const { return tTapped; }

}  // namespace cvf

// FFmpeg's signature: int avcodec_receive_frame(AVCodecContext *, AVFrame *).
extern "C" __attribute__((visibility("default"))) int avcodec_receive_frame(void *context, void *frame) {
    const ReceiveFn receive = realReceive();
    if (!receive) return -38;  // AVERROR(ENOSYS), as above
    const int result = receive(context, frame);
    if (result == 0 && tTapping) tTapped = frame;
    return result;
}
