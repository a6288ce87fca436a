// KV events on the wire: --kv-events-config parsing, the msgpack layout (checked by an
// independent reader), decoder round trips and robustness, and the ZMQ publisher/subscriber
// over loopback TCP (frames, sequence numbers, replay, gap detection). Golden bytes from an
// independent encoder are in kv_event_golden_test.cpp.
#include <zmq.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kv_events/kv_event_codec.h"
#include "kv_events/kv_event_publisher.h"
#include "kv_events/kv_event_subscriber.h"
#include "mini_msgpack.h"

namespace moeserve::kv_events {
namespace {

namespace mp = moeserve::testing_msgpack;
using Kind = mp::Value::Kind;

// A block hash in the integer form events carry (the low 64 bits of the engine's hash).
uint64_t hash_of(uint64_t low) {
  return low;
}

std::vector<KvCacheEvent> sample_events() {
  BlockStored s;
  s.block_hashes = {hash_of(0x1122334455667788ULL), hash_of(5)};
  s.parent_block_hash = hash_of(0xfedcba9876543210ULL);
  s.block_size = 2;
  s.token_ids = {1, 200, 70000, 3};
  BlockStored first;
  first.block_hashes = {hash_of(42)};
  first.block_size = 2;
  first.token_ids = {7, 8};
  return {s, BlockRemoved{{hash_of(9), hash_of(0x8000000000000000ULL)}, std::nullopt},
          AllBlocksCleared{}, first};
}

// The payload the publisher sends for these events (its medium, "GPU", on every event).
std::string encode_as_publisher(double ts, std::vector<KvCacheEvent> events,
                                std::optional<int64_t> data_parallel_rank) {
  KvEventBatch batch;
  batch.ts = ts;
  batch.data_parallel_rank = data_parallel_rank;
  for (KvCacheEvent& e : events) {
    if (auto* st = std::get_if<BlockStored>(&e)) st->medium = "GPU";
    if (auto* r = std::get_if<BlockRemoved>(&e)) r->medium = "GPU";
  }
  batch.events = std::move(events);
  return encode_kv_event_batch(batch);
}

// ---------------------------------------------------------------- config

TEST(KvEventsConfig, ParsesVllmJson) {
  auto c = parse_kv_events_config(
      R"({"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557",
          "topic": "kv@10.0.0.1:8000@m", "buffer_steps": 5, "hwm": 7, "max_queue_size": 9,
          "replay_endpoint": "tcp://*:5558"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->enabled());
  EXPECT_EQ(c->endpoint, "tcp://*:5557");
  EXPECT_EQ(c->topic, "kv@10.0.0.1:8000@m");
  EXPECT_EQ(c->buffer_steps, 5);
  EXPECT_EQ(c->hwm, 7);
  EXPECT_EQ(c->max_queue_size, 9);
  EXPECT_EQ(c->replay_endpoint, "tcp://*:5558");
}

TEST(KvEventsConfig, PublisherDefaultsAndDisabling) {
  auto c = parse_kv_events_config(R"({"enable_kv_cache_events": true})");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->publisher, "zmq");
  EXPECT_TRUE(c->enabled());
  c = parse_kv_events_config(R"({"enable_kv_cache_events": true, "publisher": "null"})");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->enabled());
  c = parse_kv_events_config(R"({"publisher": "zmq"})");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->enabled());
  auto p = make_kv_event_publisher("", 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, nullptr);
  p = make_kv_event_publisher(R"({"enable_kv_cache_events": false})", 0);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, nullptr);
}

TEST(KvEventsConfig, RejectsBadInput) {
  for (const char* bad : {
           R"({"enable_kv_cache_events": true, "publisher": "kafka"})",
           R"({"enable_kv_cache_events": true, "endpoitn": "tcp://*:1"})",
           R"({"enable_kv_cache_events": "yes"})",
           R"({"enable_kv_cache_events": true, "hwm": -1})",
           R"({"enable_kv_cache_events": true, "max_queue_size": 0})",
           R"({"enable_kv_cache_events": true, "buffer_steps": 1.5})",
           R"({"enable_kv_cache_events": true, "endpoint": "udp://x:1"})",
           R"({"enable_kv_cache_events": true, "endpoint": "tcp://host:port"})",
           R"({"enable_kv_cache_events": true, "endpoint": "tcp://host:70000"})",
           R"([1, 2])",
           R"({"enable_kv_cache_events": tru)",
       }) {
    EXPECT_FALSE(parse_kv_events_config(bad).ok()) << bad;
  }
  EXPECT_FALSE(
      make_kv_event_publisher(R"({"enable_kv_cache_events":true,"publisher":"x"})", 0).ok());
}

TEST(KvEventsConfig, DataParallelRankOffsetsThePort) {
  EXPECT_EQ(*offset_endpoint_port("tcp://*:5557", 0), "tcp://*:5557");
  EXPECT_EQ(*offset_endpoint_port("tcp://*:5557", 3), "tcp://*:5560");
  EXPECT_EQ(*offset_endpoint_port("tcp://[::1]:5557", 1), "tcp://[::1]:5558");
  EXPECT_EQ(*offset_endpoint_port("tcp://127.0.0.1:*", 2), "tcp://127.0.0.1:*");
  EXPECT_EQ(*offset_endpoint_port("inproc://kv", 1), "inproc://kv_dp1");
  // Rank 0 binds what was configured, whatever the scheme (vLLM offsets only ranks > 0).
  EXPECT_EQ(*offset_endpoint_port("inproc://kv", 0), "inproc://kv");
  EXPECT_EQ(*offset_endpoint_port("ipc:///tmp/kv", 0), "ipc:///tmp/kv");
  EXPECT_EQ(*offset_endpoint_port("ipc:///tmp/kv", 2), "ipc:///tmp/kv_dp2");
  EXPECT_FALSE(offset_endpoint_port("tcp://h:65535", 1).ok());
  EXPECT_FALSE(offset_endpoint_port("tcp://*:5557", -1).ok());
  EXPECT_TRUE(endpoint_binds("tcp://*:5557"));
  EXPECT_FALSE(endpoint_binds("tcp://epp.svc:5557"));
}

// ---------------------------------------------------------------- wire layout

TEST(KvEventWire, IndependentReaderSeesVllmArrayLikeLayout) {
  const std::vector<KvCacheEvent> events = sample_events();
  const std::string payload = encode_as_publisher(1234.5, events, 3);
  std::optional<mp::Value> v = mp::Reader::parse(payload);
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->kind, Kind::kArray);
  ASSERT_EQ(v->items.size(), 3u);
  EXPECT_EQ(v->items[0].marker, 0xcb);  // float64
  EXPECT_EQ(v->items[0].f, 1234.5);
  EXPECT_EQ(v->items[2].kind, Kind::kUint);
  EXPECT_EQ(v->items[2].u, 3u);
  const auto& evs = v->items[1];
  ASSERT_EQ(evs.kind, Kind::kArray);
  ASSERT_EQ(evs.items.size(), 4u);

  const auto& bs = evs.items[0];
  ASSERT_EQ(bs.items.size(), 7u);
  EXPECT_EQ(bs.items[0].s, "BlockStored");
  EXPECT_EQ(bs.items[0].kind, Kind::kStr);
  ASSERT_EQ(bs.items[1].items.size(), 2u);
  EXPECT_EQ(bs.items[1].items[0].u, 0x1122334455667788ULL);
  EXPECT_EQ(bs.items[1].items[1].u, 5u);
  for (const auto& h : bs.items[1].items) EXPECT_EQ(h.marker, 0xcf);  // always uint64
  EXPECT_EQ(bs.items[2].u, 0xfedcba9876543210ULL);
  EXPECT_EQ(bs.items[2].marker, 0xcf);
  ASSERT_EQ(bs.items[3].items.size(), 4u);
  const uint64_t want_tokens[] = {1, 200, 70000, 3};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(bs.items[3].items[i].kind, Kind::kUint);
    EXPECT_EQ(bs.items[3].items[i].u, want_tokens[i]);
  }
  EXPECT_EQ(bs.items[4].u, 2u);
  EXPECT_TRUE(bs.items[5].is_nil());  // lora_id
  EXPECT_EQ(bs.items[6].kind, Kind::kStr);
  EXPECT_EQ(bs.items[6].s, "GPU");

  const auto& br = evs.items[1];
  ASSERT_EQ(br.items.size(), 3u);
  EXPECT_EQ(br.items[0].s, "BlockRemoved");
  ASSERT_EQ(br.items[1].items.size(), 2u);
  EXPECT_EQ(br.items[1].items[0].u, 9u);
  EXPECT_EQ(br.items[1].items[1].u, 0x8000000000000000ULL);
  EXPECT_EQ(br.items[2].s, "GPU");

  const auto& ac = evs.items[2];
  ASSERT_EQ(ac.items.size(), 1u);
  EXPECT_EQ(ac.items[0].s, "AllBlocksCleared");

  EXPECT_TRUE(evs.items[3].items[2].is_nil());  // first block: no parent
}

TEST(KvEventWire, NoRankEncodesNil) {
  const std::string payload = encode_as_publisher(1.0, {}, std::nullopt);
  auto v = mp::Reader::parse(payload);
  ASSERT_TRUE(v.has_value());
  ASSERT_EQ(v->items.size(), 3u);
  EXPECT_TRUE(v->items[1].items.empty());
  EXPECT_TRUE(v->items[2].is_nil());
}

TEST(KvEventWire, DecoderRoundTrip) {
  const std::vector<KvCacheEvent> events = sample_events();
  auto b = decode_kv_event_payload(encode_as_publisher(99.25, events, 1));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->ts, 99.25);
  EXPECT_EQ(b->data_parallel_rank, 1);
  EXPECT_EQ(b->skipped_events, 0);
  ASSERT_EQ(b->events.size(), 4u);
  const auto& s = std::get<BlockStored>(b->events[0]);
  const auto& in = std::get<BlockStored>(events[0]);
  ASSERT_EQ(s.block_hashes.size(), 2u);
  EXPECT_EQ(s.block_hashes[0], in.block_hashes[0]);
  EXPECT_EQ(s.block_hashes[1], in.block_hashes[1]);
  EXPECT_EQ(s.parent_block_hash, in.parent_block_hash);
  EXPECT_EQ(s.token_ids, in.token_ids);
  EXPECT_EQ(s.block_size, 2);
  EXPECT_FALSE(s.lora_id.has_value());
  EXPECT_EQ(s.medium, "GPU");
  const auto& r = std::get<BlockRemoved>(b->events[1]);
  EXPECT_EQ(r.block_hashes, (std::vector<uint64_t>{9, 0x8000000000000000ULL}));
  EXPECT_TRUE(std::holds_alternative<AllBlocksCleared>(b->events[2]));
  EXPECT_FALSE(std::get<BlockStored>(b->events[3]).parent_block_hash.has_value());
}

TEST(KvEventWire, DecoderReadsMapEncodingBytesHashesAndSkipsUnknownTags) {
  // Current upstream vLLM: maps, tag under "type"; hashes as 32-byte digests; no rank.
  std::string digest(32, '\x11');
  digest.replace(24, 8, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  mp::Writer w;
  w.map(2).str("ts").f64(7.5).str("events").array(3);
  w.map(5)
      .str("type")
      .str("BlockStored")
      .str("block_hashes")
      .array(1)
      .bin(digest)
      .str("parent_block_hash")
      .nil()
      .str("token_ids")
      .array(2)
      .uint(5)
      .uint(300)
      .str("block_size")
      .uint(2);
  w.map(2).str("type").str("SomethingNew").str("x").uint(1);
  // Array-like with only the required fields (no lora_id, medium).
  w.array(5).str("BlockStored").array(1).uint(77).uint(66).array(2).uint(1).uint(2).uint(2);
  auto b = decode_kv_event_payload(w.bytes());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->ts, 7.5);
  EXPECT_FALSE(b->data_parallel_rank.has_value());
  EXPECT_EQ(b->skipped_events, 1);
  ASSERT_EQ(b->events.size(), 2u);
  const auto& m = std::get<BlockStored>(b->events[0]);
  EXPECT_EQ(m.block_hashes, std::vector<uint64_t>{0x0102030405060708ULL});
  EXPECT_FALSE(m.parent_block_hash.has_value());
  EXPECT_EQ(m.token_ids, (std::vector<int32_t>{5, 300}));
  EXPECT_EQ(m.block_size, 2);
  EXPECT_FALSE(m.medium.has_value());
  const auto& a = std::get<BlockStored>(b->events[1]);
  EXPECT_EQ(a.block_hashes, std::vector<uint64_t>{77});
  EXPECT_EQ(a.parent_block_hash, 66u);
  EXPECT_FALSE(a.lora_id.has_value());

  // A required field missing is an error.
  mp::Writer bad;
  bad.array(2).f64(1.0).array(1).array(4).str("BlockStored").array(0).nil().array(0);
  EXPECT_FALSE(decode_kv_event_payload(bad.bytes()).ok());
}

TEST(KvEventWire, DecoderRejectsMalformedInputWithoutCrashing) {
  const std::string good = encode_as_publisher(3.0, sample_events(), 0);
  ASSERT_TRUE(decode_kv_event_payload(good).ok());
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_kv_event_payload(std::string_view(good).substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(decode_kv_event_payload(good + "x").ok());
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    (void)decode_kv_event_payload(bad);  // must return, whatever it says
  }
  // A header claiming 2^32-1 array elements in a tiny payload.
  EXPECT_FALSE(decode_kv_event_payload(std::string("\xdd\xff\xff\xff\xff\x00", 6)).ok());
  EXPECT_FALSE(decode_kv_event_message(std::vector<std::string>{"kv@a@b", "1234567", good}).ok());
  EXPECT_FALSE(decode_kv_event_message(std::vector<std::string>{"kv@a@b", good}).ok());
}

TEST(KvEventWire, TopicSplitsIntoPodAndModel) {
  auto t = parse_kv_topic("kv@10.1.2.3:8000@deepseek-ai/DeepSeek-V2-Lite");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->pod_id, "10.1.2.3:8000");
  EXPECT_EQ(t->model, "deepseek-ai/DeepSeek-V2-Lite");
  EXPECT_FALSE(parse_kv_topic("kv@nomodel").ok());
}

// ---------------------------------------------------------------- ZMQ

std::string be64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) s[i] = static_cast<char>(v & 0xff);
  return s;
}

uint64_t from_be64(const std::string& s) {
  uint64_t v = 0;
  for (char c : s) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

// Receives one multipart message (empty on timeout).
std::vector<std::string> recv_multipart(void* socket, int timeout_ms) {
  zmq_setsockopt(socket, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
  std::vector<std::string> frames;
  bool more = true;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, socket, 0) < 0) {
      zmq_msg_close(&m);
      return {};
    }
    frames.emplace_back(static_cast<const char*>(zmq_msg_data(&m)), zmq_msg_size(&m));
    more = zmq_msg_more(&m) != 0;
    zmq_msg_close(&m);
  }
  return frames;
}

KvEventsConfig loopback_config(std::string topic) {
  KvEventsConfig c;
  c.enable_kv_cache_events = true;
  c.publisher = "zmq";
  c.endpoint = "tcp://127.0.0.1:*";
  c.topic = std::move(topic);
  return c;
}

struct ZmqCtx {
  void* ctx = zmq_ctx_new();
  ~ZmqCtx() { zmq_ctx_term(ctx); }
};

TEST(ZmqKvEventPublisher, SendsTopicSequenceAndPayloadFrames) {
  auto pub = ZmqKvEventPublisher::create(loopback_config("kv@127.0.0.1:9@tiny"), {});
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_NE((*pub)->endpoint().find("tcp://127.0.0.1:"), std::string::npos);
  EXPECT_EQ((*pub)->endpoint().find('*'), std::string::npos);
  ZmqCtx z;
  void* sub = zmq_socket(z.ctx, ZMQ_SUB);
  zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "kv@", 3);
  ASSERT_EQ(zmq_connect(sub, (*pub)->endpoint().c_str()), 0);
  // Probe until the subscription has reached the publisher (ZMQ's slow joiner).
  std::vector<std::string> frames;
  for (int i = 0; i < 100 && frames.empty(); ++i) {
    (*pub)->publish(AllBlocksCleared{});
    (*pub)->end_step();
    frames = recv_multipart(sub, 50);
  }
  ASSERT_EQ(frames.size(), 3u);
  uint64_t seq = from_be64(frames[1]);
  while (!(frames = recv_multipart(sub, 100)).empty()) seq = from_be64(frames[1]);  // drain
  (*pub)->end_step();  // nothing pending: no message
  for (const KvCacheEvent& e : sample_events()) (*pub)->publish(e);
  (*pub)->end_step();
  frames = recv_multipart(sub, 5000);
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0], "kv@127.0.0.1:9@tiny");
  ASSERT_EQ(frames[1].size(), 8u);
  EXPECT_EQ(from_be64(frames[1]), seq + 1);
  auto v = mp::Reader::parse(frames[2]);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->items[1].items.size(), 4u);
  EXPECT_EQ(v->items[2].u, 0u);  // data_parallel_rank
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(v->items[0].f, now, 60.0);
  zmq_close(sub);
}

TEST(ZmqKvEventPublisher, ReplaysBufferedBatches) {
  KvEventsConfig c = loopback_config("kv@x@m");
  c.replay_endpoint = "tcp://127.0.0.1:*";
  c.buffer_steps = 3;
  auto pub = ZmqKvEventPublisher::create(c, {});
  ASSERT_TRUE(pub.ok()) << pub.status();
  std::vector<std::string> payloads;
  for (int i = 0; i < 5; ++i) {
    (*pub)->publish(BlockRemoved{{hash_of(100 + i)}, std::nullopt});
    (*pub)->end_step();
  }
  for (int i = 0; i < 500 && (*pub)->stats().batches_sent < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ((*pub)->stats().batches_sent, 5u);
  ZmqCtx z;
  void* dealer = zmq_socket(z.ctx, ZMQ_DEALER);
  ASSERT_EQ(zmq_connect(dealer, (*pub)->replay_endpoint().c_str()), 0);
  zmq_send(dealer, "", 0, ZMQ_SNDMORE);
  const std::string start = be64(1);
  zmq_send(dealer, start.data(), 8, 0);
  std::vector<uint64_t> seqs;
  while (true) {
    std::vector<std::string> f = recv_multipart(dealer, 5000);
    ASSERT_EQ(f.size(), 3u);
    EXPECT_TRUE(f[0].empty());
    if (from_be64(f[1]) == ~uint64_t{0}) {
      EXPECT_TRUE(f[2].empty());
      break;
    }
    seqs.push_back(from_be64(f[1]));
    auto b = decode_kv_event_payload(f[2]);
    ASSERT_TRUE(b.ok());
    ASSERT_EQ(b->events.size(), 1u);
    EXPECT_EQ(std::get<BlockRemoved>(b->events[0]).block_hashes[0], 100 + seqs.back());
  }
  // Five batches sent, three kept: 2, 3, 4 (all >= 1).
  EXPECT_EQ(seqs, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ((*pub)->stats().replay_requests, 1u);
  zmq_close(dealer);
}

// Collects deliveries from a KvEventSubscriber.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<KvEventDelivery> got;
  KvEventSubscriber::Callback callback() {
    return [this](const KvEventDelivery& d) {
      std::lock_guard<std::mutex> lk(mu);
      got.push_back(d);
      cv.notify_all();
    };
  }
  bool wait_for(size_t n, int ms = 5000) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return got.size() >= n; });
  }
};

TEST(KvEventSubscriber, DeliversDecodedBatchesAndDetectsGaps) {
  ZmqCtx z;
  void* pub = zmq_socket(z.ctx, ZMQ_PUB);
  ASSERT_EQ(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
  char ep[256];
  size_t len = sizeof(ep);
  zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, ep, &len);
  Inbox inbox;
  auto sub = KvEventSubscriber::start({{ep}}, inbox.callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  auto send = [&](const std::string& topic, uint64_t seq, std::optional<int64_t> rank) {
    const std::string s = be64(seq);
    const std::string p = encode_as_publisher(1.0, sample_events(), rank);
    zmq_send(pub, topic.data(), topic.size(), ZMQ_SNDMORE);
    zmq_send(pub, s.data(), 8, ZMQ_SNDMORE);
    zmq_send(pub, p.data(), p.size(), 0);
  };
  for (int i = 0; i < 200; ++i) {  // probe past the slow joiner
    send("kv@probe@m", i, 0);
    if (inbox.wait_for(1, 25)) break;
  }
  ASSERT_TRUE(inbox.wait_for(1));
  size_t base;
  {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::lock_guard<std::mutex> lk(inbox.mu);
    base = inbox.got.size();
  }
  send("other@x@m", 0, 0);  // filtered out by the "kv@" subscription
  send("kv@a@m", 0, 0);
  send("kv@a@m", 1, 0);
  send("kv@a@m", 4, 0);  // 2 and 3 lost
  send("kv@a@m", 0, 1);  // rank 1 is its own stream
  send("kv@a@m", 1, 0);  // rank 0 restarted
  const std::string garbage = "not msgpack";
  const std::string s = be64(5);
  zmq_send(pub, "kv@a@m", 6, ZMQ_SNDMORE);
  zmq_send(pub, s.data(), 8, ZMQ_SNDMORE);
  zmq_send(pub, garbage.data(), garbage.size(), 0);
  send("kv@a@m", 2, 0);
  ASSERT_TRUE(inbox.wait_for(base + 6));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard<std::mutex> lk(inbox.mu);
  ASSERT_EQ(inbox.got.size(), base + 6);
  const auto* d = &inbox.got[base];
  EXPECT_EQ(d[0].message.topic, "kv@a@m");
  EXPECT_TRUE(d[0].first_of_stream);
  EXPECT_EQ(d[0].message.batch.events.size(), 4u);
  EXPECT_EQ(d[1].missed_before, 0u);
  EXPECT_FALSE(d[1].first_of_stream);
  EXPECT_EQ(d[2].missed_before, 2u);
  EXPECT_EQ(d[2].message.seq, 4u);
  EXPECT_TRUE(d[3].first_of_stream);
  EXPECT_EQ(d[3].message.batch.data_parallel_rank, 1);
  EXPECT_TRUE(d[4].sequence_restarted);
  EXPECT_EQ(d[5].message.seq, 2u);
  EXPECT_EQ(d[5].missed_before, 0u);
  const KvEventSubscriberStats st = (*sub)->stats();
  EXPECT_EQ(st.decode_errors, 1u);
  EXPECT_EQ(st.gaps, 1u);
  EXPECT_EQ(st.missed_batches, 2u);
  zmq_close(pub);
}

TEST(KvEventSubscriber, QueueDropsShowUpAsSequenceGaps) {
  KvEventsConfig c = loopback_config("kv@drop@m");
  c.max_queue_size = 1;
  auto pub = ZmqKvEventPublisher::create(c, {});
  ASSERT_TRUE(pub.ok());
  Inbox inbox;
  auto sub = KvEventSubscriber::start({{(*pub)->endpoint()}}, inbox.callback());
  ASSERT_TRUE(sub.ok());
  for (int i = 0; i < 200 && !inbox.wait_for(1, 25); ++i) {
    (*pub)->publish(AllBlocksCleared{});
    (*pub)->end_step();
  }
  ASSERT_TRUE(inbox.wait_for(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  size_t before;
  uint64_t prev_seq;
  {
    std::lock_guard<std::mutex> lk(inbox.mu);
    before = inbox.got.size();
    prev_seq = inbox.got.back().message.seq;
  }
  const KvEventPublisherStats p0 = (*pub)->stats();
  const uint64_t s0 = p0.batches_queued + p0.batches_dropped;  // first burst seq
  constexpr int kSteps = 3000;
  for (int i = 0; i < kSteps; ++i) {
    (*pub)->publish(BlockRemoved{{hash_of(i)}, std::nullopt});
    (*pub)->end_step();
  }
  auto drained = [&] {
    for (int i = 0; i < 1000; ++i) {
      const KvEventPublisherStats p = (*pub)->stats();
      if (p.batches_sent == p.batches_queued) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  };
  ASSERT_TRUE(drained());
  (*pub)->publish(AllBlocksCleared{});  // one more batch, sent alone, closes any gap
  (*pub)->end_step();
  ASSERT_TRUE(drained());
  const KvEventPublisherStats p = (*pub)->stats();
  const uint64_t dropped = p.batches_dropped - p0.batches_dropped;
  RecordProperty("dropped", static_cast<int>(dropped));
  EXPECT_EQ(p.batches_queued + p.batches_dropped, s0 + kSteps + 1);
  ASSERT_TRUE(inbox.wait_for(before + kSteps + 1 - dropped));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard<std::mutex> lk(inbox.mu);
  ASSERT_EQ(inbox.got.size(), before + kSteps + 1 - dropped);
  uint64_t missed = 0;
  uint64_t last = prev_seq;
  for (size_t i = before; i < inbox.got.size(); ++i) {
    const KvEventDelivery& d = inbox.got[i];
    EXPECT_EQ(d.message.seq, last + 1 + d.missed_before);
    missed += d.missed_before;
    last = d.message.seq;
  }
  EXPECT_EQ(last, s0 + kSteps);
  // Probes after prev_seq were dropped by the queue too (else they would have arrived).
  EXPECT_EQ(missed, dropped + (s0 - 1 - prev_seq));
}

TEST(ZmqKvEventPublisher, ConnectsToACentralCollector) {
  // llm-d's default topology: the indexer binds, every engine connects to it.
  Inbox inbox;
  KvEventSubscriberOptions so;
  so.endpoints = {"tcp://127.0.0.1:*"};
  auto sub = KvEventSubscriber::start(so, inbox.callback());
  ASSERT_TRUE(sub.ok()) << sub.status();
  const std::string collector = (*sub)->endpoints()[0];
  ASSERT_EQ(collector.find('*'), std::string::npos);
  auto pub =
      make_kv_event_publisher(absl::StrCat(R"({"enable_kv_cache_events": true, "endpoint": ")",
                                           collector, R"(", "topic": "kv@10.0.0.7:8000@m"})"),
                              /*dp_rank=*/0);
  ASSERT_TRUE(pub.ok()) << pub.status();
  ASSERT_NE(*pub, nullptr);
  EXPECT_EQ((*pub)->endpoint(), collector);
  for (int i = 0; i < 200 && !inbox.wait_for(1, 25); ++i) {
    (*pub)->publish(BlockRemoved{{hash_of(1)}, std::nullopt});
    (*pub)->end_step();
  }
  ASSERT_TRUE(inbox.wait_for(1));
  std::lock_guard<std::mutex> lk(inbox.mu);
  EXPECT_EQ(inbox.got[0].message.topic, "kv@10.0.0.7:8000@m");
  auto t = parse_kv_topic(inbox.got[0].message.topic);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->pod_id, "10.0.0.7:8000");
}

TEST(ZmqKvEventPublisher, AddressInUseIsAnError) {
  KvEventsConfig c = loopback_config("kv@a@m");
  c.endpoint = "tcp://*:*";
  auto first = ZmqKvEventPublisher::create(c, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string& ep = (*first)->endpoint();
  c.endpoint = absl::StrCat("tcp://*:", ep.substr(ep.rfind(':') + 1));
  auto second = ZmqKvEventPublisher::create(c, {});
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace moeserve::kv_events
