// The zero-copy relay: socket -> pipe -> socket with splice(2), on a thread
// of its own, for one connection's two sockets.
//
// new SpliceRelay(fdA, fdB, budgetAB, budgetBA, onEvent)
//   budget -1: relay that direction until EOF, then shutdown(SHUT_WR) the
//              other socket (half-close is forwarded);
//   budget  0: leave that direction alone (JavaScript keeps it);
//   budget  n: relay exactly n bytes, then give the direction back, so
//              JavaScript resumes at the next protocol header. EOF before
//              n is reported and not forwarded (JavaScript sees it again).
//
// State: per direction the pipe, the bytes inside it, the bytes pulled from
// the source and delivered to the destination (atomics, read by bytes()),
// EOF; the eventfd that stop() uses to wake poll(2); the thread and the
// thread-safe function that carries events to JavaScript:
//   { type: 'eof', dir: 'ab' | 'ba' }  a direction reached EOF;
//   { type: 'done', reason: 'complete' | 'error' | 'stopped', ab, ba,
//     eofAB, eofBA, error?: { code, errno, side: 'a' | 'b' } }  once, last.
//
// The sockets stay owned by JavaScript (it closes them, after 'done' or
// after stop() returned); the thread only moves bytes and never closes
// them. stop() wakes and joins the thread; bytes still in a pipe are lost,
// so stop() is for teardown.
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <thread>

#include "shims.h"

namespace sgw {

namespace {

constexpr int kPipeSize = 1 << 20;

struct Direction {
  int src = -1;
  int dst = -1;
  int pipe[2] = {-1, -1};
  int64_t budget = 0;  // -1 unlimited, 0 off
  int64_t pulled = 0;
  int64_t inPipe = 0;
  int64_t cap = 0;
  bool eof = false;
  bool done = true;
  std::atomic<uint64_t> moved{0};
  bool wantIn = false;
  bool wantOut = false;
};

struct Event {
  bool done = false;
  int dir = 0;
  const char* reason = "complete";
  uint64_t ab = 0;
  uint64_t ba = 0;
  bool eofAB = false;
  bool eofBA = false;
  int err = 0;
  char side = 0;
};

class SpliceRelay : public Napi::ObjectWrap<SpliceRelay> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "SpliceRelay", {InstanceMethod("bytes", &SpliceRelay::Bytes), InstanceMethod("stop", &SpliceRelay::Stop)});
    exports.Set("SpliceRelay", ctor);
  }

  explicit SpliceRelay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SpliceRelay>(info) {
    Napi::Env env = info.Env();
    int a = FdArg(info, 0);
    int b = FdArg(info, 1);
    if (info.Length() < 5 || !info[2].IsNumber() || !info[3].IsNumber() || !info[4].IsFunction()) {
      throw Napi::TypeError::New(env, "new SpliceRelay(fdA, fdB, budgetAB, budgetBA, onEvent)");
    }
    if (a == b) {
      throw Napi::TypeError::New(env, "fdA and fdB must differ");
    }
    double budgets[2] = {info[2].As<Napi::Number>().DoubleValue(), info[3].As<Napi::Number>().DoubleValue()};
    for (int i = 0; i < 2; i++) {
      if (!(budgets[i] == -1 || (budgets[i] >= 0 && budgets[i] <= 9007199254740991.0))) {
        throw Napi::RangeError::New(env, "budget must be -1 or 0..2^53-1");
      }
    }
    if (budgets[0] == 0 && budgets[1] == 0) {
      throw Napi::RangeError::New(env, "at least one direction must be relayed");
    }
    dirs_[0].src = a;
    dirs_[0].dst = b;
    dirs_[1].src = b;
    dirs_[1].dst = a;
    for (int i = 0; i < 2; i++) {
      Direction& d = dirs_[i];
      d.budget = static_cast<int64_t>(budgets[i]);
      if (d.budget == 0) {
        continue;
      }
      if (pipe2(d.pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        int err = errno;
        ClosePipes();
        ThrowErrno(env, err, "pipe2");
      }
      // A bigger pipe means fewer wakeups per byte; the default (64 KiB)
      // stays when the limit (fs.pipe-max-size) refuses it.
      fcntl(d.pipe[1], F_SETPIPE_SZ, kPipeSize);
      int cap = fcntl(d.pipe[1], F_GETPIPE_SZ);
      d.cap = cap > 0 ? cap : 65536;
      d.done = false;
    }
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_ < 0) {
      int err = errno;
      ClosePipes();
      ThrowErrno(env, err, "eventfd");
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[4].As<Napi::Function>(), "sgw-splice-relay", 0, 1);
    Ref();  // Kept alive until 'done' reached JavaScript.
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (...) {
      tsfn_.Release();
      Unref();
      ClosePipes();
      close(wake_);
      wake_ = -1;
      ThrowErrno(env, EAGAIN, "thread");
    }
  }

  ~SpliceRelay() override {
    Join();
    if (wake_ >= 0) {
      close(wake_);
    }
  }

 private:
  Napi::Value Bytes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env, 2);
    out.Set(0u, Napi::Number::New(env, static_cast<double>(dirs_[0].moved.load())));
    out.Set(1u, Napi::Number::New(env, static_cast<double>(dirs_[1].moved.load())));
    return out;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Join();
    return Bytes(info);
  }

  void Join() {
    if (thread_.joinable()) {
      stop_.store(true);
      uint64_t one = 1;
      ssize_t w = write(wake_, &one, sizeof one);
      (void)w;
      thread_.join();
    }
  }

  void ClosePipes() {
    for (Direction& d : dirs_) {
      for (int& p : d.pipe) {
        if (p >= 0) {
          close(p);
          p = -1;
        }
      }
    }
  }

  void Emit(Event* ev) {
    tsfn_.BlockingCall(ev, [this](Napi::Env env, Napi::Function cb, Event* e) {
      Napi::Object o = Napi::Object::New(env);
      if (e->done) {
        o.Set("type", "done");
        o.Set("reason", e->reason);
        o.Set("ab", Napi::Number::New(env, static_cast<double>(e->ab)));
        o.Set("ba", Napi::Number::New(env, static_cast<double>(e->ba)));
        o.Set("eofAB", Napi::Boolean::New(env, e->eofAB));
        o.Set("eofBA", Napi::Boolean::New(env, e->eofBA));
        if (e->err != 0) {
          Napi::Object err = Napi::Object::New(env);
          err.Set("code", ErrnoName(e->err));
          err.Set("errno", Napi::Number::New(env, e->err));
          err.Set("side", std::string(1, e->side));
          o.Set("error", err);
        }
      } else {
        o.Set("type", "eof");
        o.Set("dir", e->dir == 0 ? "ab" : "ba");
      }
      bool done = e->done;
      delete e;
      try {
        cb.Call({o});
      } catch (const Napi::Error& err) {
        // An exception thrown by the callback must not kill the process
        // from a native frame: hand it to the usual uncaughtException path.
        if (done) {
          Unref();
        }
        err.ThrowAsJavaScriptException();
        return;
      }
      if (done) {
        Unref();
      }
    });
  }

  // Moves what it can without blocking. Returns false on a fatal error
  // (err_/side_ set). Sets progress when bytes moved or EOF was seen.
  bool Step(int i, bool& progress) {
    Direction& d = dirs_[i];
    char srcSide = i == 0 ? 'a' : 'b';
    char dstSide = i == 0 ? 'b' : 'a';
    d.wantIn = false;
    d.wantOut = false;
    for (;;) {
      bool again = false;
      // Fill: source -> pipe.
      while (!d.eof && d.inPipe < d.cap && (d.budget < 0 || d.pulled < d.budget)) {
        int64_t want = d.cap - d.inPipe;
        if (d.budget >= 0 && d.budget - d.pulled < want) {
          want = d.budget - d.pulled;
        }
        ssize_t n = splice(d.src, nullptr, d.pipe[1], nullptr, static_cast<size_t>(want), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d.inPipe += n;
          d.pulled += n;
          progress = true;
          continue;
        }
        if (n == 0) {
          d.eof = true;
          progress = true;
          Emit(new Event{false, i});
          break;
        }
        if (errno == EINTR) {
          continue;
        }
        if (errno == EAGAIN) {
          // With bytes in the pipe, EAGAIN may mean the pipe's slots are
          // full (partly filled pages); draining makes room. Poll the source
          // only when the pipe is empty, or poll would spin.
          d.wantIn = d.inPipe == 0;
          break;
        }
        err_ = errno;
        side_ = srcSide;
        return false;
      }
      // Drain: pipe -> destination.
      while (d.inPipe > 0) {
        ssize_t n = splice(d.pipe[0], nullptr, d.dst, nullptr, static_cast<size_t>(d.inPipe), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          d.inPipe -= n;
          d.moved.fetch_add(static_cast<uint64_t>(n));
          progress = true;
          again = !d.eof;
          continue;
        }
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n < 0 && errno == EAGAIN) {
          d.wantOut = true;
          break;
        }
        err_ = n < 0 ? errno : EPIPE;
        side_ = dstSide;
        return false;
      }
      if (d.inPipe == 0 && (d.eof || (d.budget >= 0 && d.pulled >= d.budget))) {
        if (d.eof && d.budget < 0 && shutdown(d.dst, SHUT_WR) != 0 && errno != ENOTCONN) {
          err_ = errno;
          side_ = dstSide;
          return false;
        }
        d.done = true;
        d.wantIn = false;
        d.wantOut = false;
        return true;
      }
      if (!again || d.wantOut) {
        return true;
      }
      // The pipe drained after a full-pipe EAGAIN: fill again.
    }
  }

  void Run() {
    const char* reason = "complete";
    for (;;) {
      if (stop_.load()) {
        reason = "stopped";
        break;
      }
      bool progress = false;
      bool ok = true;
      for (int i = 0; i < 2 && ok; i++) {
        if (!dirs_[i].done) {
          ok = Step(i, progress);
        }
      }
      if (!ok) {
        reason = "error";
        break;
      }
      if (dirs_[0].done && dirs_[1].done) {
        break;
      }
      pollfd fds[3];
      fds[0] = {dirs_[0].src, 0, 0};  // a
      fds[1] = {dirs_[0].dst, 0, 0};  // b
      fds[2] = {wake_, POLLIN, 0};
      for (int i = 0; i < 2; i++) {
        const Direction& d = dirs_[i];
        if (d.done) {
          continue;
        }
        pollfd& src = fds[i == 0 ? 0 : 1];
        pollfd& dst = fds[i == 0 ? 1 : 0];
        if (d.wantIn) {
          src.events |= POLLIN;
        }
        if (d.wantOut) {
          dst.events |= POLLOUT;
        }
      }
      // A socket nobody waits on is left out: poll(2) reports POLLHUP and
      // POLLERR whatever the events, and a half-closed socket whose data
      // waits for the other side's room would wake it in a loop. Its error
      // shows at the next splice on it.
      for (int s = 0; s < 2; s++) {
        if (fds[s].events == 0) {
          fds[s].fd = -1;
        }
      }
      int n = poll(fds, 3, -1);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        err_ = errno;
        side_ = 'a';
        reason = "error";
        break;
      }
      for (int s = 0; s < 2; s++) {
        if (fds[s].revents & POLLERR) {
          int soerr = 0;
          socklen_t len = sizeof soerr;
          if (getsockopt(fds[s].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0) {
            err_ = soerr;
            side_ = s == 0 ? 'a' : 'b';
          }
        }
      }
      if (err_ != 0) {
        reason = "error";
        break;
      }
    }
    ClosePipes();
    Event* ev = new Event{true, 0, reason, dirs_[0].moved.load(), dirs_[1].moved.load(), dirs_[0].eof, dirs_[1].eof, err_, side_};
    Emit(ev);
    tsfn_.Release();
  }

  Direction dirs_[2];
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  Napi::ThreadSafeFunction tsfn_;
  int err_ = 0;
  char side_ = 0;
};

}  // namespace

Napi::Object InitSpliceRelay(Napi::Env env, Napi::Object exports) {
  SpliceRelay::Init(env, exports);
  return exports;
}

}  // namespace sgw
