// Module entry: registers the shims (see ../index.d.ts for the JS surface).
#include <cerrno>
#include <cstring>

#include "shims.h"

namespace sgw {

std::string ErrnoName(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM) E(ENOENT) E(EINTR) E(EIO) E(EBADF) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EINVAL)
    E(ENFILE) E(EMFILE) E(ENOTSOCK) E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT)
    E(EPROTONOSUPPORT) E(EOPNOTSUPP) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN)
    E(ENETUNREACH) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS) E(EISCONN) E(ENOTCONN) E(ETIMEDOUT)
    E(ECONNREFUSED) E(EHOSTUNREACH) E(EPIPE) E(ENAMETOOLONG) E(ENOSYS) E(ESPIPE) E(ENODATA) E(ENODEV) E(ENXIO)
#undef E
    default:
      return "E" + std::to_string(err);
  }
}

void ThrowErrno(Napi::Env env, int err, const std::string& what) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, what));
  throw e;
}

int FdArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "fd must be a number");
  }
  int fd = info[i].As<Napi::Number>().Int32Value();
  if (fd < 0) {
    throw Napi::TypeError::New(info.Env(), "fd must be >= 0");
  }
  return fd;
}

}  // namespace sgw

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("originalDst", Napi::Function::New(env, sgw::OriginalDst, "originalDst"));
  exports.Set("setTcpUserTimeout", Napi::Function::New(env, sgw::SetTcpUserTimeout, "setTcpUserTimeout"));
  exports.Set("getTcpUserTimeout", Napi::Function::New(env, sgw::GetTcpUserTimeout, "getTcpUserTimeout"));
  exports.Set("setKeepAlive", Napi::Function::New(env, sgw::SetKeepAlive, "setKeepAlive"));
  exports.Set("getKeepAlive", Napi::Function::New(env, sgw::GetKeepAlive, "getKeepAlive"));
  exports.Set("egressSocket", Napi::Function::New(env, sgw::EgressSocket, "egressSocket"));
  exports.Set("sdNotify", Napi::Function::New(env, sgw::SdNotify, "sdNotify"));
  exports.Set("abiVersion", Napi::Number::New(env, 2));
  return sgw::InitSpliceRelay(env, exports);
}

NODE_API_MODULE(sharegw_native, Init)
