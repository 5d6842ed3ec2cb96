// sd_notify(3) without libsystemd: one AF_UNIX datagram to $NOTIFY_SOCKET.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "shims.h"

namespace sgw {

// sdNotify(socketPath, message) -> bytes sent. A path starting with '@' is
// an abstract socket (the '@' becomes the leading NUL, as systemd does).
// Non-blocking: a full receive queue gives EAGAIN rather than a hung daemon.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "sdNotify(socketPath: string, message: string)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string msg = info[1].As<Napi::String>().Utf8Value();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() > sizeof addr.sun_path || (path[0] != '/' && path[0] != '@') ||
      (path[0] == '/' && path.size() == sizeof addr.sun_path)) {
    ThrowErrno(env, EINVAL, "sdNotify: NOTIFY_SOCKET must be an absolute path or @abstract name");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';
  }
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '/' ? 1 : 0));
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket(AF_UNIX)");
  }
  ssize_t n = sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&addr), len);
  int err = errno;
  close(fd);
  if (n < 0) {
    ThrowErrno(env, err, "sendto(NOTIFY_SOCKET)");
  }
  return Napi::Number::New(env, static_cast<double>(n));
}

}  // namespace sgw
