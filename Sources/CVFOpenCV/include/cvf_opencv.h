#ifndef CVF_OPENCV_H
#define CVF_OPENCV_H
/*
 * Plain-C face of the OpenCV shim: no OpenCV type crosses this header, so Swift needs no C++
 * interop. One opaque `cvf_stream` per video stream holds the capture, the last decoded frame,
 * the previous frame's image pyramid, the flow vectors, the annotated preview and its JPEG bytes.
 * A handle belongs to one thread at a time. No C++ exception escapes any function: failures
 * return a negative code and leave a message in `cvf_last_error`.
 */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cvf_stream cvf_stream;

/* cvf_read results */
#define CVF_READ_END 0      /* no frame: end of a finite source, or the connection is gone */
#define CVF_READ_FRAME 1    /* a frame was decoded into the handle */
#define CVF_READ_CORRUPT 2  /* the decoder returned an unusable frame (empty or wrong type): skip it */
#define CVF_ERROR (-1)

const char *cvf_opencv_version(void);

/* The TCP peers the calling thread may connect to (connect_guard.cpp), for every connection
 * FFmpeg makes on it, redirects included: `count` entries of `addresses` (16 bytes each, the
 * first `lengths[i]` (4 or 16) used) with `ports`; count < 0 lifts the guard. A refused connect
 * fails with EACCES and `cvf_guard_refused` names it ("addr:port"; "" when none since the last
 * cvf_guard_connections). */
#define CVF_GUARD_MAX 32
void cvf_guard_connections(const unsigned char *addresses, const int *lengths, const int *ports, int count);
const char *cvf_guard_refused(void);
/* OpenCV's worker-thread count for the whole process (cv::setNumThreads). */
void cvf_set_num_threads(int threads);
/* Threads of the video decoder in captures opened from now on (FFmpeg's thread_count); 0 leaves
 * OpenCV's choice, one per online CPU of the machine. */
void cvf_set_decoder_threads(int threads);
int cvf_decoder_threads(void);

/* Where FFmpeg's own messages go ("[tcp @ 0x…] Connection … refused"): one call per whole line,
 * with FFmpeg's level (AV_LOG_ERROR 16, AV_LOG_WARNING 24, …) and the line without its newline,
 * instead of FFmpeg writing them to stderr. Only lines within FFmpeg's current level (OpenCV sets
 * errors) reach the sink; NULL restores FFmpeg's default writer. FFmpeg is found at run time. */
typedef void (*cvf_log_sink)(int level, const char *line);
void cvf_set_ffmpeg_log_sink(cvf_log_sink sink);

cvf_stream *cvf_stream_new(void);
void cvf_stream_free(cvf_stream *s);
/* The message of the last failure on this handle ("" when none). Valid until the next call. */
const char *cvf_last_error(const cvf_stream *s);

/* Opens a file path, file://, http(s)://, rtsp(s):// source through OpenCV's FFmpeg backend.
 * Timeouts are in milliseconds. Forgets the previous frame (the next flow starts afresh).
 * `http_proxy` (NULL or "" for none): an http:// proxy URL every HTTP(S) connection goes through.
 * Returns 0 or CVF_ERROR. */
int cvf_open(cvf_stream *s, const char *source, int open_timeout_ms, int read_timeout_ms, const char *http_proxy);
void cvf_close(cvf_stream *s);
/* Frames per second the source announces (0 when unknown) and its frame count (<= 0 when
 * unknown or live). */
double cvf_source_fps(const cvf_stream *s);
double cvf_source_frame_count(const cvf_stream *s);

/* Reads and decodes the next frame: CVF_READ_FRAME, CVF_READ_END, CVF_READ_CORRUPT or CVF_ERROR. */
int cvf_read(cvf_stream *s);
/* Loads a still image as the current frame (for the `flow` subcommand). 0 or CVF_ERROR. */
int cvf_load_image(cvf_stream *s, const char *path);
int cvf_frame_width(const cvf_stream *s);
int cvf_frame_height(const cvf_stream *s);
/* The current frame in BGR (8 bits a channel, rows `step` bytes apart, valid until the next read):
 * the fast path's reads keep the decoder's own picture and convert it to BGR only when something
 * needs it (this, cvf_annotate, cvf_snapshot_encode, the exact path). 0 or CVF_ERROR. */
int cvf_frame_bgr(cvf_stream *s, const unsigned char **data, size_t *step);
/* 1 when the current frame came as the decoder's own picture (the fast path on a source with a
 * common 8-bit YUV or grey format), 0 when it came from OpenCV's read. */
int cvf_frame_from_decoder(const cvf_stream *s);

/* The grid of sample points (spacing grid_size px, first point at grid_size/2): set once per
 * stream (and on a change), not with every frame. 0, or CVF_ERROR for a size below 1. */
int cvf_set_grid_size(cvf_stream *s, int grid_size);

/* Converts the current frame to grey, builds its pyramid and tracks the points of the grid
 * (cvf_set_grid_size, which must come first) from the previous frame into this one with
 * pyramidal Lucas-Kanade (window 15x15, maxLevel 2, criteria COUNT|EPS 30/0.01); which points
 * go through it depends on cvf_set_exact_flow.
 * Returns the number of tracked points (status ok), 0 when there is no previous frame of the same
 * size, or CVF_ERROR. The vectors, 4 floats each (x, y, dx, dy), stay valid until the next call. */
int cvf_flow(cvf_stream *s);
const float *cvf_vectors(const cvf_stream *s);
/* Forgets the previous frame, e.g. after a reconnect. */
void cvf_reset_flow(cvf_stream *s);
/* exact != 0: every grid point goes through Lucas-Kanade (the reference path). 0 (the default):
 * only points whose neighbourhood changed between the two frames, or whose flat texture makes
 * even a small change count, go through it; the others get a zero vector. The vectors of the
 * points that are computed are identical in both paths. */
void cvf_set_exact_flow(cvf_stream *s, int exact);
/* The fast path's grey image: from the decoder's luma plane (0, the default: no BGR conversion
 * for frames nothing draws), or (1) from OpenCV's BGR frame, the exact path's very pixels, for
 * comparing the two paths' answers. Takes effect from the next read. */
void cvf_set_grey_from_bgr(cvf_stream *s, int on);
/* How many grid points the last cvf_flow call ran Lucas-Kanade on. */
int cvf_flow_active_points(const cvf_stream *s);

/* The reliability filter of the fast path (the exact path never filters). Vectors that Lucas-Kanade
 * tracked with a magnitude above min_magnitude go through the checks in `checks` (bits below, in
 * the order they run); a vector that fails one is left out of cvf_vectors altogether. The vectors
 * kept are unchanged. checks 0 (the default of a new handle): no filter. */
#define CVF_CHECK_TEXTURE 1          /* smallest eigenvalue of the window's structure tensor vs noise */
#define CVF_CHECK_CONVERGENCE 2      /* stopped on epsilon, not on the iteration cap */
#define CVF_CHECK_RESIDUAL 4         /* the final window's mismatch vs noise */
#define CVF_CHECK_FORWARD_BACKWARD 8 /* tracked back, lands within 0.5 px of its start */
#define CVF_CHECK_NEIGHBOURS 16      /* a neighbouring grid point moves alike */
#define CVF_CHECKS_DEFAULT 27 /* all but RESIDUAL (a literal, for Swift); docs/notes/flow-quality.md */
#define CVF_REJECT_REASONS 5 /* reason i counts the vectors that failed check 1 << i first */
void cvf_set_vector_filter(cvf_stream *s, int checks, float min_magnitude);
/* Vectors the last cvf_flow call rejected for `reason` (0 .. CVF_REJECT_REASONS - 1). */
int cvf_flow_rejected(const cvf_stream *s, int reason);
/* The reason's name: "texture", "convergence", "residual", "forward_backward", "isolated". */
const char *cvf_reject_reason_name(int reason);
/* Seconds the last cvf_flow call spent in the filter. */
double cvf_flow_filter_seconds(const cvf_stream *s);

/* Draws `count` arrows (x, y, dx, dy quadruples in frame pixels, dx/dy multiplied by arrow_scale)
 * on a copy of the current frame scaled down to at most max_width px wide (0 = full size),
 * coloured green → yellow → red as the magnitude goes from 0 to colour_max px.
 * With count 0 it only scales. The preview size is written to *width, *height. 0 or CVF_ERROR. */
int cvf_annotate(cvf_stream *s, const float *vectors, int count, int max_width, float arrow_scale,
                 float colour_max, int *width, int *height);
/* JPEG-encodes the last annotated preview. *data stays valid until the next call on the handle.
 * Returns 0 or CVF_ERROR. */
int cvf_encode_jpeg(cvf_stream *s, int quality, const unsigned char **data, size_t *length);

/* Motion-event snapshots: keeps a copy of the current frame and its `count` vectors in slot `slot`
 * (0 .. CVF_SNAPSHOT_SLOTS - 1, one per zone), without touching the preview; the slot's buffers
 * are reused. 0 or CVF_ERROR. */
#define CVF_SNAPSHOT_SLOTS 64
int cvf_snapshot_hold(cvf_stream *s, int slot, const float *vectors, int count, int max_width, float arrow_scale,
                      float colour_max);
/* JPEG-encodes a held snapshot, annotated as cvf_annotate draws it (scaled to at most max_width
 * px wide, the held vectors as arrows). *data stays valid until the next call on the handle.
 * Returns 0 or CVF_ERROR (nothing held in the slot). */
int cvf_snapshot_encode(cvf_stream *s, int slot, int quality, const unsigned char **data, size_t *length);

#ifdef __cplusplus
}
#endif
#endif
