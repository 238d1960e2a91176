// Idempotency-Key: a retried proposal returns the first result instead of being appended again.
//
// The decision is made before appending, against the log itself: a node remembers the keys of
// the keyed entries in its own log of each group (KeyTable, fed from every entry its log gains
// and cut where its log is cut). A proposal whose key is in the leader's log is not appended; the
// client is answered from the entry that carries the key. This is exact without any rule shared
// between replicas:
//   - a committed entry is in every future leader's log (Raft's leader completeness), so a retry
//     after a leader change finds it;
//   - an entry the leader does not have is either never committed (it is cut from every log
//     when the leader's entries replace it) or, if the leader proposes the key anew, the two can
//     never both commit: logs agree on every index up to the leader's new entry, and an older
//     entry cannot follow a newer one (terms only grow along a log).
// So the committed log never holds a key twice within what nodes remember, and the application
// sees each keyed entry once.
//
// Retention: a node remembers the last `keys_per_group` keys of each group (raftd.toml(5)
// limits.idempotency_keys), never forgetting one above the group's applied index (the newest
// keys of the log tail, where leader changes race, are always known). Nodes may be configured
// differently: a key forgotten on one node only makes a late retry through that node append
// again, as with no key.
//
// Results: the application's result for a keyed entry is remembered with its key once this
// node's app applied it. After a restart the keys and results come from the node's journal and
// the log above the journal's watermark; a result the journal lost is reported as lost (the
// entry is still applied once), never invented.
//
// ResultsJournal: the node's file `data_dir/idempotency`, an append-only list of checksummed
// records (doc/node.md "Idempotency journal"), in apply order per group:
//   kKey       (group, index, key, [result]): a keyed entry applied here, with its result;
//   kWatermark (group, index): every keyed entry of the group up to index has a kKey record
//              before this one (so does every kKey record, for its index).
// At start-up a group's keys up to its watermark come from the journal and only the log above
// it is read. Records are handed to the kernel at the end of a reactor turn, without fsync: a
// killed process loses at most the turn's records (the page cache keeps the rest; the watermark
// went with them, so the log covers what was lost). A power failure may lose a tail: loading
// stops at the first record that fails its checksum, so what is used is always a prefix. The file
// is rewritten (temporary file, fsync, rename) at start-up with only what is retained, and when
// it grows past kJournalRewriteBytes and four times what is retained.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "raftd/base/ids.h"
#include "raftd/base/status.h"

namespace raftd::node {

class KeyTable {
 public:
  explicit KeyTable(size_t keys_per_group) : keys_per_group_(keys_per_group) {}

  struct Slot {
    LogIndex index;                     // of the entry carrying the key
    std::optional<std::string> result;  // the app's result, once applied here (or journaled)
  };

  // The log of g now holds new entries from `first` on: keys at `first` and above are forgotten.
  void cut(GroupId g, LogIndex first);
  // The keyed entry at `index` is in the log of g. A key already known at another index keeps
  // its first index (the log does not hold a key twice when raftd wrote it; see above).
  void note(GroupId g, LogIndex index, std::string_view key);
  const Slot* find(GroupId g, std::string_view key) const;
  std::optional<std::string_view> key_at(GroupId g, LogIndex index) const;
  // Records the result of the keyed entry at `index`; false if no key is known there.
  bool set_result(GroupId g, LogIndex index, std::string result);
  // Forgets the oldest keys of g beyond keys_per_group, never one above `applied`.
  void trim(GroupId g, LogIndex applied);
  void drop_group(GroupId g);

  struct Item {
    LogIndex index;
    std::string_view key;
    const std::optional<std::string>* result;
  };
  std::vector<Item> items(GroupId g) const;  // ascending index
  std::vector<GroupId> groups() const;
  size_t key_count() const;
  uint64_t bytes() const { return bytes_; }  // keys and results held

 private:
  struct Group {
    std::unordered_map<std::string, Slot> slots;
    std::map<LogIndex, std::string> by_index;
  };
  void forget(Group& grp, std::map<LogIndex, std::string>::iterator it);

  size_t keys_per_group_;
  uint64_t bytes_ = 0;
  std::map<GroupId, Group> groups_;
};

// What start-up reads back from the journal.
// Each group's journal watermark. Hashed: the node looks its group's up at every apply.
using Watermarks = std::unordered_map<GroupId, LogIndex>;

struct JournalState {
  struct KeyRecord {
    LogIndex index;
    std::string key;
    std::optional<std::string> result;
  };
  std::map<GroupId, std::vector<KeyRecord>> keys;  // journal order
  Watermarks watermark;                            // the highest of kWatermark and kKey records
  uint64_t valid_bytes = 0;                        // the prefix that decoded
  uint64_t ignored_bytes = 0;  // after the first bad record (torn or damaged tail)
};

class ResultsJournal {
 public:
  // A rewrite is due once the file is larger than this and four times what it must hold.
  static constexpr uint64_t kJournalRewriteBytes = 64ull << 20;
  // A group's watermark is journaled when its applied index moved this far without a kKey
  // record: the log read at start-up above the watermark stays short for groups without keys.
  static constexpr uint64_t kWatermarkEvery = 1024;

  // Reads `path` (missing: empty state). Errors: I/O only; damage ends the valid prefix.
  static Result<JournalState> load(const std::string& path);
  // Decodes records from bytes (the loader's core; exposed for tests and the fuzz target).
  static JournalState decode(std::string_view bytes);

  explicit ResultsJournal(std::string path) : path_(std::move(path)) {}
  ~ResultsJournal();
  ResultsJournal(const ResultsJournal&) = delete;
  ResultsJournal& operator=(const ResultsJournal&) = delete;

  // Writes a fresh file holding `table`'s keys up to each group's watermark (with the results
  // the table knows) and the watermarks (temporary file, fsync, rename, fsync of the directory),
  // then appends to it.
  // The file lists the groups in increasing order (the same bytes whatever the hashing).
  Status rewrite(const KeyTable& table, const Watermarks& watermark);
  bool rewrite_due(uint64_t live_bytes) const {
    return file_bytes_ > kJournalRewriteBytes && file_bytes_ > 4 * live_bytes;
  }

  void add_key(GroupId g, LogIndex index, std::string_view key,
               const std::optional<std::string>& result);
  void add_watermark(GroupId g, LogIndex index);
  // Hands the buffered records to the kernel (one write). A failure is logged and the journal
  // stops (dedup keeps working from the log; results of later entries are reported lost after a
  // restart).
  void flush();
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  std::string path_;
  int fd_ = -1;
  bool failed_ = false;
  uint64_t file_bytes_ = 0;
  std::string buffer_;
};

// Record encodings (doc/node.md), shared by the writer and the tests.
std::string encode_journal_key(GroupId g, LogIndex index, std::string_view key,
                               const std::optional<std::string>& result);
std::string encode_journal_watermark(GroupId g, LogIndex index);

}  // namespace raftd::node
