// epoll(7), eventfd(2), TCP_NODELAY and accept4(2) for VFNet's event loop: not reachable
// through Swift's Glibc module (accept4 is declared there only under _GNU_SOURCE).
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/tcp.h>
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
