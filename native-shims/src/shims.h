// sharegw native shims: the socket powers Node's standard library lacks.
// Linux only. Every function throws a JS Error with `code` set to the errno
// name (ENOENT, EBADF, ...) and `errno` to its number, like Node's own errors.
#pragma once

#include <napi.h>

#include <string>

namespace sgw {

// Throws an Error whose code is the errno name, as Node's ErrnoException.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what);
// The errno name ("ECONNRESET"), or "E<number>" when unknown.
std::string ErrnoName(int err);
// A file descriptor argument: a non-negative int32.
int FdArg(const Napi::CallbackInfo& info, size_t i);

Napi::Value OriginalDst(const Napi::CallbackInfo& info);
Napi::Value SetTcpUserTimeout(const Napi::CallbackInfo& info);
Napi::Value GetTcpUserTimeout(const Napi::CallbackInfo& info);
Napi::Value SetKeepAlive(const Napi::CallbackInfo& info);
Napi::Value GetKeepAlive(const Napi::CallbackInfo& info);
Napi::Value EgressSocket(const Napi::CallbackInfo& info);
Napi::Value SdNotify(const Napi::CallbackInfo& info);
Napi::Object InitSpliceRelay(Napi::Env env, Napi::Object exports);

}  // namespace sgw
