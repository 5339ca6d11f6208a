// atc_pickle.cpp -- PyTorch's own file format (torch.save / torch.load).
//
// Reading: libtorch's zip reader (PyTorchStreamReader) opens the archive, and
// a small strict unpickler below reads data.pkl. libtorch 1.13's own
// torch::pickle_load cannot read what Python's torch.save writes for a
// state_dict: it lacks the SETITEM opcode (one-entry dicts) and asserts on
// the _metadata that nn.Module.state_dict() attaches to its OrderedDict.
// The unpickler knows dicts, lists, tuples, numbers, strings, tensors
// (_rebuild_tensor_v2, _rebuild_parameter) and storages; any other object
// (a numpy scalar, an nn.Module) becomes an opaque value that is skipped.
// Writing: libtorch's pickle_save, which torch.load reads as a dict.
#include "atc_internal.hpp"

#include <ATen/core/Dict.h>
#include <ATen/core/ivalue.h>
#include <ATen/ops/empty.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <utility>

namespace {

using atc::arg_error;

// A read adapter that never reads outside its buffer (a corrupt central
// directory must not send the zip reader past the end).
class Bounded final : public caffe2::serialize::ReadAdapterInterface {
 public:
  Bounded(const char *p, size_t n) : p_(p), n_(n) {}
  size_t size() const override { return n_; }
  size_t read(uint64_t pos, void *buf, size_t n, const char *) const override {
    if (pos >= n_) return 0;
    size_t k = std::min<uint64_t>(n, n_ - pos);
    std::memcpy(buf, p_ + pos, k);
    return k;
  }

 private:
  const char *p_;
  size_t n_;
};

struct Obj;
using Ref = std::shared_ptr<Obj>;

struct Obj {
  enum Kind { NONE, BOOL, INT, FLOAT, STR, TUPLE, LIST, DICT, GLOBAL, TENSOR, MARK, OPAQUE } kind;
  int64_t i = 0;
  double f = 0;
  std::string s;                           // STR; GLOBAL: "module.name"; OPAQUE: its class
  std::vector<Ref> items;                  // TUPLE, LIST
  std::vector<std::pair<Ref, Ref>> dict;   // DICT, in insertion order
  at::Tensor t;                            // TENSOR (a storage is a 1-d tensor)
  int depth = 0;                           // nesting below this object (containers)
  explicit Obj(Kind k) : kind(k) {}
  // Children are released iteratively: a deeply nested object would
  // otherwise overflow the C stack with recursive destructors.
  ~Obj() {
    std::vector<Ref> pending;
    take_children(pending);
    while (!pending.empty()) {
      Ref r = std::move(pending.back());
      pending.pop_back();
      if (r && r.use_count() == 1) r->take_children(pending);
    }
  }
  void take_children(std::vector<Ref> &out) {
    for (auto &c : items) out.push_back(std::move(c));
    for (auto &kv : dict) {
      out.push_back(std::move(kv.first));
      out.push_back(std::move(kv.second));
    }
    items.clear();
    dict.clear();
  }
};

// The deepest nesting of tuples, lists and dicts a file may have (a state
// dict needs a handful of levels).
constexpr int kMaxDepth = 1000;

Ref mk(Obj::Kind k) { return std::make_shared<Obj>(k); }
Ref mk_int(int64_t v) { auto o = mk(Obj::INT); o->i = v; return o; }
Ref mk_str(std::string v) { auto o = mk(Obj::STR); o->s = std::move(v); return o; }

const std::map<std::string, at::ScalarType> &storage_types() {
  static const std::map<std::string, at::ScalarType> m = {
      {"torch.FloatStorage", at::kFloat},   {"torch.DoubleStorage", at::kDouble},
      {"torch.HalfStorage", at::kHalf},     {"torch.BFloat16Storage", at::kBFloat16},
      {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},   {"torch.CharStorage", at::kChar},
      {"torch.ByteStorage", at::kByte},     {"torch.BoolStorage", at::kBool}};
  return m;
}

class Unpickler {
 public:
  Unpickler(const char *p, size_t n, caffe2::serialize::PyTorchStreamReader &zip)
      : p_(p), n_(n), zip_(zip) {}

  Ref run() {
    for (;;) {
      uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;                                  // PROTO
        case 0x95: take(8); break;                               // FRAME
        case '.': {                                              // STOP
          if (stack_.size() != 1) bad("STOP with a stack of " + std::to_string(stack_.size()));
          return stack_.back();
        }
        case '(': push(mk(Obj::MARK)); break;                   // MARK
        case '}': push(mk(Obj::DICT)); break;                   // EMPTY_DICT
        case ']': push(mk(Obj::LIST)); break;                   // EMPTY_LIST
        case ')': push(mk(Obj::TUPLE)); break;                  // EMPTY_TUPLE
        case 'N': push(mk(Obj::NONE)); break;
        case 0x88: case 0x89: { auto o = mk(Obj::BOOL); o->i = op == 0x88; push(o); break; }
        case 'J': push(mk_int(static_cast<int32_t>(le(4)))); break;   // BININT
        case 'K': push(mk_int(u8())); break;                          // BININT1
        case 'M': push(mk_int(static_cast<int64_t>(le(2)))); break;   // BININT2
        case 0x8a: case 0x8b: {                                       // LONG1, LONG4
          uint64_t len = op == 0x8a ? u8() : le(4);
          if (len > 8) bad("an integer wider than 64 bits");
          uint64_t v = 0;
          const char *b = take(len);
          for (uint64_t k = 0; k < len; k++) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[k])) << (8 * k);
          if (len > 0 && len < 8 && (static_cast<uint8_t>(b[len - 1]) & 0x80)) v |= ~0ULL << (8 * len);
          push(mk_int(static_cast<int64_t>(v)));
          break;
        }
        case 'G': {                                                   // BINFLOAT
          const char *b = take(8);
          uint64_t v = 0;
          for (int k = 0; k < 8; k++) v = v << 8 | static_cast<uint8_t>(b[k]);
          auto o = mk(Obj::FLOAT);
          std::memcpy(&o->f, &v, 8);
          push(o);
          break;
        }
        case 'X': case 0x8c: case 'T': case 'U': case 'B': case 'C': {  // strings, bytes
          uint64_t len = (op == 0x8c || op == 'U' || op == 'C') ? u8() : le(4);
          const char *b = take(len);
          push(mk_str(std::string(b, len)));
          break;
        }
        case 'q': memo_[u8()] = top(); break;                         // BINPUT
        case 'r': memo_[le(4)] = top(); break;                        // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;                // MEMOIZE
        case 'h': case 'j': {                                         // BINGET, LONG_BINGET
          auto it = memo_.find(op == 'h' ? u8() : le(4));
          if (it == memo_.end()) bad("a memo entry that was never stored");
          push(it->second);
          break;
        }
        case 't': { auto o = mk(Obj::TUPLE); o->items = since_mark(); push(o); break; }
        case 0x85: case 0x86: case 0x87: {                            // TUPLE1..3
          size_t k = op - 0x84;
          auto o = mk(Obj::TUPLE);
          o->items = last(k);
          push(o);
          break;
        }
        case 'l': { auto o = mk(Obj::LIST); o->items = since_mark(); push(o); break; }
        case 'd': { auto o = mk(Obj::DICT); set_items(o, since_mark()); push(o); break; }
        case 'a': { auto v = pop(); auto l = list_at_top(); deepen(l, v);         // APPEND
                    l->items.push_back(v); break; }
        case 'e': { auto v = since_mark(); auto l = list_at_top();                // APPENDS
                    for (const auto &c : v) deepen(l, c);
                    l->items.insert(l->items.end(), v.begin(), v.end()); break; }
        case 's': { auto kv = last(2); set_items(dict_at_top(), kv); break; }     // SETITEM
        case 'u': { auto kv = since_mark(); set_items(dict_at_top(), kv); break; } // SETITEMS
        case 'c': {                                                               // GLOBAL
          std::string mod = line(), name = line();
          auto o = mk(Obj::GLOBAL);
          o->s = mod + "." + name;
          push(o);
          break;
        }
        case 'R': { auto args = pop(); auto fn = pop(); push(reduce(fn, args)); break; }  // REDUCE
        case 0x81: {                                                  // NEWOBJ
          pop();
          auto cls = pop();
          auto o = mk(Obj::OPAQUE);
          o->s = cls->kind == Obj::GLOBAL ? cls->s : "object";
          push(o);
          break;
        }
        case 'b': pop(); break;  // BUILD: state of an OrderedDict or an opaque object, ignored
        case 'Q': { auto pid = pop(); push(persistent(pid)); break; }  // BINPERSID
        default: {
          char m[64];
          std::snprintf(m, sizeof m, "unsupported pickle opcode 0x%02x", op);
          bad(m);
        }
      }
    }
  }

 private:
  const char *p_;
  size_t n_, at_ = 0;
  caffe2::serialize::PyTorchStreamReader &zip_;
  std::vector<Ref> stack_;
  std::map<uint64_t, Ref> memo_;
  std::map<std::string, at::Tensor> storages_;

  [[noreturn]] void bad(const std::string &m) {
    arg_error("data.pkl at byte " + std::to_string(at_) + ": " + m);
  }
  const char *take(uint64_t k) {
    if (k > n_ - at_) bad("truncated");
    const char *b = p_ + at_;
    at_ += k;
    return b;
  }
  uint8_t u8() { return static_cast<uint8_t>(*take(1)); }
  uint64_t le(int k) {
    const char *b = take(k);
    uint64_t v = 0;
    for (int j = k - 1; j >= 0; j--) v = v << 8 | static_cast<uint8_t>(b[j]);
    return v;
  }
  std::string line() {
    std::string out;
    for (char c; (c = static_cast<char>(u8())) != '\n';) out += c;
    return out;
  }
  void push(Ref o) {
    if (stack_.size() > (1u << 20)) bad("stack too deep");
    if (o->kind == Obj::TUPLE || o->kind == Obj::LIST || o->kind == Obj::DICT) {
      for (const auto &c : o->items) deepen(o, c);
      for (const auto &kv : o->dict) deepen(o, kv.first), deepen(o, kv.second);
    }
    stack_.push_back(std::move(o));
  }
  // Records that container o holds child c; refuses nesting past kMaxDepth.
  void deepen(const Ref &o, const Ref &c) {
    if (c->depth + 1 > o->depth) o->depth = c->depth + 1;
    if (o->depth > kMaxDepth) bad("nested more than " + std::to_string(kMaxDepth) + " levels deep");
  }
  Ref pop() {
    if (stack_.empty() || stack_.back()->kind == Obj::MARK) bad("stack underflow");
    Ref o = stack_.back();
    stack_.pop_back();
    return o;
  }
  Ref top() {
    if (stack_.empty()) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Ref> last(size_t k) {
    std::vector<Ref> v(k);
    for (size_t j = k; j-- > 0;) v[j] = pop();
    return v;
  }
  std::vector<Ref> since_mark() {
    size_t m = stack_.size();
    while (m > 0 && stack_[m - 1]->kind != Obj::MARK) m--;
    if (m == 0) bad("no MARK on the stack");
    std::vector<Ref> v(stack_.begin() + m, stack_.end());
    stack_.resize(m - 1);
    return v;
  }
  Ref list_at_top() {
    Ref l = top();
    if (l->kind != Obj::LIST) bad("APPEND to something that is not a list");
    return l;
  }
  Ref dict_at_top() {
    Ref d = top();
    if (d->kind != Obj::DICT) bad("SETITEM on something that is not a dict");
    return d;
  }
  void set_items(const Ref &d, const std::vector<Ref> &kv) {
    if (kv.size() % 2) bad("an odd number of dict items");
    for (size_t j = 0; j < kv.size(); j += 2) {
      deepen(d, kv[j]);
      deepen(d, kv[j + 1]);
      d->dict.emplace_back(kv[j], kv[j + 1]);
    }
  }
  int64_t as_int(const Ref &o, const char *what) {
    if (o->kind != Obj::INT) bad(std::string(what) + " is not an integer");
    return o->i;
  }
  std::vector<int64_t> ints(const Ref &o, const char *what) {
    if (o->kind != Obj::TUPLE && o->kind != Obj::LIST) bad(std::string(what) + " is not a tuple");
    std::vector<int64_t> v;
    for (auto &e : o->items) v.push_back(as_int(e, what));
    return v;
  }

  Ref reduce(const Ref &fn, const Ref &args) {
    if (fn->kind != Obj::GLOBAL || args->kind != Obj::TUPLE) {
      auto o = mk(Obj::OPAQUE);
      o->s = "object";
      return o;
    }
    const std::string &f = fn->s;
    const auto &a = args->items;
    if (f == "collections.OrderedDict" && a.empty()) return mk(Obj::DICT);
    if ((f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") && a.size() >= 4) {
      if (a[0]->kind != Obj::TENSOR) bad("_rebuild_tensor without a storage");
      const at::Tensor &st = a[0]->t;
      int64_t off = as_int(a[1], "storage offset");
      auto size = ints(a[2], "size"), stride = ints(a[3], "stride");
      if (size.size() != stride.size() || size.size() > ATC_MAX_DIMS) bad("size and stride disagree");
      int64_t hi = off, numel = 1;
      for (size_t d = 0; d < size.size(); d++) {
        if (size[d] < 0 || stride[d] < 0) bad("a negative size or stride");
        numel *= size[d];
        if (size[d] > 0) hi += (size[d] - 1) * stride[d];
      }
      if (off < 0 || (numel > 0 && hi >= st.numel())) bad("a tensor reaches past the end of its storage");
      auto o = mk(Obj::TENSOR);
      o->t = numel > 0 ? st.as_strided(size, stride, off) : at::empty(size, st.options());
      return o;
    }
    // libtorch's own pickler tags containers with their TorchScript type
    if (f == "torch.jit._pickle.restore_type_tag" && !a.empty()) return a[0];
    if ((f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") &&
        !a.empty() && a[0]->kind == Obj::TENSOR)
      return a[0];
    auto o = mk(Obj::OPAQUE);
    o->s = f;
    return o;
  }

  Ref persistent(const Ref &pid) {
    if (pid->kind != Obj::TUPLE || pid->items.size() < 5 || pid->items[0]->kind != Obj::STR ||
        pid->items[0]->s != "storage" || pid->items[1]->kind != Obj::GLOBAL || pid->items[2]->kind != Obj::STR)
      bad("a persistent id that is not a tensor storage");
    auto it = storage_types().find(pid->items[1]->s);
    if (it == storage_types().end()) bad("unknown storage type " + pid->items[1]->s);
    const std::string &key = pid->items[2]->s;
    int64_t numel = as_int(pid->items[4], "storage size");
    auto found = storages_.find(key);
    auto o = mk(Obj::TENSOR);
    if (found != storages_.end()) {
      o->t = found->second;
      return o;
    }
    if (numel < 0) bad("a negative storage size");
    std::string rec = "data/" + key;
    if (!zip_.hasRecord(rec)) bad("the archive has no record " + rec);
    at::DataPtr data;
    size_t bytes;
    std::tie(data, bytes) = zip_.getRecord(rec);
    at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(it->second));
    if (bytes != static_cast<size_t>(numel) * t.element_size())
      bad(rec + " holds " + std::to_string(bytes) + " bytes, not " + std::to_string(numel) + " elements");
    if (bytes) std::memcpy(t.data_ptr(), data.get(), bytes);
    storages_[key] = t;
    o->t = t;
    return o;
  }
};

using Named = std::vector<std::pair<std::string, at::Tensor>>;

const char *kind_name(const Obj &o) {
  static const char *names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict",
                                "global", "tensor", "mark", "object"};
  return names[o.kind];
}

// Walks dicts (string or integer keys), lists and tuples down to tensors;
// a tensor's name is its path joined with dots. Anything else is counted.
void flatten(const Obj &v, const std::string &name, Named &out, int64_t &skipped, int depth) {
  if (depth > 32) arg_error("nested more than 32 levels deep");
  auto child = [&](const std::string &k) { return name.empty() ? k : name + "." + k; };
  switch (v.kind) {
    case Obj::TENSOR: out.emplace_back(name, v.t); break;
    case Obj::DICT:
      for (const auto &e : v.dict) {
        if (e.first->kind == Obj::STR)
          flatten(*e.second, child(e.first->s), out, skipped, depth + 1);
        else if (e.first->kind == Obj::INT)
          flatten(*e.second, child(std::to_string(e.first->i)), out, skipped, depth + 1);
        else
          skipped++;
      }
      break;
    case Obj::LIST:
    case Obj::TUPLE:
      for (size_t i = 0; i < v.items.size(); i++) flatten(*v.items[i], child(std::to_string(i)), out, skipped, depth + 1);
      break;
    default: skipped++;
  }
}

char *dup(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

}  // namespace

void atc_named_list_free(atc_named_list *l) {
  if (!l) return;
  for (int64_t i = 0; i < l->n; i++) {
    if (l->names) std::free(l->names[i]);
    if (l->tensors) atc_tensor_free(l->tensors[i]);
  }
  std::free(l->names);
  std::free(l->tensors);
  l->names = nullptr;
  l->tensors = nullptr;
  l->n = 0;
}

int atc_pth_load(atc_status *st, const void *data, size_t size, atc_named_list *out) {
  if (!out) return atc::fail(st, ATC_ERR_ARG, "NULL output list");
  *out = atc_named_list{0, nullptr, nullptr, 0};
  ATC_TRY
  if (!data && size) atc::arg_error("NULL data");
  const char *p = static_cast<const char *>(data);
  if (size < 4 || std::memcmp(p, "PK\x03\x04", 4) != 0) {
    if (size >= 2 && static_cast<unsigned char>(p[0]) == 0x80)
      atc::arg_error(
          "a legacy torch.save file (PyTorch < 1.6 or _use_new_zipfile_serialization=False); "
          "re-save it from Python with torch.save(torch.load(old), new)");
    atc::arg_error("not a torch.save file (no zip archive)");
  }
  caffe2::serialize::PyTorchStreamReader zip(std::make_shared<Bounded>(p, size));
  if (zip.hasRecord("byteorder")) {
    at::DataPtr bo;
    size_t n;
    std::tie(bo, n) = zip.getRecord("byteorder");
    if (std::string(static_cast<const char *>(bo.get()), n) != "little")
      atc::arg_error("written on a big-endian machine (byteorder record), which acq does not read");
  }
  if (!zip.hasRecord("data.pkl")) atc::arg_error("a zip archive without data.pkl (a TorchScript model?)");
  at::DataPtr pkl;
  size_t pkl_n;
  std::tie(pkl, pkl_n) = zip.getRecord("data.pkl");
  Ref v = Unpickler(static_cast<const char *>(pkl.get()), pkl_n, zip).run();
  Named named;
  int64_t skipped = 0;
  if (v->kind != Obj::DICT && v->kind != Obj::LIST && v->kind != Obj::TUPLE)
    atc::arg_error(std::string("holds ") + (v->kind == Obj::OPAQUE ? "a " + v->s + " object" : kind_name(*v)) +
                   ", not a dict of tensors (save the model's state_dict())");
  flatten(*v, "", named, skipped, 0);
  {  // one tensor a name: {"fc": {"weight": ...}} beside "fc.weight" would silently win
    std::map<std::string, int> seen;
    for (const auto &e : named)
      if (++seen[e.first] == 2)
        atc::arg_error("holds two tensors named '" + e.first + "' (a nested dict and a dotted key?)");
  }
  // copies first, so a failure cannot leave half a list behind
  std::vector<at::Tensor> copies;
  copies.reserve(named.size());
  for (auto &e : named) copies.push_back(e.second.detach().to(c10::kCPU).clone(at::MemoryFormat::Contiguous));
  auto n = static_cast<int64_t>(named.size());
  out->names = static_cast<char **>(std::calloc(named.size() + 1, sizeof(char *)));
  out->tensors = static_cast<atc_tensor **>(std::calloc(named.size() + 1, sizeof(atc_tensor *)));
  if (!out->names || !out->tensors) {
    atc_named_list_free(out);
    throw std::bad_alloc();
  }
  out->skipped = skipped;
  try {
    for (int64_t i = 0; i < n; i++) {
      out->names[i] = dup(named[i].first);
      out->n = i + 1;
      out->tensors[i] = atc::release(std::move(copies[i]));
    }
  } catch (...) {
    atc_named_list_free(out);
    throw;
  }
  ATC_END(st)
}

int atc_pth_save(atc_status *st, const char *const *names, const atc_tensor *const *ts, int64_t n,
                 void **data, size_t *size) {
  if (!data || !size) return atc::fail(st, ATC_ERR_ARG, "NULL output pointer");
  *data = nullptr;
  *size = 0;
  ATC_TRY
  if (n < 0 || (n > 0 && (!names || !ts))) atc::arg_error("bad name or tensor array");
  c10::impl::GenericDict d(c10::StringType::get(), c10::TensorType::get());
  for (int64_t i = 0; i < n; i++) {
    if (!names[i]) atc::arg_error("NULL name");
    d.insert_or_assign(std::string(names[i]), atc::T(ts[i]).detach().to(c10::kCPU).contiguous());
  }
  std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(d));
  void *buf = std::malloc(bytes.size() ? bytes.size() : 1);
  if (!buf) throw std::bad_alloc();
  std::memcpy(buf, bytes.data(), bytes.size());
  *data = buf;
  *size = bytes.size();
  ATC_END(st)
}
