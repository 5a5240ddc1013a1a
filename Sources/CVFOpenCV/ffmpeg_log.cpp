// FFmpeg's log messages, handed to the worker's log instead of raw stderr.
//
// FFmpeg says *why* a source fails ("Connection to tcp://… failed: Connection refused", "401
// Unauthorized") only through av_log, whose default writer prints to stderr with no time, level
// or stream: lines a log shipper cannot parse, next to the worker's structured ones. OpenCV 4.6
// leaves FFmpeg's callback alone unless OPENCV_FFMPEG_DEBUG is set (it only sets the level to
// errors), so the callback installed here stays. Like decoder_threads.cpp, the FFmpeg functions
// are looked up at run time: no FFmpeg header or library at build time.
#include <dlfcn.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <string>

#include "cvf_opencv.h"

namespace {

using AVLogCallback = void (*)(void *, int, const char *, va_list);
using SetCallbackFn = void (*)(AVLogCallback);
using GetLevelFn = int (*)(void);
using FormatLineFn = int (*)(void *, int, const char *, va_list, char *, int, int *);

std::atomic<cvf_log_sink> gSink{nullptr};

template <typename Fn>
Fn lookup(const char *name) {
    return reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, name));
}

void forward(void *avcl, int level, const char *fmt, va_list vl) {
    const cvf_log_sink sink = gSink.load();
    if (!sink) return;
    static const GetLevelFn getLevel = lookup<GetLevelFn>("av_log_get_level");
    static const FormatLineFn formatLine = lookup<FormatLineFn>("av_log_format_line2");
    if (getLevel && level > getLevel()) return;
    // FFmpeg may build one line from several calls: keep the pieces per thread until a newline.
    thread_local std::string pending;
    thread_local int printPrefix = 1;
    char piece[1024];
    va_list copy;
    va_copy(copy, vl);
    const int n = formatLine ? formatLine(avcl, level, fmt, copy, piece, sizeof piece, &printPrefix)
                             : vsnprintf(piece, sizeof piece, fmt, copy);
    va_end(copy);
    if (n < 0) return;
    try {
        pending += piece;
        if (pending.size() > 4096) pending.back() = '\n';  // a runaway line is cut, never unbounded
        if (!pending.empty() && pending.back() == '\n') {
            while (!pending.empty() && (pending.back() == '\n' || pending.back() == '\r')) pending.pop_back();
            if (!pending.empty()) sink(level, pending.c_str());
            pending.clear();
        }
    } catch (...) {
        pending.clear();  // out of memory inside FFmpeg's call: drop the line, never throw into C
    }
}

}  // namespace

extern "C" void cvf_set_ffmpeg_log_sink(cvf_log_sink sink) {
    static const SetCallbackFn setCallback = lookup<SetCallbackFn>("av_log_set_callback");
    static const AVLogCallback defaultCallback = lookup<AVLogCallback>("av_log_default_callback");
    if (!setCallback) return;  // no FFmpeg in the process
    gSink.store(sink);
    if (sink) {
        setCallback(forward);
    } else if (defaultCallback) {
        setCallback(defaultCallback);
    }
}
