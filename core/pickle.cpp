// Restricted unpickler; opcode meanings from CPython Lib/pickle.py (_Unpickler) and Lib/pickletools.py.
// The stack holds Refs; MARK records the stack height (pickle.py keeps a metastack; same effect).
#include "core/pickle.h"

#include <cstring>
#include <sstream>
#include <unordered_map>

#include "core/error.h"

namespace bmh::pickle {

Object::~Object() {
  if (items.empty() && entries.empty()) return;
  std::vector<Ref> pending;
  auto take_children = [&pending](Object& o) {
    for (auto& r : o.items) pending.push_back(std::move(r));
    for (auto& [k, v] : o.entries) {
      pending.push_back(std::move(k));
      pending.push_back(std::move(v));
    }
    o.items.clear();
    o.entries.clear();
  };
  take_children(*this);
  while (!pending.empty()) {
    Ref r = std::move(pending.back());
    pending.pop_back();
    if (r && r.use_count() == 1) take_children(*r);  // the last owner: empty it so that it dies shallow
  }
}

Ref make(Kind k) {
  auto o = std::make_shared<Object>();
  o->kind = k;
  return o;
}
Ref make_int(int64_t v) {
  auto o = make(Kind::Int);
  o->i = v;
  return o;
}
Ref make_str(std::string v) {
  auto o = make(Kind::Str);
  o->s = std::move(v);
  return o;
}
Ref make_native(std::string type, std::shared_ptr<void> value) {
  auto o = make(Kind::Native);
  o->s = std::move(type);
  o->native = std::move(value);
  return o;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Native: return "object";
  }
  return "?";
}

static void repr_into(const Object& o, std::ostringstream& os, size_t max_chars, int depth) {
  if (size_t(os.tellp()) > max_chars) return;
  switch (o.kind) {
    case Kind::None: os << "None"; break;
    case Kind::Bool: os << (o.i ? "True" : "False"); break;
    case Kind::Int: os << o.i; break;
    case Kind::Float: os << o.f; break;
    case Kind::Str: os << '\'' << o.s << '\''; break;
    case Kind::Bytes: os << "b<" << o.s.size() << " bytes>"; break;
    case Kind::Global: os << o.s; break;
    case Kind::Native: os << '<' << o.s << '>'; break;
    case Kind::Tuple:
    case Kind::List: {
      os << (o.kind == Kind::Tuple ? '(' : '[');
      for (size_t k = 0; k < o.items.size(); ++k) {
        if (k) os << ", ";
        if (depth > 4 || size_t(os.tellp()) > max_chars) { os << "..."; break; }
        repr_into(*o.items[k], os, max_chars, depth + 1);
      }
      if (o.kind == Kind::Tuple && o.items.size() == 1) os << ',';
      os << (o.kind == Kind::Tuple ? ')' : ']');
      break;
    }
    case Kind::Dict: {
      os << '{';
      for (size_t k = 0; k < o.entries.size(); ++k) {
        if (k) os << ", ";
        if (depth > 4 || size_t(os.tellp()) > max_chars) { os << "..."; break; }
        repr_into(*o.entries[k].first, os, max_chars, depth + 1);
        os << ": ";
        repr_into(*o.entries[k].second, os, max_chars, depth + 1);
      }
      os << '}';
      break;
    }
  }
}

std::string repr(const Object& o, int max_chars) {
  std::ostringstream os;
  repr_into(o, os, size_t(max_chars), 0);
  std::string s = os.str();
  if (s.size() > size_t(max_chars)) s = s.substr(0, max_chars) + "...";
  return s;
}

namespace {

class Unpickler {
 public:
  Unpickler(const uint8_t* data, size_t size, const std::string& where, const Hooks& hooks)
      : p_(data), size_(size), where_(where), hooks_(hooks) {}

  Ref run() {
    for (;;) {
      op_pos_ = pos_;
      const uint8_t op = take(1)[0];
      if (op == '.') {  // STOP
        if (stack_.size() != 1 || !marks_.empty())
          bad("STOP with ", stack_.size(), " objects on the stack and ", marks_.size(), " open marks");
        return stack_.back();
      }
      step(op);
    }
  }

 private:
  const uint8_t* p_;
  size_t size_, pos_ = 0, op_pos_ = 0;
  const std::string& where_;
  const Hooks& hooks_;
  std::vector<Ref> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ref> memo_;
  // Containers that gained children after they were built: every reference cycle passes through one of them
  // (a new tuple/list/dict cannot contain itself), so emptying them breaks every cycle.
  std::vector<std::weak_ptr<Object>> mutated_;

 public:
  // Refuses a cycle reachable from root (iterative DFS); then empties mutated containers the result does not
  // reach, so that cycles left in the memo do not leak.
  void refuse_cycles(const Ref& root) {
    std::unordered_map<const Object*, int> state;  // 1 on the current path, 2 finished
    std::vector<std::pair<const Object*, size_t>> path{{root.get(), 0}};
    state[root.get()] = 1;
    while (!path.empty()) {
      auto& [o, next] = path.back();
      const size_t n_items = o->items.size(), n_children = n_items + 2 * o->entries.size();
      if (next == n_children) {
        state[o] = 2;
        path.pop_back();
        continue;
      }
      const size_t k = next++;
      const Object* c = k < n_items ? o->items[k].get()
                                    : ((k - n_items) % 2 ? o->entries[(k - n_items) / 2].second.get()
                                                         : o->entries[(k - n_items) / 2].first.get());
      auto it = state.find(c);
      if (it == state.end()) {
        state[c] = 1;
        path.emplace_back(c, 0);
      } else if (it->second == 1) {
        fail(where_, ": the pickle holds a reference cycle (a ", kind_name(c->kind),
             " that contains itself); checkpoints never do");
      }
    }
    for (auto& w : mutated_)
      if (auto o = w.lock(); o && !state.count(o.get())) o->items.clear(), o->entries.clear();
  }
  // After an error: empties every mutated container, breaking any cycle before the stack and memo are freed.
  void break_cycles() {
    for (auto& w : mutated_)
      if (auto o = w.lock()) {
        std::vector<Ref> items = std::move(o->items);
        std::vector<std::pair<Ref, Ref>> entries = std::move(o->entries);
        o->items.clear();
        o->entries.clear();
      }
  }

 private:

  template <class... Parts>
  [[noreturn]] void bad(const Parts&... parts) const {
    fail(where_, ": pickle opcode 0x", hex(p_[op_pos_]), " at byte ", op_pos_, ": ", parts...);
  }
  static std::string hex(uint8_t b) {
    const char* d = "0123456789abcdef";
    return std::string{d[b >> 4], d[b & 15]};
  }

  void need(uint64_t n) const {
    if (n > size_ - pos_)
      fail(where_, ": truncated pickle: ", pos_ == op_pos_ ? "opcode" : "operand", " at byte ", pos_, " needs ", n,
           " bytes but only ", size_ - pos_, " remain (pickle is ", size_, " bytes, no STOP)");
  }
  const uint8_t* take(size_t n) {
    need(n);
    const uint8_t* r = p_ + pos_;
    pos_ += n;
    return r;
  }
  uint64_t le(size_t n) {
    const uint8_t* b = take(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = v << 8 | b[k];
    return v;
  }
  std::string line() {  // GLOBAL's operands: text up to '\n'
    size_t start = pos_;
    while (pos_ < size_ && p_[pos_] != '\n') ++pos_;
    if (pos_ == size_)
      fail(where_, ": truncated pickle: GLOBAL operand at byte ", start, " has no end of line (pickle is ", size_,
           " bytes, no STOP)");
    return std::string(reinterpret_cast<const char*>(p_ + start), pos_++ - start);
  }
  std::string bytes(uint64_t n) {
    need(n);
    const uint8_t* b = take(size_t(n));
    return std::string(reinterpret_cast<const char*>(b), size_t(n));
  }

  void push(Ref r) { stack_.push_back(std::move(r)); }
  Ref pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) bad("stack underflow");
    Ref r = std::move(stack_.back());
    stack_.pop_back();
    return r;
  }
  Ref& top() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back())) bad("stack underflow");
    return stack_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return items;
  }
  Ref seq(Kind k, std::vector<Ref> items) {
    Ref r = make(k);
    r->items = std::move(items);
    return r;
  }
  void set_items(Ref& dict, std::vector<Ref>& kv) {
    if (!dict->is(Kind::Dict)) bad("SETITEM(S) on a ", kind_name(dict->kind), ", not a dict");
    mutated_.push_back(dict);
    if (kv.size() % 2) bad("SETITEMS with an odd number (", kv.size(), ") of keys and values");
    for (size_t k = 0; k < kv.size(); k += 2) dict->entries.emplace_back(kv[k], kv[k + 1]);
  }
  void append_items(Ref& list, std::vector<Ref>& items) {
    if (!list->is(Kind::List)) bad("APPEND(S) on a ", kind_name(list->kind), ", not a list");
    mutated_.push_back(list);
    for (auto& it : items) list->items.push_back(it);
  }
  void memo_put(uint64_t idx) { memo_[idx] = top(); }
  void memo_get(uint64_t idx) {
    auto it = memo_.find(idx);
    if (it == memo_.end()) bad("memo index ", idx, " was never stored");
    push(it->second);
  }
  void global(const std::string& module, const std::string& name) {
    if (!hooks_.check_global) bad("global '", module, ".", name, "' but no globals are allowed");
    hooks_.check_global(module, name);
    Ref g = make(Kind::Global);
    g->s = module + "." + name;
    push(g);
  }

  void step(uint8_t op) {
    switch (op) {
      case 0x80: {  // PROTO
        uint8_t v = take(1)[0];
        if (v < 2 || v > 5) bad("unsupported pickle protocol ", int(v), " (2-5 are understood)");
        break;
      }
      case 0x95: le(8); break;            // FRAME: a length prefix; the frame's opcodes follow inline
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0':                            // POP
        if (!marks_.empty() && stack_.size() == marks_.back()) pop_mark();
        else pop();
        break;
      case '1': pop_mark(); break;         // POP_MARK
      case '2': push(top()); break;        // DUP
      case 'N': push(make(Kind::None)); break;
      case 0x88: case 0x89: {              // NEWTRUE, NEWFALSE
        Ref b = make(Kind::Bool);
        b->i = op == 0x88;
        push(b);
        break;
      }
      case 'J': push(make_int(int32_t(uint32_t(le(4))))); break;  // BININT (signed)
      case 'K': push(make_int(int64_t(le(1)))); break;            // BININT1 (unsigned)
      case 'M': push(make_int(int64_t(le(2)))); break;            // BININT2 (unsigned)
      case 0x8a: case 0x8b: {              // LONG1, LONG4: little-endian two's complement
        uint64_t n = op == 0x8a ? le(1) : le(4);
        if (op == 0x8b && int32_t(uint32_t(n)) < 0) bad("negative LONG4 byte count");
        if (n > 8) bad("integer of ", n, " bytes does not fit in 64 bits");
        uint64_t v = n ? le(size_t(n)) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);  // sign-extend
        push(make_int(int64_t(v)));
        break;
      }
      case 'G': {                          // BINFLOAT: big-endian IEEE double
        const uint8_t* b = take(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = bits << 8 | b[k];
        Ref f = make(Kind::Float);
        std::memcpy(&f->f, &bits, 8);
        push(f);
        break;
      }
      case 'X': push(make_str(bytes(le(4)))); break;     // BINUNICODE
      case 0x8c: push(make_str(bytes(le(1)))); break;    // SHORT_BINUNICODE
      case 0x8d: push(make_str(bytes(le(8)))); break;    // BINUNICODE8
      case 'T': case 'U': {                // BINSTRING, SHORT_BINSTRING (Python 2 str; read as text)
        push(make_str(bytes(op == 'T' ? le(4) : le(1))));
        break;
      }
      case 'B': case 'C': case 0x8e: {     // BINBYTES, SHORT_BINBYTES, BINBYTES8
        Ref b = make(Kind::Bytes);
        b->s = bytes(op == 'B' ? le(4) : op == 'C' ? le(1) : le(8));
        push(b);
        break;
      }
      case ')': push(make(Kind::Tuple)); break;                          // EMPTY_TUPLE
      case 't': push(seq(Kind::Tuple, pop_mark())); break;               // TUPLE
      case 0x85: case 0x86: case 0x87: {                                 // TUPLE1..3
        size_t n = size_t(op - 0x84);
        std::vector<Ref> items(n);
        for (size_t k = n; k-- > 0;) items[k] = pop();
        push(seq(Kind::Tuple, std::move(items)));
        break;
      }
      case ']': push(make(Kind::List)); break;                           // EMPTY_LIST
      case 'l': push(seq(Kind::List, pop_mark())); break;                // LIST
      case 'a': {                                                        // APPEND
        std::vector<Ref> one{pop()};
        append_items(top(), one);
        break;
      }
      case 'e': {                                                        // APPENDS
        auto items = pop_mark();
        append_items(top(), items);
        break;
      }
      case '}': push(make(Kind::Dict)); break;                           // EMPTY_DICT
      case 'd': {                                                        // DICT
        auto kv = pop_mark();
        Ref d = make(Kind::Dict);
        set_items(d, kv);
        push(d);
        break;
      }
      case 's': {                                                        // SETITEM
        Ref v = pop(), k = pop();
        std::vector<Ref> kv{k, v};
        set_items(top(), kv);
        break;
      }
      case 'u': {                                                        // SETITEMS
        auto kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 'c': {                                                        // GLOBAL "module\nname\n"
        std::string module = line();
        std::string name = line();
        global(module, name);
        break;
      }
      case 0x93: {                                                       // STACK_GLOBAL
        Ref name = pop(), module = pop();
        if (!name->is(Kind::Str) || !module->is(Kind::Str)) bad("STACK_GLOBAL operands are not strings");
        global(module->s, name->s);
        break;
      }
      case 'R': {                                                        // REDUCE: callable(*args)
        Ref args = pop();
        Ref& fn = top();
        if (!args->is(Kind::Tuple)) bad("REDUCE arguments are a ", kind_name(args->kind), ", not a tuple");
        if (!hooks_.reduce) bad("REDUCE of ", repr(*fn), " is not allowed");
        fn = hooks_.reduce(fn, args);
        break;
      }
      case 'b': {                                                        // BUILD: obj.__setstate__(state)
        Ref state = pop();
        Ref& obj = top();
        if (!hooks_.build) bad("BUILD on ", repr(*obj), " is not allowed");
        hooks_.build(obj, state);
        break;
      }
      case 'Q': {                                                        // BINPERSID
        Ref pid = pop();
        if (!hooks_.persistent_load) bad("persistent id ", repr(*pid), " but no persistent loader");
        push(hooks_.persistent_load(pid));
        break;
      }
      case 'q': memo_put(le(1)); break;                                  // BINPUT
      case 'r': memo_put(le(4)); break;                                  // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;                          // MEMOIZE
      case 'h': memo_get(le(1)); break;                                  // BINGET
      case 'j': memo_get(le(4)); break;                                  // LONG_BINGET
      default: {
        std::string printable = op >= 0x20 && op < 0x7f ? std::string(" ('") + char(op) + "')" : "";
        bad("unsupported opcode", printable, " (only the opcodes torch.save emits are understood)");
      }
    }
  }
};

}  // namespace

Ref unpickle(const uint8_t* data, size_t size, const std::string& where, const Hooks& hooks) {
  Unpickler u(data, size, where, hooks);
  try {
    Ref root = u.run();
    u.refuse_cycles(root);
    return root;
  } catch (...) {
    u.break_cycles();
    throw;
  }
}

}  // namespace bmh::pickle
