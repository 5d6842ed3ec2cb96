// Socket options Node does not expose: the original destination of a
// REDIRECTed/DNATed connection, TCP_USER_TIMEOUT and keepalive tuning.
#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>            // SO_ORIGINAL_DST
#include <linux/netfilter_ipv6/ip6_tables.h>  // IP6T_SO_ORIGINAL_DST
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "shims.h"

// <net/if.h> clashes with the <linux/...> headers above; IFNAMSIZ is ABI.
#ifndef IFNAMSIZ
#define IFNAMSIZ 16
#endif

namespace sgw {

namespace {

void SetInt(Napi::Env env, int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof value) != 0) {
    ThrowErrno(env, errno, what);
  }
}

int GetInt(Napi::Env env, int fd, int level, int name, const char* what) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, name, &value, &len) != 0) {
    ThrowErrno(env, errno, what);
  }
  return value;
}

int IntArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  }
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 2147483647.0)) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be 0..2^31-1");
  }
  return static_cast<int>(v);
}

}  // namespace

// originalDst(fd) -> { address, port, family: 4 | 6 }
// netfilter keeps the pre-NAT destination in the conntrack entry; IPv4
// sockets (also IPv4-mapped ones on a dual-stack listener) ask SOL_IP
// SO_ORIGINAL_DST, IPv6 ones SOL_IPV6 IP6T_SO_ORIGINAL_DST. ENOENT: the
// connection has no conntrack entry (was not NATed, or conntrack is off).
Napi::Value OriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  sockaddr_storage local{};
  socklen_t llen = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0) {
    ThrowErrno(env, errno, "getsockname");
  }
  bool v6 = false;
  if (local.ss_family == AF_INET6) {
    auto* l6 = reinterpret_cast<sockaddr_in6*>(&local);
    v6 = !IN6_IS_ADDR_V4MAPPED(&l6->sin6_addr);
  } else if (local.ss_family != AF_INET) {
    ThrowErrno(env, EAFNOSUPPORT, "originalDst");
  }
  char text[INET6_ADDRSTRLEN] = {0};
  Napi::Object out = Napi::Object::New(env);
  if (v6) {
    sockaddr_in6 dst{};
    socklen_t len = sizeof dst;
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &len) != 0) {
      ThrowErrno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
    }
    inet_ntop(AF_INET6, &dst.sin6_addr, text, sizeof text);
    out.Set("port", Napi::Number::New(env, ntohs(dst.sin6_port)));
    out.Set("family", Napi::Number::New(env, 6));
  } else {
    sockaddr_in dst{};
    socklen_t len = sizeof dst;
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &len) != 0) {
      ThrowErrno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    }
    inet_ntop(AF_INET, &dst.sin_addr, text, sizeof text);
    out.Set("port", Napi::Number::New(env, ntohs(dst.sin_port)));
    out.Set("family", Napi::Number::New(env, 4));
  }
  out.Set("address", Napi::String::New(env, text));
  return out;
}

// setTcpUserTimeout(fd, ms): RFC 5482 / tcp(7). How long transmitted data
// may stay unacknowledged before the kernel drops the connection with
// ETIMEDOUT; 0 restores the system default.
Napi::Value SetTcpUserTimeout(const Napi::CallbackInfo& info) {
  SetInt(info.Env(), FdArg(info, 0), IPPROTO_TCP, TCP_USER_TIMEOUT, IntArg(info, 1, "ms"), "setsockopt(TCP_USER_TIMEOUT)");
  return info.Env().Undefined();
}

Napi::Value GetTcpUserTimeout(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), GetInt(info.Env(), FdArg(info, 0), IPPROTO_TCP, TCP_USER_TIMEOUT, "getsockopt(TCP_USER_TIMEOUT)"));
}

// setKeepAlive(fd, idleS, intervalS, count): SO_KEEPALIVE on, first probe
// after idleS seconds of silence, then one every intervalS, and the
// connection is dropped after `count` unanswered probes (tcp(7)).
Napi::Value SetKeepAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int idle = IntArg(info, 1, "idleS");
  int intvl = IntArg(info, 2, "intervalS");
  int cnt = IntArg(info, 3, "count");
  if (idle < 1 || intvl < 1 || cnt < 1 || idle > 32767 || intvl > 32767 || cnt > 127) {
    throw Napi::RangeError::New(env, "keepalive: idleS and intervalS 1..32767, count 1..127");
  }
  SetInt(env, fd, SOL_SOCKET, SO_KEEPALIVE, 1, "setsockopt(SO_KEEPALIVE)");
  SetInt(env, fd, IPPROTO_TCP, TCP_KEEPIDLE, idle, "setsockopt(TCP_KEEPIDLE)");
  SetInt(env, fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl, "setsockopt(TCP_KEEPINTVL)");
  SetInt(env, fd, IPPROTO_TCP, TCP_KEEPCNT, cnt, "setsockopt(TCP_KEEPCNT)");
  return env.Undefined();
}

Napi::Value GetKeepAlive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Napi::Object out = Napi::Object::New(env);
  out.Set("enabled", Napi::Boolean::New(env, GetInt(env, fd, SOL_SOCKET, SO_KEEPALIVE, "getsockopt(SO_KEEPALIVE)") != 0));
  out.Set("idleS", Napi::Number::New(env, GetInt(env, fd, IPPROTO_TCP, TCP_KEEPIDLE, "getsockopt(TCP_KEEPIDLE)")));
  out.Set("intervalS", Napi::Number::New(env, GetInt(env, fd, IPPROTO_TCP, TCP_KEEPINTVL, "getsockopt(TCP_KEEPINTVL)")));
  out.Set("count", Napi::Number::New(env, GetInt(env, fd, IPPROTO_TCP, TCP_KEEPCNT, "getsockopt(TCP_KEEPCNT)")));
  return out;
}

// egressSocket(device, address, port) -> fd
// An unconnected IPv4 TCP socket bound to `device` (SO_BINDTODEVICE) and to
// address:port (port 0: the kernel picks one at connect, with
// IP_BIND_ADDRESS_NO_PORT, so the 4-tuple alone must be unique). Node
// cannot do this: it creates, binds and connects a socket in one step.
// Binding to the device is what lets two domains use the same source
// address (overlapping tenant address spaces, ADR 0011): the kernel keys
// bind conflicts and established sockets by device too, and the `oif`
// policy rule routes the socket into its domain's table. The caller hands
// the fd to net.Socket({ fd }) and connects it; on any error here the fd is
// closed before throwing. Needs CAP_NET_RAW.
Napi::Value EgressSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env, "egressSocket(device: string, address: string, port: number)");
  }
  std::string dev = info[0].As<Napi::String>().Utf8Value();
  std::string addr = info[1].As<Napi::String>().Utf8Value();
  double portD = info[2].As<Napi::Number>().DoubleValue();
  if (dev.empty() || dev.size() >= IFNAMSIZ) {
    throw Napi::RangeError::New(env, "device name must be 1..15 bytes");
  }
  if (!(portD >= 0 && portD <= 65535) || portD != static_cast<int>(portD)) {
    throw Napi::RangeError::New(env, "port must be 0..65535");
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(portD));
  if (inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1) {
    throw Napi::TypeError::New(env, "address must be an IPv4 address");
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ThrowErrno(env, errno, "socket");
  }
  auto fail = [&](const char* what) {
    int err = errno;
    close(fd);
    ThrowErrno(env, err, what);
  };
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev.c_str(), static_cast<socklen_t>(dev.size())) != 0) {
    fail("setsockopt(SO_BINDTODEVICE)");
  }
  int one = 1;
  // As libuv does for every TCP bind: a port whose last connection is in
  // TIME_WAIT may be bound again (the 4-tuple is still checked at connect).
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    fail("setsockopt(SO_REUSEADDR)");
  }
  if (portD == 0) {
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0) {
      fail("setsockopt(IP_BIND_ADDRESS_NO_PORT)");
    }
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    fail("bind");
  }
  return Napi::Number::New(env, fd);
}

}  // namespace sgw
