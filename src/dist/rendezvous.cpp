#include "rendezvous.h"

#include "errors.h"

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <string>
#include <thread>

namespace tlora::dist::detail {
namespace {

std::string text(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }
std::vector<uint8_t> bytes(const std::string& text) { return {text.begin(), text.end()}; }

std::string seconds(std::chrono::milliseconds t) { return c10::str(t.count() / 1000.0, " s"); }

// Waits for `key`, turning the store's timeout into a message that says what was awaited.
std::string await(c10d::Store& store, const std::string& key, std::chrono::milliseconds timeout,
                  const std::string& what) {
  try {
    store.wait({key}, timeout);
    return text(store.get(key));
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "tlora::dist: ", what, " (timeout ", seconds(timeout), "): ", message_of(e));
  }
}

const std::string kVerdictKey = "verdict";
const std::string kGroupOk = "ok";
const std::string kAcksKey = "verdict_read";

}  // namespace

c10::intrusive_ptr<c10d::Store> rendezvous(const LaunchEnvironment& env, std::chrono::milliseconds timeout) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const std::string me = "rank " + std::to_string(env.rank);
  c10::intrusive_ptr<c10d::Store> tcp;
  try {
    c10d::TCPStoreOptions options;
    options.port = env.master_port;
    options.isServer = env.rank == 0 && !env.agent_store;
    options.waitWorkers = false;  // the world size is checked below, with a better message
    options.timeout = timeout;
    tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "tlora::dist: ", me, " could not ", env.rank == 0 && !env.agent_store ? "host" : "reach",
                " the store at MASTER_ADDR:MASTER_PORT=", where, " (timeout ", seconds(timeout), "): ", message_of(e));
  }
  auto store = c10::make_intrusive<c10d::PrefixStore>(
      "tlora/attempt_" + std::to_string(env.restart_count), tcp);

  TORCH_CHECK(store->add("claims/" + std::to_string(env.rank), 1) == 1, "tlora::dist: RANK=", env.rank,
              " is claimed by two processes at ", where, " (each process needs its own RANK)");
  const std::string mine = std::to_string(env.world_size);
  store->set("world_size/" + std::to_string(env.rank), bytes(mine));

  if (env.rank == 0) {
    std::string verdict = kGroupOk;
    int64_t joined = 0;
    for (int r = 1; r < env.world_size && verdict == kGroupOk; ++r, ++joined) {
      const std::string theirs = await(*store, "world_size/" + std::to_string(r), timeout,
                                       "rank 0 waited for rank " + std::to_string(r) + " of WORLD_SIZE=" + mine +
                                           " to join at " + where);
      if (theirs != mine) {
        verdict = "rank " + std::to_string(r) + " has WORLD_SIZE=" + theirs + " but rank 0 has WORLD_SIZE=" + mine;
      }
    }
    store->set(kVerdictKey, bytes(verdict));
    if (verdict != kGroupOk) {
      // Rank 0 hosts the store: it stays until the ranks that joined have read the verdict, so
      // that they report the mismatch rather than a lost connection.
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      while (store->add(kAcksKey, 0) < joined && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      TORCH_CHECK(false, "tlora::dist: ", verdict);
    }
  } else {
    const std::string root = await(*store, "world_size/0", timeout, me + " waited for rank 0 at " + where);
    if (root != mine) store->add(kAcksKey, 1);
    TORCH_CHECK(root == mine, "tlora::dist: ", me, " has WORLD_SIZE=", mine, " but rank 0 has WORLD_SIZE=", root);
    const std::string verdict = await(*store, kVerdictKey, timeout, me + " waited for rank 0 to see every rank join");
    store->add(kAcksKey, 1);
    TORCH_CHECK(verdict == kGroupOk, "tlora::dist: rank 0 refused the group: ", verdict);
  }
  return store;
}

void store_barrier(c10d::Store& store, int rank, int world_size, int64_t generation,
                   std::chrono::milliseconds timeout) {
  const std::string key = "barrier/" + std::to_string(generation);
  if (store.add(key + "/arrived", 1) == world_size) store.set(key + "/done", bytes(kGroupOk));
  await(store, key + "/done", timeout,
        "rank " + std::to_string(rank) + " waited at a barrier for all " + std::to_string(world_size) + " ranks");
}

}  // namespace tlora::dist::detail
