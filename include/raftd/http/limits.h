// Every bound of the HTTP layer, in one place, each with the reason for its value. Options
// structs (ServerOptions, ClientOptions) default to these; a deployment may tighten or loosen
// the configurable ones.
#pragma once

#include <cstddef>
#include <cstdint>

namespace raftd::http {

// Request line + header fields + the blank line. raftd's own requests carry a few short
// headers; 16 KiB is twice nginx's default large_client_header_buffers line and bounds what an
// unauthenticated peer can make us hold. Exceeding it is answered 431.
inline constexpr std::size_t kHeaderBytesMax = 16 * 1024;

// Header fields per message. Bounds the vector a request builds; exceeding it is 431.
inline constexpr std::size_t kHeaderCountMax = 100;

// Chunk extensions across one chunked body. raftd defines none and skips them; 4 KiB bounds the
// bytes a peer can make us parse for nothing. Exceeding it is answered 400.
inline constexpr std::size_t kChunkExtBytesMax = 4 * 1024;

// Trailer section of a chunked body (the field lines after the last chunk). Trailers are parsed
// for framing and dropped, so they get a far smaller budget than the head. Exceeding either is
// answered 431.
inline constexpr std::size_t kTrailerBytesMax = 4 * 1024;
inline constexpr std::size_t kTrailerCountMax = 16;

// Default request body cap (answered 413). Bodies are streamed, so this bounds work, not memory;
// raft proposals and app calls are far smaller. Streams that need more (the peer transport,
// snapshots) raise ServerOptions::body_bytes_max.
inline constexpr std::uint64_t kBodyBytesMaxDefault = 64ull * 1024 * 1024;

// A client that opened a request must finish its header section within this time (slowloris).
inline constexpr std::uint32_t kHeaderTimeoutMsDefault = 10'000;

// A keep-alive connection with no request in progress is closed after this time.
inline constexpr std::uint32_t kIdleTimeoutMsDefault = 60'000;

// A request whose body stops arriving, or a response the peer stops reading, is dropped after
// this much time without progress.
inline constexpr std::uint32_t kProgressTimeoutMsDefault = 60'000;

// Minimum request body rate: on average at least kBodyRateMinBytesDefault bytes of body per
// kBodyRateWindowMsDefault while the body is being read (time the handler keeps the body paused
// does not count). Without it a body trickled a byte a second, under the progress timeout,
// holds the connection forever. A body below the rate is answered 408 and the connection closed.
inline constexpr std::uint32_t kBodyRateWindowMsDefault = 10'000;
inline constexpr std::size_t kBodyRateMinBytesDefault = 1024;

// How far ahead of the minimum rate a body may get, in windows: the silence a burst of body
// buys. Bursts followed by pauses are how real uploads arrive (TCP windows, a sender that reads
// from disk), so a pause of up to this many windows after data sent above the rate passes; a
// bigger bound would let one fast burst buy an attacker a long trickle afterwards.
inline constexpr std::uint32_t kBodyRateCreditWindowsMax = 2;

// Open server connections. Each costs a parser, a socket and up to kSendBytesMax of buffered
// output; beyond this, new connections get a canned 503 and are closed.
inline constexpr std::size_t kConnectionsMaxDefault = 4096;

// Open server connections counted against one peer address, so that one client cannot take all
// of connections_max and starve everyone else; beyond it a new connection from that address
// gets a canned 503 and is closed. All of loopback (127.0.0.0/8, ::1) counts as one address and
// an IPv6 peer counts by its /64 (one host is usually given a whole /64), so picking another
// source address does not dodge the limit. The default must hold what a cluster on one machine
// opens over loopback: each other node's client pool (up to kPoolConnectionsPerTargetMax) plus
// its transport stream and snapshot connections, the application's calls, and local clients.
// 512 fits a 5-node cluster, its application and a few hundred local clients, while a remote
// address holds at most an eighth of the default connections_max.
inline constexpr std::size_t kConnectionsPerPeerMaxDefault = 512;
static_assert(kConnectionsPerPeerMaxDefault * 8 <= kConnectionsMaxDefault,
              "one address must not be able to hold most of the server's connections");

// Output bytes a connection buffers before ResponseWriter::write_body reports backpressure.
// Large enough for one 64 KiB body chunk plus framing to be in flight while the next is produced.
inline constexpr std::size_t kSendBytesMax = 256 * 1024;

// Input bytes a connection holds that the parser could not consume yet (a pipelined request
// waiting for the previous response, or a body the handler paused). Beyond it the connection
// stops reading, so a fast sender cannot grow memory.
inline constexpr std::size_t kPendingBytesMax = 256 * 1024;
static_assert(kPendingBytesMax >= kHeaderBytesMax, "a whole header section must fit while paused");

// After answering a bad request the server half-closes and keeps reading (and dropping) what
// the client still sends for at most this long, so the kernel does not reset the connection
// and destroy the answer before the client read it (a "lingering close").
inline constexpr std::uint32_t kLingerMs = 2'000;

// Client defaults.
inline constexpr std::uint32_t kConnectTimeoutMsDefault = 5'000;
inline constexpr std::uint32_t kResponseTimeoutMsDefault = 30'000;
// Idle pooled connections kept per target (host:port); more are closed when released.
inline constexpr std::size_t kPoolIdlePerTargetMax = 32;
// Requests queued for a target whose connections are all busy; beyond it requests fail with
// kUnavailable (bounded queue instead of unbounded memory).
inline constexpr std::size_t kPoolQueueMax = 1024;
// Connections one target may have open at once.
inline constexpr std::size_t kPoolConnectionsPerTargetMax = 64;
static_assert(kConnectionsPerPeerMaxDefault >= 6 * kPoolConnectionsPerTargetMax,
              "four other local nodes, the application and a local client, each with a full "
              "pool, must fit in one loopback peer's share");

// Response header section accepted by the client (431-equivalent: the request fails).
inline constexpr std::size_t kResponseHeaderBytesMax = 64 * 1024;

// Interim (1xx) responses accepted before a final one. They carry no body and reset no limit,
// so without a bound a server sending "100 Continue" forever would hold the request forever
// (the response timeout sees progress); real servers send one or two.
inline constexpr std::size_t kInterimResponsesMax = 8;

}  // namespace raftd::http
