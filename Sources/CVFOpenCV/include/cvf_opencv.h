#ifndef CVF_OPENCV_H
#define CVF_OPENCV_H
/* Plain-C face of the OpenCV shim: no OpenCV type crosses this header. */
#ifdef __cplusplus
extern "C" {
#endif
const char *cvf_opencv_version(void);
#ifdef __cplusplus
}
#endif
#endif
