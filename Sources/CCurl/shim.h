#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic C functions, which Swift cannot call.
// These typed wrappers give each argument kind one non-variadic entry point (the same idea as
// swift-corelibs-foundation's _CFURLSessionInterface). Every symbol is prefixed vf_curl_.

/// For options taking a long (timeouts, flags, sizes).
static inline CURLcode vf_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

/// For options taking a C string; curl copies strings it keeps (since 7.17).
static inline CURLcode vf_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

/// For options taking an opaque pointer (WRITEDATA, READDATA, ...).
static inline CURLcode vf_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

/// For CURLOPT_HTTPHEADER: the list must stay alive until the transfer ends.
static inline CURLcode vf_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *list) {
    return curl_easy_setopt(handle, option, list);
}

/// The signature of CURLOPT_WRITEFUNCTION callbacks.
typedef size_t (*vf_curl_write_callback)(char *data, size_t size, size_t count, void *userdata);

/// For CURLOPT_WRITEFUNCTION: a typed function pointer so Swift can pass a @convention(c) closure.
static inline CURLcode vf_curl_setopt_write_function(CURL *handle, vf_curl_write_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}

/// For CURLOPT_POSTFIELDSIZE_LARGE, whose argument is a curl_off_t rather than a long.
static inline CURLcode vf_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// For CURLINFO_RESPONSE_CODE and the other long-valued infos.
static inline CURLcode vf_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
