// Which TCP peers a source's thread may connect to.
//
// FFmpeg resolves and connects by itself, follows RTSP and HTTP redirects on its own, and has no
// option to stop either. So the shim defines `connect` itself, the way decoder_threads.cpp does
// `avcodec_open2`: the executable's definition comes first in symbol lookup, so FFmpeg's calls
// land here. On a thread that set a guard (the worker's capture thread, cvf_guard_connections),
// a TCP connect to an address/port outside the guard's list fails with EACCES and is remembered
// for the worker's status; every other call (other threads, UDP, unix sockets) goes straight to
// libc's `connect` (the next definition, dlsym(RTLD_NEXT)). glibc's own resolver calls its
// internal connect, not this one.
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "cvf_opencv.h"

namespace {

struct Guard {
    bool active = false;
    int count = 0;
    unsigned char addresses[CVF_GUARD_MAX][16];
    int lengths[CVF_GUARD_MAX];
    int ports[CVF_GUARD_MAX];
    char refused[96] = {0};
};

thread_local Guard tGuard;

using ConnectFn = int (*)(int, const struct sockaddr *, socklen_t);

ConnectFn realConnect() {
    static const ConnectFn fn = reinterpret_cast<ConnectFn>(dlsym(RTLD_NEXT, "connect"));
    return fn;
}

bool isStream(int fd) {
    int type = 0;
    socklen_t len = sizeof(type);
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

// The peer as bytes (IPv4-mapped IPv6 as IPv4) and port; false for other families.
bool peerOf(const struct sockaddr *addr, socklen_t len, unsigned char out[16], int *outLen, int *port) {
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(sockaddr_in)) {
        const auto *in = reinterpret_cast<const sockaddr_in *>(addr);
        memcpy(out, &in->sin_addr, 4);
        *outLen = 4;
        *port = ntohs(in->sin_port);
        return true;
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(sockaddr_in6)) {
        const auto *in6 = reinterpret_cast<const sockaddr_in6 *>(addr);
        const unsigned char *b = in6->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            memcpy(out, b + 12, 4);
            *outLen = 4;
        } else {
            memcpy(out, b, 16);
            *outLen = 16;
        }
        *port = ntohs(in6->sin6_port);
        return true;
    }
    return false;
}

}  // namespace

extern "C" void cvf_guard_connections(const unsigned char *addresses, const int *lengths, const int *ports,
                                      int count) {
    Guard &g = tGuard;
    g.refused[0] = 0;
    if (count < 0) {
        g.active = false;
        g.count = 0;
        return;
    }
    g.active = true;
    g.count = count < CVF_GUARD_MAX ? count : CVF_GUARD_MAX;
    for (int i = 0; i < g.count; i++) {
        g.lengths[i] = lengths[i] == 4 ? 4 : 16;
        memcpy(g.addresses[i], addresses + 16 * i, g.lengths[i]);
        g.ports[i] = ports[i];
    }
}

extern "C" const char *cvf_guard_refused(void) { return tGuard.refused; }

extern "C" __attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *addr, socklen_t len) {
    const ConnectFn real = realConnect();
    if (!real) {
        errno = ENOSYS;
        return -1;
    }
    Guard &g = tGuard;
    unsigned char peer[16];
    int peerLen = 0, port = 0;
    if (g.active && addr && peerOf(addr, len, peer, &peerLen, &port) && isStream(fd)) {
        for (int i = 0; i < g.count; i++) {
            if (g.lengths[i] == peerLen && g.ports[i] == port && memcmp(g.addresses[i], peer, peerLen) == 0) {
                return real(fd, addr, len);
            }
        }
        char text[INET6_ADDRSTRLEN] = "?";
        inet_ntop(peerLen == 4 ? AF_INET : AF_INET6, peer, text, sizeof(text));
        snprintf(g.refused, sizeof(g.refused), peerLen == 4 ? "%s:%d" : "[%s]:%d", text, port);
        errno = EACCES;
        return -1;
    }
    return real(fd, addr, len);
}
