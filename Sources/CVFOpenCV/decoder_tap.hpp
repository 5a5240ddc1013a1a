// The decoder's picture of a frame, seen before OpenCV converts it to BGR.
//
// The fast flow path needs only a grey image, and the luma plane FFmpeg decodes is one: taking it
// straight from the decoder spares the BGR conversion OpenCV's retrieve() does for every frame
// (and the copy of its result), 0.3-0.8 ms per frame at 768x576-1280x720, as much as the flow
// itself. The BGR frame is then converted, with the same libswscale call OpenCV makes, only for
// the frames something draws or keeps (the preview, motion-event snapshots, the exact path).
#pragma once

namespace cvf {

// While one is open on a thread, the last frame `avcodec_receive_frame` filled in on that thread
// (decoder_threads.cpp): an AVFrame owned by the capture, valid until its next grab or release.
class DecoderTap {
  public:
    DecoderTap();
    ~DecoderTap();
    DecoderTap(const DecoderTap &) = delete;
    DecoderTap &operator=(const DecoderTap &) = delete;
    const void *frame() const;  // nullptr when none was decoded
};

}  // namespace cvf
