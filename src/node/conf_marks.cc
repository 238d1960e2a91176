#include "raftd/node/conf_marks.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "raftd/node/durable_file.h"

namespace raftd::node {
namespace {

constexpr const char* kHeader = "raftd-conf-marks 1";

std::string list(const std::vector<NodeId>& ids) {
  if (ids.empty()) return "-";
  std::string out;
  for (NodeId id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id.value());
  }
  return out;
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_list(std::string_view s, std::vector<NodeId>* out) {
  out->clear();
  if (s == "-") return true;
  while (true) {
    size_t comma = s.find(',');
    uint64_t v = 0;
    if (!parse_u64(s.substr(0, comma), &v) || v == 0) return false;
    if (!out->empty() && NodeId(v) <= out->back()) return false;  // sorted, no duplicates
    out->push_back(NodeId(v));
    if (comma == std::string_view::npos) return true;
    s.remove_prefix(comma + 1);
  }
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace

std::string encode_conf_marks(const std::map<GroupId, std::vector<ConfMark>>& marks) {
  std::string out = std::string(kHeader) + "\n";
  for (const auto& [g, recs] : marks) {
    for (const ConfMark& m : recs) {
      out +=
          fmt::format("mark {} {} {} {} {} {} {} {}\n", g.value(), m.index.value(), m.term.value(),
                      list(m.conf.voters), list(m.conf.learners), list(m.conf.voters_outgoing),
                      list(m.conf.learners_next), m.conf.auto_leave ? 1 : 0);
    }
  }
  out += "checksum " + hex64(XXH3_64bits(out.data(), out.size())) + "\n";
  return out;
}

Result<std::map<GroupId, std::vector<ConfMark>>> decode_conf_marks(const std::string& text,
                                                                   const std::string& path) {
  auto corrupt = [&](size_t line, std::string_view what) {
    return Status(Code::kCorruption, fmt::format("{}: line {}: {}", path, line, what));
  };
  std::map<GroupId, std::vector<ConfMark>> marks;
  size_t at = 0;
  size_t line_no = 0;
  bool header = false;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) return corrupt(line_no + 1, "no newline at the end");
    std::string_view line(text.data() + at, nl - at);
    ++line_no;
    if (!header) {
      if (line != kHeader) return corrupt(line_no, "not a raftd-conf-marks 1 file");
      header = true;
    } else if (line.starts_with("checksum ")) {
      if (nl + 1 != text.size()) return corrupt(line_no, "bytes after the checksum");
      if (line.substr(9) != hex64(XXH3_64bits(text.data(), at))) {
        return corrupt(line_no, "checksum mismatch");
      }
      return marks;
    } else {
      std::vector<std::string_view> f;
      std::string_view rest = line;
      while (!rest.empty()) {
        size_t sp = rest.find(' ');
        f.push_back(rest.substr(0, sp));
        if (sp == std::string_view::npos) break;
        rest.remove_prefix(sp + 1);
      }
      uint64_t g = 0, index = 0, term = 0;
      ConfMark m;
      if (f.size() != 9 || f[0] != "mark" || !parse_u64(f[1], &g) || !parse_u64(f[2], &index) ||
          !parse_u64(f[3], &term) || index == 0 || !parse_list(f[4], &m.conf.voters) ||
          !parse_list(f[5], &m.conf.learners) || !parse_list(f[6], &m.conf.voters_outgoing) ||
          !parse_list(f[7], &m.conf.learners_next) || (f[8] != "0" && f[8] != "1")) {
        return corrupt(line_no, "malformed mark");
      }
      m.index = LogIndex(index);
      m.term = Term(term);
      m.conf.auto_leave = f[8] == "1";
      std::vector<ConfMark>& recs = marks[GroupId(g)];
      if (!recs.empty() && recs.back().index >= m.index) {
        return corrupt(line_no, "marks of a group out of order");
      }
      recs.push_back(std::move(m));
    }
    at = nl + 1;
  }
  return corrupt(line_no, "no checksum line (cut short)");
}

Result<std::unique_ptr<ConfMarks>> ConfMarks::open(const std::string& path) {
  std::unique_ptr<ConfMarks> cm(new ConfMarks(path));
  Result<std::string> text = read_file(path, kConfMarksBytesMax);
  if (!text.is_ok()) {
    if (text.status().code() == Code::kNotFound) return cm;
    return text.status();
  }
  auto marks = decode_conf_marks(text.value(), path);
  if (!marks.is_ok()) return marks.status();
  cm->marks_ = std::move(marks.value());
  return cm;
}

std::optional<raft::ConfState> ConfMarks::at(GroupId g, LogIndex index) const {
  auto it = marks_.find(g);
  if (it == marks_.end()) return std::nullopt;
  const ConfMark* found = nullptr;
  for (const ConfMark& m : it->second) {
    if (m.index > index) break;
    found = &m;
  }
  if (found == nullptr) return std::nullopt;
  return found->conf;
}

Status ConfMarks::record(GroupId g, const raft::SnapshotMeta& meta,
                         const raft::ConfState& initial) {
  std::optional<raft::ConfState> now = at(g, meta.index);
  if ((now ? *now : initial) == meta.conf_state) return Status::ok();
  std::vector<ConfMark>& recs = marks_[g];
  ConfMark m{meta.index, meta.term, meta.conf_state};
  auto pos = std::lower_bound(recs.begin(), recs.end(), meta.index,
                              [](const ConfMark& r, LogIndex i) { return r.index < i; });
  if (pos != recs.end() && pos->index == meta.index) {
    *pos = std::move(m);
  } else {
    recs.insert(pos, std::move(m));
  }
  return write();
}

Status ConfMarks::prune(const std::map<GroupId, LogIndex>& marks) {
  bool changed = false;
  for (auto it = marks_.begin(); it != marks_.end();) {
    auto keep = marks.find(it->first);
    if (keep == marks.end()) {
      it = marks_.erase(it);
      changed = true;
      continue;
    }
    std::vector<ConfMark>& recs = it->second;
    // The newest record at or below the durable mark, and everything above it.
    size_t first = 0;
    for (size_t i = 0; i < recs.size() && recs[i].index <= keep->second; ++i) first = i;
    if (first > 0) {
      recs.erase(recs.begin(), recs.begin() + static_cast<ptrdiff_t>(first));
      changed = true;
    }
    ++it;
  }
  return changed ? write() : Status::ok();
}

Status ConfMarks::write() {
  ++writes_;
  return replace_file(path_, encode_conf_marks(marks_));
}

}  // namespace raftd::node
