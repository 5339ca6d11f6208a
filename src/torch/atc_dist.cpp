// atc_dist.cpp -- one c10d process group per process (Gloo over TCP; the
// store is c10d's TCPStore, rank 0 its server), and the collectives acq.dist
// needs: all-reduce (sum, min, max) of a list of tensors as one flat buffer,
// broadcast, barrier. Every wait has the group's timeout, so a rank that
// died makes the others fail with a message instead of hanging.
#include "atc_internal.hpp"

#ifdef ACQ_HAVE_GLOO
#include <ATen/ops/cat.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/custom_function.h>

#include <chrono>
#include <memory>

using namespace atc;

namespace {

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0, world = 1;
  std::chrono::milliseconds timeout{0};
};

Group *group = nullptr;

Group &need_group(const char *what) {
  if (!group) arg_error(std::string(what) + ": no process group (acq.dist.init first)");
  return *group;
}

void wait(Group &g, const c10::intrusive_ptr<c10d::Work> &w, const char *what) {
  try {
    w->wait(g.timeout);
  } catch (const std::exception &e) {
    std::string m = e.what();
    auto cut = m.find("\nException raised from");
    if (cut != std::string::npos) m.resize(cut);
    throw ArgError{std::string(what) + " failed on rank " + std::to_string(g.rank) + " of " +
                   std::to_string(g.world) + " (a rank stopped or timed out): " + m};
  }
}

}  // namespace

// libtorch >= 2.4 makes the libuv TCPStore backend the default, and Debian
// 13 builds libtorch without libuv ("use_libuv was requested but PyTorch was
// build without libuv support"): acq asks for the classic backend, which
// every libtorch has (1.13 has no such option; this overload is then not
// viable). Its clients speak the same protocol to either server.
template <class O>
static auto classic_store_backend(O &o, int) -> decltype(o.useLibUV = false, void()) {
  o.useLibUV = false;
}
template <class O>
static void classic_store_backend(O &, long) {}

int atc_dist_init(atc_status *st, int rank, int world, const char *addr, int port, double timeout_s,
                  int serve_store) {
  ATC_TRY
  if (group) arg_error("dist.init: a process group exists already (rank " + std::to_string(group->rank) + ")");
  if (world < 1 || rank < 0 || rank >= world)
    arg_error("dist.init: rank " + std::to_string(rank) + " is outside a world of " + std::to_string(world));
  if (!addr || !*addr) arg_error("dist.init: no master address");
  if (port < 1 || port > 65535) arg_error("dist.init: port " + std::to_string(port) + " is outside 1..65535");
  if (!(timeout_s > 0)) arg_error("dist.init: the timeout must be positive");
  auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0 && serve_store;
  so.numWorkers = static_cast<std::size_t>(world);
  so.waitWorkers = true;
  so.timeout = timeout;
  classic_store_backend(so, 0);
  auto g = std::make_unique<Group>();
  g->store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(addr));
  g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, opts);
  g->rank = rank;
  g->world = world;
  g->timeout = timeout;
  group = g.release();
  ATC_END(st)
}

int atc_dist_rank(void) { return group ? group->rank : 0; }
int atc_dist_world(void) { return group ? group->world : 1; }
int atc_dist_active(void) { return group != nullptr; }

void atc_dist_destroy(void) {
  delete group;
  group = nullptr;
}

int atc_dist_allreduce(atc_status *st, atc_tensor *const *ts, int n, int op) {
  ATC_TRY
  Group &g = need_group("dist.all_reduce");
  if (n < 0 || (n > 0 && !ts)) arg_error("dist.all_reduce: bad tensor list");
  if (op < ATC_DIST_SUM || op > ATC_DIST_AVG) arg_error("dist.all_reduce: unknown operation");
  if (n == 0) return st ? (st->code = ATC_OK) : ATC_OK;
  std::vector<at::Tensor> flat;
  flat.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    at::Tensor t = T(ts[i]);
    if (i > 0 && (t.scalar_type() != flat[0].scalar_type() || t.device() != flat[0].device()))
      arg_error("dist.all_reduce: the tensors must share a dtype and a device");
    flat.push_back(t.detach().reshape({-1}));
  }
  // one buffer, one collective (what DDP's buckets do), then back in place
  std::vector<at::Tensor> buf{n == 1 ? flat[0].clone() : at::cat(flat)};
  c10d::AllreduceOptions o;
  o.reduceOp = (op == ATC_DIST_SUM || op == ATC_DIST_AVG) ? c10d::ReduceOp::SUM : op == ATC_DIST_MIN ? c10d::ReduceOp::MIN
                                                                            : c10d::ReduceOp::MAX;
  o.timeout = g.timeout;
  wait(g, g.pg->allreduce(buf, o), "dist.all_reduce");
  if (op == ATC_DIST_AVG) buf[0].div_(static_cast<double>(g.world));
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    at::Tensor t = T(ts[i]);
    int64_t k = t.numel();
    at::NoGradGuard ng;
    t.detach().copy_(buf[0].narrow(0, at, k).view(t.sizes()));
    at += k;
  }
  ATC_END(st)
}

namespace {

// y = the mean of x over the ranks, on the autograd graph: the backward
// averages the incoming gradients over the ranks the same way (each rank's
// loss reads the same y; with the parameters' gradients then averaged,
// every rank ends with the gradient of the mean of the ranks' objectives).
struct RankMean : public torch::autograd::Function<RankMean> {
  static at::Tensor forward(torch::autograd::AutogradContext *, const at::Tensor &x) {
    Group &g = need_group("dist.mean");
    std::vector<at::Tensor> v{x.detach().clone()};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = g.timeout;
    wait(g, g.pg->allreduce(v, o), "dist.mean");
    return v[0].div_(static_cast<double>(g.world));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *,
                                                 torch::autograd::variable_list grads) {
    Group &g = need_group("dist.mean (backward)");
    std::vector<at::Tensor> v{grads[0].contiguous().clone()};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = g.timeout;
    wait(g, g.pg->allreduce(v, o), "dist.mean (backward)");
    return {v[0].div_(static_cast<double>(g.world))};
  }
};

}  // namespace

int atc_dist_mean(atc_status *st, const atc_tensor *x, atc_tensor **out) {
  ATC_TRY
  at::Tensor in = T(x);  // an at::Tensor: apply() sees a Borrowed as a non-tensor argument
  put(out, RankMean::apply(in));
  ATC_END(st)
}

int atc_dist_broadcast(atc_status *st, atc_tensor *const *ts, int n, int root) {
  ATC_TRY
  Group &g = need_group("dist.broadcast");
  if (root < 0 || root >= g.world) arg_error("dist.broadcast: root " + std::to_string(root) + " is not a rank");
  for (int i = 0; i < n; i++) {
    std::vector<at::Tensor> v{T(ts[i]).detach()};
    if (!v[0].is_contiguous()) arg_error("dist.broadcast: tensors must be contiguous");
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.timeout = g.timeout;
    wait(g, g.pg->broadcast(v, o), "dist.broadcast");
  }
  ATC_END(st)
}

int atc_dist_barrier(atc_status *st) {
  ATC_TRY
  Group &g = need_group("dist.barrier");
  c10d::BarrierOptions o;
  o.timeout = g.timeout;
  wait(g, g.pg->barrier(o), "dist.barrier");
  ATC_END(st)
}

#else  // built without gloo's headers: every collective says so

using namespace atc;

static const char *const kNone =
    "acq was built without c10d/Gloo (install libgloo-dev and rebuild): no process groups";

int atc_dist_init(atc_status *st, int, int, const char *, int, double, int) { return fail(st, ATC_ERR_ARG, kNone); }
int atc_dist_allreduce(atc_status *st, atc_tensor *const *, int, int) { return fail(st, ATC_ERR_ARG, kNone); }
int atc_dist_broadcast(atc_status *st, atc_tensor *const *, int, int) { return fail(st, ATC_ERR_ARG, kNone); }
int atc_dist_barrier(atc_status *st) { return fail(st, ATC_ERR_ARG, kNone); }
int atc_dist_mean(atc_status *st, const atc_tensor *, atc_tensor **) { return fail(st, ATC_ERR_ARG, kNone); }
int atc_dist_rank(void) { return 0; }
int atc_dist_world(void) { return 1; }
int atc_dist_active(void) { return 0; }
void atc_dist_destroy(void) {}

#endif
