#include "cvf_opencv.h"
#include <opencv2/core.hpp>
extern "C" const char *cvf_opencv_version(void) { return CV_VERSION; }
