#include "lincheck_gen.h"

#include <fmt/format.h>

#include <optional>

#include "prng.h"

namespace raftd::lincheck {
namespace {

using nlohmann::json;

// Chances per million of each kind of operation at invoke.
constexpr uint32_t kReadPerMillion = 500'000;
constexpr uint32_t kWritePerMillion = 300'000;  // the rest are cas

struct Client {
  bool active = false;
  bool applied = false;  // the operation has taken effect (or been decided not to)
  Event invoke;
  json result;  // a read's value
  bool cas_failed = false;
};

class Generator {
 public:
  explicit Generator(const GenOptions& o)
      : o_(o),
        rng_(o.seed),
        clients_(static_cast<size_t>(o.processes)),
        registers_(static_cast<size_t>(o.keys)),
        written_(static_cast<size_t>(o.keys)) {}

  std::vector<Event> run() {
    size_t active = 0;
    while (invoked_ < o_.ops || active > 0) {
      time_ += static_cast<int64_t>(rng_.range(1, 3));
      const size_t p = rng_.below(clients_.size());
      Client& c = clients_[p];
      if (!c.active) {
        if (invoked_ == o_.ops) continue;
        invoke(static_cast<int64_t>(p), c);
        ++active;
      } else if (!c.applied) {
        if (rng_.chance(o_.fail_per_million)) {
          complete(c, EventType::kFail);
          --active;
        } else if (rng_.chance(o_.info_per_million)) {
          complete(c, EventType::kInfo);  // lost before it ran
          --active;
        } else {
          apply(c);
        }
      } else {
        const bool lost = rng_.chance(o_.info_per_million);
        complete(c, lost ? EventType::kInfo : c.cas_failed ? EventType::kFail : EventType::kOk);
        --active;
      }
    }
    return std::move(events_);
  }

 private:
  size_t key_index(const Event& e) const { return std::stoul(e.key->substr(1)); }

  void invoke(int64_t process, Client& c) {
    const size_t k = rng_.below(static_cast<size_t>(o_.keys));
    Event e{.process = process,
            .type = EventType::kInvoke,
            .key = fmt::format("k{}", k),
            .time = time_};
    const uint64_t dice = rng_.below(1'000'000);
    if (dice < kReadPerMillion) {
      e.f = OpKind::kRead;
    } else if (dice < kReadPerMillion + kWritePerMillion) {
      e.f = OpKind::kWrite;
      e.value = next_value_++;
    } else {
      e.f = OpKind::kCas;
      // Half the time expect the current value, so that a good share of cas succeed.
      json expected = registers_[k];
      if (rng_.below(2) == 0 && !written_[k].empty()) {
        expected = written_[k][rng_.below(written_[k].size())];
      }
      e.value = json::array({expected, next_value_++});
    }
    c = Client{.active = true, .invoke = e};
    events_.push_back(e);
    ++invoked_;
  }

  void apply(Client& c) {
    json& reg = registers_[key_index(c.invoke)];
    c.applied = true;
    switch (*c.invoke.f) {
      case OpKind::kRead: c.result = reg; break;
      case OpKind::kWrite:
        reg = c.invoke.value;
        written_[key_index(c.invoke)].push_back(reg);
        break;
      case OpKind::kCas:
        c.cas_failed = reg != c.invoke.value[0];
        if (!c.cas_failed) {
          reg = c.invoke.value[1];
          written_[key_index(c.invoke)].push_back(reg);
        }
        break;
    }
  }

  void complete(Client& c, EventType type) {
    Event e{.process = c.invoke.process,
            .type = type,
            .f = c.invoke.f,
            .key = c.invoke.key,
            .value = c.invoke.value,
            .time = time_};
    if (*c.invoke.f == OpKind::kRead) e.value = type == EventType::kOk ? c.result : json();
    c.active = false;
    events_.push_back(e);
  }

  GenOptions o_;
  raftd::sim::Prng rng_;
  std::vector<Client> clients_;
  std::vector<json> registers_;
  std::vector<std::vector<json>> written_;
  std::vector<Event> events_;
  int64_t time_ = 0;
  int64_t next_value_ = 1;
  size_t invoked_ = 0;
};

// An operation reconstructed from the event list.
struct Span {
  size_t invoke = 0;
  std::optional<size_t> complete;
};

std::vector<Span> spans(const std::vector<Event>& events) {
  std::vector<Span> out;
  std::map<int64_t, size_t> open;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].type == EventType::kInvoke) {
      open[events[i].process] = out.size();
      out.push_back(Span{i, std::nullopt});
    } else {
      out[open.at(events[i].process)].complete = i;
    }
  }
  return out;
}

}  // namespace

std::vector<Event> generate_history(const GenOptions& options) {
  RAFTD_ASSERT(options.processes > 0 && options.keys > 0, "generator needs processes and keys");
  return Generator(options).run();
}

bool add_stale_read(std::vector<Event>& events, uint64_t seed) {
  const std::vector<Span> ops = spans(events);
  // Effective writes (ok write, ok cas), in invoke order.
  std::vector<const Span*> writes;
  for (const Span& s : ops) {
    if (s.complete && events[*s.complete].type == EventType::kOk &&
        *events[s.invoke].f != OpKind::kRead) {
      writes.push_back(&s);
    }
  }
  auto new_value = [&](const Span* s) {
    const Event& e = events[s->invoke];
    return *e.f == OpKind::kWrite ? e.value : e.value[1];
  };
  raftd::sim::Prng rng(seed);
  const size_t skip = rng.below(3);  // among the last few candidates
  size_t seen = 0;
  for (size_t r = ops.size(); r-- > 0;) {
    const Span& read = ops[r];
    const Event& inv = events[read.invoke];
    if (*inv.f != OpKind::kRead || !read.complete) continue;
    if (events[*read.complete].type != EventType::kOk) continue;
    // w2: the latest effective write on the key completed before the read began; w1: the
    // latest one completed before w2 began.
    const Span* w2 = nullptr;
    for (const Span* w : writes) {
      const Event& wi = events[w->invoke];
      if (*wi.key == *inv.key && events[*w->complete].time < inv.time) w2 = w;
    }
    if (w2 == nullptr) continue;
    const Span* w1 = nullptr;
    for (const Span* w : writes) {
      const Event& wi = events[w->invoke];
      if (*wi.key == *inv.key && events[*w->complete].time < events[w2->invoke].time) w1 = w;
    }
    if (w1 == nullptr || new_value(w1) == events[*read.complete].value) continue;
    if (seen++ < skip) continue;
    events[*read.complete].value = new_value(w1);
    return true;
  }
  return false;
}

}  // namespace raftd::lincheck
